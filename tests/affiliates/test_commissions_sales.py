"""Commissions on one-time sales (a content licence paid by a PaymentIntent): the program's
rules as for invoices, keyed to the PaymentIntent, clawed back and reviewed like any other."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest
from django.db import IntegrityError
from django.urls import reverse
from rest_framework.test import APIClient

from affiliates.models import Affiliate, Commission, Program, Referral
from affiliates.services.clawbacks import commission_clawback
from affiliates.services.commissions import (
    commission_accrue,
    commission_accrue_sale,
    commission_review,
)
from ledger.chart import SystemAccount
from ledger.selectors import account_balance, payee_balance, trial_balance
from ledger.services import system_account
from tests.affiliates.factories import (
    AffiliateFactory,
    CommissionFactory,
    ProgramFactory,
    ReferralFactory,
)

pytestmark = pytest.mark.django_db

_ids = count(1)
JAN = datetime(2026, 1, 15, 12, tzinfo=UTC)


def refer(affiliate) -> Referral:
    return Referral.objects.create(
        affiliate=affiliate,
        stripe_customer_id=f"cus_sale{next(_ids)}",
        source=Referral.Source.CODE,
        referred_at=JAN - timedelta(days=1),
    )


def sell(referral: Referral, amount: int, paid_at: datetime = JAN, currency: str = "usd"):
    return commission_accrue_sale(
        payment_intent_id=f"pi_sale{next(_ids)}",
        customer_id=referral.stripe_customer_id,
        base_amount=amount,
        currency=currency,
        paid_at=paid_at,
        funded_by=SystemAccount.REVENUE_CONTENT,
    )


def owed(affiliate, currency: str = "usd") -> int:
    return payee_balance(payee_type="affiliate", payee_id=affiliate.pk).get(currency, 0)


def test_a_sale_commission_is_keyed_to_its_payment_intent_and_funded_by_the_sale():
    affiliate = AffiliateFactory(program=ProgramFactory(commission_rate=Decimal("20")))
    referral = refer(affiliate)
    args = {
        "payment_intent_id": "pi_once",
        "customer_id": referral.stripe_customer_id,
        "base_amount": 999,
        "currency": "usd",
        "paid_at": JAN,
        "funded_by": SystemAccount.REVENUE_CONTENT,
    }

    commission = commission_accrue_sale(**args)
    again = commission_accrue_sale(**args)

    assert commission is not None and again is not None and again.pk == commission.pk
    assert (commission.stripe_payment_intent_id, commission.stripe_invoice_id) == ("pi_once", "")
    assert commission.source_id == "pi_once"
    assert (commission.amount, commission.base_amount, commission.status) == (200, 999, "held")
    assert owed(affiliate) == 200
    # Off the top of the sale: from content revenue, not the platform's commission expense.
    revenue = account_balance(account=system_account(SystemAccount.REVENUE_CONTENT))
    assert revenue == {"usd": 200}
    expense = account_balance(account=system_account(SystemAccount.COMMISSION_EXPENSE))
    assert expense.get("usd", 0) == 0
    assert set(trial_balance().values()) == {0}


def test_unreferred_buyers_unapproved_affiliates_and_nothing_paid_earn_nothing():
    assert (
        commission_accrue_sale(
            payment_intent_id="pi_x",
            customer_id="cus_nobody",
            base_amount=999,
            currency="usd",
            paid_at=JAN,
            funded_by=SystemAccount.REVENUE_CONTENT,
        )
        is None
    )
    pending = AffiliateFactory(status=Affiliate.Status.PENDING)
    assert sell(refer(pending), 999) is None
    assert sell(refer(AffiliateFactory()), 0) is None
    assert not Commission.objects.exists()


def test_the_duration_counts_the_referrals_payments_of_any_kind():
    first_only = AffiliateFactory(program=ProgramFactory(duration=Program.Duration.FIRST_PAYMENT))
    referral = refer(first_only)
    paid_invoice = commission_accrue(
        invoice={
            "id": "in_first",
            "customer": referral.stripe_customer_id,
            "amount_paid": 1000,
            "currency": "usd",
            "status_transitions": {"paid_at": int(JAN.timestamp())},
        },
        occurred_at=JAN,
    )
    assert paid_invoice is not None
    assert sell(referral, 999, JAN + timedelta(days=1)) is None  # not the first payment

    recurring = AffiliateFactory(
        program=ProgramFactory(duration=Program.Duration.RECURRING, recurring_months=1)
    )
    referral = refer(recurring)
    assert sell(referral, 1000, JAN) is not None
    assert sell(referral, 1000, JAN + timedelta(days=20)) is not None
    assert sell(referral, 1000, JAN + timedelta(days=40)) is None


def test_a_flat_commission_never_exceeds_the_sale():
    program = ProgramFactory(commission_type="flat", commission_flat_amount=5000)
    commission = sell(refer(AffiliateFactory(program=program)), 999)
    assert commission is not None
    assert (commission.amount, commission.rule["capped_at_base"]) == (999, True)


def test_a_sale_commission_is_clawed_back_telescoping_to_the_whole():
    affiliate = AffiliateFactory(program=ProgramFactory(commission_rate=Decimal("20")))
    commission = sell(refer(affiliate), 999)  # 200
    assert commission is not None
    source = {"payment_intent_id": commission.stripe_payment_intent_id, "charged": 999}
    before = 0
    for n, refunded in enumerate([333, 333, 333]):
        commission_clawback(
            **source, refunded=refunded, key=f"refund:re_{n}", occurred_at=JAN,
            refunded_before=before,
        )  # fmt: skip
        before += refunded
    commission.refresh_from_db()
    # 67 (200/3), 66 (400/3 - 67), 67: the whole commission, not 3 x 67 capped.
    assert (commission.reversed_amount, commission.status) == (200, "reversed")
    assert owed(affiliate) == 0
    assert set(trial_balance().values()) == {0}


def test_rejecting_a_sale_commission_gives_it_back_to_the_sale():
    affiliate = AffiliateFactory(program=ProgramFactory(commission_rate=Decimal("20")))
    commission = sell(refer(affiliate), 1000)
    assert commission is not None
    commission_review(commission=commission, actor=None, approve=False, note="self-referral")
    commission.refresh_from_db()
    assert (commission.status, commission.reversed_amount) == ("reversed", 200)
    assert owed(affiliate) == 0
    revenue = account_balance(account=system_account(SystemAccount.REVENUE_CONTENT))
    assert revenue.get("usd", 0) == 0


def test_a_commission_names_exactly_one_source():
    affiliate = AffiliateFactory()
    referral = refer(affiliate)
    fields = {
        "affiliate": affiliate,
        "referral": referral,
        "base_amount": 1,
        "amount": 0,
        "currency": "usd",
        "paid_at_invoice": JAN,
        "available_at": JAN,
    }
    with pytest.raises(IntegrityError):
        Commission.objects.create(**fields)  # neither an invoice nor a sale


def test_a_commission_cannot_name_both_an_invoice_and_a_sale():
    affiliate = AffiliateFactory()
    with pytest.raises(IntegrityError):
        Commission.objects.create(
            affiliate=affiliate,
            referral=refer(affiliate),
            stripe_invoice_id="in_1",
            stripe_payment_intent_id="pi_1",
            base_amount=1,
            amount=0,
            currency="usd",
            paid_at_invoice=JAN,
            available_at=JAN,
        )


def test_the_portal_and_the_api_show_a_sale_commission_by_its_payment(client):
    affiliate = AffiliateFactory()
    sale = CommissionFactory(
        referral=ReferralFactory(affiliate=affiliate),
        stripe_invoice_id="",
        stripe_payment_intent_id="pi_sold",
    )
    client.force_login(affiliate.user)
    listing = client.get(reverse("portal:commissions")).content.decode()
    assert "pi_sold" in listing
    detail = client.get(reverse("portal:commission-detail", args=[sale.pk])).content.decode()
    assert "Sale (payment)" in detail and "pi_sold" in detail
    response = client.get(reverse("portal:commissions-csv"))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["invoice"], r["payment_intent"]) for r in rows] == [("", "pi_sold")]

    api = APIClient()
    api.force_authenticate(affiliate.user)
    body = api.get(f"/api/v1/affiliate/commissions/{sale.pk}").json()
    assert (body["stripe_invoice_id"], body["stripe_payment_intent_id"]) == ("", "pi_sold")
