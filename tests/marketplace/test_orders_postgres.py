"""Concurrent transitions on one order serialise on its row lock (PostgreSQL, threads): accept
racing dispute has one winner; two releases release and transfer once."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import stripe
from django.db import connection
from django.db.models import Sum

from ledger.models import Entry, Transaction
from marketplace import orders
from marketplace.models import Order
from tests.marketplace.factories_orders import (
    OrderListingFactory,
    OrderPackageFactory,
    OrderProviderFactory,
    order_in,
)

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row-level concurrency needs PostgreSQL"
)
pytestmark = [pytest.mark.postgres, needs_postgres, pytest.mark.django_db(transaction=True)]

S = Order.State


def race(*calls: Callable[[], object]) -> list[object]:
    """Run ``calls`` at once in threads; each result or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            barrier.wait()
            results[index] = call()
        except Exception as exc:  # the race's loser is a result here
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def connect_package():
    provider = OrderProviderFactory(connect=True)
    return OrderPackageFactory(listing=OrderListingFactory(provider=provider))


@pytest.mark.parametrize("attempt", range(3))
def test_accept_racing_dispute_one_wins(stripe_fake, attempt):
    order = order_in(S.DELIVERED, package=connect_package())
    buyer = Order.objects.select_related("buyer").get(pk=order.pk).buyer

    results = race(
        lambda: orders.order_accept(order=Order(pk=order.pk), user=buyer),
        lambda: orders.order_dispute(order=Order(pk=order.pk), user=buyer, note="no"),
    )

    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1, results
    assert isinstance(errors[0], orders.OrderTransitionError)
    order.refresh_from_db()
    assert order.state in (S.RELEASED, S.DISPUTED)
    releases = Transaction.objects.filter(source=orders.RELEASE_SOURCE).count()
    transfers = stripe.Transfer.list(transfer_group=f"order-{order.pk}").data
    if order.state == S.RELEASED:
        assert (releases, len(transfers)) == (1, 1)
    else:
        assert (releases, len(transfers)) == (0, 0)


def test_concurrent_releases_release_and_transfer_once(stripe_fake):
    order = order_in(S.ACCEPTED, package=connect_package())

    results = race(*[lambda: orders.order_release(order=Order(pk=order.pk)) for _ in range(4)])

    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 3, results
    assert all(isinstance(e, orders.OrderTransitionError) for e in errors)
    order.refresh_from_db()
    assert order.state == S.RELEASED
    assert Transaction.objects.filter(source=orders.RELEASE_SOURCE).count() == 1
    assert Transaction.objects.filter(source=orders.TRANSFER_SOURCE).count() == 1
    assert len(stripe.Transfer.list(transfer_group=f"order-{order.pk}").data) == 1
    assert Entry.objects.aggregate(t=Sum("amount"))["t"] == 0


def test_concurrent_full_refunds_refund_once(stripe_fake):
    from tests.accounts.factories import UserFactory

    order = order_in(S.RELEASED, package=connect_package())
    staff = UserFactory(is_staff=True, password=None)

    results = race(*[lambda: orders.order_refund(order=Order(pk=order.pk), user=staff)] * 2)

    assert sum(isinstance(r, orders.OrderTransitionError) for r in results) == 1, results
    refunds = stripe.Refund.list(payment_intent=order.stripe_payment_intent_id).data
    assert [r.amount for r in refunds] == [10000]
    assert stripe.Transfer.retrieve(order.stripe_transfer_id).amount_reversed == 8500
