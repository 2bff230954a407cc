"""Writes for subscriptions, split by concern:

- catalog.py   plans and prices made in our admin, pushed to Stripe
- catalog_pull.py  plans and prices pulled from Stripe (sync and product/price webhooks)
- billing/     billing customers, subscribe / change / cancel / resume, checkout and portal,
               the staff refund (a package: customers, subscriptions, refunds)
- inbox.py     the webhook inbox: accept, process, retry, reconcile
What events do (called by ``subscriptions.receivers``):
- invoice_postings.py   ledger postings of paid invoices, refunds and disputes
- stripe_fees.py        Stripe's fees from balance transactions
- bank_payouts.py       Stripe payouts to the bank
- invoice_payments.py   which invoice a payment intent paid (refunds and disputes need it)
- subscription_state.py a subscription's state and its MRR movements
- dunning.py            dunning cases of invoices whose payment failed
"""
