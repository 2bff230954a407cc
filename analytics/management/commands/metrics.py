"""``python manage.py metrics --date YYYY-MM-DD [--currency usd] [--json]``: the summary of
``analytics.reports.summary`` (the same dict as ``GET /api/v1/analytics/summary``)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics import reports


class Command(BaseCommand):
    help = "Print MRR, ARR, active customers, ARPA and the usage run-rate at the end of a day."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="YYYY-MM-DD (UTC); default: today")
        parser.add_argument(
            "--currency", help="ISO code; default: every currency with data (one line each)"
        )
        parser.add_argument("--json", action="store_true", help="One JSON object per line.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            on = date.fromisoformat(options["date"]) if options["date"] else None
        except ValueError as exc:
            raise CommandError(f"--date: {exc}") from exc
        on = on or datetime.now(tz=UTC).date()
        wanted = [options["currency"]] if options["currency"] else reports.currencies()
        for currency in wanted:
            try:
                summary = reports.summary(on=on, currency=currency)
            except reports.ReportError as exc:
                raise CommandError(f"--{exc.field}: {exc.message}") from exc
            if options["json"]:
                self.stdout.write(json.dumps(summary.as_dict(), sort_keys=False))
            else:
                self.stdout.write(
                    " ".join(f"{key}={value}" for key, value in summary.as_dict().items())
                )
