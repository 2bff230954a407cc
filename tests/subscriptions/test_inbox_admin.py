"""Staff console for the webhook inbox: read-only rows, bounded queries, "Reprocess selected"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.sites import site
from django.urls import reverse

from subscriptions.models import WebhookEvent

CHANGELIST = "admin:subscriptions_webhookevent_changelist"


def _row(n: int, status: str = WebhookEvent.Status.SUCCEEDED, **extra) -> WebhookEvent:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    data = {
        "id": f"evt_admin_{n}",
        "object": "event",
        "type": "customer.updated",
        "created": int(created.timestamp()),
        "livemode": False,
        "data": {"object": {"id": f"cus_admin_{n}", "object": "customer", "email": "x@y.z"}},
    }
    return WebhookEvent.objects.create(
        stripe_event_id=data["id"],
        type=data["type"],
        stripe_created=created,
        object_id=f"cus_admin_{n}",
        payload=data,
        status=status,
        **extra,
    )


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("", "evt_admin_3", None),
        ("?status__exact=failed", "evt_admin_4", "evt_admin_3"),
        ("?type=customer.updated", "evt_admin_3", None),
        ("?q=evt_admin_3", "evt_admin_3", "evt_admin_4"),
        ("?q=cus_admin_4", "evt_admin_4", "evt_admin_3"),
    ],
)
def test_changelist_queries_are_bounded(
    admin_client, django_assert_max_num_queries, query, shown, hidden
):
    for n in range(30):
        _row(n, WebhookEvent.Status.FAILED if n % 3 else WebhookEvent.Status.SUCCEEDED)

    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse(CHANGELIST) + query)

    assert response.status_code == 200
    assert shown.encode() in response.content
    if hidden:
        assert hidden.encode() not in response.content


def test_change_view_is_read_only_with_the_payload_pretty_printed(admin_client):
    row = _row(1)

    response = admin_client.get(reverse("admin:subscriptions_webhookevent_change", args=[row.pk]))

    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="_save"' not in content
    assert "<pre" in content and "&quot;email&quot;: &quot;x@y.z&quot;" in content


def test_nothing_can_be_added_changed_or_deleted(admin_user, rf):
    request = rf.get("/")
    request.user = admin_user
    model_admin = site._registry[WebhookEvent]
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert list(model_admin.get_actions(request)) == ["reprocess_selected"]


def test_reprocess_selected_requeues_failures_and_logs(
    admin_client, admin_user, django_capture_on_commit_callbacks
):
    failed = _row(1, WebhookEvent.Status.FAILED, attempts=8, last_error="boom")
    done = _row(2, WebhookEvent.Status.SUCCEEDED, attempts=1)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(
            reverse(CHANGELIST),
            {"action": "reprocess_selected", "_selected_action": [failed.pk, done.pk]},
            follow=True,
        )

    assert response.status_code == 200
    assert b"1 event(s) queued" in response.content
    assert len(callbacks) == 1  # one task queued, on commit
    failed.refresh_from_db()
    done.refresh_from_db()
    assert failed.status == WebhookEvent.Status.RECEIVED and failed.next_attempt_at is None
    assert done.status == WebhookEvent.Status.SUCCEEDED
    entry = LogEntry.objects.get(object_id=str(failed.pk))
    assert (entry.user_id, entry.action_flag) == (admin_user.pk, CHANGE)
    assert "Reprocess requested" in entry.change_message
    assert not LogEntry.objects.filter(object_id=str(done.pk)).exists()
