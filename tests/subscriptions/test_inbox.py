"""The webhook inbox: our /stripe/webhook/<uuid>/ view, processing, retries, reconciliation.

Events come from the fake Stripe (objects created with the stripe client, events read back with
``stripe.Event.list()``) and are posted signed exactly as Stripe signs them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import stripe
from django.core.cache import cache
from django.utils import timezone
from djstripe import models as djm
from djstripe.signals import WEBHOOK_SIGNALS

from subscriptions.models import WebhookEvent
from subscriptions.services import inbox
from subscriptions.tasks import webhook_event_process_on_commit
from tests.stripe_harness import (
    make_webhook_endpoint,
    post_signed_event,
    sign_webhook_payload,
    webhook_path,
)


def fake_events(type_: str | None = None) -> list[dict[str, Any]]:
    """Every event the fake emitted since its flush, oldest first (optionally one type)."""
    listing = stripe.Event.list(limit=100, **({"type": type_} if type_ else {}))
    events = [event.to_dict(for_json=True) for event in listing.auto_paging_iter()]
    return sorted(events, key=lambda e: e["created"])  # stable: the fake lists oldest first


def one_fake_event(type_: str) -> dict[str, Any]:
    events = fake_events(type_)
    assert len(events) == 1, events
    return events[0]


@pytest.fixture(autouse=True)
def _eager(celery_eager: None) -> None:
    """Tasks run in-process here; the real-broker path is in test_inbox_postgres.py."""


@pytest.fixture
def endpoint(db: None) -> Any:
    return make_webhook_endpoint()


class Recorder:
    """A test-local dj-stripe receiver: counts events, raises while ``fail_times`` > 0."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_times = 0

    def __call__(self, sender: Any, event: Any, **kwargs: Any) -> None:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("receiver failed on purpose")
        self.calls.append(event.id)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    receiver = Recorder()
    types = ("customer.created", "customer.subscription.updated")
    for type_ in types:
        WEBHOOK_SIGNALS[type_].connect(receiver, weak=False)
    try:
        yield receiver
    finally:
        for type_ in types:
            WEBHOOK_SIGNALS[type_].disconnect(receiver)


def test_signed_event_is_acknowledged_stored_and_mirrored(
    stripe_fake, client, endpoint, recorder, django_capture_on_commit_callbacks
):
    customer = stripe.Customer.create(email="hook@example.com")
    event = one_fake_event("customer.created")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_signed_event(client, endpoint, event)

    assert response.status_code == 200
    assert response.json() == {"received": True, "id": event["id"], "duplicate": False}
    assert len(callbacks) == 1
    row = WebhookEvent.objects.get()
    assert (row.stripe_event_id, row.type, row.object_id) == (
        event["id"],
        "customer.created",
        customer.id,
    )
    assert row.status == WebhookEvent.Status.SUCCEEDED
    assert row.attempts == 1 and row.processed_at is not None and row.last_error == ""
    assert row.payload == event
    assert int(row.stripe_created.timestamp()) == event["created"]
    assert djm.Event.objects.get(id=event["id"]).type == "customer.created"
    assert djm.Customer.objects.get(id=customer.id).email == "hook@example.com"
    assert recorder.calls == [event["id"]]


def test_the_ack_does_not_wait_for_processing(stripe_fake, client, endpoint):
    # Under the `db` fixture the request's on_commit never fires: the row stays RECEIVED.
    stripe.Customer.create(email="later@example.com")
    event = one_fake_event("customer.created")

    response = post_signed_event(client, endpoint, event)

    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.RECEIVED
    assert not djm.Event.objects.exists()


def test_the_same_event_twice_gives_one_row_and_one_effect(
    stripe_fake, client, endpoint, recorder, django_capture_on_commit_callbacks
):
    stripe.Customer.create(email="twice@example.com")
    event = one_fake_event("customer.created")

    with django_capture_on_commit_callbacks(execute=True):
        first = post_signed_event(client, endpoint, event)
        second = post_signed_event(client, endpoint, event)

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["duplicate"] is True
    assert WebhookEvent.objects.count() == 1
    assert WebhookEvent.objects.get().attempts == 1
    assert djm.Event.objects.filter(id=event["id"]).count() == 1
    assert recorder.calls == [event["id"]]


def _raw_event(event_id: str, type_: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2026-05-27.dahlia",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
        "data": {"object": obj},
    }


