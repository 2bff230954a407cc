"""Shared fixtures. Stripe fixtures live in tests/stripe_harness.py (the localstripe harness)."""
