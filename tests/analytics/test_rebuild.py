"""manage.py analytics_rebuild: replay the subscription events of dj-stripe's mirror, report how
the stored movements differ, and fix them (and the snapshots) with --apply."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from io import StringIO

import pytest
from django.core.management import call_command
from djstripe import models as djm

from analytics import reports
from analytics.models import MRRMovement, MRRSnapshot
from analytics.services import mrr_movement_record, mrr_snapshots_compute
from subscriptions.services.subscription_state import subscription_state_apply

pytestmark = pytest.mark.django_db


def _price(amount):
    return {
        "id": f"price_{amount}",
        "currency": "usd",
        "type": "recurring",
        "billing_scheme": "per_unit",
        "unit_amount": amount,
        "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
    }


def _event(event_id, kind, day, sub_id, customer, status, amount, **extra):
    """Store the event as the inbox does (dj-stripe's Event row) and apply it as the receiver
    does."""
    created = datetime.combine(day, time(12), tzinfo=UTC)
    subscription = {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "currency": "usd",
        "discounts": [],
        "items": {"data": [{"id": f"si_{sub_id}", "price": _price(amount), "quantity": 1}]},
        **extra,
    }
    djm.Event.objects.create(
        id=event_id,
        type=f"customer.subscription.{kind}",
        created=created,
        livemode=False,
        data={"object": subscription},
        stripe_data={
            "id": event_id,
            "object": "event",
            "type": f"customer.subscription.{kind}",
            "created": int(created.timestamp()),
            "data": {"object": subscription},
        },
    )
    return subscription, created


@pytest.fixture
def history():
    customer = djm.Customer.objects.create(id="cus_2", email="two@example.com")
    half_off = {
        "id": "di_half",
        "object": "discount",
        "source": {"type": "coupon", "coupon": {"duration": "forever", "percent_off": 50}},
        "end": None,
    }
    djm.Subscription.objects.create(
        id="sub_3", customer=customer, stripe_data={"id": "sub_3", "discounts": [half_off]}
    )
    events = [
        ("evt_1", "created", date(2026, 1, 5), "sub_1", "cus_1", "active", 1000, {}),
        ("evt_2", "created", date(2026, 1, 10), "sub_2", "cus_1", "active", 500, {}),
        ("evt_4", "created", date(2026, 1, 7), "sub_3", "cus_2", "trialing", 2000, {}),
        # The trial ends; the event lists the discount by id (the mirror has it expanded).
        (
            "evt_5",
            "updated",
            date(2026, 1, 21),
            "sub_3",
            "cus_2",
            "active",
            2000,
            {"discounts": ["di_half"]},
        ),
        ("evt_3", "deleted", date(2026, 2, 1), "sub_1", "cus_1", "canceled", 1000, {}),
    ]
    for event_id, kind, day, sub_id, customer_id, status, amount, extra in events:
        subscription, created = _event(
            event_id, kind, day, sub_id, customer_id, status, amount, **extra
        )
        subscription_state_apply(subscription=subscription, event_id=event_id, occurred_at=created)


def _run(*args):
    out, err = StringIO(), StringIO()
    try:
        call_command("analytics_rebuild", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue()


def test_history_from_the_webhooks_matches_the_replay(history):
    kinds = list(
        MRRMovement.objects.order_by("occurred_at").values_list(
            "source_event_id", "kind", "new_mrr"
        )
    )
    assert kinds == [
        ("evt_1", "new", 1000),
        ("evt_2", "expansion", 500),
        ("evt_5", "new", 1000),
        ("evt_3", "contraction", 0),
    ]
    code, out = _run()
    assert code == 0
    assert out.strip() == "4 movements from the events: 0 missing, 0 extra, 0 different"


def test_differences_are_reported_and_fixed_with_apply(history):
    MRRMovement.objects.filter(source_event_id="evt_2").delete()
    MRRMovement.objects.filter(source_event_id="evt_5").update(new_mrr=1500, kind="expansion")
    mrr_movement_record(
        stripe_customer_id="cus_9",
        stripe_subscription_id="sub_9",
        currency="usd",
        old_mrr=0,
        new_mrr=700,
        occurred_at=datetime(2026, 1, 15, tzinfo=UTC),
        source_event_id="evt_fake",
    )
    # Snapshots computed over the wrong rows.
    MRRMovement.objects.update(created_at=datetime(2026, 2, 15, tzinfo=UTC))
    mrr_snapshots_compute(now=datetime(2026, 3, 1, tzinfo=UTC))
    assert MRRSnapshot.objects.get(currency="usd", date=date(2026, 1, 31)).mrr == 1000 + 1500 + 700

    code, out = _run()
    assert code == 1
    lines = out.splitlines()
    assert "missing evt_2 sub_2: expansion 0->500 usd cus_1 at 2026-01-10T12:00:00+00:00" in lines
    assert any(line.startswith("extra evt_fake sub_9: new 0->700 usd") for line in lines)
    assert "different evt_5 sub_3: kind expansion != new, new_mrr 1500 != 1000" in lines
    assert lines[-1] == "4 movements from the events: 1 missing, 1 extra, 1 different"
    assert MRRMovement.objects.count() == 4  # nothing changed without --apply

    code, out = _run("--apply")
    assert code == 0
    assert "applied; snapshots recomputed: usd 2026-01-10.." in out
    assert _run() == (0, "4 movements from the events: 0 missing, 0 extra, 0 different\n")
    # The snapshots were rebuilt from the fixed rows: Jan 31 is 1000 + 500 + 1000.
    assert MRRSnapshot.objects.get(currency="usd", date=date(2026, 1, 31)).mrr == 2500
    assert reports.summary(on=date(2026, 1, 31), currency="usd").mrr == 2500


def test_an_event_delivered_late_is_put_in_its_place_by_the_replay(history):
    """Live, an event older than the subscription's last applied one changes nothing; the
    replay orders by event time, so the rebuild shows (and --apply restores) the history as it
    happened at Stripe, whatever the delivery order."""
    subscription, created = _event(
        "evt_old", "updated", date(2026, 1, 8), "sub_2", "cus_1", "active", 9000
    )
    subscription_state_apply(subscription=subscription, event_id="evt_old", occurred_at=created)
    assert not MRRMovement.objects.filter(source_event_id="evt_old").exists()
    code, out = _run()
    assert code == 1
    assert "missing evt_old sub_2: expansion 0->9000 usd cus_1 at 2026-01-08T12:00:00+00:00" in out
    assert "different evt_2 sub_2: kind expansion != contraction, old_mrr 0 != 9000" in out
    assert _run("--apply")[0] == 0
    assert reports.summary(on=date(2026, 1, 9), currency="usd").mrr == 10_000
    assert reports.summary(on=date(2026, 1, 10), currency="usd").mrr == 1_500


def test_snapshots_option_recomputes_every_snapshot(history):
    MRRMovement.objects.update(created_at=datetime(2026, 2, 15, tzinfo=UTC))
    mrr_snapshots_compute(now=datetime(2026, 3, 1, tzinfo=UTC))
    MRRSnapshot.objects.filter(date=date(2026, 1, 31)).update(mrr=1)  # damaged
    code, out = _run("--snapshots")
    assert code == 0
    assert out.startswith("snapshots recomputed: usd 2026-01-05..")
    assert MRRSnapshot.objects.get(currency="usd", date=date(2026, 1, 31)).mrr == 2500