def _customer_event(event_id: str = "evt_test_forged") -> dict[str, Any]:
    return _raw_event(event_id, "customer.created", {"id": "cus_forged", "object": "customer"})


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wrong_secret", "Signature verification failed"),
        ("missing_header", "header is missing"),
        ("too_old", "Signature verification failed"),
        ("payload_changed", "Signature verification failed"),
        ("not_json", "not valid JSON"),
        ("not_an_event", "not a Stripe event"),
    ],
)
def test_unverifiable_requests_get_400_and_store_nothing(
    client, endpoint, case, message, django_capture_on_commit_callbacks
):
    payload = json.dumps(_customer_event()).encode()
    timestamp = int(time.time())
    secret = endpoint.secret
    body = payload
    if case == "wrong_secret":
        secret = "whsec_forged"
    elif case == "too_old":
        timestamp -= 301
    elif case == "not_json":
        payload = body = b"{not json"
    elif case == "not_an_event":
        payload = body = json.dumps({"id": "evt_1", "object": "customer"}).encode()

    header = sign_webhook_payload(payload, secret, timestamp)
    if case == "payload_changed":
        body = payload.replace(b"cus_forged", b"cus_other")
    extra = {} if case == "missing_header" else {"HTTP_STRIPE_SIGNATURE": header}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            webhook_path(endpoint), data=body, content_type="application/json", **extra
        )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_webhook"
    assert message in error["message"]
    assert callbacks == []
    assert not WebhookEvent.objects.exists()
    assert not djm.Event.objects.exists()


def test_an_unknown_endpoint_is_404_and_stores_nothing(client, endpoint):
    payload = json.dumps(_customer_event()).encode()

    response = client.post(
        f"/stripe/webhook/{uuid.uuid4()}/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign_webhook_payload(payload, endpoint.secret),
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not WebhookEvent.objects.exists()


def test_only_post_is_allowed(client, endpoint):
    assert client.get(webhook_path(endpoint)).status_code == 405


def test_a_failing_handler_is_retried_by_redelivery_and_takes_effect_once(
    stripe_fake, client, endpoint, recorder, django_capture_on_commit_callbacks
):
    customer = stripe.Customer.create(email="flaky@example.com")
    event = one_fake_event("customer.created")
    recorder.fail_times = 1

    with django_capture_on_commit_callbacks(execute=True):
        first = post_signed_event(client, endpoint, event)

    assert first.status_code == 200  # stored: Stripe must not keep resending it
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.FAILED
    assert row.attempts == 1
    assert "receiver failed on purpose" in row.last_error
    assert row.next_attempt_at is not None and row.next_attempt_at > timezone.now()
    # dj-stripe's atomic block rolled back the event row and the mirror sync.
    assert not djm.Event.objects.exists()
    assert not djm.Customer.objects.filter(id=customer.id).exists()
    assert recorder.calls == []

    with django_capture_on_commit_callbacks(execute=True):
        second = post_signed_event(client, endpoint, event)
        third = post_signed_event(client, endpoint, event)

    assert (second.status_code, third.status_code) == (200, 200)
    row.refresh_from_db()
    assert row.status == WebhookEvent.Status.SUCCEEDED
    assert row.attempts == 2 and row.last_error == "" and row.next_attempt_at is None
    assert djm.Event.objects.filter(id=event["id"]).count() == 1
    assert djm.Customer.objects.filter(id=customer.id).exists()
    assert recorder.calls == [event["id"]]


def test_failures_back_off_exponentially_and_stop_for_staff_after_max_attempts(
    stripe_fake, recorder
):
    stripe.Customer.create(email="backoff@example.com")
    row, _ = inbox.webhook_event_record(data=one_fake_event("customer.created"))
    recorder.fail_times = inbox.MAX_ATTEMPTS
    # (earliest, latest) delay each failure could have set: the attempt's start and end
    # bound the moment it failed, however slow a loaded machine makes the attempt.
    delays = []
    for _attempt in range(inbox.MAX_ATTEMPTS):
        before = timezone.now()
        with pytest.raises(inbox.WebhookEventProcessingError):
            inbox.webhook_event_process(event_id=row.pk)
        after = timezone.now()
        row.refresh_from_db()
        assert row.status == WebhookEvent.Status.FAILED
        if row.next_attempt_at is not None:
            delays.append(
                (
                    (row.next_attempt_at - after).total_seconds(),
                    (row.next_attempt_at - before).total_seconds(),
                )
            )

    for (earliest, latest), expected in zip(delays, [30, 60, 120, 240, 480], strict=False):
        assert earliest <= expected <= latest
    assert len(delays) >= 5
    assert max(earliest for earliest, _ in delays) <= inbox.BACKOFF_MAX.total_seconds()
    assert row.attempts == inbox.MAX_ATTEMPTS
    assert row.next_attempt_at is None  # waits for "Reprocess selected"
    assert (
        inbox.webhook_events_retry_due(
            enqueue=webhook_event_process_on_commit, now=timezone.now() + timedelta(days=1)
        )
        == 0
    )


def test_out_of_order_delivery_never_writes_the_older_state(
    stripe_fake, client, endpoint, recorder, django_capture_on_commit_callbacks
):
    customer = stripe.Customer.create(email="order@example.com")
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    product = stripe.Product.create(name="Ordered")
    price = stripe.Price.create(
        product=product.id, currency="usd", unit_amount=900, recurring={"interval": "month"}
    )
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": price.id}], default_payment_method=pm.id
    )
    stripe.Subscription.modify(sub.id, metadata={"step": "older"})
    stripe.Subscription.modify(sub.id, metadata={"step": "newer"})
    updates = [
        e
        for e in fake_events("customer.subscription.updated")
        if "metadata" in e["data"].get("previous_attributes", {})
    ]
    assert [e["data"]["object"]["metadata"]["step"] for e in updates] == ["older", "newer"]
    older, newer = updates

    with django_capture_on_commit_callbacks(execute=True):
        assert post_signed_event(client, endpoint, newer).status_code == 200
        assert post_signed_event(client, endpoint, older).status_code == 200

    rows = WebhookEvent.objects.filter(stripe_event_id__in=[older["id"], newer["id"]])
    assert {r.status for r in rows} == {WebhookEvent.Status.SUCCEEDED}
    # Both events reached the receivers (they see every event; their own as_of guards)...
    assert recorder.calls == [newer["id"], older["id"]]
    # ...but the mirror keeps the newer state: the older snapshot was not written.
    mirrored = djm.Subscription.objects.get(id=sub.id)
    assert mirrored.metadata == {"step": "newer"}


