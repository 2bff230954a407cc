"""``python manage.py analytics_rebuild [--apply]``: recompute all MRR history from the Stripe
events (``analytics.rebuild``) and report how the stored movements differ.

Without ``--apply`` it only reports, and exits with status 1 when anything differs (so it can
guard a deploy or a cron check). With ``--apply`` it replaces the differing rows in one
transaction and recomputes the daily snapshots from the earliest day touched. With
``--snapshots`` it only recomputes all the daily snapshots from the stored movements.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from analytics.rebuild import (
    movements_diff,
    movements_rebuild_apply,
    movements_replay,
    snapshots_rebuild,
)


class Command(BaseCommand):
    help = "Recompute MRR movements from Stripe's subscription events; report or fix differences."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--apply",
            action="store_true",
            help="Replace the differing movements and rebuild the snapshots.",
        )
        parser.add_argument(
            "--snapshots",
            action="store_true",
            help="Only recompute every daily snapshot from the stored movements (no replay): "
            "the first backfill, without the beat task's days-per-run bound.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["snapshots"]:
            run = snapshots_rebuild()
            days = ", ".join(f"{c} {first}..{last}" for c, (first, last) in run.days.items())
            self.stdout.write(f"snapshots recomputed: {days or 'none'}")
            return
        expected = movements_replay()
        diff = movements_diff(expected)
        for line in diff.lines():
            self.stdout.write(line)
        summary = (
            f"{len(expected)} movements from the events: {len(diff.missing)} missing, "
            f"{len(diff.extra)} extra, {len(diff.different)} different"
        )
        self.stdout.write(summary)
        if not diff:
            return
        if not options["apply"]:
            self.stderr.write("differences found; run with --apply to fix them")
            sys.exit(1)
        run = movements_rebuild_apply(diff=diff)
        days = ", ".join(f"{c} {first}..{last}" for c, (first, last) in run.days.items())
        self.stdout.write(f"applied; snapshots recomputed: {days or 'none'}")
