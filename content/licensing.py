"""Licence verification, usage against limits, and the licence lifecycle (expiry, staff
suspend / reinstate). Services (writes) and the reads they answer with live together here
because verification and usage share one definition of a licence's state.

A licence is found by the keyed HMAC of the key the caller sends (``license_key_hash``), never
by the key: the database compares hashes, so the time a lookup takes says nothing about how
close a guess was, and ``hmac.compare_digest`` confirms the match. Every unusable key — unknown,
malformed, too long, or a licence still waiting for its payment — answers the same ``unknown``.

Overage (use past a limit, allowed up to the licence type's ``overage_factor``) is recorded as
ordinary accepted usage; ``license_overage`` reads how much of it is above the limit. Billing it
(and usage royalties) at period close through the metering engine comes later (issue 11 part 6).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from content.models import (
    LIMIT_FOR_EVENT,
    ContentItem,
    Creator,
    License,
    LicenseType,
    LicenseUsage,
)
from content.selectors import license_usage_counts
from content.services import license_key_hash

logger = logging.getLogger(__name__)

# Longer input is not a key we issued (``lk_`` + 16 + ``_`` + 32); answered ``unknown``
# without hashing megabytes.
MAX_KEY_LENGTH = 128


class VerifyStatus:
    VALID = "valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    SUSPENDED = "suspended"
    OVER_LIMIT = "over_limit"
    UNKNOWN = "unknown"

    ALL = (VALID, EXPIRED, REVOKED, SUSPENDED, OVER_LIMIT, UNKNOWN)


# The reason code sent with each status (Keygen-style, stable for clients to branch on).
VERIFY_CODES = {
    VerifyStatus.VALID: "VALID",
    VerifyStatus.EXPIRED: "EXPIRED",
    VerifyStatus.REVOKED: "REVOKED",
    VerifyStatus.SUSPENDED: "SUSPENDED",
    VerifyStatus.OVER_LIMIT: "USAGE_EXCEEDED",
    VerifyStatus.UNKNOWN: "NOT_FOUND",
}


def mask_email(email: str) -> str:
    """``jane.doe@example.com`` → ``j***@example.com`` (enough to recognise, not to harvest)."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


# --- reads ---------------------------------------------------------------------------------


def license_by_key(*, key: str) -> License | None:
    """The issued licence (not pending) whose key is ``key``, with its type, item and holder
    (1 query); None for anything else, whatever the input."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        return None
    try:
        digest = license_key_hash(key)
    except UnicodeError:  # lone surrogates cannot be encoded: not a key we issued
        return None
    license = (
        License.objects.select_related("license_type", "content", "holder")
        .exclude(status=License.Status.PENDING)
        .filter(key_hash=digest)
        .first()
    )
    if license is None or not hmac.compare_digest(license.key_hash, digest):
        return None
    return license


def _allowance(limit: int, license_type: LicenseType) -> int:
    """How many units the licence may use in all: the limit, times the overage factor."""
    return math.floor(limit * license_type.overage_factor)


def _limits(license_type: LicenseType) -> dict[str, int]:
    """The licence type's limits that usage events count against, by event."""
    limits = license_type.limits or {}
    return {event: int(limits[key]) for event, key in LIMIT_FOR_EVENT.items() if key in limits}


def limits_remaining(*, license: License, used: dict[str, int]) -> dict[str, int]:
    """Units left within each limit (``downloads``, ``views``, ``api_calls``), overage not
    included; unlimited events are absent."""
    return {
        LIMIT_FOR_EVENT[LicenseUsage.Event(event)]: max(0, limit - used.get(event, 0))
        for event, limit in _limits(license.license_type).items()
    }


def license_overage(*, license: License, used: dict[str, int] | None = None) -> dict[str, int]:
    """Units used above each limit (accepted under an overage allowance), by limit name."""
    used = license_usage_counts(license=license) if used is None else used
    return {
        LIMIT_FOR_EVENT[LicenseUsage.Event(event)]: max(0, used.get(event, 0) - limit)
        for event, limit in _limits(license.license_type).items()
    }


def license_state(*, license: License | VerifiedLicense, now: datetime | None = None) -> str:
    """The licence's status for verification and usage, in this order: revoked, suspended,
    expired (by status or because ``expires_at`` has passed, before the beat task marks it),
    over_limit (some limit's allowance, overage included, is used up), valid."""
    now = now or timezone.now()
    if license.status == License.Status.REVOKED:
        return VerifyStatus.REVOKED
    if license.status == License.Status.SUSPENDED:
        return VerifyStatus.SUSPENDED
    if license.status == License.Status.EXPIRED or (
        license.expires_at is not None and license.expires_at <= now
    ):
        return VerifyStatus.EXPIRED
    if license.status != License.Status.ACTIVE:
        return VerifyStatus.UNKNOWN
    return VerifyStatus.VALID


