"""Retention: old raw rows are deleted in small batches, each in its own short transaction, so
a prune never holds long locks or a long transaction. Each app decides what it keeps (rollups,
failed rows) and calls ``batched_delete`` for the rest; the beat schedule runs them daily."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

DEFAULT_BATCH_SIZE = 2000


def retention_cutoff(*, days: int, now: datetime | None = None) -> datetime:
    """Rows older than this are past a retention of ``days`` days."""
    return (now or timezone.now()) - timedelta(days=days)


def batched_delete(
    queryset: QuerySet[Any], *, batch_size: int = DEFAULT_BATCH_SIZE, max_batches: int = 10_000
) -> int:
    """Delete the rows of ``queryset`` by primary key, ``batch_size`` at a time, one transaction
    per batch (so a crash keeps what was done). Returns how many rows were deleted."""
    deleted = 0
    for _ in range(max_batches):
        with transaction.atomic():
            pks = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
            if not pks:
                break
            # The queryset's own filters stay on the DELETE (partition pruning, index use).
            count, _ = queryset.filter(pk__in=pks).delete()
        deleted += count
    return deleted
