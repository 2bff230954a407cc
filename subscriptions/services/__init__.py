"""Writes for subscriptions, split by concern:

- catalog.py   plans and prices made in our admin, pushed to Stripe
- catalog_pull.py  plans and prices pulled from Stripe (sync and product/price webhooks)
- billing.py   billing customers, subscribe / change / cancel / resume, checkout and portal
- inbox.py     the webhook inbox: accept, process, retry, reconcile
- effects.py   what events do: ledger postings, subscription state, MRR movements, dunning
"""
