import datetime
import importlib
import threading
import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.db import IntegrityError, connection
from django.db import transaction as db_transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chart import SYSTEM_ACCOUNTS, SystemAccount
from ledger.exceptions import (
    IdempotencyConflictError,
    ImmutableLedgerError,
    InvalidPostingError,
    InvalidReversalError,
    LedgerError,
    UnbalancedPostingError,
    UnknownAccountError,
)
from ledger.models import Account, Entry, Transaction
from ledger.selectors import account_balance, payee_balance, trial_balance
from ledger.services import (
    Line,
    account_for_payee,
    ledger_post,
    ledger_reverse,
    ledger_reverse_in_order,
    system_account,
)
from revenue_site.money import allocate
from tests.ledger.factories import AccountFactory, PostedTransactionFactory

pytestmark = pytest.mark.django_db

hypothesis_db = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def accounts():
    return {
        "clearing": system_account(SystemAccount.STRIPE_CLEARING),
        "revenue": system_account(SystemAccount.REVENUE_CONTENT),
        "creator": account_for_payee(payee_type="creator", payee_id=7),
        "affiliate": account_for_payee(payee_type="affiliate", payee_id=3),
        "fees": system_account(SystemAccount.STRIPE_FEES),
    }


def sale_lines(accounts, total=1001, currency="usd"):
    """A content sale: the creator gets 700 of 1001, the platform the rest."""
    return [
        Line.debit(accounts["clearing"], total, currency),
        Line.credit(accounts["creator"], 700, currency),
        Line.credit(accounts["revenue"], total - 700, currency),
    ]


# --- posting ------------------------------------------------------------------------------


def test_post_writes_a_balanced_transaction(accounts):
    posted_at = timezone.now() - datetime.timedelta(days=1)
    txn = ledger_post(
        idempotency_key="invoice:1:paid",
        source="content.sale",
        lines=sale_lines(accounts),
        memo="Sale",
        posted_at=posted_at,
    )
    rows = sorted(txn.entries.values_list("account__code", "amount", "currency", "posted_at"))
    assert rows == [
        ("asset.stripe_clearing", 1001, "usd", posted_at),
        ("payable.creator.7", -700, "usd", posted_at),
        ("revenue.content", -301, "usd", posted_at),
    ]
    assert txn.memo == "Sale"
    assert trial_balance() == {"usd": 0}


def test_post_balances_each_currency_separately(accounts):
    ledger_post(
        idempotency_key=key(),
        source="tests",
        lines=[*sale_lines(accounts, currency="usd"), *sale_lines(accounts, currency="jpy")],
    )
    assert trial_balance() == {"usd": 0, "jpy": 0}
    with pytest.raises(UnbalancedPostingError):
        ledger_post(
            idempotency_key=key(),
            source="tests",
            lines=[
                Line.debit(accounts["clearing"], 100, "usd"),
                Line.credit(accounts["revenue"], 100, "eur"),
            ],
        )


@pytest.mark.parametrize(
    ("make_lines", "error"),
    [
        (lambda a: [], InvalidPostingError),
        (
            lambda a: [Line(a["clearing"], 0, "usd"), Line(a["revenue"], 0, "usd")],
            InvalidPostingError,
        ),
        (lambda a: [Line(a["clearing"], 100, "usd")], InvalidPostingError),
        (
            lambda a: [Line(a["clearing"], 100, "usd"), Line(a["revenue"], -99, "usd")],
            UnbalancedPostingError,
        ),
        (
            lambda a: [Line(a["clearing"], 1.5, "usd"), Line(a["revenue"], -1.5, "usd")],
            InvalidPostingError,
        ),
        (
            lambda a: [
                Line(a["clearing"], Decimal(1), "usd"),
                Line(a["revenue"], Decimal(-1), "usd"),
            ],
            InvalidPostingError,
        ),
        (
            lambda a: [Line(a["clearing"], 100, "us$"), Line(a["revenue"], -100, "us$")],
            InvalidPostingError,
        ),
        (
            lambda a: [Line(Account(code="x"), 100, "usd"), Line(a["revenue"], -100, "usd")],
            UnknownAccountError,
        ),
        (lambda a: [Line.debit(a["clearing"], -5, "usd")], InvalidPostingError),
        (
            lambda a: [Line(a["clearing"], 2**63, "usd"), Line(a["revenue"], -(2**63), "usd")],
            InvalidPostingError,
        ),
    ],
)
def test_bad_lines_are_refused_and_nothing_is_written(accounts, make_lines, error):
    with pytest.raises(error):
        ledger_post(idempotency_key=key(), source="tests", lines=make_lines(accounts))
    assert not Transaction.objects.exists()
    assert not Entry.objects.exists()


