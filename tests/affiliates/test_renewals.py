"""Recurring commissions on renewals: a referred customer on a Stripe test clock, the clock
advanced month by month on the fake, every event processed through dj-stripe's Event.process
(what the webhook inbox ends with)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import stripe

from affiliates.models import Commission, Program, Referral
from ledger.selectors import payee_balance, trial_balance
from tests.affiliates.factories import AffiliateFactory, ProgramFactory
from tests.devstripe.clock_helpers import (
    APR_1,
    DAY,
    FEB_1,
    JAN_1,
    MAR_1,
    advance,
    clock_customer,
    make_clock,
    make_price,
    subscribe,
)
from tests.subscriptions.effects_helpers import EventFeed

pytestmark = pytest.mark.django_db


def _at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def test_recurring_rule_pays_one_commission_per_renewal_until_it_ends(stripe_fake):
    program = ProgramFactory(
        commission_rate="25",
        duration=Program.Duration.RECURRING,
        recurring_months=3,
        hold_days=30,
    )
    affiliate = AffiliateFactory(program=program)
    feed = EventFeed()
    clock = make_clock(JAN_1)
    customer, pm = clock_customer(clock)
    Referral.objects.create(
        affiliate=affiliate,
        stripe_customer_id=customer.id,
        source=Referral.Source.CODE,
        referred_at=datetime.now(UTC) - timedelta(minutes=5),
    )
    sub = subscribe(customer, pm, make_price(4000))
    feed.process_new()

    advance(clock, MAR_1 + DAY)  # renewals on Feb 1 and Mar 1
    feed.process_new()
    feed.process_new()  # nothing new: no second commission for any invoice

    paid = sorted(
        stripe.Invoice.list(subscription=sub.id).last_response.data["data"],
        key=lambda i: i["created"],
    )
    assert [(i["amount_paid"], i["status_transitions"]["paid_at"]) for i in paid] == [
        (4000, JAN_1),
        (4000, FEB_1),
        (4000, MAR_1),
    ]
    commissions = Commission.objects.filter(affiliate=affiliate).order_by("paid_at_invoice")
    assert [
        (c.stripe_invoice_id, c.base_amount, c.amount, c.status, c.paid_at_invoice)
        for c in commissions
    ] == [
        (paid[0]["id"], 4000, 1000, "held", _at(JAN_1)),
        (paid[1]["id"], 4000, 1000, "held", _at(FEB_1)),
        (paid[2]["id"], 4000, 1000, "held", _at(MAR_1)),
    ]
    assert [c.available_at for c in commissions] == [
        _at(JAN_1 + 30 * DAY),
        _at(FEB_1 + 30 * DAY),
        _at(MAR_1 + 30 * DAY),
    ]
    assert payee_balance(payee_type="affiliate", payee_id=affiliate.pk) == {"usd": 3000}

    # The fourth invoice is paid on Apr 1, three calendar months after the first: past the rule.
    advance(clock, APR_1 + DAY)
    feed.process_new()

    fourth = stripe.Subscription.retrieve(sub.id).latest_invoice
    assert stripe.Invoice.retrieve(fourth).status_transitions.paid_at == APR_1
    assert Commission.objects.filter(affiliate=affiliate).count() == 3
    assert not Commission.objects.filter(stripe_invoice_id=fourth).exists()
    assert payee_balance(payee_type="affiliate", payee_id=affiliate.pk) == {"usd": 3000}
    assert set(trial_balance().values()) == {0}
