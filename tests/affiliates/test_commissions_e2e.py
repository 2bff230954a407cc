"""End to end on the fake Stripe: subscribe -> invoice.paid -> HELD commission -> APPROVED ->
payout -> refund clawback after the payout, all through dj-stripe's Event.process."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import stripe

from affiliates.models import Commission, Program, Referral
from affiliates.services.commissions import commissions_approve_due
from ledger.models import PayeeProfile
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


def test_paid_invoice_commission_payout_and_refund_clawback(stripe_fake):
    program = ProgramFactory(
        commission_rate="25", duration=Program.Duration.LIFETIME, hold_days=30, minimum_payout=100
    )
    affiliate = AffiliateFactory(program=program, user=UserFactory(email="aff@partner.test"))
    connect = connected_account()
    PayeeProfile.objects.create(
        payee_type="affiliate",
        payee_id=affiliate.pk,
        method=PayeeProfile.Method.STRIPE_CONNECT,
        stripe_account_id=connect.id,
        stripe_payouts_enabled=True,
    )
    feed = EventFeed()
    customer, pm = make_customer(email="buyer@customer.test")
    Referral.objects.create(
        affiliate=affiliate,
        stripe_customer_id=customer.id,
        source=Referral.Source.CODE,
        referred_at=datetime.now(UTC) - timedelta(minutes=5),
    )
    sub = subscribe(customer, pm, make_price(unit_amount=4999))

    feed.process_new()
    feed.process_new()  # nothing new: no second commission
    commission = Commission.objects.get()
    assert (commission.status, commission.base_amount, commission.amount) == ("held", 4999, 1250)
    assert commission.stripe_invoice_id == stripe.Subscription.retrieve(sub.id).latest_invoice
    assert commission.flags == []
    assert _owed(affiliate) == 1250

    assert commissions_approve_due(now=commission.available_at + timedelta(seconds=1)) == 1
    batch = payout_batch_run(
        payee_type="affiliate", as_of=(commission.available_at + timedelta(days=1)).date()
    )
    commission.refresh_from_db()
    assert (batch.status, commission.status) == ("completed", "paid")
    assert [t.amount for t in stripe.Transfer.list(destination=connect.id).data] == [1250]
    assert _owed(affiliate) == 0

    charge_id = invoice_charge_id(commission.stripe_invoice_id)
    stripe.Refund.create(charge=charge_id, amount=2000, idempotency_key=key("re"))
    feed.process_new()

    commission.refresh_from_db()
    # 1250 * 2000 / 4999 = 500.1 -> 500
    assert (commission.status, commission.reversed_amount) == ("paid", 500)
    assert _owed(affiliate) == -500
    assert set(trial_balance().values()) == {0}
    assert payout_batch_run(payee_type="affiliate", as_of=date(2099, 1, 1)).payouts.count() == 0


def test_a_dispute_claws_back_the_whole_commission(stripe_fake):
    affiliate = AffiliateFactory(program=ProgramFactory(commission_rate="10"))
    feed = EventFeed()
    customer, pm = make_customer(card="pm_card_createDispute", email="buyer@customer.test")
    Referral.objects.create(
        affiliate=affiliate,
        stripe_customer_id=customer.id,
        source=Referral.Source.CODE,
        referred_at=datetime.now(UTC),
    )
    subscribe(customer, pm, make_price(unit_amount=3000))

    types = [e["type"] for e in feed.process_new()]

    assert types.index("invoice.paid") < types.index("charge.dispute.created")
    commission = Commission.objects.get()
    assert (commission.amount, commission.reversed_amount, commission.status) == (
        300,
        300,
        "reversed",
    )
    assert _owed(affiliate) == 0
    assert set(trial_balance().values()) == {0}


def test_a_referral_attributed_after_the_invoice_was_paid_still_earns(stripe_fake):
    from affiliates.services.commissions import commissions_accrue_for_referral

    affiliate = AffiliateFactory(program=ProgramFactory(commission_rate="10"))
    feed = EventFeed()
    customer, pm = make_customer(email="late@customer.test")
    subscribe(customer, pm, make_price(unit_amount=2000))
    feed.process_new()  # invoice.paid before any referral: nothing
    assert not Commission.objects.exists()

    referral = Referral.objects.create(
        affiliate=affiliate,
        stripe_customer_id=customer.id,
        source=Referral.Source.METADATA,
        referred_at=datetime.now(UTC),
    )
    made = commissions_accrue_for_referral(referral=referral)
    again = commissions_accrue_for_referral(referral=referral)

    assert [c.amount for c in made] == [200] and [c.pk for c in again] == [made[0].pk]
    assert _owed(affiliate) == 200


def test_a_referral_recorded_after_invoice_paid_catches_up_on_the_commission(stripe_fake):
    """Stripe may deliver customer.subscription.created (which carries the referral code in
    metadata) after invoice.paid: the late referral still earns the first invoice once."""
    from affiliates.services.attribution import referral_attribute
    from tests.affiliates.factories import ReferralLinkFactory

    affiliate = AffiliateFactory(program=ProgramFactory(commission_rate="20"))
    link = ReferralLinkFactory(affiliate=affiliate)
    feed = EventFeed()
    customer, pm = make_customer(email="late@customer.test")
    subscribe(customer, pm, make_price(unit_amount=5000))
    feed.process_new(types={"invoice.paid", "customer.created", "invoice.created"})
    assert Commission.objects.count() == 0  # nobody referred this customer yet

    referral = referral_attribute(
        stripe_customer_id=customer.id, metadata_code=link.code, at=datetime.now(UTC)
    )
    referral_attribute(
        stripe_customer_id=customer.id, metadata_code=link.code, at=datetime.now(UTC)
    )

    commission = Commission.objects.get()
    assert (commission.referral, commission.amount, commission.status) == (referral, 1000, "held")