def test_deleted_account_is_refused(accounts):
    gone = Account(pk=999_999, code="gone", name="Gone", type=Account.Type.ASSET)
    with pytest.raises(UnknownAccountError):
        ledger_post(
            idempotency_key=key(),
            source="tests",
            lines=[Line.debit(gone, 5, "usd"), Line.credit(accounts["revenue"], 5, "usd")],
        )
    assert not Transaction.objects.exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"idempotency_key": ""},
        {"source": ""},
        {"idempotency_key": "k" * 256},
        {"posted_at": datetime.datetime(2024, 1, 1)},  # noqa: DTZ001 (naive on purpose)
    ],
)
def test_bad_metadata_is_refused(accounts, kwargs):
    arguments = {"idempotency_key": key(), "source": "tests", "lines": sale_lines(accounts)}
    with pytest.raises(InvalidPostingError):
        ledger_post(**(arguments | kwargs))
    assert not Transaction.objects.exists()


def test_unbalanced_posting_inside_a_caller_transaction_leaves_no_partial_write(accounts):
    with pytest.raises(UnbalancedPostingError), db_transaction.atomic():
        ledger_post(idempotency_key=key(), source="tests", lines=sale_lines(accounts))
        ledger_post(
            idempotency_key=key(),
            source="tests",
            lines=[Line(accounts["clearing"], 5, "usd"), Line(accounts["revenue"], -4, "usd")],
        )
    assert not Transaction.objects.exists()
    assert not Entry.objects.exists()


def test_reposting_a_key_returns_the_same_transaction_and_writes_nothing(accounts):
    first = ledger_post(idempotency_key="charge:ch_1", source="tests", lines=sale_lines(accounts))
    with db_transaction.atomic():  # the caller's transaction survives the duplicate insert
        again = ledger_post(
            idempotency_key="charge:ch_1", source="tests", lines=sale_lines(accounts)[::-1]
        )
        Transaction.objects.count()  # the connection is still usable
    assert again.pk == first.pk
    assert Transaction.objects.count() == 1
    assert Entry.objects.count() == 3


def test_same_key_under_another_source_is_another_transaction(accounts):
    a = ledger_post(idempotency_key="42", source="affiliates", lines=sale_lines(accounts))
    b = ledger_post(idempotency_key="42", source="content", lines=sale_lines(accounts))
    assert a.pk != b.pk


def test_reusing_a_key_with_other_lines_is_a_conflict(accounts):
    ledger_post(idempotency_key="k", source="tests", lines=sale_lines(accounts))
    with pytest.raises(IdempotencyConflictError):
        ledger_post(idempotency_key="k", source="tests", lines=sale_lines(accounts, total=2000))
    assert Entry.objects.count() == 3


posting = st.tuples(
    st.sampled_from(["usd", "eur", "jpy", "bhd"]),
    st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=3),
    st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=3),
)


@hypothesis_db
@given(postings=st.lists(posting, min_size=1, max_size=6), reverse_every=st.integers(1, 4))
def test_any_sequence_of_valid_postings_keeps_the_trial_balance_at_zero(
    accounts, postings, reverse_every
):
    pool = list(accounts.values())
    for index, (currency, debits, credit_weights) in enumerate(postings):
        lines = [
            Line.debit(pool[i % len(pool)], amount, currency) for i, amount in enumerate(debits)
        ]
        credits = allocate(sum(debits), credit_weights)
        lines += [
            Line.credit(pool[(i + 2) % len(pool)], part, currency)
            for i, part in enumerate(credits)
            if part
        ]
        txn = ledger_post(idempotency_key=key(), source="hypothesis", lines=lines)
        if index % reverse_every == 0 and sum(debits) >= 2:  # 37% of 1 rounds to nothing
            ledger_reverse(transaction=txn, idempotency_key=key(), fraction=Decimal("0.37"))
        assert all(total == 0 for total in trial_balance().values())


# --- reversal -----------------------------------------------------------------------------


def test_full_reversal_brings_every_account_back_to_zero(accounts):
    txn = ledger_post(idempotency_key=key(), source="tests", lines=sale_lines(accounts))
    reversal = ledger_reverse(transaction=txn, idempotency_key="refund:re_1", memo="Refund")
    assert reversal.reversal_of == txn
    assert reversal.source == "ledger.reversal"
    for account in accounts.values():
        assert account_balance(account=account) == {}


