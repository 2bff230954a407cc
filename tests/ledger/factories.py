"""Ledger factories. Transactions are made through ``ledger_post`` so they are always valid."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import factory
from django.db import transaction as db_transaction
from factory.django import DjangoModelFactory

from ledger.chart import payee_account_code
from ledger.models import Account, Entry, Transaction
from ledger.services import Line, ledger_post


class AccountFactory(DjangoModelFactory):
    class Meta:
        model = Account
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"test.account.{n}")
    name = factory.LazyAttribute(lambda o: f"Test account {o.code}")
    type = Account.Type.ASSET


class RevenueAccountFactory(AccountFactory):
    type = Account.Type.REVENUE


class PayeeAccountFactory(AccountFactory):
    type = Account.Type.LIABILITY
    payee_type = Account.PayeeType.AFFILIATE
    payee_id = factory.Sequence(lambda n: n + 1)
    code = factory.LazyAttribute(lambda o: payee_account_code(o.payee_type, o.payee_id))


class PostedTransactionFactory(factory.Factory):
    """A two-line posting: debit ``debit``, credit ``credit`` by ``amount`` ``currency``."""

    class Meta:
        model = Transaction

    idempotency_key = factory.Sequence(lambda n: f"test-posting-{n}")
    source = "tests"
    memo = ""
    amount = 1000
    currency = "usd"
    debit = factory.SubFactory(AccountFactory)
    credit = factory.SubFactory(RevenueAccountFactory)

    @classmethod
    def _create(cls, model_class: type[Transaction], **kwargs: Any) -> Transaction:
        debit = kwargs.pop("debit")
        credit = kwargs.pop("credit")
        amount = kwargs.pop("amount")
        currency = kwargs.pop("currency")
        return ledger_post(
            lines=[Line.debit(debit, amount, currency), Line.credit(credit, amount, currency)],
            **kwargs,
        )

    @classmethod
    def _build(cls, model_class: type[Transaction], **kwargs: Any) -> Transaction:
        raise NotImplementedError("ledger transactions only exist once posted; use create()")


@contextmanager
def unbalanced_entry(*, account: Account, amount: int, currency: str) -> Iterator[Entry]:
    """Fake a corrupt ledger: one entry written around the service, rolled back on exit.

    The savepoint rollback discards PostgreSQL's deferred balance check (migration 0003),
    which would otherwise fail the test at its constraint check.
    """
    with db_transaction.atomic():
        txn = PostedTransactionFactory()
        entry = Entry.objects.create(
            transaction=txn,
            account=account,
            amount=amount,
            currency=currency,
            posted_at=txn.posted_at,
        )
        yield entry
        db_transaction.set_rollback(True)
