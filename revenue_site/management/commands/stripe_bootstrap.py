"""``manage.py stripe_bootstrap --webhook-url URL``: dj-stripe's API key, account and webhooks.

URL is the site's base URL (``http://127.0.0.1:8000``) or its webhook base
(``http://127.0.0.1:8000/stripe/webhook/``); the command appends each endpoint's uuid. It
makes two endpoints: the platform's (every event) and the Connect endpoint (``connect=true``:
connected accounts' ``account.updated`` and payouts). Prints exactly one JSON line:
``{"webhook_url": "<url with uuid>", "secret": "whsec_...", "connect_webhook_url": ...,
"connect_secret": ...}``. Safe to run again: it finds the same endpoints and prints the same
line.
"""

from __future__ import annotations

from typing import Any

import stripe
from django.core.management.base import BaseCommand, CommandError, CommandParser
from djstripe.exceptions import InvalidStripeAPIKey

from revenue_site.stripe_setup import (
    StripeSetupError,
    stripe_connect_webhook_endpoint_ensure,
    stripe_webhook_endpoint_ensure,
    webhook_setup_json,
)


class Command(BaseCommand):
    help = (
        "Create or update dj-stripe's APIKey/Account and the site's Stripe webhook endpoints "
        "(the platform's and the Connect one)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--webhook-url",
            required=True,
            help="site base URL or its /stripe/webhook/ base; the endpoint uuid is appended",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            setup = stripe_webhook_endpoint_ensure(base_url=options["webhook_url"])
            connect = stripe_connect_webhook_endpoint_ensure(base_url=options["webhook_url"])
        except (StripeSetupError, InvalidStripeAPIKey, stripe.StripeError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(webhook_setup_json(setup, connect))
