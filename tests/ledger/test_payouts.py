"""The payout engine: balances above the minimum, Connect transfers, CSV, resume without repeats."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
import stripe
from django.core.management import call_command

from affiliates.models import Commission, Referral
from affiliates.services.clawbacks import commission_clawback
from affiliates.services.commissions import commission_accrue, commissions_approve_due
from ledger.chart import SystemAccount
from ledger.models import PayeeProfile, Payout, PayoutBatch, Transaction
from ledger.payouts import (
    PayoutError,
    payout_batch_approve,
    payout_batch_execute,
    payout_batch_export_csv,
    payout_batch_run,
)
from ledger.selectors import account_balance, payee_balance, trial_balance
from ledger.services import system_account
from tests.affiliates.factories import AffiliateFactory, ProgramFactory
from tests.stripe_harness import connect_onboard, connected_account

pytestmark = pytest.mark.django_db

PAID = datetime(2026, 1, 10, 12, tzinfo=UTC)
AS_OF = date(2026, 2, 28)
_n = iter(range(1, 10_000))


def _earn(affiliate, amount: int, *, paid_at: datetime = PAID) -> Commission:
    """A commission of ``amount`` (20 % of 5 * amount), approved unless paid_at is recent."""
    referral, _ = Referral.objects.get_or_create(
        stripe_customer_id=f"cus_payout{affiliate.pk}",
        defaults={"affiliate": affiliate, "source": "code", "referred_at": paid_at},
    )
    commission = commission_accrue(
        invoice={
            "id": f"in_payout{next(_n)}",
            "customer": referral.stripe_customer_id,
            "amount_paid": amount * 5,
            "currency": "usd",
            "status_transitions": {"paid_at": int(paid_at.timestamp())},
        },
        occurred_at=paid_at,
    )
    assert commission is not None and commission.amount == amount
    commissions_approve_due(now=paid_at + timedelta(days=31))
    commission.refresh_from_db()
    return commission


def _affiliate(*, method="paypal", minimum=5000, **profile):
    program = ProgramFactory(minimum_payout=minimum, hold_days=30, duration="lifetime")
    affiliate = AffiliateFactory(program=program)
    defaults = {
        "paypal": {"paypal_email": f"pay{affiliate.pk}@example.com"},
        # Onboarded: the connected account has payouts enabled (account.updated said so).
        "stripe_connect": {"stripe_payouts_enabled": True},
    }.get(method, {})
    PayeeProfile.objects.create(
        payee_type="affiliate", payee_id=affiliate.pk, method=method, **{**defaults, **profile}
    )
    return affiliate


def _owed(affiliate) -> int:
    return payee_balance(payee_type="affiliate", payee_id=affiliate.pk).get("usd", 0)


def test_a_batch_pays_approved_balances_above_the_minimum_and_books_them():
    rich = _affiliate()
    _earn(rich, 4000)
    _earn(rich, 3000)
    poor = _affiliate()
    _earn(poor, 1000)  # below the 5000 minimum: carried over
    held = _affiliate()
    _earn(held, 6000, paid_at=datetime(2026, 2, 20, tzinfo=UTC))  # still in its hold on AS_OF

    batch = payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    assert batch.status == PayoutBatch.Status.COMPLETED
    payout = batch.payouts.get()
    assert (payout.payee_id, payout.amount, payout.status) == (rich.pk, 7000, "paid")
    assert set(rich.commissions.values_list("status", "payout")) == {("paid", payout.pk)}
    assert (_owed(rich), _owed(poor), _owed(held)) == (0, 1000, 6000)
    assert Transaction.objects.filter(
        source="ledger.payout", idempotency_key=f"payout:{payout.pk}"
    ).exists()
    in_transit = account_balance(account=system_account(SystemAccount.PAYOUTS_IN_TRANSIT))
    assert in_transit == {"usd": -7000}
    assert set(trial_balance().values()) == {0}
    assert payout_batch_export_csv(batch=batch) == (
        f"pay{rich.pk}@example.com,70.00,USD,payout-{payout.pk} affiliate payout as of 2026-02-28\n"
    )


def test_re_running_a_batch_resumes_it_and_pays_nobody_twice():
    affiliate = _affiliate()
    _earn(affiliate, 6000)

    first = payout_batch_run(payee_type="affiliate", as_of=AS_OF)
    _earn(affiliate, 9000)  # earned after the batch was computed: for the next batch
    again = payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    assert again.pk == first.pk and again.payouts.count() == 1
    assert Payout.objects.count() == 1 and _owed(affiliate) == 9000


def test_a_dry_run_is_a_draft_that_staff_approve_then_execute():
    affiliate = _affiliate()
    _earn(affiliate, 6000)

    out = StringIO()
    call_command("run_payouts", "--as-of", "2026-02-28", "--dry-run", stdout=out)
    batch = PayoutBatch.objects.get()
    assert batch.status == "draft" and "draft" in out.getvalue()
    assert batch.payouts.get().status == "pending" and _owed(affiliate) == 6000
    with pytest.raises(PayoutError):
        payout_batch_execute(batch=batch)

    payout_batch_approve(batch=batch)
    assert payout_batch_execute(batch=batch).status == "completed"
    assert _owed(affiliate) == 0


def test_a_clawback_after_payout_is_netted_by_the_next_batch():
    affiliate = _affiliate(minimum=1000)
    paid = _earn(affiliate, 6000)
    payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    commission_clawback(
        invoice_id=paid.stripe_invoice_id,
        refunded=30000,
        charged=30000,
        key="refund:re_x",
        occurred_at=datetime(2026, 3, 2, tzinfo=UTC),
    )
    paid.refresh_from_db()
    assert (paid.status, _owed(affiliate)) == ("reversed", -6000)
    assert payout_batch_run(payee_type="affiliate", as_of=date(2026, 3, 31)).payouts.count() == 0

    _earn(affiliate, 8000, paid_at=datetime(2026, 3, 5, tzinfo=UTC))
    batch = payout_batch_run(payee_type="affiliate", as_of=date(2026, 4, 30))
    assert batch.payouts.get().amount == 2000  # 8000 earned - 6000 clawed back
    assert _owed(affiliate) == 0
    assert set(trial_balance().values()) == {0}


def test_stripe_connect_payouts_and_an_interrupted_batch_pay_each_payee_once(stripe_fake):
    good_account = connected_account()
    good = _affiliate(method="stripe_connect", stripe_account_id=good_account.id)
    bad = _affiliate(method="stripe_connect", stripe_account_id="acct_unknownToStripe")
    _earn(good, 6000)
    _earn(bad, 7000)

    batch = payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    assert batch.status == PayoutBatch.Status.FAILED
    paid, failed = batch.payouts.order_by("payee_id")
    assert (paid.status, failed.status) == ("paid", "failed")
    assert "No such destination" in failed.failure_message
    assert (_owed(good), _owed(bad)) == (0, 7000)

    # The payee fixes their account; the same batch resumes: the failed payout only.
    fixed_account = connected_account()
    PayeeProfile.objects.filter(payee_id=bad.pk).update(stripe_account_id=fixed_account.id)
    batch = payout_batch_run(payee_type="affiliate", as_of=AS_OF)
    batch = payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    assert batch.status == PayoutBatch.Status.COMPLETED
    assert [t.amount for t in stripe.Transfer.list(destination=good_account.id).data] == [6000]
    assert [t.amount for t in stripe.Transfer.list(destination=fixed_account.id).data] == [7000]
    failed.refresh_from_db()
    assert (
        failed.stripe_transfer_id == stripe.Transfer.list(destination=fixed_account.id).data[0].id
    )
    assert (_owed(good), _owed(bad)) == (0, 0)
    assert account_balance(account=system_account(SystemAccount.STRIPE_CLEARING)) == {"usd": -13000}
    assert Transaction.objects.filter(source="ledger.payout").count() == 2


def test_a_batch_for_an_earlier_day_does_not_pay_money_already_paid():
    affiliate = _affiliate()
    _earn(affiliate, 6000)
    payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    earlier = payout_batch_run(payee_type="affiliate", as_of=AS_OF - timedelta(days=7))

    assert earlier.payouts.count() == 0
    assert Payout.objects.get().amount == 6000 and _owed(affiliate) == 0


def test_the_command_and_the_monthly_task_run_the_batch():
    from affiliates.tasks.commissions import affiliate_payouts_run

    affiliate = _affiliate()
    _earn(affiliate, 6000)
    out = StringIO()
    call_command("run_payouts", "--as-of", "2026-02-28", "--payee-type", "affiliate", stdout=out)
    assert "completed, 1 payouts" in out.getvalue() and _owed(affiliate) == 0

    _earn(affiliate, 5000)
    batch_id = affiliate_payouts_run.apply(kwargs={"as_of": "2026-03-31"}).get()
    assert PayoutBatch.objects.get(pk=batch_id).payouts.get().amount == 5000
    with pytest.raises(Exception, match="as-of"):
        call_command("run_payouts", "--as-of", "2026-02-30")


def test_stripe_unreachable_leaves_a_connect_payout_pending_and_the_rerun_pays_it_once(
    stripe_fake, monkeypatch
):
    import socket

    from revenue_site.stripe_errors import StripeUnavailable

    account = connected_account()
    affiliate = _affiliate(method="stripe_connect", stripe_account_id=account.id)
    _earn(affiliate, 6000)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setattr(stripe, "api_base", f"http://127.0.0.1:{closed}")
    monkeypatch.setattr(stripe, "max_network_retries", 0)

    with pytest.raises(StripeUnavailable):
        payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    payout = Payout.objects.get(payee_id=affiliate.pk)
    assert (payout.status, payout.failure_message, payout.stripe_transfer_id) == ("pending", "", "")
    assert _owed(affiliate) == 6000
    assert not Transaction.objects.filter(source="ledger.payout").exists()

    monkeypatch.setattr(stripe, "api_base", stripe_fake.api_base)  # Stripe is back
    batch = payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    assert batch.status == PayoutBatch.Status.COMPLETED
    payout.refresh_from_db()
    assert payout.status == "paid"
    assert [t.amount for t in stripe.Transfer.list(destination=account.id).data] == [6000]
    assert _owed(affiliate) == 0


# --- Stripe Connect payees whose onboarding is not complete ------------------------------------


def test_a_connect_payee_not_onboarded_is_skipped_with_a_reason_and_paid_by_the_next_batch(
    stripe_fake,
):
    account = connected_account(onboarded=False)
    waiting = _affiliate(
        method="stripe_connect", stripe_account_id=account.id, stripe_payouts_enabled=False
    )
    ready = _affiliate(method="stripe_connect", stripe_account_id=connected_account().id)
    _earn(waiting, 6000)
    _earn(ready, 7000)

    draft = payout_batch_run(payee_type="affiliate", as_of=AS_OF, execute=False)
    skipped = draft.payouts.get(payee_id=waiting.pk)
    # Visible before anyone approves the batch.
    assert (skipped.status, skipped.amount) == ("skipped", 6000)
    assert "onboarding is not complete" in skipped.skip_reason and account.id in skipped.skip_reason

    batch = payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    assert batch.status == PayoutBatch.Status.COMPLETED
    skipped.refresh_from_db()
    assert (skipped.status, skipped.stripe_transfer_id, skipped.paid_at) == ("skipped", "", None)
    assert stripe.Transfer.list(destination=account.id).data == []
    assert (_owed(waiting), _owed(ready)) == (6000, 0)
    out = StringIO()
    call_command("run_payouts", "--as-of", str(AS_OF), "--payee-type", "affiliate", stdout=out)
    assert f"affiliate {waiting.pk}: 6000 usd stripe_connect skipped (Stripe Connect" in (
        out.getvalue()
    )

    # Onboarding completes (account.updated); the next batch pays the balance, once.
    connect_onboard(account.id)
    PayeeProfile.objects.filter(payee_id=waiting.pk).update(stripe_payouts_enabled=True)
    later = payout_batch_run(payee_type="affiliate", as_of=AS_OF + timedelta(days=31))
    assert later.payouts.get().status == "paid"
    assert [t.amount for t in stripe.Transfer.list(destination=account.id).data] == [6000]
    assert _owed(waiting) == 0


def test_an_account_restricted_after_the_draft_is_skipped_not_transferred_to(stripe_fake):
    account = connected_account()
    affiliate = _affiliate(method="stripe_connect", stripe_account_id=account.id)
    _earn(affiliate, 6000)
    draft = payout_batch_run(payee_type="affiliate", as_of=AS_OF, execute=False)
    assert draft.payouts.get().status == "pending"
    # Stripe restricts the account (account.updated: payouts disabled) before execution.
    connect_onboard(account.id, payouts_enabled=False)
    PayeeProfile.objects.filter(payee_id=affiliate.pk).update(stripe_payouts_enabled=False)

    batch = payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    payout = batch.payouts.get()
    assert (payout.status, batch.status) == ("skipped", PayoutBatch.Status.COMPLETED)
    assert "onboarding is not complete" in payout.skip_reason
    assert stripe.Transfer.list(destination=account.id).data == []
    assert _owed(affiliate) == 6000


def test_a_transfer_stripe_refuses_for_the_capability_fails_the_payout_with_its_message(
    stripe_fake,
):
    # Our record says onboarded, Stripe's account is restricted (the webhook is late).
    account = connected_account(onboarded=False)
    affiliate = _affiliate(method="stripe_connect", stripe_account_id=account.id)
    _earn(affiliate, 6000)

    batch = payout_batch_run(payee_type="affiliate", as_of=AS_OF)

    payout = batch.payouts.get()
    assert (payout.status, batch.status) == ("failed", PayoutBatch.Status.FAILED)
    assert "capabilities enabled: transfers" in payout.failure_message
    assert _owed(affiliate) == 6000