def test_partial_reversal_by_amount_is_pro_rata_and_balanced(accounts):
    txn = ledger_post(idempotency_key=key(), source="tests", lines=sale_lines(accounts))
    reversal = ledger_reverse(transaction=txn, idempotency_key=key(), amount=500)
    amounts = dict(reversal.entries.values_list("account__code", "amount"))
    # 500 of 1001 back from the clearing account; the credit side 700:301 -> 350:150.
    assert amounts == {
        "asset.stripe_clearing": -500,
        "payable.creator.7": 350,
        "revenue.content": 150,
    }
    assert payee_balance(payee_type="creator", payee_id=7) == {"usd": 350}


def test_partial_reversal_by_fraction(accounts):
    txn = ledger_post(idempotency_key=key(), source="tests", lines=sale_lines(accounts))
    reversal = ledger_reverse(transaction=txn, idempotency_key=key(), fraction=Decimal("0.5"))
    amounts = dict(reversal.entries.values_list("account__code", "amount"))
    # 1001 x 0.5 = 500.5 -> 501 (half up), spread 700:301 -> 350.3:150.7 -> 350:151.
    assert amounts == {
        "asset.stripe_clearing": -501,
        "payable.creator.7": 350,
        "revenue.content": 151,
    }


@hypothesis_db
@given(
    total=st.integers(min_value=2, max_value=10**9),
    creator_rate=st.decimals(min_value=0, max_value=1, places=4),
    refund_weights=st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=5),
)
def test_partial_reversals_add_up_exactly_to_the_original(
    accounts, total, creator_rate, refund_weights
):
    creator_part = int(total * creator_rate)
    lines = [
        Line.debit(accounts["clearing"], total - 1, "usd"),
        Line.debit(accounts["fees"], 1, "usd"),
    ]
    lines += [
        Line.credit(account, part, "usd")
        for account, part in (
            (accounts["creator"], creator_part),
            (accounts["revenue"], total - creator_part),
        )
        if part
    ]
    txn = ledger_post(idempotency_key=key(), source="tests", lines=lines)
    original = dict(txn.entries.values_list("account_id", "amount"))
    reversed_so_far = dict.fromkeys(original, 0)
    for refund in allocate(total, refund_weights):
        if not refund:
            continue
        reversal = ledger_reverse(transaction=txn, idempotency_key=key(), amount=refund)
        entries = list(reversal.entries.values_list("account_id", "amount"))
        assert sum(amount for _, amount in entries) == 0
        assert sum(amount for _, amount in entries if amount > 0) == refund
        for account_id, amount in entries:
            reversed_so_far[account_id] -= amount
            # Never reversed past the original line, never in the original's direction.
            assert 0 < abs(reversed_so_far[account_id]) <= abs(original[account_id])
            assert (reversed_so_far[account_id] > 0) == (original[account_id] > 0)
    assert reversed_so_far == original
    with pytest.raises(InvalidReversalError):
        ledger_reverse(transaction=txn, idempotency_key=key())


def test_reversal_cannot_exceed_what_is_left(accounts):
    txn = ledger_post(idempotency_key=key(), source="tests", lines=sale_lines(accounts))
    ledger_reverse(transaction=txn, idempotency_key=key(), amount=1000)
    with pytest.raises(InvalidReversalError):
        ledger_reverse(transaction=txn, idempotency_key=key(), amount=2)
    last = ledger_reverse(transaction=txn, idempotency_key=key())
    assert sum(a for a in last.entries.values_list("amount", flat=True) if a > 0) == 1
    assert all(total == 0 for total in trial_balance().values())
    assert account_balance(account=accounts["creator"]) == {}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"amount": 0},
        {"amount": -5},
        {"fraction": Decimal(0)},
        {"fraction": Decimal("1.01")},
        {"fraction": 0.5},
        {"amount": 5, "fraction": Decimal("0.5")},
    ],
)
def test_bad_reversal_requests_are_refused(accounts, kwargs):
    txn = ledger_post(idempotency_key=key(), source="tests", lines=sale_lines(accounts))
    with pytest.raises(InvalidReversalError):
        ledger_reverse(transaction=txn, idempotency_key=key(), **kwargs)
    assert Transaction.objects.count() == 1


def test_a_reversal_cannot_be_reversed(accounts):
    txn = ledger_post(idempotency_key=key(), source="tests", lines=sale_lines(accounts))
    reversal = ledger_reverse(transaction=txn, idempotency_key=key())
    with pytest.raises(InvalidReversalError):
        ledger_reverse(transaction=reversal, idempotency_key=key())


