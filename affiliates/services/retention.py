"""Click retention: raw Click rows older than ``CLICK_RETENTION_DAYS`` become daily counts per
link (``ClickDaily``) and are deleted, batch by batch, each batch counted and deleted in one
transaction so the figures (Click rows + ClickDaily) never change."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, time

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.db.models.functions import TruncDate

from affiliates.models import Click, ClickDaily
from revenue_site.retention import DEFAULT_BATCH_SIZE, retention_cutoff

logger = logging.getLogger(__name__)


def _daily_add(rows: Iterable[tuple[int, date, int]]) -> None:
    """Add (link id, day, clicks) to the daily counts: one upsert that adds on conflict."""
    table = connection.ops.quote_name(ClickDaily._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (link_id, day, clicks) VALUES (%s, %s, %s) "  # noqa: S608
            f"ON CONFLICT (link_id, day) DO UPDATE SET clicks = {table}.clicks + excluded.clicks",
            list(rows),
        )


def clicks_prune(
    *, now: datetime | None = None, batch_size: int = DEFAULT_BATCH_SIZE, max_batches: int = 10_000
) -> int:
    """Roll up and delete the clicks of whole UTC days older than ``CLICK_RETENTION_DAYS``.
    Rows are claimed with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so two prunes never count
    one click twice. Returns how many clicks were rolled up."""
    cutoff = retention_cutoff(days=settings.CLICK_RETENTION_DAYS, now=now)
    cutoff = datetime.combine(cutoff.astimezone(UTC).date(), time.min, tzinfo=UTC)
    pruned = 0
    for _ in range(max_batches):
        with transaction.atomic():
            pks = list(
                Click.objects.select_for_update(skip_locked=True)
                .filter(clicked_at__lt=cutoff)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not pks:
                break
            days = (
                Click.objects.filter(pk__in=pks)
                .annotate(day=TruncDate("clicked_at", tzinfo=UTC))
                .values_list("link_id", "day")
                .annotate(n=Count("pk"))
                .order_by()
            )
            _daily_add(days)
            Click.objects.filter(pk__in=pks).delete()
        pruned += len(pks)
    if pruned:
        logger.info("clicks: %s click(s) before %s rolled up per day and deleted", pruned, cutoff)
    return pruned
