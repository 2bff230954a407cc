"""``python manage.py run_payouts --as-of YYYY-MM-DD [--payee-type affiliate] [--dry-run]``."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger.models import Account
from ledger.payouts import payout_batch_run


class Command(BaseCommand):
    help = "Create (or resume) the payout batch of a payee type as of a day, and execute it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", required=True, help="YYYY-MM-DD (balances up to its end)")
        parser.add_argument(
            "--payee-type", default="affiliate", choices=list(Account.PayeeType.values)
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Create the batch as a DRAFT; pay nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            as_of = datetime.date.fromisoformat(options["as_of"])
        except ValueError as exc:
            raise CommandError(f"--as-of: {exc}") from exc
        batch = payout_batch_run(
            payee_type=options["payee_type"], as_of=as_of, execute=not options["dry_run"]
        )
        payouts = list(batch.payouts.order_by("pk"))
        for payout in payouts:
            self.stdout.write(
                f"{payout.payee_type} {payout.payee_id}: {payout.amount} {payout.currency} "
                f"{payout.method} {payout.status}"
                + (f" ({payout.failure_message})" if payout.failure_message else "")
                + (f" ({payout.skip_reason})" if payout.skip_reason else "")
            )
        self.stdout.write(
            f"batch {batch.pk} ({batch.as_of}): {batch.status}, {len(payouts)} payouts"
        )
