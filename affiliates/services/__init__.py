"""Writes for affiliates, split by concern:

- applications.py  apply, approve, reject, suspend (with emails)
- tracking.py      links, the /r/<code> click (buffered), click flushing
- attribution.py   who referred a customer (code, cookie, Stripe metadata)
- commissions.py   accrue on paid invoices, hold, approve, clawback
- fraud.py         the fraud rules a referral or commission is checked against
"""