def test_amount_reversal_needs_a_single_currency(accounts):
    txn = ledger_post(
        idempotency_key=key(),
        source="tests",
        lines=[*sale_lines(accounts, currency="usd"), *sale_lines(accounts, currency="eur")],
    )
    with pytest.raises(InvalidReversalError):
        ledger_reverse(transaction=txn, idempotency_key=key(), amount=10)
    reversal = ledger_reverse(transaction=txn, idempotency_key=key(), fraction=Decimal("0.1"))
    assert reversal.entries.filter(currency="eur").exists()


def test_reversal_is_idempotent(accounts):
    txn = ledger_post(idempotency_key=key(), source="tests", lines=sale_lines(accounts))
    first = ledger_reverse(transaction=txn, idempotency_key="refund:re_9", amount=100)
    again = ledger_reverse(transaction=txn, idempotency_key="refund:re_9", amount=100)
    assert again.pk == first.pk
    assert Transaction.objects.count() == 2
    other = ledger_post(idempotency_key=key(), source="tests", lines=sale_lines(accounts))
    with pytest.raises(IdempotencyConflictError):
        ledger_reverse(transaction=other, idempotency_key="refund:re_9", amount=100)


def test_reverse_in_order_takes_from_each_transaction_in_turn(accounts):
    first_sale = ledger_post(idempotency_key="sale:1", source="tests", lines=sale_lines(accounts))
    ledger_reverse(transaction=first_sale, idempotency_key=key(), amount=801)
    second_sale = ledger_post(idempotency_key="sale:2", source="tests", lines=sale_lines(accounts))

    first, rest = ledger_reverse_in_order(
        transactions=[first_sale, second_sale], amount=500, idempotency_key="refund:re_7"
    )

    assert rest == 0 and first is not None
    parts = Transaction.objects.filter(idempotency_key__startswith="refund:re_7").order_by("pk")
    # 200 were left of the first sale; the other 300 come from the second.
    assert [(p.idempotency_key, p.reversal_of_id) for p in parts] == [
        ("refund:re_7", first_sale.pk),
        ("refund:re_7:sale:2", second_sale.pk),
    ]
    assert [p.entries.get(account=accounts["clearing"]).amount for p in parts] == [-200, -300]
    assert account_balance(account=accounts["clearing"]) == {"usd": 2002 - 801 - 500}
    assert set(trial_balance().values()) == {0}


def test_reverse_in_order_reports_what_was_not_left_and_is_idempotent(accounts):
    sale = ledger_post(idempotency_key="sale:3", source="tests", lines=sale_lines(accounts))

    first, rest = ledger_reverse_in_order(
        transactions=[sale], amount=1500, idempotency_key="dispute:dp_1"
    )
    again, rest_again = ledger_reverse_in_order(
        transactions=[sale], amount=1500, idempotency_key="dispute:dp_1"
    )
    nothing, rest_nothing = ledger_reverse_in_order(
        transactions=[sale], amount=10, idempotency_key="refund:re_8"
    )

    assert rest == 499 and first is not None
    assert (again, rest_again) == (first, 0)
    assert (nothing, rest_nothing) == (None, 10)
    assert Transaction.objects.count() == 2
    assert account_balance(account=accounts["clearing"]) == {}


# --- accounts -----------------------------------------------------------------------------


def test_migration_seeds_the_chart_of_system_accounts():
    # Called directly: a transactional test's flush (with --reuse-db) may have emptied the
    # table since migrate ran, which is why system_account() also creates on demand.
    # Each seed migration copies the accounts added to the chart since the previous one.
    seeds = (
        "0002_seed_system_accounts",
        "0005_seed_sales_tax_payable",
        "0007_seed_api_usage_revenue",
        "0009_seed_marketplace_held",
    )
    Account.objects.filter(payee_id__isnull=True).delete()
    for name in seeds:
        migration = importlib.import_module(f"ledger.migrations.{name}")
        migration.seed(django_apps, SimpleNamespace(connection=connection))
    seeded = dict(Account.objects.values_list("code", "type"))
    assert seeded == {code.value: spec.type.value for code, spec in SYSTEM_ACCOUNTS.items()}


def test_system_accounts_are_fetched_by_code():
    account = system_account(SystemAccount.COMMISSION_EXPENSE)
    assert account == system_account("expense.commissions")
    assert account.type == Account.Type.EXPENSE
    with pytest.raises(UnknownAccountError):
        system_account("revenue.lemonade")


def test_system_account_is_created_on_demand_when_missing():
    Account.objects.filter(code=SystemAccount.BANK).delete()  # unused accounts can go
    assert system_account(SystemAccount.BANK).name == "Bank"


