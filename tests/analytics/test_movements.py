"""MRR movement classification (DESIGN.md §6) and the movements summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.models import MRRMovement
from analytics.selectors import mrr_movements_summary
from analytics.services import MovementError, mrr_movement_record

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _apply(steps: list[tuple[str, int]], customer: str = "cus_1") -> list[str]:
    """Apply (subscription, new MRR) steps in order; return the kinds recorded."""
    current: dict[str, int] = {}
    kinds = []
    for n, (sub, new) in enumerate(steps):
        movement = mrr_movement_record(
            stripe_customer_id=customer,
            stripe_subscription_id=sub,
            currency="usd",
            old_mrr=current.get(sub, 0),
            new_mrr=new,
            occurred_at=T0 + timedelta(days=n),
            source_event_id=f"evt_{customer}_{n}",
        )
        current[sub] = new
        kinds.append(movement.kind if movement else "-")
    return kinds


@pytest.mark.parametrize(
    ("steps", "kinds"),
    [
        (
            [("a", 1000), ("a", 1500), ("a", 700), ("a", 0), ("a", 900)],
            ["new", "expansion", "contraction", "churn", "reactivation"],
        ),
        ([("a", 1000), ("a", 1000)], ["new", "-"]),
        # A second subscription expands the customer; losing one while another stays
        # contracts it; losing the last churns it.
        (
            [("a", 1000), ("b", 500), ("a", 0), ("b", 0), ("b", 200)],
            ["new", "expansion", "contraction", "churn", "reactivation"],
        ),
        # A new subscription after a churned one is a reactivation, not new.
        ([("a", 1000), ("a", 0), ("c", 300)], ["new", "churn", "reactivation"]),
    ],
)
def test_kinds_follow_the_customers_mrr(steps, kinds):
    assert _apply(steps) == kinds


def test_replayed_event_returns_the_first_row():
    kwargs = {
        "stripe_customer_id": "cus_1",
        "stripe_subscription_id": "sub_1",
        "currency": "USD",
        "old_mrr": 0,
        "new_mrr": 100,
        "occurred_at": T0,
        "source_event_id": "evt_1",
    }
    first = mrr_movement_record(**kwargs)
    again = mrr_movement_record(**{**kwargs, "old_mrr": 50, "new_mrr": 60})
    assert first == again
    assert MRRMovement.objects.count() == 1
    assert first.currency == "usd"


@pytest.mark.parametrize(
    "bad",
    [{"old_mrr": -1}, {"new_mrr": -5}, {"occurred_at": datetime(2026, 1, 1)}],  # noqa: DTZ001
)
def test_bad_input_is_refused(bad):
    kwargs = {
        "stripe_customer_id": "cus_1",
        "stripe_subscription_id": "sub_1",
        "currency": "usd",
        "old_mrr": 0,
        "new_mrr": 100,
        "occurred_at": T0,
        "source_event_id": "evt_1",
        **bad,
    }
    with pytest.raises(MovementError):
        mrr_movement_record(**kwargs)


def test_summary_totals_per_kind_and_net_new():
    _apply([("a", 1000), ("a", 1500), ("a", 700), ("a", 0), ("a", 900)], customer="cus_a")
    _apply([("x", 400)], customer="cus_b")
    mrr_movement_record(
        stripe_customer_id="cus_eur",
        stripe_subscription_id="s",
        currency="eur",
        old_mrr=0,
        new_mrr=999,
        occurred_at=T0,
        source_event_id="evt_eur",
    )

    summary = mrr_movements_summary(currency="usd", start=T0, end=T0 + timedelta(days=30))
    assert (summary.new, summary.expansion, summary.contraction) == (1400, 500, 800)
    assert (summary.churn, summary.reactivation) == (700, 900)
    assert summary.net_new == 1400 + 500 + 900 - 800 - 700 == 1300

    # The window is half-open: day 4 (the reactivation) is left out of [T0, T0+4d).
    early = mrr_movements_summary(currency="usd", start=T0, end=T0 + timedelta(days=4))
    assert early.reactivation == 0
    assert early.net_new == 400  # cus_a churned back to 0, cus_b is at 400


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 5000)), max_size=12))
def test_net_new_equals_the_change_in_customer_mrr(steps):
    MRRMovement.objects.all().delete()
    _apply(steps)
    final = {}
    for sub, new in steps:
        final[sub] = new
    summary = mrr_movements_summary(currency="usd", start=T0, end=T0 + timedelta(days=99))
    assert summary.net_new == sum(final.values())
    kinds = list(MRRMovement.objects.order_by("occurred_at").values_list("kind", flat=True))
    if kinds:
        assert kinds[0] == "new"
        assert kinds.count("new") == 1
