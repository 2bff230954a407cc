"""The no-op Celery task: its drain rate through the same broker and worker is the baseline."""

import time

from celery import shared_task
from django.core.cache import cache


@shared_task(name="bench.noop")
def noop(mark: bool = False) -> None:
    if mark:  # first and last tasks of the backlog record when they ran
        now = time.time()
        cache.add("bench:noop:first", now, timeout=3600)
        cache.set("bench:noop:last", now, timeout=3600)
