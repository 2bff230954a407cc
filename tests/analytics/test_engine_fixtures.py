"""The MRR engine end to end (DESIGN.md §6): Stripe-shaped subscription objects applied the way
the webhooks apply them (``subscription_state_apply``), then read back through
``analytics.reports``. Every expected figure is computed by hand in the comments."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from analytics import reports
from analytics.models import MRRMovement
from subscriptions.services.subscription_state import subscription_state_apply

pytestmark = pytest.mark.django_db


def _at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


def _price(amount, interval="month", count=1, usage_type="licensed", currency="usd", **extra):
    return {
        "id": f"price_{amount}_{interval}_{count}_{usage_type}",
        "object": "price",
        "currency": currency,
        "type": "recurring",
        "billing_scheme": "per_unit",
        "unit_amount": amount,
        "recurring": {"interval": interval, "interval_count": count, "usage_type": usage_type},
        **extra,
    }


def _coupon_discount(coupon_id, *, end=None, **coupon):
    return {
        "id": f"di_{coupon_id}",
        "object": "discount",
        "source": {"type": "coupon", "coupon": {"id": coupon_id, "object": "coupon", **coupon}},
        "end": int(end.timestamp()) if end else None,
    }


class World:
    """Applies subscription snapshots as events would, numbering the events."""

    def __init__(self) -> None:
        self.events = 0

    def apply(self, sub_id, customer, day, *items, status="active", currency="usd", **extra):
        self.events += 1
        subscription = {
            "id": sub_id,
            "object": "subscription",
            "customer": customer,
            "status": status,
            "currency": currency,
            "discounts": [],
            "items": {
                "object": "list",
                "data": [
                    {"id": f"si_{sub_id}_{n}", "price": price, "quantity": quantity}
                    for n, (price, quantity) in enumerate(items)
                ],
            },
            **extra,
        }
        subscription_state_apply(
            subscription=subscription, event_id=f"evt_{self.events:04d}", occurred_at=_at(day)
        )


@pytest.fixture
def world():
    return World()


def _moves(customer):
    return list(
        MRRMovement.objects.filter(stripe_customer_id=customer)
        .order_by("occurred_at", "pk")
        .values_list("kind", "old_mrr", "new_mrr")
    )


def _mrr(on, currency="usd"):
    return reports.summary(on=on, currency=currency).mrr


JAN1, JAN5, JAN20, FEB1, FEB10 = (
    date(2026, 1, 1),
    date(2026, 1, 5),
    date(2026, 1, 20),
    date(2026, 2, 1),
    date(2026, 2, 10),
)


@pytest.mark.parametrize(
    ("price", "quantity", "mrr"),
    [
        (_price(120_000, "year"), 1, 10_000),  # annual: 120000 / 12
        (_price(1_000, "week"), 1, 4_333),  # weekly: 1000 x 52 / 12 = 4333.33
        (_price(30_000, "month", 3), 1, 10_000),  # quarterly: 30000 / 3
        (_price(2_500), 4, 10_000),  # quantity: 2500 x 4
        (_price(100, "day"), 1, 3_042),  # daily: 100 x 365 / 12 = 3041.67
    ],
)
def test_intervals_and_quantity(world, price, quantity, mrr):
    world.apply("sub_1", "cus_1", JAN5, (price, quantity))
    assert _moves("cus_1") == [("new", 0, mrr)]
    assert _mrr(JAN5) == mrr


def test_tiered_price_through_pricing(world):
    # Graduated: 5 x 1000 + 2 x 500 = 6000; volume at 7 seats: 7 x 800 = 5600.
    graduated = _price(None)
    graduated.update(
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=[{"up_to": 5, "unit_amount": 1000}, {"up_to": None, "unit_amount": 500}],
    )
    volume = _price(None, "year")
    volume.update(
        billing_scheme="tiered",
        tiers_mode="volume",
        tiers=[{"up_to": 5, "unit_amount": 1200}, {"up_to": None, "unit_amount": 9600}],
    )
    world.apply("sub_g", "cus_g", JAN5, (graduated, 7))
    world.apply("sub_v", "cus_v", JAN5, (volume, 7))  # 7 x 9600 / 12 = 5600
    assert _moves("cus_g") == [("new", 0, 6_000)]
    assert _moves("cus_v") == [("new", 0, 5_600)]


def test_trial_counts_nothing_until_it_pays(world):
    world.apply("sub_t", "cus_t", JAN5, (_price(5_000), 1), status="trialing")
    assert _moves("cus_t") == []
    assert _mrr(JAN5) == 0
    world.apply("sub_t", "cus_t", JAN20, (_price(5_000), 1))
    assert _moves("cus_t") == [("new", 0, 5_000)]
    assert (_mrr(JAN5), _mrr(JAN20)) == (0, 5_000)


def test_past_due_still_counts_until_canceled(world):
    world.apply("sub_p", "cus_p", JAN5, (_price(5_000), 1))
    world.apply("sub_p", "cus_p", JAN20, (_price(5_000), 1), status="past_due")
    assert _mrr(JAN20) == 5_000
    world.apply("sub_p", "cus_p", FEB10, (_price(5_000), 1), status="canceled")
    assert _moves("cus_p") == [("new", 0, 5_000), ("churn", 5_000, 0)]
    assert _mrr(FEB10) == 0


def test_forever_discount(world):
    forever = _coupon_discount("quarter_off", duration="forever", percent_off=25)
    world.apply("sub_f", "cus_f", JAN5, (_price(10_000), 1), discounts=[forever])
    assert _moves("cus_f") == [("new", 0, 7_500)]


def test_repeating_discount_stops_at_its_end(world):
    # 50% off for a month (ends Feb 1), then 12000 / year with 1200 off per invoice (/12 = 100).
    repeating = _coupon_discount("half_jan", duration="repeating", percent_off=50, end=_at(FEB1, 0))
    world.apply("sub_r", "cus_r", JAN5, (_price(10_000), 1), discounts=[repeating])
    # Stripe sends the subscription again at the next renewal; the discount has ended.
    world.apply("sub_r", "cus_r", FEB10, (_price(10_000), 1), discounts=[repeating])
    assert _moves("cus_r") == [("new", 0, 5_000), ("expansion", 5_000, 10_000)]
    amount_off = _coupon_discount("yearly_1200", duration="repeating", amount_off=1_200, end=None)
    world.apply("sub_y", "cus_y", JAN5, (_price(120_000, "year"), 1), discounts=[amount_off])
    assert _moves("cus_y") == [("new", 0, 9_900)]


def test_discount_listed_by_id_is_filled_in_from_the_mirror(world):
    from djstripe.models import Customer, Subscription

    customer = Customer.objects.create(id="cus_m", email="m@example.com")
    forever = _coupon_discount("ten_off", duration="forever", percent_off=10)
    Subscription.objects.create(
        id="sub_m", customer=customer, stripe_data={"id": "sub_m", "discounts": [forever]}
    )
    world.apply("sub_m", "cus_m", JAN5, (_price(10_000), 1), discounts=["di_ten_off"])
    assert _moves("cus_m") == [("new", 0, 9_000)]


def test_metered_items_are_left_out(world):
    world.apply(
        "sub_u",
        "cus_u",
        JAN5,
        (_price(3_000), 1),
        (_price(7, usage_type="metered"), 1),
    )
    assert _moves("cus_u") == [("new", 0, 3_000)]


def test_tax_is_excluded(world):
    inclusive = {"id": "txr_in", "object": "tax_rate", "percentage": 20.0, "inclusive": True}
    exclusive = {"id": "txr_ex", "object": "tax_rate", "percentage": 20.0, "inclusive": False}
    # 12000 including 20% VAT is 10000 of revenue; 10000 plus 20% on top is 10000 of revenue.
    world.apply("sub_i", "cus_i", JAN5, (_price(12_000), 1), default_tax_rates=[inclusive])
    world.apply("sub_e", "cus_e", JAN5, (_price(10_000), 1), default_tax_rates=[exclusive])
    assert _moves("cus_i") == [("new", 0, 10_000)]
    assert _moves("cus_e") == [("new", 0, 10_000)]


def test_new_and_expansion_in_the_same_period(world):
    world.apply("sub_n", "cus_n", JAN5, (_price(1_000), 1))
    world.apply("sub_n", "cus_n", JAN20, (_price(1_000), 3))
    jan = reports.movements(start=JAN1, end=date(2026, 1, 31), currency="usd")
    assert (jan.new, jan.expansion, jan.mrr_start, jan.mrr_end) == (1_000, 2_000, 0, 3_000)
    assert jan.net_new == 3_000


def test_one_of_two_subscriptions_canceled_is_contraction(world):
    world.apply("sub_a", "cus_2", JAN5, (_price(4_000), 1))
    world.apply("sub_b", "cus_2", JAN5, (_price(1_000), 1))
    world.apply("sub_a", "cus_2", FEB10, (_price(4_000), 1), status="canceled")
    assert _moves("cus_2") == [
        ("new", 0, 4_000),
        ("expansion", 0, 1_000),
        ("contraction", 4_000, 0),
    ]
    feb = reports.movements(start=FEB1, end=date(2026, 2, 28), currency="usd")
    assert (feb.contraction, feb.churn, feb.customers_churned) == (4_000, 0, 0)
    assert reports.summary(on=FEB10, currency="usd").active_customers == 1


def test_reactivation_after_churn(world):
    world.apply("sub_1", "cus_r", JAN5, (_price(2_000), 1))
    world.apply("sub_1", "cus_r", JAN20, (_price(2_000), 1), status="canceled")
    world.apply("sub_2", "cus_r", FEB10, (_price(3_000), 1))
    assert _moves("cus_r") == [
        ("new", 0, 2_000),
        ("churn", 2_000, 0),
        ("reactivation", 0, 3_000),
    ]
    feb = reports.movements(start=FEB1, end=date(2026, 2, 28), currency="usd")
    assert (feb.new, feb.reactivation) == (0, 3_000)


def test_zero_decimal_currency(world):
    # 12000 yen a year is 1000 yen a month: yen have no minor unit, nothing is divided by 100.
    world.apply("sub_j", "cus_j", JAN5, (_price(12_000, "year", currency="jpy"), 1), currency="jpy")
    world.apply("sub_k", "cus_k", JAN5, (_price(980, "month", currency="jpy"), 2), currency="jpy")
    summary = reports.summary(on=JAN5, currency="jpy")
    assert (summary.mrr, summary.active_customers, summary.arpa) == (2_960, 2, 1_480)
    assert _mrr(JAN5) == 0  # nothing in usd


def test_older_event_changes_nothing(world):
    world.apply("sub_o", "cus_o", JAN20, (_price(2_000), 1))
    world.apply("sub_o", "cus_o", JAN5, (_price(9_000), 1))  # delivered late, older
    assert _moves("cus_o") == [("new", 0, 2_000)]