def test_account_for_payee_is_one_liability_per_payee():
    first = account_for_payee(payee_type="creator", payee_id=5, name="Ada")
    assert account_for_payee(payee_type=Account.PayeeType.CREATOR, payee_id=5) == first
    assert first.code == "payable.creator.5"
    assert first.type == Account.Type.LIABILITY
    assert first.name == "Ada"
    assert account_for_payee(payee_type="provider", payee_id=5) != first
    with pytest.raises(ValueError):
        account_for_payee(payee_type="customer", payee_id=5)
    with pytest.raises(InvalidPostingError):
        account_for_payee(payee_type="creator", payee_id=0)


# --- immutability -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        lambda txn, entry: txn.save(),
        lambda txn, entry: txn.delete(),
        lambda txn, entry: entry.save(),
        lambda txn, entry: entry.delete(),
        lambda txn, entry: Entry.objects.update(amount=1),
        lambda txn, entry: Entry.objects.filter(pk=entry.pk).delete(),
        lambda txn, entry: Transaction.objects.filter(pk=txn.pk).update(memo="edited"),
        lambda txn, entry: Transaction.objects.all().delete(),
        lambda txn, entry: Entry.objects.bulk_update([entry], ["amount"]),
        lambda txn, entry: Transaction.objects.update_or_create(pk=txn.pk, defaults={"memo": "x"}),
    ],
)
def test_ledger_rows_cannot_be_updated_or_deleted(change):
    txn = PostedTransactionFactory(memo="original")
    entry = txn.entries.first()
    with pytest.raises(ImmutableLedgerError):
        change(txn, entry)
    txn.refresh_from_db()
    assert txn.memo == "original"
    assert Entry.objects.filter(transaction=txn).count() == 2


def test_accounts_with_entries_cannot_be_deleted():
    from django.db.models import ProtectedError

    account = AccountFactory()
    PostedTransactionFactory(debit=account)
    with pytest.raises(ProtectedError):
        account.delete()


def test_ledger_error_is_the_base_class():
    assert issubclass(UnbalancedPostingError, LedgerError)
    assert issubclass(ImmutableLedgerError, LedgerError)


# --- concurrency (PostgreSQL) -------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locking")
@pytest.mark.django_db(transaction=True)
def test_two_threads_posting_one_key_make_exactly_one_transaction():
    clearing = system_account(SystemAccount.STRIPE_CLEARING)
    revenue = system_account(SystemAccount.REVENUE_SUBSCRIPTIONS)
    lines = [Line.debit(clearing, 999, "usd"), Line.credit(revenue, 999, "usd")]
    first_inserted = threading.Event()
    results: list[int] = []
    errors: list[BaseException] = []

    def first() -> None:
        # Holds its transaction open after inserting, so the second poster must wait on the
        # unique index and then take the IntegrityError path.
        try:
            with db_transaction.atomic():
                results.append(ledger_post(idempotency_key="race", source="tests", lines=lines).pk)
                first_inserted.set()
                threading.Event().wait(0.5)
        except BaseException as exc:
            errors.append(exc)
            first_inserted.set()
        finally:
            connection.close()

    def second() -> None:
        try:
            first_inserted.wait(5)
            results.append(ledger_post(idempotency_key="race", source="tests", lines=lines).pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def together() -> None:
        barrier.wait()
        try:
            results.append(ledger_post(idempotency_key="race2", source="tests", lines=lines).pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(results) == 2
    assert len(set(results)) == 1

    barrier = threading.Barrier(4)
    results.clear()
    threads = [threading.Thread(target=together) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(set(results)) == 1
    assert len(results) == 4

    assert Transaction.objects.filter(source="tests").count() == 2
    assert Entry.objects.count() == 4
    assert trial_balance() == {"usd": 0}


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL triggers")
def test_postgres_refuses_raw_sql_updates_and_unbalanced_commits():
    txn = PostedTransactionFactory()
    for sql in ("UPDATE ledger_entry SET amount = 1", "DELETE FROM ledger_transaction"):
        with pytest.raises(IntegrityError), db_transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    with pytest.raises(IntegrityError), db_transaction.atomic():
        Entry.objects.bulk_create(
            [
                Entry(
                    transaction=txn,
                    account=txn.entries.first().account,
                    amount=5,
                    currency="usd",
                    posted_at=txn.posted_at,
                )
            ]
        )
        # What COMMIT would do: run the deferred balance check now.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert trial_balance() == {"usd": 0}
