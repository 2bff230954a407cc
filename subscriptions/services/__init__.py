"""Writes for subscriptions, split by concern:

- catalog.py   plans and prices pushed to / pulled from Stripe
- billing.py   billing customers, subscribe / change / cancel / resume, checkout and portal
- inbox.py     the webhook inbox: accept, process, retry, reconcile
- effects.py   what events do: ledger postings, subscription state, MRR movements, dunning
"""
