"""The Stripe webhook inbox: verify, store raw, acknowledge; process later, once per event.

Lifecycle of a :class:`~subscriptions.models.WebhookEvent` row::

    RECEIVED ──claim──▶ PROCESSING ──▶ SUCCEEDED
        ▲                   │
        └── reprocess ── FAILED ◀──┘  (error text, attempts, next_attempt_at by backoff)

- The view calls :func:`webhook_event_receive`: signature checked against the dj-stripe
  ``WebhookEndpoint``'s secret (Stripe's scheme, 300 s tolerance), the raw event inserted under
  the unique ``stripe_event_id`` (a duplicate delivery finds the existing row; no
  check-then-insert), and processing queued through ``enqueue``.
- :func:`webhook_event_process` claims the row with one conditional ``UPDATE … RETURNING``
  (two workers never process one event at once; a lost claim is a no-op; the payload comes
  back with the claim, no re-read), stores dj-stripe's ``Event`` row and sends its signal
  (what dj-stripe's ``Event.process`` does, minus its per-event SELECTs: ``MirrorEvent``);
  the mirror sync, our receivers and the SUCCEEDED mark commit in one transaction, so a
  failing receiver rolls everything back and a retry re-runs it. dj-stripe's own ``Event``
  row (primary key = the Stripe event id) makes a re-run after success a no-op: its INSERT
  fails, everything rolls back, and the row is marked SUCCEEDED.
- While PROCESSING, ``next_attempt_at`` is the claim's lease expiry: a row still PROCESSING
  after it belonged to a worker that died, and :func:`webhook_events_retry_due` fails it and
  queues it again (no extra column needed). Sooner, when the dead worker's own message comes
  back (``redelivered``: Celery requeues the task of a killed pool child at once, Redis a
  killed worker's after the visibility timeout), it takes the row over instead of waiting
  for the lease.
- Out-of-order delivery: dj-stripe 2.11 syncs the mirror row of every create/update-like
  event by re-retrieving the object from Stripe (``_handle_crud_like_event``), never from the
  event's snapshot, so an older event processed after a newer one writes Stripe's *current*
  state, not the older one. We rely on that instead of skipping older events, because our
  receivers must still see every event (they keep their own ``as_of`` guard).
- :func:`stripe_reconcile` heals missed webhooks from Stripe's Events API through the same
  record-then-process path.

Retries are the inbox's alone: a failed row records its attempts, its error and its next
attempt time (exponential backoff, up to MAX_ATTEMPTS), and the beat sweep
(:func:`webhook_events_retry_due`) queues it again, so a retry survives a lost worker or broker
and staff see it in the admin. The Celery task does not retry by itself.

The services that queue processing take ``enqueue``, called with the row's pk:
``subscriptions.tasks.webhook_event_process_on_commit`` (the view, the tasks and the admin pass
it), which queues the task once the current transaction commits. The inbox does not import the
tasks, which import it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone
from djstripe import models as djm

from revenue_site.retention import batched_delete, retention_cutoff
from revenue_site.stripe_setup import stripe_api_key
from subscriptions.models import MirrorEvent, WebhookEvent

logger = logging.getLogger(__name__)

# Stripe's own default tolerance for the signature timestamp.
SIGNATURE_TOLERANCE_SECONDS = 300
# Backoff after a failed attempt n (1-based): BACKOFF_BASE * 2**(n-1), at most BACKOFF_MAX.
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
# After this many failed attempts the event waits for staff (admin "Reprocess selected").
MAX_ATTEMPTS = 8
# A claim lasts longer than the Celery hard time limit; past it the worker is presumed dead.
PROCESSING_LEASE = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 300)
# A RECEIVED row older than this lost its enqueue (broker down, process killed after commit).
RECEIVED_STUCK_AFTER = timedelta(minutes=5)
# After a re-enqueue by the retry sweep, leave the queue this long before enqueuing again.
REENQUEUE_GRACE = timedelta(minutes=5)
RETRY_BATCH = 500
# Reconciliation: Stripe keeps events 30 days; a first sweep looks back this far.
RECONCILE_INITIAL_LOOKBACK = timedelta(days=3)
# Events created just before the last sweep may have become listable just after it.
RECONCILE_OVERLAP = timedelta(minutes=5)
RECONCILE_WATERMARK_KEY = "subscriptions:stripe_reconcile:watermark"
ERROR_MAX_CHARS = 4000


# Queues processing of a row (by pk) once the current transaction commits.
Enqueue = Callable[[int], None]


class WebhookEndpointUnknownError(Exception):
    """No dj-stripe WebhookEndpoint has this uuid (the view answers 404)."""


class WebhookRejectedError(Exception):
    """The request is not a Stripe event signed for this endpoint (the view answers 400)."""


class WebhookEventProcessingError(Exception):
    """Processing raised; the row is FAILED with the error and a next attempt time."""


def _parse_event(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookRejectedError("The body is not valid JSON.") from exc
    if not (
        isinstance(data, dict)
        and data.get("object") == "event"
        and isinstance(data.get("id"), str)
        and data["id"]
        and isinstance(data.get("type"), str)
        and isinstance(data.get("created"), int)
        and isinstance(data.get("data"), dict)
        and isinstance(data["data"].get("object"), dict)
    ):
        raise WebhookRejectedError("The body is not a Stripe event.")
    return data


def webhook_event_record(*, data: dict[str, Any]) -> tuple[WebhookEvent, bool]:
    """Insert the raw event unless its Stripe id is already stored; return (row, inserted).

    The unique constraint on ``stripe_event_id`` decides: concurrent duplicates all end with
    the one row (on PostgreSQL the losing INSERT waits for the winner's commit, then fails).
    """
    obj = data["data"]["object"]
    fields = {
        "type": data["type"],
        "livemode": bool(data.get("livemode", False)),
        "stripe_created": datetime.fromtimestamp(data["created"], tz=UTC),
        "object_id": str(obj.get("id") or "")[:255],
        "payload": data,
    }
    try:
        if connection.in_atomic_block:  # a savepoint, so a duplicate leaves the caller usable
            with transaction.atomic():
                return WebhookEvent.objects.create(stripe_event_id=data["id"], **fields), True
        # Autocommit (the webhook view): the single INSERT is its own transaction; no
        # BEGIN/COMMIT round trips on the hot path.
        return WebhookEvent.objects.create(stripe_event_id=data["id"], **fields), True
    except IntegrityError:
        existing = WebhookEvent.objects.filter(stripe_event_id=data["id"]).first()
        if existing is None:
            raise
        return existing, False


# uuid -> (secret, monotonic expiry): one query per endpoint per process per TTL instead of
# one per delivery. A rotated secret or a deleted endpoint takes effect within the TTL.
ENDPOINT_SECRET_TTL_SECONDS = 30.0
_endpoint_secrets: dict[uuid.UUID, tuple[str, float]] = {}


def _endpoint_secret(endpoint_uuid: uuid.UUID) -> str | None:
    cached = _endpoint_secrets.get(endpoint_uuid)
    now = time.monotonic()
    if cached is not None and cached[1] > now:
        return cached[0]
    secret = (
        djm.WebhookEndpoint.objects.filter(djstripe_uuid=endpoint_uuid)
        .values_list("secret", flat=True)
        .first()
    )
    if secret is None:
        _endpoint_secrets.pop(endpoint_uuid, None)
        return None
    _endpoint_secrets[endpoint_uuid] = (secret, now + ENDPOINT_SECRET_TTL_SECONDS)
    return secret


def webhook_event_receive(
    *, endpoint_uuid: uuid.UUID, payload: bytes, signature_header: str | None, enqueue: Enqueue
) -> tuple[WebhookEvent, bool]:
    """Verify a delivery to ``/stripe/webhook/<endpoint_uuid>/``, store it, queue processing.

    Returns (row, inserted). A duplicate of a row not yet SUCCEEDED is queued again (the claim
    keeps it from running twice), so Stripe's redelivery of a failed event retries it.
    Raises WebhookEndpointUnknownError, or WebhookRejectedError (missing or bad signature,
    timestamp outside the tolerance, body not a Stripe event) with nothing stored.
    """
    secret = _endpoint_secret(endpoint_uuid)
    if secret is None:
        raise WebhookEndpointUnknownError(str(endpoint_uuid))
    if not signature_header:
        raise WebhookRejectedError("The Stripe-Signature header is missing.")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text, signature_header, secret, tolerance=SIGNATURE_TOLERANCE_SECONDS
        )
    except UnicodeDecodeError as exc:
        raise WebhookRejectedError("The body is not UTF-8.") from exc
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejectedError(f"Signature verification failed: {exc}") from exc
    data = _parse_event(payload)
    event, inserted = webhook_event_record(data=data)
    if inserted or event.status in (WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED):
        enqueue(event.pk)
    return event, inserted


def _backoff(attempts: int) -> timedelta:
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


# What processing needs from the row; the rest stays deferred on the returned instance.
_CLAIM_FIELDS = ("id", "stripe_event_id", "type", "livemode", "payload", "attempts")


def _claim(*, event_id: int, now: datetime, takeover: bool = False) -> WebhookEvent | None:
    """Move a RECEIVED or FAILED row (with ``takeover``, a PROCESSING one too) to PROCESSING
    (attempts + 1, lease until now + PROCESSING_LEASE) and return it, or None when another
    worker has it, it is done, or gone.

    One conditional ``UPDATE … RETURNING`` (PostgreSQL, SQLite >= 3.35): Django's
    ``QuerySet.update()`` returns only a count, and reading the payload back would cost a
    second round trip per event. The WHERE clause is the claim: of concurrent claimers, one
    UPDATE matches (the others wait for its row lock and then see PROCESSING).
    In autocommit the claim is committed on its own, so a worker that dies mid-processing
    still counts as an attempt and its lease expires (see webhook_events_retry_due).
    """
    meta = WebhookEvent._meta
    qn = connection.ops.quote_name

    columns = {field.name: str(field.column) for field in meta.concrete_fields}

    def col(name: str) -> str:
        return qn(columns[name])

    lease = meta.get_field("next_attempt_at").get_db_prep_value(now + PROCESSING_LEASE, connection)
    # Only quoted identifiers from the model's meta are interpolated; values are parameters.
    claimable = [WebhookEvent.Status.RECEIVED.value, WebhookEvent.Status.FAILED.value]
    if takeover:
        claimable.append(WebhookEvent.Status.PROCESSING.value)
    sql = (
        f"UPDATE {qn(meta.db_table)} SET {col('status')} = %s,"  # noqa: S608
        f" {col('attempts')} = {col('attempts')} + 1, {col('next_attempt_at')} = %s"
        f" WHERE {col('id')} = %s AND {col('status')} IN ({', '.join(['%s'] * len(claimable))})"
        f" RETURNING {', '.join(col(name) for name in _CLAIM_FIELDS)}"
    )
    params = [WebhookEvent.Status.PROCESSING.value, lease, event_id, *claimable]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = dict(zip(_CLAIM_FIELDS, row, strict=True))
    if isinstance(values["payload"], str):  # both backends hand JSON over as text
        values["payload"] = json.loads(values["payload"])
    values["livemode"] = bool(values["livemode"])  # SQLite: 0/1
    event = WebhookEvent.from_db(connection.alias, list(_CLAIM_FIELDS), list(values.values()))
    event.status = WebhookEvent.Status.PROCESSING
    return event


def webhook_event_process(*, event_id: int, redelivered: bool = False) -> WebhookEvent | None:
    """Process one stored event through dj-stripe, at most one worker at a time.

    Returns the SUCCEEDED row (fields processing did not need are deferred), or None when
    the claim was lost (already processing or done, or the row is gone). It does what
    dj-stripe's ``Event.process`` does (store dj-stripe's Event row, send its signal, whose
    receivers sync the mirror and call our effects) with fewer round trips (see
    :class:`~subscriptions.models.MirrorEvent`). That and the SUCCEEDED mark share one
    transaction: effects and "done" commit
    together (a crash between them cannot leave processed work looking unprocessed), and the
    mark only applies to our own claim (same ``attempts``), never to a later worker's.
    On failure the row becomes FAILED with the error text and, until MAX_ATTEMPTS, a
    ``next_attempt_at`` by exponential backoff (the retry sweep queues it again then); then
    WebhookEventProcessingError is raised.

    ``redelivered``: the caller's message was delivered before to a worker that died running
    it (Celery's ``delivery_info``), so a PROCESSING row is that dead run's claim and is taken
    over (attempts + 1) rather than left for the lease to expire, ten minutes on. Should the
    earlier run be alive after all (a visibility timeout shorter than a task), the two still
    cannot both apply the event: dj-stripe's Event row, inserted first, serialises them, and
    the second finds it and only marks the row done.
    """
    event = _claim(event_id=event_id, now=timezone.now(), takeover=redelivered)
    if event is None:
        return None
    ours = WebhookEvent.objects.filter(
        pk=event_id, status=WebhookEvent.Status.PROCESSING, attempts=event.attempts
    )
    succeeded = {"status": WebhookEvent.Status.SUCCEEDED, "next_attempt_at": None, "last_error": ""}
    try:
        try:
            with transaction.atomic():
                mirror = MirrorEvent.store(event.payload, api_key=stripe_api_key(event.livemode))
                mirror.invoke_webhook_handlers()
                processed_at = timezone.now()
                ours.update(processed_at=processed_at, **succeeded)
        except IntegrityError:
            # Everything rolled back. If dj-stripe's row for this event exists, whoever wrote
            # it ran the handlers (dj-stripe's own view, or our run whose SUCCEEDED mark was
            # lost): done, as dj-stripe's Event.process treats it. Otherwise a receiver broke
            # a constraint: a failure like any other.
            if not djm.Event.objects.filter(id=event.stripe_event_id).exists():
                raise
            processed_at = timezone.now()
            ours.update(processed_at=processed_at, **succeeded)
    except Exception as exc:
        if isinstance(exc, IntegrityError):  # perhaps a cached owner account since deleted
            MirrorEvent.owner_cache_clear()
        error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS]
        retry_at = timezone.now() + _backoff(event.attempts)
        ours.update(
            status=WebhookEvent.Status.FAILED,
            last_error=error,
            next_attempt_at=retry_at if event.attempts < MAX_ATTEMPTS else None,
        )
        logger.warning(
            "webhook event %s (%s) failed on attempt %s: %s",
            event.stripe_event_id,
            event.type,
            event.attempts,
            error,
        )
        raise WebhookEventProcessingError(error) from exc
    event.status = WebhookEvent.Status.SUCCEEDED
    event.processed_at = processed_at
    event.next_attempt_at = None
    event.last_error = ""
    return event


def webhook_events_retry_due(*, enqueue: Enqueue, now: datetime | None = None) -> int:
    """Queue again what is due: FAILED past ``next_attempt_at``, RECEIVED rows whose enqueue
    was lost, and PROCESSING rows whose worker died (lease expired; failed first).

    Returns how many rows were queued. Each queued row gets ``next_attempt_at`` pushed by
    REENQUEUE_GRACE so a slow queue is not flooded with copies (a copy would lose its claim).
    """
    now = now or timezone.now()
    WebhookEvent.objects.filter(
        status=WebhookEvent.Status.PROCESSING, next_attempt_at__lt=now
    ).update(
        status=WebhookEvent.Status.FAILED,
        last_error="Processing did not finish before its lease expired (worker lost).",
        next_attempt_at=now,
    )
    due = Q(status=WebhookEvent.Status.FAILED, next_attempt_at__lte=now) | Q(
        status=WebhookEvent.Status.RECEIVED
    ) & (
        Q(next_attempt_at__isnull=True, received_at__lt=now - RECEIVED_STUCK_AFTER)
        | Q(next_attempt_at__lte=now)
    )
    with transaction.atomic():
        ids = list(
            WebhookEvent.objects.filter(due)
            .order_by("stripe_created", "pk")
            .values_list("pk", flat=True)[:RETRY_BATCH]
        )
        WebhookEvent.objects.filter(pk__in=ids).update(next_attempt_at=now + REENQUEUE_GRACE)
        for pk in ids:
            enqueue(pk)
    return len(ids)


def webhook_event_reprocess(*, event_ids: Iterable[int], actor_id: int, enqueue: Enqueue) -> int:
    """Staff reprocess: FAILED rows go back to RECEIVED and are queued (RECEIVED ones are
    queued again); SUCCEEDED and PROCESSING rows are left alone. Leaves an admin LogEntry per
    row. Returns how many rows were queued.
    """
    with transaction.atomic():
        rows = list(
            WebhookEvent.objects.select_for_update()
            .filter(
                pk__in=list(event_ids),
                status__in=[WebhookEvent.Status.FAILED, WebhookEvent.Status.RECEIVED],
            )
            .order_by("pk")
        )
        if not rows:
            return 0
        WebhookEvent.objects.filter(pk__in=[row.pk for row in rows]).update(
            status=WebhookEvent.Status.RECEIVED, next_attempt_at=None
        )
        content_type = ContentType.objects.get_for_model(WebhookEvent)
        LogEntry.objects.bulk_create(
            [
                LogEntry(
                    user_id=actor_id,
                    content_type=content_type,
                    object_id=str(row.pk),
                    object_repr=str(row)[:200],
                    action_flag=CHANGE,
                    change_message=f"Reprocess requested (was {row.status}).",
                )
                for row in rows
            ]
        )
        for row in rows:
            enqueue(row.pk)
    return len(rows)


@dataclass(frozen=True)
class ReconcileResult:
    since: datetime
    listed: int
    recorded: int


def stripe_reconcile(*, enqueue: Enqueue, now: datetime | None = None) -> ReconcileResult:
    """Feed Stripe events we never received through the inbox (missed webhooks).

    Lists ``/v1/events`` created since the last sweep's start (less RECONCILE_OVERLAP; the first
    sweep starts from the newest stored event, or RECONCILE_INITIAL_LOOKBACK ago), records
    each unseen one and queues it, oldest first. The watermark lives in the cache: losing it
    only widens the next window, and the unique event id makes overlaps harmless.
    """
    started = now or timezone.now()
    watermark = cache.get(RECONCILE_WATERMARK_KEY)
    if watermark is not None:
        since = datetime.fromtimestamp(int(watermark), tz=UTC)
    else:
        newest = WebhookEvent.objects.aggregate(newest=Max("stripe_created"))["newest"]
        since = newest or started - RECONCILE_INITIAL_LOOKBACK
    since -= RECONCILE_OVERLAP
    listing = stripe.Event.list(
        created={"gte": int(since.timestamp())},
        limit=100,
        api_key=stripe_api_key(settings.STRIPE_LIVE_MODE),
    )
    events = sorted(
        (event.to_dict(for_json=True) for event in listing.auto_paging_iter()),
        key=lambda data: data.get("created", 0),
    )
    recorded = 0
    for data in events:
        with transaction.atomic():
            row, inserted = webhook_event_record(data=data)
            if inserted:
                recorded += 1
                enqueue(row.pk)
    cache.set(RECONCILE_WATERMARK_KEY, int(started.timestamp()), timeout=None)
    if recorded:
        logger.warning("stripe reconcile recorded %s missed events since %s", recorded, since)
    return ReconcileResult(since=since, listed=len(events), recorded=recorded)


def webhook_events_prune(*, now: datetime | None = None, batch_size: int = 2000) -> int:
    """Delete inbox rows that SUCCEEDED more than ``WEBHOOK_EVENT_RETENTION_DAYS`` ago (by
    ``received_at``), in batches. Failed, received and processing rows stay until handled; the
    effects of every pruned event are in their own tables (and dj-stripe's Event mirror keeps
    the event itself). Returns how many rows were deleted."""
    cutoff = retention_cutoff(days=settings.WEBHOOK_EVENT_RETENTION_DAYS, now=now)
    done = WebhookEvent.objects.filter(status=WebhookEvent.Status.SUCCEEDED, received_at__lt=cutoff)
    deleted = batched_delete(done, batch_size=batch_size)
    if deleted:
        logger.info("webhook inbox: %s processed event(s) past retention deleted", deleted)
    return deleted
