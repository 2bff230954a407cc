"""The Celery app: configuration that keeps tasks safe, and a real round trip through Redis."""

import importlib

import pytest
from django.conf import settings

from ledger.tasks import trial_balance_check
from revenue_site.celery import app


def test_tasks_are_json_late_acked_and_time_limited():
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit


def test_every_beat_entry_names_a_registered_task():
    names = [entry["task"] for entry in app.conf.beat_schedule.values()]
    assert names
    for name in names:
        module_name, _, attribute = name.rpartition(".")
        task = getattr(importlib.import_module(module_name), attribute)
        assert task.name == name
        assert name in app.tasks


def test_eager_exactly_when_there_is_no_redis():
    assert app.conf.task_always_eager is (not settings.REDIS_URL)
    expected = settings.REDIS_URL or "memory://"
    assert app.conf.broker_url == expected


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (CI sets it)")
@pytest.mark.django_db(transaction=True)
def test_a_task_goes_through_the_redis_broker_to_a_worker(celery_redis_worker):
    result = trial_balance_check.delay()
    assert celery_redis_worker(result) == {}
