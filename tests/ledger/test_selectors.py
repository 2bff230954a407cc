import datetime

import pytest
from django.utils import timezone

from ledger.chart import SystemAccount
from ledger.selectors import (
    PayeeBalance,
    account_balance,
    entries_for_account,
    payee_balance,
    payee_balance_list,
    trial_balance,
)
from ledger.services import Line, account_for_payee, ledger_post, ledger_reverse, system_account
from tests.ledger.factories import unbalanced_entry

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
DAY = datetime.timedelta(days=1)


@pytest.fixture
def book():
    """Three commissions to affiliate 3 over three days, one to affiliate 4, one refund."""
    expense = system_account(SystemAccount.COMMISSION_EXPENSE)
    alice = account_for_payee(payee_type="affiliate", payee_id=3)
    bob = account_for_payee(payee_type="affiliate", payee_id=4)
    postings = [
        (alice, 1000, "usd", NOW - 2 * DAY),
        (alice, 500, "usd", NOW - DAY),
        (alice, 700, "eur", NOW),
        (bob, 300, "usd", NOW),
    ]
    txns = [
        ledger_post(
            idempotency_key=f"commission:{index}",
            source="affiliates.commission",
            lines=[Line.debit(expense, amount, currency), Line.credit(payee, amount, currency)],
            posted_at=posted_at,
        )
        for index, (payee, amount, currency, posted_at) in enumerate(postings)
    ]
    ledger_reverse(transaction=txns[1], idempotency_key="clawback:1", amount=200, posted_at=NOW)
    return {"expense": expense, "alice": alice, "bob": bob, "txns": txns}


def test_account_balance_is_debit_positive_per_currency(book):
    assert account_balance(account=book["expense"]) == {"usd": 1600, "eur": 700}
    assert account_balance(account=book["alice"]) == {"usd": -1300, "eur": -700}


def test_account_balance_as_of_a_datetime(book):
    assert account_balance(account=book["alice"], as_of=NOW - 2 * DAY) == {"usd": -1000}
    assert account_balance(account=book["alice"], as_of=NOW - DAY) == {"usd": -1500}
    assert account_balance(account=book["alice"], as_of=NOW - 3 * DAY) == {}


def test_payee_balance_is_what_we_owe(book):
    assert payee_balance(payee_type="affiliate", payee_id=3) == {"usd": 1300, "eur": 700}
    assert payee_balance(payee_type="affiliate", payee_id=3, as_of=NOW - DAY) == {"usd": 1500}
    assert payee_balance(payee_type="affiliate", payee_id=4) == {"usd": 300}
    assert payee_balance(payee_type="creator", payee_id=3) == {}


def test_payee_balance_list_for_payouts(book, django_assert_num_queries):
    with django_assert_num_queries(1):
        balances = payee_balance_list(payee_type="affiliate", currency="usd")
    assert balances == [
        PayeeBalance(book["alice"].pk, "affiliate", 3, "usd", 1300),
        PayeeBalance(book["bob"].pk, "affiliate", 4, "usd", 300),
    ]
    assert len(payee_balance_list()) == 3
    assert payee_balance_list(payee_type="creator") == []


def test_trial_balance_is_zero_per_currency(book):
    assert trial_balance() == {"usd": 0, "eur": 0}
    assert trial_balance(as_of=NOW - DAY) == {"usd": 0}


def test_trial_balance_shows_an_imbalance():
    bank = system_account(SystemAccount.BANK)
    with unbalanced_entry(account=bank, amount=7, currency="usd"):
        assert trial_balance() == {"usd": 7}


def test_entries_for_account_joins_without_n_plus_one(book, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = [
            (entry.amount, entry.transaction.idempotency_key, entry.account.code)
            for entry in entries_for_account(account=book["alice"], currency="usd")
        ]
    assert rows == [
        (-1000, "commission:0", "payable.affiliate.3"),
        (-500, "commission:1", "payable.affiliate.3"),
        (200, "clawback:1", "payable.affiliate.3"),
    ]
    assert entries_for_account(account=book["alice"], as_of=NOW - DAY).count() == 2
