"""The orders demo: one order in every state, a disputed one and a refund after release,
through the fake Stripe; a second run creates nothing."""

from __future__ import annotations

import pytest
import stripe

from marketplace import demo_orders
from marketplace.models import Order
from revenue_site.demo import demo_modules

pytestmark = pytest.mark.django_db


def test_the_orders_demo_has_every_state_and_runs_twice(stripe_fake):
    lines: list[str] = []
    demo_orders.seed(out=lines.append)
    demo_orders.seed(out=lines.append)
    assert set(Order.objects.values_list("state", flat=True)) == set(Order.State.values)
    assert Order.objects.count() == len(demo_orders.PATHS)
    assert lines[-1] == "marketplace orders: 0 new demo orders (one per state)"
    after = Order.objects.get(requirements__startswith="[demo:refund_after_release]")
    assert after.state == Order.State.RELEASED
    assert after.refunded_amount == after.price // 4
    assert stripe.Transfer.retrieve(after.stripe_transfer_id).amount_reversed > 0


def test_the_demo_registry_runs_it_after_the_marketplace_demo():
    names = [m.__name__ for m in demo_modules()]
    assert names.index("marketplace.demo_orders") > names.index("marketplace.demo")
