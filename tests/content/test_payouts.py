"""Creators in the shared payout engine: the hold period (refunds inside it are clawed back
before paying), the minimum, negative balances carried forward, Stripe Connect and CSV
payouts, the remittance notice, onboarding with a payout method, and the monthly task."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
import stripe
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import transaction
from django.db.models import Sum
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.models import OutgoingEmail
from content import payouts
from content.models import Creator
from content.tasks import creator_payouts_run
from ledger.models import Entry, PayeeProfile, Payout, PayoutBatch, Transaction
from ledger.payees import payee_connect_account_refresh
from ledger.payouts import payout_batch_export_csv, payout_batch_run
from ledger.selectors import payee_balance, trial_balance
from tests.accounts.factories import UserFactory
from tests.content.factories import ContentItemFactory, CreatorFactory, LicenseTypeFactory
from tests.content.sales import refund, sell
from tests.stripe_harness import connected_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_fake")]

AS_OF = date(2026, 3, 31)
IBAN = "DE89370400440532013000"


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _payout_settings(settings):
    settings.CONTENT_PAYOUT_HOLD_DAYS = 14
    settings.CONTENT_PAYOUT_MINIMUM = 1000


def creator_with_item(*, amount: int = 10_000, currency: str = "usd", method: str = "bank_csv"):
    """A creator at a 20 % fee (8,000 of a 10,000 sale is theirs) with a bank account."""
    creator = CreatorFactory(platform_fee_percent=Decimal("20.00"))
    if method:
        payouts.creator_payout_settings_update(
            creator=creator,
            method=method,
            bank_account_name=creator.display_name,
            bank_iban=IBAN,
            bank_bic="COBADEFFXXX",
        )
    license_type = LicenseTypeFactory(
        item=ContentItemFactory(owner=creator), amount=amount, currency=currency
    )
    return creator, license_type


def owed(creator, currency: str = "usd") -> int:
    return payee_balance(payee_type="creator", payee_id=creator.pk).get(currency, 0)


def run(as_of: date = AS_OF) -> PayoutBatch:
    return payout_batch_run(payee_type="creator", as_of=as_of)


def paid_to(creator) -> list[int]:
    return list(
        Payout.objects.filter(payee_type="creator", payee_id=creator.pk)
        .order_by("pk")
        .values_list("amount", flat=True)
    )


# --- the hold period -----------------------------------------------------------------------


def test_earnings_in_the_hold_period_wait_for_the_next_batch():
    creator, license_type = creator_with_item()
    sell(license_type, at=at(3, 1))  # 30 days before the batch's day: payable
    sell(license_type, at=at(3, 25))  # 6 days before: held

    batch = run()

    assert batch.status == PayoutBatch.Status.COMPLETED
    assert paid_to(creator) == [8000]
    assert owed(creator) == 8000
    assert payouts.creator_balance(
        creator=creator, as_of=datetime(2026, 3, 31, 23, tzinfo=UTC)
    ) == [{"currency": "usd", "balance": 8000, "held": 8000, "available": 0, "minimum": 1000}]
    # The next month the held sale is past its hold.
    run(date(2026, 4, 30))
    assert paid_to(creator) == [8000, 8000]
    assert owed(creator) == 0
    assert set(trial_balance().values()) == {0}


def test_the_hold_ends_exactly_hold_days_before_the_end_of_the_batch_day(settings):
    creator, license_type = creator_with_item()
    cutoff = datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)
    sell(license_type, at=cutoff - timedelta(days=14))  # on the boundary: payable
    sell(license_type, at=cutoff - timedelta(days=14) + timedelta(seconds=1))  # held
    run()
    assert paid_to(creator) == [8000]

    settings.CONTENT_PAYOUT_HOLD_DAYS = 0
    run(date(2026, 4, 1))
    assert paid_to(creator) == [8000, 8000]


def test_a_refund_inside_the_hold_is_clawed_back_before_anything_is_paid():
    creator, license_type = creator_with_item()
    payable = sell(license_type, at=at(3, 1))
    held = sell(license_type, at=at(3, 25))
    refund(held, at=at(3, 28), amount=5000)  # half of the held sale: 4,000 of the creator's

    run()

    # The payable sale is paid in full; the held one waits, reduced by the refund.
    assert paid_to(creator) == [8000]
    assert owed(creator) == 4000
    assert payable.pk != held.pk
    run(date(2026, 4, 30))
    assert paid_to(creator) == [8000, 4000]
    assert owed(creator) == 0


def test_a_sale_refunded_in_full_inside_the_hold_is_never_paid():
    creator, license_type = creator_with_item()
    license = sell(license_type, at=at(3, 25))
    refund(license, at=at(3, 26))
    assert run().payouts.count() == 0
    assert run(date(2026, 4, 30)).payouts.count() == 0
    assert owed(creator) == 0
    assert Transaction.objects.filter(source="ledger.payout").count() == 0


def test_a_refund_of_payable_money_counts_at_once():
    creator, license_type = creator_with_item()
    old = sell(license_type, at=at(3, 1))
    sell(license_type, at=at(3, 2))
    refund(old, at=at(3, 30))  # inside the window, but of money that was already payable
    run()
    assert paid_to(creator) == [8000]
    assert owed(creator) == 0


def test_a_refund_after_the_payout_leaves_a_negative_balance_that_carries_forward():
    creator, license_type = creator_with_item()
    first = sell(license_type, at=at(2, 1))
    run(date(2026, 2, 28))
    assert paid_to(creator) == [8000]

    refund(first, at=at(3, 5))
    assert owed(creator) == -8000
    assert run().payouts.count() == 0  # nothing to pay; nothing taken either

    sell(license_type, at=at(3, 10))
    sell(license_type, at=at(3, 12))
    assert run(date(2026, 4, 30)).payouts.get().amount == 8000  # 16,000 less the 8,000 owed
    assert owed(creator) == 0
    assert set(trial_balance().values()) == {0}


def test_a_balance_below_the_minimum_is_carried_over(settings):
    _creator, license_type = creator_with_item(amount=1000)  # 800 to the creator
    sell(license_type, at=at(3, 1))
    assert run().payouts.count() == 0
    sell(license_type, at=at(3, 2))
    assert run(date(2026, 4, 1)).payouts.get().amount == 1600


def test_balances_are_per_currency_and_a_zero_decimal_currency_is_paid_whole():
    creator, usd = creator_with_item()
    jpy = LicenseTypeFactory(item=usd.item, kind="editorial", amount=120_000, currency="jpy")
    sell(usd, at=at(3, 1))
    sell(jpy, at=at(3, 2))
    sell(jpy, at=at(3, 30))  # held
    batch = run()
    assert sorted(batch.payouts.values_list("currency", "amount")) == [
        ("jpy", 96_000),
        ("usd", 8000),
    ]
    assert owed(creator, "jpy") == 96_000
    assert payout_batch_export_csv(batch=batch).splitlines()[0].startswith(f"{IBAN},960")


def test_a_creator_without_a_payout_method_keeps_their_balance():
    creator, license_type = creator_with_item(method="")
    sell(license_type, at=at(3, 1))
    assert run().payouts.count() == 0
    assert owed(creator) == 8000


def test_co_creators_are_paid_their_own_share():
    owner, license_type = creator_with_item()
    partner = CreatorFactory()
    payouts.creator_payout_settings_update(
        creator=partner, method="paypal", paypal_email="Partner@Example.com"
    )
    from content.services import content_shares_set

    content_shares_set(
        item=license_type.item,
        shares=[(owner, Decimal("66.67")), (partner, Decimal("33.33"))],
    )
    sell(license_type, at=at(3, 1), amount=999)  # 799 to creators: 533 / 266
    sell(license_type, at=at(3, 2))  # 8,000: 5,334 / 2,666
    batch = run()
    assert dict(batch.payouts.values_list("payee_id", "amount")) == {
        owner.pk: 533 + 5334,
        partner.pk: 266 + 2666,
    }
    assert "partner@example.com" in payout_batch_export_csv(batch=batch)


# --- Stripe Connect, the notice, the task --------------------------------------------------


def test_a_stripe_connect_creator_is_paid_by_transfer_and_told(stripe_fake):
    account = connected_account()
    creator, license_type = creator_with_item(method="")
    profile = payouts.creator_payout_settings_update(
        creator=creator, method="stripe_connect", stripe_account_id=account.id
    )
    payee_connect_account_refresh(profile=profile)  # what account.updated tells us
    assert profile.onboarding_complete
    sell(license_type, at=at(3, 1))

    batch = run()

    payout = batch.payouts.get()
    assert (payout.status, payout.method, payout.amount) == ("paid", "stripe_connect", 8000)
    [transfer] = stripe.Transfer.list(destination=account.id).data
    assert (transfer.amount, transfer.currency, transfer.id) == (
        8000,
        "usd",
        payout.stripe_transfer_id,
    )
    email = OutgoingEmail.objects.get(purpose="content.creator_payout_paid")
    assert email.to == [creator.user.email]
    assert "US$80.00" in email.subject or "80.00" in email.subject
    # Re-running the day's batch pays nobody twice.
    run()
    assert len(stripe.Transfer.list(destination=account.id).data) == 1


def test_the_monthly_task_and_the_command_run_the_creator_batch(settings, celery_eager):
    creator, license_type = creator_with_item()
    sell(license_type, at=at(3, 1))
    batch_id = creator_payouts_run.delay("2026-03-31").get()
    assert PayoutBatch.objects.get(pk=batch_id).payee_type == "creator"
    assert paid_to(creator) == [8000]

    sell(license_type, at=at(4, 1))
    out = StringIO()
    call_command(
        "run_payouts", "--as-of", "2026-04-30", "--payee-type", "creator", "--dry-run", stdout=out
    )
    assert f"creator {creator.pk}: 8000 usd bank_csv pending" in out.getvalue()
    assert settings.CELERY_BEAT_SCHEDULE["content-creator-payouts-monthly"]["task"] == (
        "content.tasks.creator_payouts_run"
    )


# --- onboarding ----------------------------------------------------------------------------


def test_onboarding_with_a_payout_method_is_one_transaction():
    user = UserFactory(password=None)
    with pytest.raises(ValidationError) as exc:
        payouts.creator_onboard(
            user=user, display_name="Ann", payout={"method": "bank_csv", "bank_iban": "DE00"}
        )
    assert {"bank_iban", "bank_bic", "bank_account_name"} <= set(exc.value.message_dict)
    assert not Creator.objects.filter(user=user).exists()

    creator = payouts.creator_onboard(
        user=user,
        display_name="Ann",
        payout={"method": "stripe_connect", "stripe_account_id": "acct_1AnnCreator"},
    )
    profile = PayeeProfile.objects.get(payee_type="creator", payee_id=creator.pk)
    assert (profile.method, profile.stripe_account_id) == ("stripe_connect", "acct_1AnnCreator")


# --- the invariant, over awkward sequences -------------------------------------------------

MONTH_ENDS = (date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30))


@settings(max_examples=25, deadline=None)
@given(
    sales=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=89),  # day of the sale, from Jan 1
            st.integers(min_value=1, max_value=50_000),  # amount paid
            st.one_of(st.none(), st.integers(min_value=0, max_value=40)),  # refunded n days on
        ),
        min_size=1,
        max_size=6,
    )
)
def test_each_batch_pays_exactly_the_balance_less_the_hold_and_it_all_adds_up(sales):
    """Whatever the sales and refunds, each monthly batch pays the balance less the held
    earnings (when that reaches the minimum), and payouts + balance = net earnings."""
    with transaction.atomic():  # one example's batches must not be the next one's
        creator, license_type = creator_with_item()
        start = datetime(2026, 1, 1, 12, tzinfo=UTC)
        events: list[tuple[datetime, int, Any]] = []
        for day, amount, refund_after in sales:
            sold = start + timedelta(days=day)
            events.append((sold, 1, (amount, refund_after)))
        for month_end in MONTH_ENDS:
            events.append((datetime.combine(month_end, time.max, tzinfo=UTC), 2, month_end))
        refunds: list[tuple[datetime, Any]] = []
        for moment, kind, value in sorted(events, key=lambda e: (e[0], e[1])):
            for due, license in sorted((r for r in refunds if r[0] <= moment), key=lambda r: r[0]):
                refund(license, at=due)
            refunds = [r for r in refunds if r[0] > moment]
            if kind == 1:
                amount, refund_after = value
                license = sell(license_type, at=moment, amount=amount)
                if refund_after is not None:
                    refunds.append((moment + timedelta(days=refund_after, hours=1), license))
                continue
            before = owed(creator)
            held = payouts.creator_withheld(payee_ids=[creator.pk], as_of=moment)
            payable = before - held.get((creator.pk, "usd"), 0)
            batch = payout_batch_run(payee_type="creator", as_of=value)
            paid = sum(batch.payouts.values_list("amount", flat=True))
            assert paid == (payable if payable >= 1000 else 0)
        net = -(
            Entry.objects.filter(account__code=f"payable.creator.{creator.pk}")
            .exclude(transaction__source="ledger.payout")
            .aggregate(total=Sum("amount"))["total"]
            or 0
        )
        assert sum(paid_to(creator)) + owed(creator) == net
        assert set(trial_balance().values()) == {0}
        transaction.set_rollback(True)