def test_retry_sweep_queues_due_failures_lost_enqueues_and_dead_workers(
    stripe_fake, recorder, django_capture_on_commit_callbacks
):
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        stripe.Customer.create(email=email)
    failed_data, lost_data, dead_data = fake_events("customer.created")
    now = timezone.now()

    failed, _ = inbox.webhook_event_record(data=failed_data)
    recorder.fail_times = 1
    with pytest.raises(inbox.WebhookEventProcessingError):
        inbox.webhook_event_process(event_id=failed.pk)
    lost, _ = inbox.webhook_event_record(data=lost_data)  # stored, never queued
    dead, _ = inbox.webhook_event_record(data=dead_data)
    # A worker claimed this one and died: the claim is all that remains.
    WebhookEvent.objects.filter(pk=dead.pk).update(
        status=WebhookEvent.Status.PROCESSING, attempts=1, next_attempt_at=now
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert (
            inbox.webhook_events_retry_due(enqueue=webhook_event_process_on_commit, now=now) == 0
        )  # nothing due yet
    assert WebhookEvent.objects.get(pk=failed.pk).status == WebhookEvent.Status.FAILED

    with django_capture_on_commit_callbacks(execute=True):
        queued = inbox.webhook_events_retry_due(
            enqueue=webhook_event_process_on_commit, now=now + timedelta(minutes=6)
        )

    assert queued == 3
    statuses = dict(WebhookEvent.objects.values_list("pk", "status"))
    assert statuses == {
        failed.pk: WebhookEvent.Status.SUCCEEDED,
        lost.pk: WebhookEvent.Status.SUCCEEDED,
        dead.pk: WebhookEvent.Status.SUCCEEDED,
    }
    assert sorted(recorder.calls) == sorted([failed_data["id"], lost_data["id"], dead_data["id"]])


def test_processing_a_row_twice_in_a_row_is_a_no_op(stripe_fake, recorder):
    stripe.Customer.create(email="once@example.com")
    row, _ = inbox.webhook_event_record(data=one_fake_event("customer.created"))

    assert inbox.webhook_event_process(event_id=row.pk) is not None
    assert inbox.webhook_event_process(event_id=row.pk) is None
    assert inbox.webhook_event_process(event_id=row.pk + 1000) is None
    assert len(recorder.calls) == 1


def test_reconciliation_picks_up_an_event_that_was_never_delivered(
    stripe_fake, recorder, django_capture_on_commit_callbacks
):
    cache.delete(inbox.RECONCILE_WATERMARK_KEY)
    # No endpoint is registered with the fake: this event is never delivered.
    customer = stripe.Customer.create(email="missed@example.com")
    missed = one_fake_event("customer.created")
    assert stripe_fake.deliveries() == []

    with django_capture_on_commit_callbacks(execute=True):
        result = inbox.stripe_reconcile(enqueue=webhook_event_process_on_commit)

    assert result.recorded >= 1
    row = WebhookEvent.objects.get(stripe_event_id=missed["id"])
    assert row.status == WebhookEvent.Status.SUCCEEDED
    assert djm.Customer.objects.get(id=customer.id).email == "missed@example.com"
    assert missed["id"] in recorder.calls

    # The next sweep overlaps the window but records nothing twice.
    with django_capture_on_commit_callbacks(execute=True):
        again = inbox.stripe_reconcile(enqueue=webhook_event_process_on_commit)
    assert again.listed >= 1 and again.recorded == 0
    assert WebhookEvent.objects.filter(stripe_event_id=missed["id"]).count() == 1
    assert recorder.calls.count(missed["id"]) == 1


def test_reconciliation_task_is_scheduled_with_the_retry_sweep(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "subscriptions.tasks.webhook_events_retry_due",
        "subscriptions.tasks.stripe_reconcile",
    } <= tasks


def test_the_mirror_row_is_what_dj_stripe_would_store(stripe_fake, recorder):
    # The inbox writes dj-stripe's Event row itself (MirrorEvent.store); it must match what
    # dj-stripe's own Event.process writes for the same event: owner account, request fields.
    stripe.Customer.create(email="same@example.com", idempotency_key="idem-same-1")
    data = one_fake_event("customer.created")
    twin = {**data, "id": data["id"] + "_twin"}
    row, _ = inbox.webhook_event_record(data=data)

    inbox.webhook_event_process(event_id=row.pk)
    theirs = djm.Event.process(twin)

    ours = djm.Event.objects.get(id=data["id"])
    assert ours.djstripe_owner_account_id is not None
    assert ours.djstripe_owner_account_id == theirs.djstripe_owner_account_id
    fields = ("type", "livemode", "api_version", "request_id", "idempotency_key", "created")
    assert [getattr(ours, f) for f in fields] == [getattr(theirs, f) for f in fields]
    assert ours.data == theirs.data
    assert recorder.calls == [data["id"], twin["id"]]


def test_an_event_dj_stripe_already_processed_is_marked_done_without_running_again(
    stripe_fake, recorder
):
    # dj-stripe's own view (or a run whose SUCCEEDED mark was lost) stored the Event row and
    # ran the receivers: our INSERT of the same id fails, nothing runs twice, the row is done.
    stripe.Customer.create(email="before@example.com")
    data = one_fake_event("customer.created")
    djm.Event.process(data)
    row, _ = inbox.webhook_event_record(data=data)

    done = inbox.webhook_event_process(event_id=row.pk)

    assert done is not None and done.status == WebhookEvent.Status.SUCCEEDED
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == (WebhookEvent.Status.SUCCEEDED, 1, "")
    assert recorder.calls == [data["id"]]
    assert djm.Event.objects.filter(id=data["id"]).count() == 1


def _balance_event(event_id: str) -> dict[str, Any]:
    # No mirror object to sync and no receivers: what is left is the inbox's own work.
    balance = {"object": "balance", "livemode": False, "available": []}
    return _raw_event(event_id, "balance.available", balance)


def test_processing_one_event_is_five_statements(stripe_fake, django_assert_num_queries):
    # Claim (autocommit), BEGIN, INSERT dj-stripe's Event, mark SUCCEEDED, COMMIT (in the
    # test's transaction: SAVEPOINT/RELEASE). dj-stripe's Event.process spends eight more
    # (existence SELECTs, the owner account through a savepoint). The owner account is
    # resolved once per process: the first event pays for it.
    warm, _ = inbox.webhook_event_record(data=_balance_event("evt_count_warm"))
    inbox.webhook_event_process(event_id=warm.pk)
    row, _ = inbox.webhook_event_record(data=_balance_event("evt_count"))

    with django_assert_num_queries(5):
        inbox.webhook_event_process(event_id=row.pk)

    stored = djm.Event.objects.get(id="evt_count")
    assert stored.djstripe_owner_account_id == djm.Account.get_default_account().id
    assert WebhookEvent.objects.get(pk=row.pk).status == WebhookEvent.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_a_cached_owner_account_deleted_since_fails_once_then_heals(stripe_fake):
    # The owner account is cached per process; if its row goes (staff deleted the mirror's
    # account), the next event's INSERT breaks the foreign key at commit: that attempt fails,
    # the cache is dropped, and the retry resolves the account again.
    warm, _ = inbox.webhook_event_record(data=_balance_event("evt_heal_warm"))
    inbox.webhook_event_process(event_id=warm.pk)
    djm.Account.objects.all().delete()
    row, _ = inbox.webhook_event_record(data=_balance_event("evt_heal"))

    with pytest.raises(inbox.WebhookEventProcessingError, match="IntegrityError"):
        inbox.webhook_event_process(event_id=row.pk)
    row.refresh_from_db()
    assert row.status == WebhookEvent.Status.FAILED
    assert not djm.Event.objects.filter(id="evt_heal").exists()

    assert inbox.webhook_event_process(event_id=row.pk) is not None
    row.refresh_from_db()
    assert (row.status, row.attempts) == (WebhookEvent.Status.SUCCEEDED, 2)
    account = djm.Event.objects.get(id="evt_heal").djstripe_owner_account
    assert account is not None and account.id == stripe.Account.retrieve().id
