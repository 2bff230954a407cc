"""Licence verification, usage against limits and overage, expiry, staff suspend / reinstate,
and the creator's licences (issue 11 parts 6-9)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.admin.models import LogEntry
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone
from django_prometheus.db.metrics import execute_total
from rest_framework.test import APIClient

from content import licensing
from content.models import License, LicenseType, LicenseUsage
from content.services import license_key_generate
from tests.accounts.factories import UserFactory
from tests.content.factories import (
    ContentItemFactory,
    CreatorFactory,
    LicenseFactory,
    LicenseTypeFactory,
)

pytestmark = pytest.mark.django_db

VERIFY = "/api/v1/content/licenses/verify"
USAGE = "/api/v1/content/usage"
CREATOR_LICENSES = "/api/v1/creator/licenses/"

UNKNOWN_BODY = {
    "status": "unknown",
    "code": "NOT_FOUND",
    "content": None,
    "holder": None,
    "limits_remaining": None,
    "expires_at": None,
}


def licence(**kwargs):
    """A licence and its key (the key itself is never stored)."""
    new_key = license_key_generate()
    return LicenseFactory(new_key=new_key, **kwargs), new_key.key


def limited_type(limits, overage=LicenseType.Overage.BLOCK):
    extra = {} if overage == LicenseType.Overage.BLOCK else {"per_use_unit_amount": "2.5"}
    return LicenseTypeFactory(limits=limits, overage=overage, **extra)


def verify(key):
    return APIClient().get(VERIFY, {"key": key})


def use(key, event="download", quantity=1, event_id="e1"):
    return APIClient().post(
        USAGE,
        {"license_key": key, "event": event, "quantity": quantity, "id": event_id},
        format="json",
    )


def error_of(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body["error"]) >= {"code", "message", "fields"}
    return body


# --- verification --------------------------------------------------------------------------


def test_a_valid_key_answers_valid_with_content_holder_and_limits(django_assert_max_num_queries):
    holder = UserFactory(email="jane.doe@example.com")
    expires = timezone.now() + timedelta(days=30)
    lic, key = licence(
        license_type=limited_type({"downloads": 3, "views": 10, "seats": 2}),
        holder=holder,
        expires_at=expires,
    )
    LicenseUsage.objects.create(license=lic, event="download", quantity=2, event_id="a", at=expires)
    LicenseUsage.objects.create(
        license=lic, event="download", quantity=5, event_id="b", denied=True, at=expires
    )
    with django_assert_max_num_queries(2):
        response = verify(key)
    assert response.status_code == 200
    assert response.json() == {
        "status": "valid",
        "code": "VALID",
        "content": {"id": lic.content_id, "title": lic.content.title},
        "holder": "j***@example.com",
        "limits_remaining": {"downloads": 1, "views": 10},
        "expires_at": expires.isoformat().replace("+00:00", "Z"),
    }


def _statements_run() -> float:
    """Statements sent to the database, as /metrics counts them (django-prometheus' cursor
    wraps the driver's too: on PostgreSQL the lookup runs on the driver's cursor)."""
    return sum(
        sample.value
        for metric in execute_total.collect()  # this counter only: other collectors query
        for sample in metric.samples
        if sample.name == "django_db_execute_total" and sample.labels["alias"] == "default"
    )


def test_a_perpetual_unlimited_licence_is_verified_in_one_query():
    _, key = licence()
    verify(license_key_generate().key)  # the connection's statement is prepared
    before = _statements_run()
    body = verify(key).json()
    # One statement: no health check of the connection, no second lookup.
    assert _statements_run() - before == 1
    assert body["status"] == "valid"
    assert body["limits_remaining"] == {}
    assert body["expires_at"] is None


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [
        (License.Status.REVOKED, "revoked", "REVOKED"),
        (License.Status.SUSPENDED, "suspended", "SUSPENDED"),
        (License.Status.EXPIRED, "expired", "EXPIRED"),
    ],
)
def test_revoked_suspended_and_expired_licences_say_so(status, expected, code):
    lic, key = licence(status=status)
    body = verify(key).json()
    assert (body["status"], body["code"]) == (expected, code)
    assert body["content"] == {"id": lic.content_id, "title": lic.content.title}


def test_expiry_is_computed_before_the_beat_task_runs():
    lic, key = licence(expires_at=timezone.now() - timedelta(seconds=1))
    assert lic.status == License.Status.ACTIVE
    assert verify(key).json()["status"] == "expired"
    assert use(key).json()["status"] == "expired"


def test_a_used_up_limit_answers_over_limit_and_overage_counts_as_allowance():
    lic, key = licence(license_type=limited_type({"downloads": 2}))
    LicenseUsage.objects.create(
        license=lic, event="download", quantity=2, event_id="a", at=timezone.now()
    )
    body = verify(key).json()
    assert (body["status"], body["code"], body["limits_remaining"]) == (
        "over_limit",
        "USAGE_EXCEEDED",
        {"downloads": 0},
    )
    # With a 1.5x allowance the same use leaves room: still valid, nothing left in the limit.
    lic2, key2 = licence(license_type=limited_type({"downloads": 2}, LicenseType.Overage.ALLOW_150))
    LicenseUsage.objects.create(
        license=lic2, event="download", quantity=2, event_id="a", at=timezone.now()
    )
    body = verify(key2).json()
    assert (body["status"], body["limits_remaining"]) == ("valid", {"downloads": 0})


def test_unknown_wrong_and_pending_keys_all_answer_the_same_unknown():
    lic, _ = licence()
    _, pending_key = licence(status=License.Status.PENDING)
    wrong_secret = f"{lic.key_prefix}_{'A' * 32}"
    answers = [verify(k) for k in (license_key_generate().key, wrong_secret, pending_key)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert [r.json() for r in answers] == [UNKNOWN_BODY] * 3


@pytest.mark.parametrize(
    "key",
    [
        "x" * 5000,
        "lk_" + "9" * 200,
        "ключ-🔑-許可証",
        "' OR 1=1; --",
        "lk_%' UNION SELECT key_hash FROM content_license --",
        "\x00lk_\x00",
        "%00%ff",
        " ",
    ],
)
def test_hostile_keys_answer_unknown_never_500(key):
    response = verify(key)
    assert response.status_code == 200
    assert response.json() == UNKNOWN_BODY
    assert use(key).status_code in (400, 403)


def test_undecodable_bytes_and_lone_surrogates_answer_unknown():
    response = APIClient().get(f"{VERIFY}?key=%ED%A0%80%FF%FE")
    assert (response.status_code, response.json()) == (200, UNKNOWN_BODY)
    assert licensing.license_verify(key="\ud800").status == "unknown"
    with pytest.raises(licensing.LicenseNotUsable):
        licensing.license_usage_record(key="\ud800", event="view", quantity=1, event_id="a")


def test_a_missing_or_empty_key_is_400_and_the_schema_says_so():
    for params in ({}, {"key": ""}):
        body = error_of(APIClient().get(VERIFY, params), 400)
        assert "key" in body["error"]["fields"]
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    (key,) = schema["paths"]["/api/v1/content/licenses/verify"]["get"]["parameters"]
    assert key["required"] and key["schema"]["minLength"] == 1  # schemathesis sent key=


def _rates(settings, **rates):
    merged = {**django_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates}
    settings.REST_FRAMEWORK = {**django_settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": merged}


def test_verification_is_throttled_per_ip_with_retry_after(settings):
    _rates(settings, license_verify="3/min")
    _, key = licence()
    for _ in range(3):
        assert verify(key).status_code == 200
    response = verify(key)
    body = error_of(response, 429)
    assert body["error"]["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
    other_ip = APIClient(REMOTE_ADDR="10.9.8.7").get(VERIFY, {"key": key})
    assert other_ip.status_code == 200


def test_usage_reports_are_throttled_per_ip(settings):
    _rates(settings, license_usage="2/min")
    _, key = licence()
    assert [use(key, event_id=f"e{i}").status_code for i in range(2)] == [202, 202]
    response = use(key, event_id="e3")
    error_of(response, 429)
    assert int(response["Retry-After"]) > 0


def test_the_throttle_settings_are_documented():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for doc in ("README.md", "DEPLOYMENT.md"):
        text = (root / doc).read_text()
        assert "API_THROTTLE_LICENSE_VERIFY" in text
        assert "API_THROTTLE_LICENSE_VERIFY_FAILED" in text
        assert "API_THROTTLE_LICENSE_USAGE" in text


# --- usage ---------------------------------------------------------------------------------


def test_usage_is_accepted_with_limits_remaining_and_idempotent_on_id():
    lic, key = licence(license_type=limited_type({"downloads": 5, "views": 100}))
    response = use(key, quantity=2, event_id="job-1")
    assert response.status_code == 202
    assert response.json() == {
        "id": "job-1",
        "event": "download",
        "quantity": 2,
        "duplicate": False,
        "limits_remaining": {"downloads": 3, "views": 100},
        "overage": 0,
    }
    again = use(key, quantity=2, event_id="job-1")
    assert again.status_code == 202
    assert again.json()["duplicate"] is True
    assert again.json()["limits_remaining"] == {"downloads": 3, "views": 100}
    assert LicenseUsage.objects.filter(license=lic).count() == 1
    # The same id on another licence is that licence's own report.
    _, other_key = licence()
    assert use(other_key, event_id="job-1").json()["duplicate"] is False


def test_unlimited_events_are_accepted_and_counted():
    lic, key = licence(license_type=limited_type({"downloads": 1}))
    for i in range(3):
        assert use(key, event="view", event_id=f"v{i}").status_code == 202
    assert licensing.license_usage_counts(license=lic)["view"] == 3


def test_past_a_blocking_limit_the_attempt_is_403_and_recorded_as_denied():
    lic, key = licence(license_type=limited_type({"downloads": 3}))
    assert use(key, quantity=2, event_id="a").status_code == 202
    response = use(key, quantity=2, event_id="b")  # 2 + 2 > 3: all or nothing
    body = error_of(response, 403)
    assert body["error"]["code"] == "over_limit"
    assert body["remaining"] == 0
    assert body["limits_remaining"] == {"downloads": 1}
    denied = LicenseUsage.objects.get(license=lic, event_id="b")
    assert denied.denied is True
    # Denied attempts do not count: one more download still fits.
    assert use(key, quantity=1, event_id="c").json()["limits_remaining"] == {"downloads": 0}
    assert error_of(use(key, event_id="d"), 403)["remaining"] == 0
    # Repeating a denied id answers the same refusal without a second row.
    assert error_of(use(key, quantity=2, event_id="b"), 403)["duplicate"] is True
    assert LicenseUsage.objects.filter(license=lic, denied=True).count() == 2


@pytest.mark.parametrize(
    ("overage", "allowance"),
    [
        (LicenseType.Overage.ALLOW_125, 5),
        (LicenseType.Overage.ALLOW_150, 6),
        (LicenseType.Overage.ALLOW_200, 8),
    ],
)
def test_an_overage_allowance_accepts_up_to_limit_times_factor(overage, allowance):
    lic, key = licence(license_type=limited_type({"api_calls": 4}, overage))
    overages = []
    for i in range(allowance):
        response = use(key, event="api_call", event_id=f"c{i}")
        assert response.status_code == 202, response.content
        overages.append(response.json()["overage"])
    assert overages == [0] * 4 + list(range(1, allowance - 3))
    assert response.json()["limits_remaining"] == {"api_calls": 0}
    assert licensing.license_overage(license=lic) == {"api_calls": allowance - 4}
    refused = error_of(use(key, event="api_call", event_id="over"), 403)
    assert refused["remaining"] == 0
    assert LicenseUsage.objects.get(license=lic, event_id="over").denied is True
    assert verify(key).json()["status"] == "over_limit"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (License.Status.REVOKED, "revoked"),
        (License.Status.SUSPENDED, "suspended"),
        (License.Status.EXPIRED, "expired"),
        (License.Status.PENDING, "unknown"),
    ],
)
def test_usage_on_an_unusable_licence_is_403_with_its_status(status, expected):
    lic, key = licence(status=status)
    body = error_of(use(key), 403)
    assert (body["error"]["code"], body["status"]) == (expected, expected)
    assert body["code"] == licensing.VERIFY_CODES[expected]
    assert not LicenseUsage.objects.filter(license=lic).exists()
    assert error_of(use(license_key_generate().key), 403)["status"] == "unknown"


def test_bad_usage_input_is_400_naming_the_fields():
    _, key = licence()
    body = error_of(APIClient().post(USAGE, {}, format="json"), 400)
    assert set(body["error"]["fields"]) >= {"license_key", "event", "id"}
    for payload, field in [
        ({"event": "print"}, "event"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": "many"}, "quantity"),
        ({"id": "x" * 300}, "id"),
    ]:
        data = {"license_key": key, "event": "view", "quantity": 1, "id": "a", **payload}
        body = error_of(APIClient().post(USAGE, data, format="json"), 400)
        assert field in body["error"]["fields"]


needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks need PostgreSQL"
)


@pytest.mark.postgres
@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_reports_cannot_both_pass_the_limit():
    lic, key = licence(license_type=limited_type({"downloads": 3}))
    barrier = threading.Barrier(8)

    def report(i):
        try:
            barrier.wait(timeout=10)
            result = licensing.license_usage_record(
                key=key, event="download", quantity=1, event_id=f"r{i}"
            )
            return result.accepted
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=8) as pool:
        accepted = list(pool.map(report, range(8)))
    assert accepted.count(True) == 3
    assert licensing.license_usage_counts(license=lic)["download"] == 3
    assert LicenseUsage.objects.filter(license=lic, denied=True).count() == 5


# --- expiry, suspend, reinstate --------------------------------------------------------------


def test_the_expiry_task_marks_past_licences_expired_once(celery_eager):
    from content.tasks import licenses_expire_due

    past, _ = licence(expires_at=timezone.now() - timedelta(minutes=1))
    future, _ = licence(expires_at=timezone.now() + timedelta(days=1))
    perpetual, _ = licence()
    revoked, _ = licence(status=License.Status.REVOKED, expires_at=timezone.now())
    assert licenses_expire_due.delay().get() == 1
    assert licenses_expire_due.delay().get() == 0
    statuses = {row.pk: row.status for row in License.objects.filter(pk__in=[past.pk, future.pk])}
    assert statuses == {past.pk: "expired", future.pk: "active"}
    perpetual.refresh_from_db()
    revoked.refresh_from_db()
    assert (perpetual.status, revoked.status) == ("active", "revoked")
    schedule = django_settings.CELERY_BEAT_SCHEDULE["content-licenses-expire"]
    assert schedule["task"] == licenses_expire_due.name


def test_staff_suspend_and_reinstate_through_admin_actions_with_log_entries(admin_client):
    lic, key = licence()
    url = reverse("admin:content_license_changelist")
    admin_client.post(url, {"action": "suspend", "_selected_action": [lic.pk]})
    lic.refresh_from_db()
    assert lic.status == License.Status.SUSPENDED
    assert verify(key).json()["status"] == "suspended"
    assert error_of(use(key), 403)["status"] == "suspended"
    admin_client.post(url, {"action": "reinstate", "_selected_action": [lic.pk]})
    lic.refresh_from_db()
    assert lic.status == License.Status.ACTIVE
    assert verify(key).json()["status"] == "valid"
    messages = list(LogEntry.objects.filter(object_id=str(lic.pk)).values_list("change_message"))
    assert [m for (m,) in messages] == [
        "Licence reinstate: now active.",
        "Licence suspend: now suspended.",
    ]
    # Reinstating an active licence is refused, and nothing is logged.
    page = admin_client.post(
        url, {"action": "reinstate", "_selected_action": [lic.pk]}, follow=True
    )
    assert "Only a suspended licence is reinstated" in page.content.decode()
    assert LogEntry.objects.filter(object_id=str(lic.pk)).count() == 2


def test_reinstating_after_the_term_ended_gives_expired_and_exclusivity_holds():
    lic, _ = licence(status=License.Status.SUSPENDED, expires_at=timezone.now())
    assert licensing.license_reinstate(license=lic).status == License.Status.EXPIRED
    exclusive = LicenseTypeFactory(kind=LicenseType.Kind.EXCLUSIVE)
    held, _ = licence(license_type=exclusive, status=License.Status.SUSPENDED)
    licence(license_type=exclusive)  # another holder now has the active exclusive licence
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as exc:
        licensing.license_reinstate(license=held)
    assert "status" in exc.value.message_dict
    held.refresh_from_db()
    assert held.status == License.Status.SUSPENDED


def test_the_licence_admin_shows_usage_per_licence_with_bounded_queries(
    admin_client, django_assert_max_num_queries
):
    for _ in range(12):
        lic, _ = licence(license_type=limited_type({"downloads": 2}, LicenseType.Overage.ALLOW_200))
        for i in range(3):
            LicenseUsage.objects.create(
                license=lic, event="download", event_id=f"d{i}", at=timezone.now()
            )
    with django_assert_max_num_queries(12):
        page = admin_client.get(reverse("admin:content_license_changelist"))
    assert page.status_code == 200
    assert [row.units_used for row in page.context["cl"].result_list] == [3] * 12
    detail = admin_client.get(reverse("admin:content_license_change", args=[lic.pk]))
    assert "download: 3 / 2 (+1 overage)" in detail.content.decode()


# --- creator API ---------------------------------------------------------------------------


def creator_client(creator):
    client = APIClient()
    client.force_authenticate(creator.user)
    return client


def test_a_creator_lists_licences_sold_for_their_items_only(django_assert_max_num_queries):
    alice, bob = CreatorFactory(), CreatorFactory()
    item = ContentItemFactory(owner=alice)
    mine = [
        licence(license_type=LicenseTypeFactory(item=item), holder=UserFactory(email=f"b{i}@x.io"))[
            0
        ]
        for i in range(5)
    ]
    licence(license_type=LicenseTypeFactory(item=item), status=License.Status.PENDING)
    theirs, _ = licence(license_type=LicenseTypeFactory(item=ContentItemFactory(owner=bob)))
    with django_assert_max_num_queries(4):
        response = creator_client(alice).get(CREATOR_LICENSES)
    body = response.json()
    assert response.status_code == 200
    assert body["count"] == 5
    assert {row["id"] for row in body["results"]} == {lic.pk for lic in mine}
    row = next(r for r in body["results"] if r["id"] == mine[0].pk)
    assert row == {
        "id": mine[0].pk,
        "key_prefix": mine[0].key_prefix,
        "content": {"id": item.pk, "title": item.title},
        "license_type": {"id": mine[0].license_type_id, "kind": "personal"},
        "status": "active",
        "issued_at": row["issued_at"],
        "expires_at": None,
        "holder": "b***@x.io",
    }
    assert "key" not in row and "key_hash" not in row
    detail = creator_client(alice).get(f"{CREATOR_LICENSES}{mine[0].pk}/")
    assert detail.json()["id"] == mine[0].pk
    error_of(creator_client(alice).get(f"{CREATOR_LICENSES}{theirs.pk}/"), 404)
    assert creator_client(bob).get(CREATOR_LICENSES).json()["count"] == 1


def test_creator_licences_need_a_creator_token():
    error_of(APIClient().get(CREATOR_LICENSES), 401)
    client = APIClient()
    client.force_authenticate(UserFactory())
    error_of(client.get(CREATOR_LICENSES), 403)
