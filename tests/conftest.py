"""Shared fixtures. Stripe fixtures live in tests/stripe_harness.py (the localstripe harness)."""

pytest_plugins = ["tests.stripe_harness"]