@dataclass(frozen=True)
class VerifiedLicense:
    """What verification reads of a licence (one row of ``_VERIFY_SQL``)."""

    status: str
    expires_at: datetime | None
    content_id: int
    content_title: str
    holder_email: str
    limits: dict[str, int]
    overage: str
    used: dict[str, int]


@dataclass(frozen=True)
class Verification:
    status: str
    license: VerifiedLicense | None = None
    limits_remaining: dict[str, int] | None = None

    @property
    def code(self) -> str:
        return VERIFY_CODES[self.status]

    def as_dict(self) -> dict[str, Any]:
        license = self.license
        if license is None:
            return {
                "status": self.status,
                "code": self.code,
                "content": None,
                "holder": None,
                "limits_remaining": None,
                "expires_at": None,
            }
        return {
            "status": self.status,
            "code": self.code,
            "content": {"id": license.content_id, "title": license.content_title},
            "holder": mask_email(license.holder_email),
            "limits_remaining": self.limits_remaining,
            "expires_at": license.expires_at,
        }


def _verify_sql() -> str:
    """One statement: the licence by its key hash, its item's title, its holder's e-mail, its
    type's limits and overage rule, and the units used per event (denied attempts excluded).
    Raw SQL because verification runs on every use of every licence: the ORM's compilation of
    the same joins cost more than the query itself (bench/license_verify.py)."""
    lic, item, user = License._meta.db_table, ContentItem._meta.db_table, User._meta.db_table
    ltype, usage = LicenseType._meta.db_table, LicenseUsage._meta.db_table
    # Only table names (from the models) are formatted in; every value is a parameter.
    used = ", ".join(
        f"(SELECT COALESCE(SUM(u.quantity), 0) FROM {usage} u WHERE u.license_id = l.id "  # noqa: S608
        f"AND u.denied = %s AND u.event = %s)"
        for _ in LIMIT_FOR_EVENT
    )
    return (
        f"SELECT l.key_hash, l.status, l.expires_at, l.content_id, c.title, h.email, t.limits, "  # noqa: S608
        f"t.overage, {used} FROM {lic} l JOIN {item} c ON c.id = l.content_id "
        f"JOIN {user} h ON h.id = l.holder_id JOIN {ltype} t ON t.id = l.license_type_id "
        f"WHERE l.key_hash = %s AND l.status <> %s"
    )


def _verified_license(*, key: str) -> VerifiedLicense | None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        return None
    try:
        digest = license_key_hash(key)
    except UnicodeError:
        return None
    global _VERIFY_SQL
    if _VERIFY_SQL is None:
        _VERIFY_SQL = _verify_sql()
    params: list[Any] = [value for event in LIMIT_FOR_EVENT for value in (False, str(event))]
    params += [digest, License.Status.PENDING.value]
    row = _fetch_one(_VERIFY_SQL, params)
    if row is None or not hmac.compare_digest(row[0], digest):
        return None
    limits = row[6]
    if isinstance(limits, str):  # SQLite hands JSON back as text
        limits = json.loads(limits)
    expires_at = row[2]
    if expires_at is not None and timezone.is_naive(expires_at):  # SQLite: naive UTC
        expires_at = timezone.make_aware(expires_at, UTC)
    return VerifiedLicense(
        status=row[1],
        expires_at=expires_at,
        content_id=row[3],
        content_title=row[4],
        holder_email=row[5],
        limits=limits or {},
        overage=row[7],
        used={event: int(value) for event, value in zip(LIMIT_FOR_EVENT, row[8:], strict=True)},
    )


_VERIFY_SQL: str | None = None


# Connections (psycopg2) on which the verification statement is prepared. PREPARE lasts for
# the session and is not undone by a rollback; a new connection is not in the set.
_PREPARED_ON: weakref.WeakSet[Any] = weakref.WeakSet()
_STATEMENT = "content_license_verify"


