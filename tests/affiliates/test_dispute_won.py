"""A dispute the merchant wins gives back the commissions its opening clawed back.

End to end on the fake Stripe (dispute test card, ``winning_evidence``), plus the statuses a
reinstated commission returns to and the cases that get nothing back.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe
from djstripe import models as djm

from affiliates.models import Commission, Referral
from affiliates.services.clawbacks import (
    commission_dispute_closed_record,
    commission_dispute_record,
    commission_dispute_won_record,
)
from affiliates.services.commissions import (
    REINSTATED_SOURCE,
    commission_review,
    commissions_approve_due,
)
from ledger.models import PayeeProfile, Transaction
from ledger.payouts import payout_batch_run
from ledger.selectors import payee_balance, trial_balance
from tests.accounts.factories import UserFactory
from tests.affiliates.factories import AffiliateFactory, ProgramFactory
from tests.stripe_harness import connected_account
from tests.stripe_paths import invoice_charge_id
from tests.subscriptions.effects_helpers import EventFeed, key, make_customer, make_price, subscribe

pytestmark = pytest.mark.django_db


def _owed(affiliate) -> int:
    return payee_balance(payee_type="affiliate", payee_id=affiliate.pk).get("usd", 0)


def _referred_subscription(affiliate, *, card: str, unit_amount: int = 2500, **extra: Any):
    customer, pm = make_customer(card=card, email="buyer@customer.test")
    Referral.objects.create(
        affiliate=affiliate,
        stripe_customer_id=customer.id,
        source=Referral.Source.CODE,
        referred_at=datetime.now(UTC),
    )
    sub = subscribe(customer, pm, make_price(unit_amount=unit_amount), **extra)
    return invoice_charge_id(sub.latest_invoice)


def _dispute_of(charge_id: str) -> str:
    [dispute] = stripe.Dispute.list(charge=charge_id)["data"]
    return dispute.id


def test_winning_the_dispute_reinstates_the_commission_once(stripe_fake):
    affiliate = AffiliateFactory(program=ProgramFactory(commission_rate="10", hold_days=30))
    rate = stripe.TaxRate.create(
        display_name="VAT", percentage="20", inclusive=False, idempotency_key=key("txr")
    )
    charge_id = _referred_subscription(
        affiliate, card="pm_card_createDispute", default_tax_rates=[rate.id]
    )
    feed = EventFeed()
    feed.process_new()
    commission = Commission.objects.get()
    # 10 % of 2500 net of the 500 tax; the dispute took all of it back.
    assert (commission.amount, commission.reversed_amount, commission.status) == (
        250,
        250,
        "reversed",
    )
    assert _owed(affiliate) == 0

    dispute_id = _dispute_of(charge_id)
    stripe.Dispute.modify(dispute_id, evidence={"uncategorized_text": "winning_evidence"})
    events = feed.process_new()
    for event in events:  # reprocessed under fresh event ids
        replay = copy.deepcopy(event)
        replay["id"] += "_again"
        djm.Event.process(replay)

    commission.refresh_from_db()
    assert (commission.reversed_amount, commission.status, commission.reversed_at) == (
        0,
        "held",
        None,
    )
    assert _owed(affiliate) == 250
    [reinstated] = Transaction.objects.filter(source=REINSTATED_SOURCE)
    assert reinstated.idempotency_key == f"dispute.won:{dispute_id}:commission:{commission.pk}"
    assert set(trial_balance().values()) == {0}
    # Held again: approved when the hold ends, as if never disputed.
    assert commissions_approve_due(now=commission.available_at + timedelta(seconds=1)) == 1


def test_losing_the_dispute_keeps_the_clawback(stripe_fake):
    affiliate = AffiliateFactory(program=ProgramFactory(commission_rate="10"))
    charge_id = _referred_subscription(affiliate, card="pm_card_createDispute")
    feed = EventFeed()
    feed.process_new()

    stripe.Dispute.modify(
        _dispute_of(charge_id), evidence={"uncategorized_text": "losing_evidence"}
    )
    feed.process_new()

    commission = Commission.objects.get()
    assert (commission.reversed_amount, commission.status) == (250, "reversed")
    assert not Transaction.objects.filter(source=REINSTATED_SOURCE).exists()
    assert _owed(affiliate) == 0


def test_a_paid_commission_is_paid_again_and_its_money_payable(stripe_fake):
    affiliate = AffiliateFactory(
        program=ProgramFactory(commission_rate="20", hold_days=0, minimum_payout=100),
        user=UserFactory(email="aff@partner.test"),
    )
    connect = connected_account()
    PayeeProfile.objects.create(
        payee_type="affiliate",
        payee_id=affiliate.pk,
        method=PayeeProfile.Method.STRIPE_CONNECT,
        stripe_account_id=connect.id,
        stripe_payouts_enabled=True,
    )
    charge_id = _referred_subscription(affiliate, card="pm_card_createDispute")
    feed = EventFeed()
    opening = feed.new_events()
    for event in opening:
        if event["type"] != "charge.dispute.created":
            djm.Event.process(event)
    commission = Commission.objects.get()
    commissions_approve_due(now=commission.available_at + timedelta(seconds=1))
    payout_batch_run(payee_type="affiliate", as_of=(datetime.now(UTC) + timedelta(days=1)).date())
    commission.refresh_from_db()
    assert (commission.status, commission.amount) == ("paid", 500)

    for event in opening:
        if event["type"] == "charge.dispute.created":
            djm.Event.process(event)
    commission.refresh_from_db()
    assert (commission.status, _owed(affiliate)) == ("reversed", -500)

    stripe.Dispute.modify(
        _dispute_of(charge_id), evidence={"uncategorized_text": "winning_evidence"}
    )
    feed.process_new()

    commission.refresh_from_db()
    assert (commission.status, commission.reversed_amount) == ("paid", 0)
    assert _owed(affiliate) == 0  # the clawback that the payable still owed is undone


def test_a_refund_after_the_won_dispute_claws_back_the_reinstated_commission(stripe_fake):
    affiliate = AffiliateFactory(program=ProgramFactory(commission_rate="10"))
    charge_id = _referred_subscription(affiliate, card="pm_card_createDispute")
    feed = EventFeed()
    feed.process_new()
    stripe.Dispute.modify(
        _dispute_of(charge_id), evidence={"uncategorized_text": "winning_evidence"}
    )
    feed.process_new()

    stripe.Refund.create(charge=charge_id, amount=1000, idempotency_key=key("re"))
    feed.process_new()
    commission = Commission.objects.get()
    assert (commission.reversed_amount, commission.status) == (100, "held")

    stripe.Refund.create(charge=charge_id, idempotency_key=key("re"))
    feed.process_new()
    commission.refresh_from_db()
    assert (commission.reversed_amount, commission.status) == (250, "reversed")
    assert _owed(affiliate) == 0
    assert set(trial_balance().values()) == {0}


# --- service edge cases -------------------------------------------------------------------
def _dispute(charge_id: str, amount: int, *, status: str = "won") -> dict[str, Any]:
    return {
        "id": "dp_" + key("edge")[-12:],
        "object": "dispute",
        "charge": charge_id,
        "amount": amount,
        "status": status,
        "created": int(datetime.now(UTC).timestamp()),
    }


@pytest.fixture
def paid_commission(stripe_fake):
    """A HELD 10 % commission on a 2500 invoice paid with an ordinary card."""
    affiliate = AffiliateFactory(program=ProgramFactory(commission_rate="10"))
    charge_id = _referred_subscription(affiliate, card="pm_card_visa")
    EventFeed().process_new()
    return Commission.objects.get(), charge_id


def test_an_approved_commission_is_approved_again(paid_commission):
    commission, charge_id = paid_commission
    commissions_approve_due(now=commission.available_at + timedelta(seconds=1))
    dispute = _dispute(charge_id, 2500)
    now = datetime.now(UTC)

    commission_dispute_record(dispute=dispute, occurred_at=now)
    commission.refresh_from_db()
    assert commission.status == "reversed"
    changed = commission_dispute_won_record(dispute=dispute, occurred_at=now)
    again = commission_dispute_closed_record(dispute=dispute, occurred_at=now)

    commission.refresh_from_db()
    assert [c.pk for c in changed] == [commission.pk] and again == []
    assert (commission.status, commission.reversed_amount) == ("approved", 0)
    assert Transaction.objects.filter(source=REINSTATED_SOURCE).count() == 1


def test_a_partial_dispute_won_gives_back_only_its_clawback(paid_commission):
    commission, charge_id = paid_commission
    dispute = _dispute(charge_id, 1000)  # 100 of the 250 commission
    now = datetime.now(UTC)

    commission_dispute_won_record(dispute=dispute, occurred_at=now)  # books the opening too

    commission.refresh_from_db()
    assert (commission.status, commission.reversed_amount) == ("held", 0)
    assert _owed(commission.affiliate) == 250


def test_a_commission_rejected_on_review_gets_nothing_back(paid_commission):
    commission, charge_id = paid_commission
    dispute = _dispute(charge_id, 1000)
    now = datetime.now(UTC)
    commission_dispute_record(dispute=dispute, occurred_at=now)
    commission_review(commission=commission, actor=UserFactory(), approve=False, note="fraud")

    assert commission_dispute_won_record(dispute=dispute, occurred_at=now) == []

    commission.refresh_from_db()
    assert (commission.status, commission.reversed_amount) == ("reversed", 250)
    assert _owed(commission.affiliate) == 0


def test_a_lost_dispute_whose_opening_was_missed_is_clawed_back_once(paid_commission):
    commission, charge_id = paid_commission
    lost = _dispute(charge_id, 2500, status="lost")
    now = datetime.now(UTC)

    assert commission_dispute_closed_record(dispute=lost, occurred_at=now) == []
    commission_dispute_record(dispute=lost, occurred_at=now)  # the opening, late

    commission.refresh_from_db()
    assert (commission.status, commission.reversed_amount) == ("reversed", 250)
    assert _owed(commission.affiliate) == 0


def test_an_inquiry_claws_back_nothing_until_it_escalates(paid_commission):
    commission, charge_id = paid_commission
    inquiry = _dispute(charge_id, 2500, status="warning_needs_response")
    now = datetime.now(UTC)

    assert commission_dispute_record(dispute=inquiry, occurred_at=now) == []
    commission.refresh_from_db()
    assert (commission.status, commission.reversed_amount) == ("held", 0)

    escalated = {**inquiry, "status": "needs_response"}  # charge.dispute.funds_withdrawn
    commission_dispute_record(dispute=escalated, occurred_at=now)
    commission_dispute_record(dispute=escalated, occurred_at=now)

    commission.refresh_from_db()
    assert (commission.status, commission.reversed_amount) == ("reversed", 250)
    assert _owed(commission.affiliate) == 0
