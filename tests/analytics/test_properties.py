"""Property: for any sequence of subscription changes and any period, the period's movements
sum to the MRR at its end minus the MRR at its start, and both ends match an independent
replay of the subscriptions' MRR."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import reports
from analytics.models import MRRCohortChange, MRRMovement, MRRSnapshot, SnapshotCursor
from analytics.services import mrr_movement_record, mrr_snapshots_compute

pytestmark = pytest.mark.django_db
DAY0 = date(2026, 1, 1)

changes = st.lists(
    st.tuples(
        st.sampled_from(["cus_a", "cus_b", "cus_c"]),
        st.sampled_from(["s1", "s2"]),
        st.integers(min_value=0, max_value=75),  # day
        st.integers(min_value=0, max_value=4).map(lambda n: n * 1_000),  # new MRR
    ),
    max_size=25,
)


def _replay(steps):
    """Record the steps in time order; return [(day, {(customer, sub): mrr})] after each."""
    current: dict[tuple[str, str], int] = {}
    states = []
    for n, (customer, sub, day, new) in enumerate(sorted(steps, key=lambda s: s[2])):
        mrr_movement_record(
            stripe_customer_id=customer,
            stripe_subscription_id=f"{customer}_{sub}",
            currency="usd",
            old_mrr=current.get((customer, sub), 0),
            new_mrr=new,
            occurred_at=datetime.combine(DAY0 + timedelta(days=day), time(12), tzinfo=UTC),
            source_event_id=f"evt_{n}",
        )
        current[(customer, sub)] = new
        states.append((day, dict(current)))
    return states


def _expected(states, before_day):
    """(MRR, active customers) after every change of a day < before_day."""
    state: dict[tuple[str, str], int] = {}
    for day, snapshot in states:
        if day < before_day:
            state = snapshot
    per_customer: dict[str, int] = {}
    for (customer, _sub), mrr in state.items():
        per_customer[customer] = per_customer.get(customer, 0) + mrr
    return sum(per_customer.values()), sum(1 for v in per_customer.values() if v > 0)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=changes,
    first=st.integers(0, 80),
    length=st.integers(0, 80),
    snapshot_day=st.none() | st.integers(1, 90),
)
def test_movements_of_any_period_sum_to_the_change_in_mrr(steps, first, length, snapshot_day):
    """With or without daily snapshots (stored by a task run on ``snapshot_day``), before,
    across and after them."""
    MRRMovement.objects.all().delete()
    MRRSnapshot.objects.all().delete()
    SnapshotCursor.objects.all().delete()
    MRRCohortChange.objects.all().delete()
    states = _replay(steps)
    period = {"start": DAY0 + timedelta(days=first), "end": DAY0 + timedelta(days=first + length)}
    live_cohorts = reports.cohorts(**period, currency="usd")
    if snapshot_day is not None:
        MRRMovement.objects.update(created_at=datetime.combine(DAY0, time.min, tzinfo=UTC))
        run_at = datetime.combine(DAY0 + timedelta(days=snapshot_day), time(1), tzinfo=UTC)
        mrr_snapshots_compute(now=run_at)
    start = DAY0 + timedelta(days=first)
    end = start + timedelta(days=length)
    result = reports.movements(start=start, end=end, currency="usd")
    assert result.net_new == result.mrr_end - result.mrr_start
    assert (result.mrr_start, result.customers_start) == _expected(states, first)
    assert result.mrr_end == _expected(states, first + length + 1)[0]
    assert reports.cohorts(**period, currency="usd") == live_cohorts
    months = reports.movements_by_month(start=start, end=end, currency="usd")
    assert sum(m.net_new for m in months) == result.net_new
    assert all(min(m.new, m.expansion, m.contraction, m.churn, m.reactivation) >= 0 for m in months)


PRICES = {
    "monthly": {"interval": "month", "interval_count": 1, "unit_amount": 1_000},
    "quarterly": {"interval": "month", "interval_count": 3, "unit_amount": 2_700},
    "annual": {"interval": "year", "interval_count": 1, "unit_amount": 9_900},
    "weekly": {"interval": "week", "interval_count": 1, "unit_amount": 250},
}
subscription_changes = st.lists(
    st.tuples(
        st.sampled_from(["cus_a", "cus_b"]),
        st.sampled_from(["s1", "s2"]),
        st.sampled_from(["trialing", "active", "past_due", "canceled", "unpaid"]),
        st.sampled_from(sorted(PRICES)),
        st.integers(min_value=0, max_value=3),  # quantity
        st.sampled_from([None, 10, 50]),  # a forever percent-off coupon
    ),
    max_size=15,
)


def _subscription(customer, sub, status, price_name, quantity, percent_off):
    price = PRICES[price_name]
    discounts = []
    if percent_off is not None:
        coupon = {"id": f"c{percent_off}", "duration": "forever", "percent_off": percent_off}
        discounts.append({"id": f"di_{sub}", "source": {"coupon": coupon}, "end": None})
    return {
        "id": f"{customer}_{sub}",
        "object": "subscription",
        "customer": customer,
        "status": status,
        "currency": "usd",
        "discounts": discounts,
        "items": {
            "data": [
                {
                    "id": f"si_{customer}_{sub}",
                    "quantity": quantity,
                    "price": {
                        "currency": "usd",
                        "type": "recurring",
                        "billing_scheme": "per_unit",
                        "unit_amount": price["unit_amount"],
                        "recurring": {
                            "interval": price["interval"],
                            "interval_count": price["interval_count"],
                            "usage_type": "licensed",
                        },
                    },
                }
            ]
        },
    }


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=subscription_changes, cut=st.integers(0, 15))
def test_subscription_events_give_movements_that_sum_to_the_mrr(changes, cut):
    """Subscription objects applied as the webhooks apply them (one a day): any period's movements
    sum to the change of the summed subscriptions' MRR (``subscription_mrr``), and the rebuild
    from the same events finds nothing to change."""
    from djstripe import models as djm

    from analytics.mrr import subscription_mrr
    from analytics.rebuild import movements_diff, movements_replay
    from subscriptions.models import SubscriptionState
    from subscriptions.services.subscription_state import subscription_state_apply

    MRRMovement.objects.all().delete()
    SubscriptionState.objects.all().delete()
    djm.Event.objects.all().delete()
    MRRSnapshot.objects.all().delete()
    SnapshotCursor.objects.all().delete()
    MRRCohortChange.objects.all().delete()
    mrr_by_day = []
    current: dict[str, int] = {}
    for n, change in enumerate(changes):
        subscription = _subscription(*change)
        at = datetime.combine(DAY0 + timedelta(days=n), time(12), tzinfo=UTC)
        event_id = f"evt_{n:03d}"
        djm.Event.objects.create(
            id=event_id,
            type="customer.subscription.updated",
            created=at,
            livemode=False,
            data={"object": subscription},
            stripe_data={"id": event_id, "object": "event"},
        )
        subscription_state_apply(subscription=subscription, event_id=event_id, occurred_at=at)
        current[subscription["id"]] = subscription_mrr(subscription, at=at)[1]
        mrr_by_day.append(sum(current.values()))
    last = max(len(changes) - 1, 0)
    start = DAY0 + timedelta(days=min(cut, last))
    end = DAY0 + timedelta(days=last)
    result = reports.movements(start=start, end=end, currency="usd")
    before = mrr_by_day[(start - DAY0).days - 1] if start > DAY0 else 0
    assert result.mrr_start == before
    assert result.mrr_end == (mrr_by_day[-1] if changes else 0)
    assert result.net_new == result.mrr_end - result.mrr_start
    assert not movements_diff(movements_replay())
