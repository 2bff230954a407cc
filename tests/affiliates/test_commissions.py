"""Commission accrual by program rule, approval after the hold, review, clawback (services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest

from affiliates.models import Commission, Program, Referral
from affiliates.services.clawbacks import commission_clawback
from affiliates.services.commissions import (
    CommissionReviewError,
    commission_accrue,
    commission_review,
    commissions_approve_due,
)
from affiliates.tasks.commissions import commissions_approve_due as approve_task
from ledger.chart import SystemAccount
from ledger.models import Transaction
from ledger.selectors import account_balance, payee_balance, trial_balance
from ledger.services import system_account
from tests.accounts.factories import StaffUserFactory
from tests.affiliates.factories import AffiliateFactory, ProgramFactory

pytestmark = pytest.mark.django_db

_ids = count(1)
JAN = datetime(2026, 1, 15, 12, tzinfo=UTC)


def refer(affiliate, customer_id: str | None = None) -> Referral:
    return Referral.objects.create(
        affiliate=affiliate,
        stripe_customer_id=customer_id or f"cus_test{next(_ids)}",
        source=Referral.Source.CODE,
        referred_at=JAN - timedelta(days=1),
    )


def invoice(referral: Referral, amount: int, paid_at: datetime = JAN, **extra) -> dict:
    return {
        "id": f"in_test{next(_ids)}",
        "object": "invoice",
        "customer": referral.stripe_customer_id,
        "amount_paid": amount,
        "currency": "usd",
        "status": "paid",
        "status_transitions": {"paid_at": int(paid_at.timestamp())},
        **extra,
    }


def accrue(referral: Referral, amount: int, paid_at: datetime = JAN, **extra):
    return commission_accrue(
        invoice=invoice(referral, amount, paid_at, **extra), occurred_at=paid_at
    )


def owed(affiliate) -> int:
    return payee_balance(payee_type="affiliate", payee_id=affiliate.pk).get("usd", 0)


def test_percent_rule_rounds_half_up_and_holds_and_posts():
    affiliate = AffiliateFactory(
        program=ProgramFactory(commission_rate=Decimal("10"), hold_days=30)
    )
    referral = refer(affiliate)

    commission = accrue(referral, 10005, tax=0)  # 1000.5 -> 1001

    assert commission is not None
    assert (commission.status, commission.base_amount, commission.amount) == ("held", 10005, 1001)
    assert commission.available_at == JAN + timedelta(days=30)
    assert Decimal(commission.rule["rate"]) == 10 and commission.rule["rounding"] == "ROUND_HALF_UP"
    assert owed(affiliate) == 1001
    assert account_balance(account=system_account(SystemAccount.COMMISSION_EXPENSE)) == {
        "usd": 1001
    }
    assert set(trial_balance().values()) == {0}


def test_the_base_excludes_tax():
    affiliate = AffiliateFactory(program=ProgramFactory(commission_rate=Decimal("20")))
    commission = accrue(refer(affiliate), 12000, total_taxes=[{"amount": 2000}])
    assert (commission.base_amount, commission.amount) == (10000, 2000)


def test_accrual_is_idempotent_per_invoice():
    affiliate = AffiliateFactory()
    referral = refer(affiliate)
    paid = invoice(referral, 5000)

    first = commission_accrue(invoice=paid, occurred_at=JAN)
    again = commission_accrue(invoice=paid, occurred_at=JAN)

    assert first.pk == again.pk
    assert Commission.objects.count() == 1
    assert Transaction.objects.filter(source="affiliates.commission").count() == 1
    assert owed(affiliate) == 1000


def test_unreferred_customers_and_unapproved_affiliates_earn_nothing():
    assert (
        commission_accrue(
            invoice={"id": "in_x", "customer": "cus_nobody", "amount_paid": 100, "currency": "usd"},
            occurred_at=JAN,
        )
        is None
    )
    suspended = AffiliateFactory(status="suspended")
    assert accrue(refer(suspended), 5000) is None
    assert Commission.objects.count() == 0


def test_first_payment_only_pays_the_first_invoice():
    affiliate = AffiliateFactory(program=ProgramFactory(duration=Program.Duration.FIRST_PAYMENT))
    referral = refer(affiliate)
    assert accrue(referral, 5000).amount == 1000
    assert accrue(referral, 5000, JAN + timedelta(days=31)) is None


def test_flat_rule_pays_once_per_conversion():
    program = ProgramFactory(
        commission_type=Program.CommissionType.FLAT,
        commission_flat_amount=2500,
        duration=Program.Duration.LIFETIME,
    )
    affiliate = AffiliateFactory(program=program)
    referral = refer(affiliate)

    first = accrue(referral, 999)
    assert (first.amount, first.rule["flat_amount"]) == (2500, 2500)
    assert accrue(referral, 999, JAN + timedelta(days=31)) is None
    assert owed(affiliate) == 2500


def test_recurring_n_months_stops_at_the_n_plus_first_invoice():
    program = ProgramFactory(duration=Program.Duration.RECURRING, recurring_months=2)
    affiliate = AffiliateFactory(program=program)
    referral = refer(affiliate)

    jan = accrue(referral, 5000, JAN)
    feb = accrue(referral, 5000, datetime(2026, 2, 15, 12, tzinfo=UTC))
    mar = accrue(referral, 5000, datetime(2026, 3, 15, 12, tzinfo=UTC))

    assert (jan.amount, feb.amount, mar) == (1000, 1000, None)


def test_lifetime_pays_every_invoice():
    affiliate = AffiliateFactory(program=ProgramFactory(duration=Program.Duration.LIFETIME))
    referral = refer(affiliate)
    amounts = [accrue(referral, 5000, JAN + timedelta(days=31 * i)).amount for i in range(4)]
    assert amounts == [1000] * 4


def test_tiers_by_referred_revenue_in_the_calendar_month_including_this_invoice():
    program = ProgramFactory(
        duration=Program.Duration.LIFETIME,
        tiers=[{"min_revenue": 0, "rate": "10"}, {"min_revenue": 20000, "rate": "25"}],
    )
    affiliate = AffiliateFactory(program=program)
    one, two = refer(affiliate), refer(affiliate)

    low = accrue(one, 15000, JAN)  # month revenue 15000 -> 10 %
    high = accrue(two, 10000, JAN + timedelta(days=1))  # 25000 -> 25 %
    next_month = accrue(one, 10000, datetime(2026, 2, 1, tzinfo=UTC))  # 10000 -> 10 %

    assert (low.amount, high.amount, next_month.amount) == (1500, 2500, 1000)
    assert high.rule["tier"] == {"min_revenue": 20000, "rate": "25"}
    assert high.rule["month_revenue"] == 25000


def test_the_task_approves_unflagged_commissions_after_the_hold():
    affiliate = AffiliateFactory(program=ProgramFactory(hold_days=0))
    past = timezone_now = datetime.now(UTC) - timedelta(hours=1)
    due = accrue(refer(affiliate), 5000, past)
    waiting = accrue(refer(affiliate), 5000, timezone_now + timedelta(days=2))
    flagged = accrue(refer(affiliate), 5000, past)
    Commission.objects.filter(pk=flagged.pk).update(flags=["fast_conversion"])

    approve_task.apply()  # the beat task, run here (eager or not)

    statuses = dict(Commission.objects.values_list("pk", "status"))
    assert statuses == {due.pk: "approved", waiting.pk: "held", flagged.pk: "held"}


def test_review_approve_unblocks_a_flagged_commission():
    staff = StaffUserFactory()
    affiliate = AffiliateFactory(program=ProgramFactory(hold_days=0))
    flagged = accrue(refer(affiliate), 5000, datetime.now(UTC) - timedelta(hours=1))
    Commission.objects.filter(pk=flagged.pk).update(flags=["self_referral_domain"])

    reviewed = commission_review(
        commission=flagged, actor=staff, approve=True, note="known customer"
    )

    assert (reviewed.status, reviewed.reviewed_by) == ("approved", staff)
    with pytest.raises(CommissionReviewError):
        commission_review(commission=flagged, actor=staff, approve=False, note="")


def test_review_approve_before_the_hold_ends_leaves_it_to_the_task():
    affiliate = AffiliateFactory(program=ProgramFactory(hold_days=30))
    flagged = accrue(refer(affiliate), 5000, datetime.now(UTC))
    Commission.objects.filter(pk=flagged.pk).update(flags=["fast_conversion"])

    reviewed = commission_review(commission=flagged, actor=None, approve=True, note="")
    assert reviewed.status == "held" and reviewed.reviewed_at is not None
    assert commissions_approve_due(now=datetime.now(UTC) + timedelta(days=31)) == 1


def test_review_reject_reverses_the_posting():
    affiliate = AffiliateFactory()
    commission = accrue(refer(affiliate), 5000)

    rejected = commission_review(commission=commission, actor=None, approve=False, note="fraud")

    assert (rejected.status, rejected.reversed_amount) == ("reversed", 1000)
    assert owed(affiliate) == 0
    assert set(trial_balance().values()) == {0}


def test_clawback_is_pro_rata_idempotent_and_never_beyond_what_is_left():
    affiliate = AffiliateFactory()
    commission = accrue(refer(affiliate), 10000)  # 2000
    key = {"invoice_id": commission.stripe_invoice_id, "charged": 10000, "occurred_at": JAN}

    commission_clawback(refunded=2500, key="refund:re_1", **key)
    commission_clawback(refunded=2500, key="refund:re_1", **key)  # replay
    commission.refresh_from_db()
    assert (commission.status, commission.reversed_amount, owed(affiliate)) == ("held", 500, 1500)

    commission_clawback(refunded=10000, key="dispute:dp_1", **key)
    commission.refresh_from_db()
    assert (commission.status, commission.reversed_amount, owed(affiliate)) == ("reversed", 2000, 0)
    assert set(trial_balance().values()) == {0}