def _fetch_one(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    """Run the verification query: on PostgreSQL as a statement prepared once per connection.
    Planning the four-table join costs several times its execution (EXPLAIN ANALYZE: 1.6 ms
    planning, 0.24 ms execution), and it is the same statement on every call. Connections are
    persistent (``CONN_MAX_AGE``), so a worker plans it once. (A pooler in transaction mode
    would not keep prepared statements; we do not run behind one.)

    On PostgreSQL the statement runs on the driver's own cursor. Django's cursor would first
    health-check the connection (``CONN_HEALTH_CHECKS``: one more round trip, on every request
    that reads the database), which cost this endpoint more machine time than the lookup itself
    (bench/license_verify.py). The lookup is a read, so a connection found broken (the
    database restarted since the worker last used it) is replaced and the lookup tried once
    more: the health check's guarantee, paid only when it fails.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    try:
        return _execute_prepared(sql, params)
    except (InterfaceError, OperationalError):
        if connection.in_atomic_block:  # not ours to replace
            raise
        logger.info("licence verification: database connection broken, reconnecting")
        connection.close()
        return _execute_prepared(sql, params)


def _execute_prepared(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    connection.ensure_connection()
    with connection.wrap_database_errors:  # driver errors as Django's, marked on the connection
        raw = connection.connection
        with raw.cursor() as cursor:
            if raw not in _PREPARED_ON:
                numbered = iter(range(1, len(params) + 1))
                statement = re.sub("%s", lambda _: f"${next(numbered)}", sql)
                cursor.execute(f"PREPARE {_STATEMENT} AS {statement}")
                _PREPARED_ON.add(raw)
            placeholders = ", ".join(["%s"] * len(params))
            cursor.execute(f"EXECUTE {_STATEMENT}({placeholders})", params)
            row: tuple[Any, ...] | None = cursor.fetchone()
            return row


def license_verify(*, key: str) -> Verification:
    """What a key is worth now, in one query. Never raises for any input."""
    license = _verified_license(key=key)
    if license is None:
        return Verification(status=VerifyStatus.UNKNOWN)
    state = license_state(license=license)
    factor = LicenseType.OVERAGE_FACTORS[LicenseType.Overage(license.overage)]
    remaining: dict[str, int] = {}
    exhausted = False
    for event, name in LIMIT_FOR_EVENT.items():
        if name not in license.limits:
            continue
        limit, used = int(license.limits[name]), license.used[event]
        remaining[name] = max(0, limit - used)
        exhausted = exhausted or used >= math.floor(limit * factor)
    if state == VerifyStatus.VALID and exhausted:
        state = VerifyStatus.OVER_LIMIT
    return Verification(status=state, license=license, limits_remaining=remaining)


# --- usage ---------------------------------------------------------------------------------


class LicenseNotUsable(Exception):
    """The key names no usable licence; ``status`` is its verification status."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status
        self.code = VERIFY_CODES[status]


@dataclass(frozen=True)
class UsageResult:
    usage: LicenseUsage
    duplicate: bool
    limits_remaining: dict[str, int] = field(default_factory=dict)
    overage: int = 0  # units of this event above its limit, after this report

    @property
    def accepted(self) -> bool:
        return not self.usage.denied


def _used_of(license: License, event: str) -> int:
    total = LicenseUsage.objects.filter(license=license, event=event, denied=False).aggregate(
        total=Coalesce(Sum("quantity"), 0)
    )["total"]
    return int(total)


def license_usage_record(
    *, key: str, event: str, quantity: int, event_id: str, at: datetime | None = None
) -> UsageResult:
    """Record ``quantity`` uses of ``event`` on the licence whose key is ``key``, once per
    ``event_id`` (a repeat answers the first outcome with ``duplicate``). Within the limit (or
    the overage allowance: limit times factor) the use is accepted; past it the attempt is kept as
    a ``denied`` row, which does not count. The licence row is locked while its usage is
    counted, so two concurrent reports cannot both pass the limit.

    Raises LicenseNotUsable (unknown, expired, revoked, suspended) and ValidationError naming
    ``event`` or ``quantity``."""
    if event not in LicenseUsage.Event.values:
        raise ValidationError({"event": [f"One of {', '.join(LicenseUsage.Event.values)}."]})
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValidationError({"quantity": ["A whole number of at least 1."]})
    found = license_by_key(key=key)
    if found is None:
        raise LicenseNotUsable(VerifyStatus.UNKNOWN)
    at = at or timezone.now()
    with transaction.atomic():
        license = (
            License.objects.select_for_update(of=("self",))
            .select_related("license_type")
            .get(pk=found.pk)
        )
        # Under the lock, an earlier report with this id is visible (it committed first).
        previous = LicenseUsage.objects.filter(license=license, event_id=event_id).first()
        if previous is not None:
            return _result(license, previous, duplicate=True)
        state = license_state(license=license, now=at)
        if state != VerifyStatus.VALID:
            raise LicenseNotUsable(state)
        limit = _limits(license.license_type).get(event)
        denied = False
        if limit is not None:
            used = _used_of(license, event)
            denied = used + quantity > _allowance(limit, license.license_type)
        try:
            with transaction.atomic():
                usage = LicenseUsage.objects.create(
                    license=license,
                    event=event,
                    quantity=quantity,
                    event_id=event_id,
                    denied=denied,
                    at=at,
                )
        except IntegrityError:
            # Only reachable without the lock (it serialises reports per licence); the unique
            # constraint is what guarantees one row per id.
            usage = LicenseUsage.objects.get(license=license, event_id=event_id)
            return _result(license, usage, duplicate=True)
        return _result(license, usage, duplicate=False)


def _result(license: License, usage: LicenseUsage, *, duplicate: bool) -> UsageResult:
    used = license_usage_counts(license=license)
    limit = _limits(license.license_type).get(usage.event)
    overage = 0 if limit is None else max(0, used.get(usage.event, 0) - limit)
    return UsageResult(
        usage=usage,
        duplicate=duplicate,
        limits_remaining=limits_remaining(license=license, used=used),
        overage=overage,
    )


# --- lifecycle -----------------------------------------------------------------------------


def licenses_expire_due(*, now: datetime | None = None) -> int:
    """Mark active licences whose ``expires_at`` has passed EXPIRED (idempotent: a second run
    finds none). Returns how many changed. Verification treats them as expired already."""
    now = now or timezone.now()
    with transaction.atomic():
        changed = License.objects.filter(
            status=License.Status.ACTIVE, expires_at__isnull=False, expires_at__lte=now
        ).update(status=License.Status.EXPIRED)
    if changed:
        logger.info("content: %s licence(s) expired", changed)
    return changed


@transaction.atomic
def license_suspend(*, license: License) -> License:
    """Staff: suspend an active licence (verification answers ``suspended``, usage is refused).
    Raises ValidationError naming ``status`` when it is not active."""
    license = License.objects.select_for_update().get(pk=license.pk)
    if license.status != License.Status.ACTIVE:
        raise ValidationError(
            {"status": [f"Only an active licence is suspended ({license.status})."]}
        )
    license.status = License.Status.SUSPENDED
    license.suspended_by = License.SuspendedBy.STAFF
    license.save(update_fields=["status", "suspended_by"])
    return license


@transaction.atomic
def license_reinstate(*, license: License, now: datetime | None = None) -> License:
    """Staff: lift a suspension. The licence becomes active again, or expired when its term
    ended meanwhile. Raises ValidationError naming ``status`` when it is not suspended, or
    when it is exclusive and another holder has the item's active exclusive licence."""
    now = now or timezone.now()
    license = License.objects.select_for_update().get(pk=license.pk)
    if license.status != License.Status.SUSPENDED:
        raise ValidationError(
            {"status": [f"Only a suspended licence is reinstated ({license.status})."]}
        )
    expired = license.expires_at is not None and license.expires_at <= now
    license.status = License.Status.EXPIRED if expired else License.Status.ACTIVE
    license.suspended_by = ""
    try:
        with transaction.atomic():
            license.save(update_fields=["status", "suspended_by"])
    except IntegrityError as exc:
        raise ValidationError(
            {"status": ["Another holder has this item's active exclusive licence."]}
        ) from exc
    return license


@transaction.atomic
def license_revoke(*, license: License) -> License:
    """Staff: revoke an issued licence for good (abuse, a takedown): verification answers
    ``revoked`` and usage is refused from now on. No money moves here: a refund is made in
    Stripe, and its ``charge.refunded`` webhook reverses the split. Raises ValidationError
    naming ``status`` for a pending or an already revoked licence."""
    license = License.objects.select_for_update().get(pk=license.pk)
    if license.status in (License.Status.PENDING, License.Status.REVOKED):
        raise ValidationError(
            {"status": [f"Only an issued licence is revoked ({license.status})."]}
        )
    license.status = License.Status.REVOKED
    license.suspended_by = ""
    license.save(update_fields=["status", "suspended_by"])
    return license


# --- creator and admin reads -----------------------------------------------------------------


def creator_license_list(*, creator: Creator) -> QuerySet[License]:
    """Licences sold (issued, not pending) for the items the creator owns, newest first, with
    their item, type and holder (1 query per page). Co-creators do not see them (the holders
    are the owner's customers); they see their share of the money and aggregated usage
    (``content.earnings``, ``content.selectors.creator_usage``)."""
    return (
        License.objects.filter(content__owner=creator)
        .exclude(status=License.Status.PENDING)
        .select_related("content", "license_type", "holder")
        .order_by("-issued_at", "-pk")
    )


def creator_license_get(*, creator: Creator, license_id: int) -> License:
    """One licence sold for the creator's items; another creator's raises DoesNotExist."""
    return creator_license_list(creator=creator).get(pk=license_id)


def license_list_for_admin_with_usage() -> QuerySet[License]:
    """The admin changelist: licences with their item, type, holder and units used (accepted
    usage), computed per row of the page only."""
    used = (
        LicenseUsage.objects.filter(license=OuterRef("pk"), denied=False)
        .order_by()
        .values("license")
        .annotate(total=Sum("quantity"))
        .values("total")
    )
    return License.objects.select_related("content", "license_type", "holder").annotate(
        units_used=Coalesce(Subquery(used), 0)
    )
