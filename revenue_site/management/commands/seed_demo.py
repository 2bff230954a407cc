from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from revenue_site.demo import seed_all


class Command(BaseCommand):
    help = "Create idempotent demo data for every revenue stream (development only)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-real-stripe",
            action="store_true",
            help="Seed even though STRIPE_API_HOST is unset (a real Stripe test account).",
        )

    def handle(self, *args, **options):
        if settings.STRIPE_LIVE_MODE:
            raise CommandError("seed_demo never runs against Stripe live mode.")
        if not getattr(settings, "STRIPE_API_HOST", "") and not options["allow_real_stripe"]:
            raise CommandError(
                "seed_demo creates objects in Stripe; it runs against the local fake Stripe "
                "(STRIPE_API_HOST) unless --allow-real-stripe is given."
            )
        seed_all(out=lambda line: self.stdout.write(line))
        self.stdout.write(self.style.SUCCESS("demo data ready"))
