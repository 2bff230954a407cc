from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from subscriptions.models import Plan
from subscriptions.services.catalog import plan_push_to_stripe, stripe_catalog_sync


class Command(BaseCommand):
    help = (
        "sync: pull every Stripe Product and Price into the mirror and link our plans; "
        "push --plan <slug>: push one plan (Product + Prices) to Stripe."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("sync", help="Pull the whole catalog from Stripe.")
        push = sub.add_parser("push", help="Push one plan to Stripe.")
        push.add_argument("--plan", required=True, help="The plan's slug.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "sync":
            result = stripe_catalog_sync()
            self.stdout.write(
                f"synced {result.products} products, {result.prices} prices; linked "
                f"{result.plans_linked} plans, {result.prices_linked} prices"
            )
            return
        plan = Plan.objects.filter(slug=options["plan"]).first()
        if plan is None:
            raise CommandError(f"no plan with slug {options['plan']!r}")
        plan = plan_push_to_stripe(plan=plan)
        self.stdout.write(f"pushed {plan.slug} as {plan.stripe_product_id}")
