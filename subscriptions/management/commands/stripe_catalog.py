from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from subscriptions.models import Plan
from subscriptions.services.catalog import plan_push_to_stripe
from subscriptions.services.catalog_pull import (
    PRICE_METADATA,
    PRODUCT_METADATA,
    stripe_catalog_sync,
)


def _keys(keys: dict[str, str]) -> str:
    return "\n".join(f"  metadata[{key}]: {text}" for key, text in keys.items())


SYNC_HELP = f"""Pull the whole catalog from Stripe: every Product becomes (or updates) a plan and
every recurring Price a plan price, subscribable through the API at once. Idempotent.

A plan made in our admin is only linked (product by metadata[plan] = its slug, price by lookup
key), never changed. A plan made in Stripe takes its name, description and archived state
(active=false) from the Product, and its entitlements from the Product's metadata:
{_keys(PRODUCT_METADATA)}
A price takes currency, interval and interval_count, per-unit amount or tiers (graduated or
volume), usage type, nickname, lookup key (else its id), active, and its trial from
recurring.trial_period_days or:
{_keys(PRICE_METADATA)}
Skipped (reported): one-time prices (not subscribable), prices with transform_quantity or a
sub-minor-unit amount, products whose entitlement metadata does not parse. Inactive prices,
archived products and Stripe-made plans or prices that Stripe no longer lists stop selling.
After the sync the product.* and price.* webhooks keep the catalog current.
"""


class Command(BaseCommand):
    help = (
        "sync: pull every Stripe Product and Price into our plans and prices (see sync --help); "
        "push --plan <slug>: push one plan made in our admin (Product + Prices) to Stripe."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser(
            "sync",
            help="Pull the whole catalog from Stripe into plans and prices.",
            description=SYNC_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        push = sub.add_parser("push", help="Push one plan made in our admin to Stripe.")
        push.add_argument("--plan", required=True, help="The plan's slug.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "sync":
            r = stripe_catalog_sync()
            self.stdout.write(
                f"synced {r.products} products, {r.prices} prices; plans: {r.plans_created} "
                f"created, {r.plans_updated} updated, {r.plans_linked} linked; prices: "
                f"{r.prices_created} created, {r.prices_updated} updated, {r.prices_linked} "
                f"linked; {r.deactivated} deactivated (gone from Stripe); "
                f"{r.one_time_skipped} one-time prices skipped (not subscribable)"
            )
            for message in r.refused:
                self.stderr.write(f"skipped {message}")
            return
        plan = Plan.objects.filter(slug=options["plan"]).first()
        if plan is None:
            raise CommandError(f"no plan with slug {options['plan']!r}")
        plan = plan_push_to_stripe(plan=plan)
        self.stdout.write(f"pushed {plan.slug} as {plan.stripe_product_id}")
