"""Order money against the fake Stripe: held on payment, released with the commission, the
Connect transfer, every refund path (before and after release, partial and full, reversed
from the connected account), Stripe disputes and refunds made on Stripe, the auto-accept
timer. The ledger balances after each, and the provider's payable is what they keep."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.db.models import Sum
from django.utils import timezone
from djstripe import models as djm
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from ledger.chart import SystemAccount
from ledger.models import Account, Entry, Transaction
from marketplace import orders
from marketplace.models import Order
from tests.accounts.factories import UserFactory
from tests.marketplace.factories_orders import (
    OrderListingFactory,
    OrderPackageFactory,
    OrderProviderFactory,
    order_in,
    step,
)
from tests.stripe_harness import SignedInbox
from tests.subscriptions.effects_helpers import EventFeed, key

pytestmark = pytest.mark.django_db

S = Order.State
HELD = SystemAccount.LIABILITY_MARKETPLACE_HELD.value
REVENUE = SystemAccount.REVENUE_MARKETPLACE.value
CLEARING = SystemAccount.STRIPE_CLEARING.value
DISPUTE_FEES = SystemAccount.DISPUTE_LOSSES.value


def balance(code: str) -> int:
    """Credit balances positive (liabilities, revenue), debit balances negative."""
    return -(Entry.objects.filter(account__code=code).aggregate(t=Sum("amount"))["t"] or 0)


def payable(order: Order) -> int:
    return -(
        Entry.objects.filter(
            account__payee_type=Account.PayeeType.PROVIDER, account__payee_id=order.provider_id
        ).aggregate(t=Sum("amount"))["t"]
        or 0
    )


def assert_balanced() -> None:
    totals = Entry.objects.values("currency").annotate(t=Sum("amount"))
    assert all(row["t"] == 0 for row in totals)


def connect_package(**kwargs) -> object:
    provider = OrderProviderFactory(connect=True)
    return OrderPackageFactory(listing=OrderListingFactory(provider=provider), **kwargs)


def staff():
    return UserFactory(is_staff=True, password=None)


# --- the split -----------------------------------------------------------------------------


@given(
    amount=st.integers(min_value=0, max_value=10**12),
    percent=st.decimals(min_value=0, max_value=100, places=2),
)
def test_the_split_adds_up_and_the_provider_never_gets_more_than_their_rate(amount, percent):
    parts = orders.order_split(amount=amount, commission_percent=percent)
    assert parts["provider"] + parts["platform"] == amount
    assert parts["provider"] <= amount * (Decimal(100) - percent) / Decimal(100)
    assert parts["provider"] >= 0
    assert parts["platform"] >= 0


def test_the_commission_is_the_providers_override_else_the_categorys(stripe_fake):
    provider = OrderProviderFactory(commission_percent_override=Decimal("7.50"))
    package = OrderPackageFactory(listing=OrderListingFactory(provider=provider), price=999)
    order = order_in(S.RELEASED, package=package)
    assert order.commission_percent == Decimal("7.50")
    # 999 * 0.925 = 924.075 → 924 to the provider, 75 commission.
    assert (payable(order), balance(REVENUE), balance(HELD)) == (924, 75, 0)
    assert_balanced()


# --- pay, release, transfer ------------------------------------------------------------------


def test_payment_is_held_and_release_pays_a_csv_provider_through_the_payable(stripe_fake):
    order = order_in(S.PAID)
    assert balance(HELD) == 10000
    assert balance(CLEARING) == -10000
    assert order.stripe_payment_intent_id and order.stripe_charge_id

    step(order, "start")
    step(order, "deliver")
    order = step(order, "accept")

    assert order.state == S.RELEASED
    assert (balance(HELD), payable(order), balance(REVENUE)) == (0, 8500, 1500)
    assert order.stripe_transfer_id == ""  # the payout engine pays CSV providers
    assert_balanced()
    assert [e.transition for e in order.events.all()] == [
        "request", "quote", "pay", "start", "deliver", "accept", "release",
    ]  # fmt: skip


def test_release_transfers_a_connect_providers_earnings_with_the_charge_and_group(stripe_fake):
    order = order_in(S.RELEASED, package=connect_package())

    transfer = stripe.Transfer.retrieve(order.stripe_transfer_id)
    assert transfer.amount == 8500
    assert transfer.source_transaction == order.stripe_charge_id
    assert transfer.transfer_group == f"order-{order.pk}"
    intent = stripe.PaymentIntent.retrieve(order.stripe_payment_intent_id)
    assert intent.transfer_group == f"order-{order.pk}"
    assert (payable(order), balance(REVENUE), balance(HELD)) == (0, 1500, 0)
    assert balance(CLEARING) == -1500  # 10000 in, 8500 out
    assert_balanced()


def test_a_refused_transfer_leaves_the_earnings_in_the_payable(stripe_fake):
    package = connect_package()
    from ledger.models import PayeeProfile

    PayeeProfile.objects.filter(payee_id=package.listing.provider_id).update(
        stripe_account_id="acct_gone"
    )
    order = order_in(S.RELEASED, package=package)
    assert order.stripe_transfer_id == ""
    assert payable(order) == 8500
    assert order.events.filter(transition="transfer_refused").exists()


def test_stripe_unavailable_for_the_transfer_is_retried_by_the_timer_once(stripe_fake):
    order = order_in(S.DELIVERED, package=connect_package())
    # Stripe saves a 500 under its idempotency key: the retry must not reuse the key blindly.
    stripe_fake.fail_next("POST", "/v1/transfers", status=500)
    order = orders.order_accept(order=order, user=order.buyer)
    assert order.state == S.RELEASED
    assert (order.transfer_pending, order.stripe_transfer_id) == (True, "")
    assert payable(order) == 8500  # owed, not transferred yet

    result = orders.orders_auto_accept_due()
    order.refresh_from_db()
    assert (result.transferred, order.transfer_pending) == (1, False)
    assert len(stripe.Transfer.list(transfer_group=f"order-{order.pk}").data) == 1
    assert payable(order) == 0
    assert orders.orders_auto_accept_due().transferred == 0


def test_a_transfer_whose_answer_was_lost_is_found_not_made_twice(stripe_fake):
    order = order_in(S.DELIVERED, package=connect_package())
    stripe_fake.fail_next("POST", "/v1/transfers", status=500, when="after")
    order = orders.order_accept(order=order, user=order.buyer)
    assert order.transfer_pending

    orders.order_transfer_retry(order=order)
    order.refresh_from_db()
    transfers = stripe.Transfer.list(transfer_group=f"order-{order.pk}").data
    assert [t.id for t in transfers] == [order.stripe_transfer_id]
    assert payable(order) == 0
    assert_balanced()


def test_a_declined_card_leaves_the_order_requested(stripe_fake):
    package = OrderPackageFactory()
    client = APIClient()
    buyer = UserFactory(password=None)
    client.force_authenticate(buyer)
    response = client.post(
        "/api/v1/marketplace/orders/",
        {"package": package.pk, "payment_method": "pm_card_chargeDeclined"},
        "json",
    )
    assert response.status_code == 402
    order = Order.objects.get()
    assert order.state == S.REQUESTED
    assert balance(HELD) == 0

    response = client.post(
        f"/api/v1/marketplace/orders/{order.pk}/pay", {"payment_method": "pm_card_visa"}, "json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["state"] == S.PAID
    # Paying twice is a conflict, and charges nothing more.
    again = client.post(
        f"/api/v1/marketplace/orders/{order.pk}/pay", {"payment_method": "pm_card_visa"}, "json"
    )
    assert again.status_code == 409
    assert len(stripe.PaymentIntent.list(limit=10).data) == 2  # the declined one and this
    assert balance(HELD) == 10000


def test_the_payment_webhook_after_a_synchronous_payment_books_nothing_more(stripe_fake):
    feed = EventFeed()
    order = order_in(S.PAID)
    entries = Entry.objects.count()
    events = feed.process_new()
    assert "payment_intent.succeeded" in {e["type"] for e in events}
    order.refresh_from_db()
    assert order.state == S.PAID
    # Only Stripe's fee is booked by the subscriptions receivers; nothing for the order.
    assert balance(HELD) == 10000
    assert Entry.objects.exclude(transaction__source="subscriptions.stripe_fee").count() == entries


# --- refunds -------------------------------------------------------------------------------


def test_a_full_refund_before_release(stripe_fake):
    order = order_in(S.IN_PROGRESS)
    order = orders.order_refund(order=order, user=staff())
    assert order.state == S.REFUNDED
    assert order.refunded_amount == 10000
    assert (balance(HELD), balance(CLEARING), payable(order)) == (0, 0, 0)
    refunds = stripe.Refund.list(payment_intent=order.stripe_payment_intent_id).data
    assert [r.amount for r in refunds] == [10000]
    assert_balanced()


def test_a_dispute_resolved_with_a_partial_refund_releases_the_rest(stripe_fake):
    order = order_in(S.DISPUTED)
    order = orders.order_refund(order=order, user=staff(), amount=3000, note="Half done")
    assert order.state == S.RELEASED
    # 7000 released: 5950 to the provider, 1050 commission.
    assert (balance(HELD), payable(order), balance(REVENUE)) == (0, 5950, 1050)
    assert balance(CLEARING) == -7000
    assert_balanced()


def test_a_dispute_resolved_for_the_provider_or_refunded_in_full(stripe_fake):
    released = orders.order_resolve_release(order=order_in(S.DISPUTED), user=staff())
    assert released.state == S.RELEASED
    assert payable(released) == 8500
    refunded = orders.order_refund(order=order_in(S.DISPUTED), user=staff())
    assert refunded.state == S.REFUNDED
    assert balance(HELD) == 0
    assert_balanced()


def test_a_partial_refund_above_what_is_left_is_refused(stripe_fake):
    order = order_in(S.DISPUTED)
    with pytest.raises(Exception) as caught:
        orders.order_refund(order=order, user=staff(), amount=10001)
    assert "amount" in str(caught.value)
    order.refresh_from_db()
    assert (order.state, order.refunded_amount) == (S.DISPUTED, 0)


def test_refund_after_release_claws_back_a_csv_providers_payable(stripe_fake):
    order = order_in(S.RELEASED)
    order = orders.order_refund(order=order, user=staff(), amount=2000)
    assert order.state == S.RELEASED
    # 2000 back: 1700 from the provider, 300 from the commission.
    assert (payable(order), balance(REVENUE), balance(HELD)) == (6800, 1200, 0)
    order = orders.order_refund(order=order, user=staff())
    assert order.state == S.REFUNDED
    assert (payable(order), balance(REVENUE), balance(HELD), balance(CLEARING)) == (0, 0, 0, 0)
    assert_balanced()


def test_refund_after_the_transfer_reverses_it_from_the_connected_account(stripe_fake):
    order = order_in(S.RELEASED, package=connect_package())
    order = orders.order_refund(order=order, user=staff(), amount=4000)
    transfer = stripe.Transfer.retrieve(order.stripe_transfer_id)
    assert transfer.amount_reversed == 3400  # the provider's 85 % of 4000
    assert order.transferred_amount == 8500 - 3400
    assert (payable(order), balance(REVENUE), balance(HELD)) == (0, 900, 0)

    order = orders.order_refund(order=order, user=staff())
    transfer = stripe.Transfer.retrieve(order.stripe_transfer_id)
    assert (transfer.amount_reversed, transfer.reversed) == (8500, True)
    assert order.state == S.REFUNDED
    assert (payable(order), balance(REVENUE), balance(HELD), balance(CLEARING)) == (0, 0, 0, 0)
    assert_balanced()


def test_a_refund_made_on_stripe_is_booked_from_its_event_once(stripe_fake):
    feed = EventFeed()
    order = order_in(S.RELEASED, package=connect_package())
    feed.process_new()
    stripe.Refund.create(
        payment_intent=order.stripe_payment_intent_id, amount=1000, idempotency_key=key("re")
    )
    events = feed.process_new()
    assert "charge.refunded" in {e["type"] for e in events}
    order.refresh_from_db()
    assert order.refunded_amount == 1000
    assert stripe.Transfer.retrieve(order.stripe_transfer_id).amount_reversed == 850
    entries = Entry.objects.count()
    for event in events:
        djm.Event.process(event)
    assert Entry.objects.count() == entries

    # Our own refund is booked at once; its event adds nothing.
    orders.order_refund(order=order, user=staff(), amount=500)
    entries = Entry.objects.count()
    feed.process_new()
    assert Entry.objects.count() == entries
    order.refresh_from_db()
    assert order.refunded_amount == 1500
    assert_balanced()


# --- Stripe disputes (events delivered to our webhook, signed as Stripe signs them) ----------


@pytest.fixture
def inbox(client, django_capture_on_commit_callbacks, celery_eager):
    # The inbox processes each event in a task: in-process, as under REDIS_URL it is queued.
    return SignedInbox(client, django_capture_on_commit_callbacks)


def _disputed_charge_order(package=None) -> Order:
    """A paid order whose card Stripe disputes at once (its events are not delivered yet)."""
    package = package or OrderPackageFactory()
    order = orders.order_create(buyer=UserFactory(password=None), package_id=package.pk)
    step(order, "quote")
    orders.order_pay(order=order, user=order.buyer, payment_method="pm_card_createDispute")
    order.refresh_from_db()
    return order


def _released(order: Order) -> Order:
    for name in ("start", "deliver", "accept"):
        order = step(order, name)
    assert order.state == S.RELEASED
    return order


def _win(inbox) -> list[dict]:
    dispute = stripe.Dispute.list(limit=1).data[0]
    stripe.Dispute.modify(dispute.id, evidence={"uncategorized_text": "winning_evidence"})
    return inbox.deliver_new()


def _types(events: list[dict]) -> set[str]:
    return {e["type"] for e in events}


def test_a_stripe_dispute_on_a_paid_order_gives_the_held_funds_back_and_a_win_restores_it(
    stripe_fake, inbox
):
    order = _disputed_charge_order()
    assert "charge.dispute.created" in _types(inbox.deliver_new())

    order.refresh_from_db()
    assert (order.state, order.disputed_amount) == (S.DISPUTED, 10000)
    assert order.stripe_dispute_id and order.stripe_dispute_status == "needs_response"
    opened = order.events.get(transition="stripe_dispute")
    assert (opened.actor, opened.from_state, opened.amount) == ("system", S.PAID, 10000)
    assert balance(HELD) == 0  # Stripe took the held funds
    assert Transaction.objects.filter(source=orders.DISPUTE_SOURCE).count() == 1
    # No money moves while Stripe holds it: staff can neither release nor refund.
    for service in (orders.order_resolve_release, orders.order_refund):
        with pytest.raises(orders.OrderTransitionError, match="Stripe dispute"):
            service(order=order, user=staff())
    assert orders.transitions_available(order=order, actor="staff") == []
    assert_balanced()

    events = _win(inbox)
    assert {"charge.dispute.funds_reinstated", "charge.dispute.closed"} <= _types(events)
    order.refresh_from_db()
    assert (order.state, order.disputed_amount, order.stripe_dispute_status) == (
        S.PAID,
        0,
        "won",
    )
    won = order.events.get(transition="stripe_dispute_won")
    assert (won.from_state, won.to_state) == (S.DISPUTED, S.PAID)
    assert balance(HELD) == 10000
    assert balance(DISPUTE_FEES) == 0  # the fee came back with the win
    entries = Entry.objects.count()
    inbox.deliver(events)  # redelivered: nothing twice
    assert Entry.objects.count() == entries

    # The order carries on from where the dispute found it.
    order = _released(order)
    assert (payable(order), balance(REVENUE), balance(HELD)) == (8500, 1500, 0)
    assert_balanced()


def test_a_stripe_dispute_on_a_released_order_reverses_the_split_and_the_transfer_at_once(
    stripe_fake, inbox
):
    order = _disputed_charge_order(package=connect_package())
    held_back = inbox.new()  # the dispute's events arrive after the release here
    order = _released(order)
    assert (payable(order), order.transferred_amount) == (0, 8500)

    inbox.deliver(held_back)

    order.refresh_from_db()
    assert (order.state, order.disputed_amount, order.transferred_amount) == (
        S.RELEASED,
        10000,
        0,
    )
    assert order.events.filter(transition="stripe_dispute_opened", amount=10000).exists()
    assert stripe.Transfer.retrieve(order.stripe_transfer_id).amount_reversed == 8500
    assert (payable(order), balance(REVENUE), balance(HELD)) == (0, 0, 0)
    with pytest.raises(orders.OrderTransitionError, match="Stripe dispute"):
        orders.order_refund(order=order, user=staff(), amount=100)
    assert_balanced()

    stripe.Dispute.close(stripe.Dispute.list(limit=1).data[0].id)
    events = inbox.deliver_new()
    assert "charge.dispute.closed" in _types(events)

    order.refresh_from_db()
    assert (order.state, order.stripe_dispute_status) == (S.REFUNDED, "lost")
    assert order.events.filter(transition="stripe_dispute_lost").exists()
    # The reversals made when it opened stand, once; the dispute fee is a loss.
    assert Transaction.objects.filter(source=orders.DISPUTE_SOURCE).count() == 2  # + clawback
    assert Transaction.objects.filter(source=orders.TRANSFER_REVERSAL_SOURCE).count() == 1
    assert stripe.Transfer.retrieve(order.stripe_transfer_id).amount_reversed == 8500
    assert (payable(order), balance(REVENUE), balance(HELD)) == (0, 0, 0)
    assert balance(DISPUTE_FEES) < 0  # an expense: a debit balance
    entries = Entry.objects.count()
    inbox.deliver(events + held_back)
    assert Entry.objects.count() == entries
    assert_balanced()


def test_a_won_dispute_on_a_released_order_books_the_split_back_for_the_payout_engine(
    stripe_fake, inbox
):
    order = _disputed_charge_order(package=connect_package())
    held_back = inbox.new()
    order = _released(order)
    inbox.deliver(held_back)

    events = _win(inbox)

    order.refresh_from_db()
    assert (order.state, order.disputed_amount) == (S.RELEASED, 0)
    assert order.events.filter(transition="stripe_dispute_won").exists()
    assert not order.events.filter(transition="stripe_dispute").exists()
    # The transfer stays reversed: the provider's share is owed again, through the payout
    # engine; the commission is the platform's again.
    assert stripe.Transfer.retrieve(order.stripe_transfer_id).amount_reversed == 8500
    assert (payable(order), balance(REVENUE), balance(HELD)) == (8500, 1500, 0)
    entries = Entry.objects.count()
    inbox.deliver(events + held_back)
    assert Entry.objects.count() == entries

    # A refund after the win takes back from what the win booked.
    orders.order_refund(order=order, user=staff(), amount=2000)
    assert (payable(order), balance(REVENUE), balance(HELD)) == (6800, 1200, 0)
    assert_balanced()


def test_dispute_events_in_any_order_give_the_same_books(stripe_fake, inbox):
    order = _disputed_charge_order()
    opened = inbox.new()
    events = _win_quietly()
    # The decision arrives first, then the opening (a delayed delivery).
    inbox.deliver(events)
    inbox.deliver(opened)

    order.refresh_from_db()
    assert (order.state, order.disputed_amount, order.stripe_dispute_status) == (
        S.PAID,
        0,
        "won",
    )
    assert balance(HELD) == 10000
    assert Transaction.objects.filter(source=orders.DISPUTE_SOURCE).count() == 1
    assert Transaction.objects.filter(source=orders.DISPUTE_WON_SOURCE).count() == 1
    assert_balanced()


def test_a_dispute_delivered_before_the_payment_event_books_the_payment_first(stripe_fake, inbox):
    # The buyer paid, but our answer from Stripe was lost: the order is still quoted when the
    # dispute's events arrive, before payment_intent.succeeded.
    order = order_in(S.QUOTED)
    intent = stripe.PaymentIntent.create(
        amount=order.price,
        currency=order.currency,
        payment_method="pm_card_createDispute",
        payment_method_types=["card"],
        confirm=True,
        metadata={orders.METADATA_KEY: str(order.pk)},
    )
    Order.objects.filter(pk=order.pk).update(stripe_payment_intent_id=intent.id)
    events = inbox.new()
    disputes = [e for e in events if e["type"].startswith("charge.dispute")]
    assert disputes

    inbox.deliver(disputes)
    order.refresh_from_db()
    assert (order.state, order.disputed_amount) == (S.DISPUTED, 10000)
    assert order.events.get(transition="stripe_dispute").from_state == S.PAID
    inbox.deliver([e for e in events if e not in disputes])  # the payment's own, late

    order.refresh_from_db()
    assert order.state == S.DISPUTED
    assert Transaction.objects.filter(source=orders.PAID_SOURCE).count() == 1
    assert Transaction.objects.filter(source=orders.DISPUTE_SOURCE).count() == 1
    assert balance(HELD) == 0
    assert_balanced()


def _win_quietly() -> list[dict]:
    """Win the open dispute and return its events, undelivered."""
    seen = {e["id"] for e in stripe.Event.list(limit=100).last_response.data["data"]}
    dispute = stripe.Dispute.list(limit=1).data[0]
    stripe.Dispute.modify(dispute.id, evidence={"uncategorized_text": "winning_evidence"})
    events = stripe.Event.list(limit=100).last_response.data["data"]
    return sorted((e for e in events if e["id"] not in seen), key=lambda e: e["created"])


# --- the auto-accept timer ---------------------------------------------------------------------


def test_the_timer_accepts_and_releases_orders_delivered_n_days_ago(stripe_fake, settings):
    settings.MARKETPLACE_AUTO_ACCEPT_DAYS = 3
    old = order_in(S.DELIVERED)
    recent = order_in(S.DELIVERED)
    Order.objects.filter(pk=old.pk).update(delivered_at=timezone.now() - timedelta(days=3, hours=1))
    Order.objects.filter(pk=recent.pk).update(delivered_at=timezone.now() - timedelta(days=2))

    result = orders.orders_auto_accept_due()

    assert (result.accepted, result.released) == (1, 1)
    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.state, recent.state) == (S.RELEASED, S.DELIVERED)
    assert old.events.get(transition="accept").actor == "system"
    assert payable(old) == 8500
    # Running again changes nothing.
    assert orders.orders_auto_accept_due().accepted == 0
    assert payable(old) == 8500


def test_the_beat_task_runs_the_timer(stripe_fake, settings):
    from marketplace.tasks import orders_auto_accept_due

    order = order_in(S.DELIVERED)
    Order.objects.filter(pk=order.pk).update(delivered_at=timezone.now() - timedelta(days=30))
    assert orders_auto_accept_due() == {"accepted": 1, "released": 1, "transferred": 0, "failed": 0}
