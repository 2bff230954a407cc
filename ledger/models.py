"""Double-entry ledger: accounts, transactions and their entries.

Sign convention: ``Entry.amount`` is signed minor units, **debit positive, credit negative**.
The entries of a transaction sum to zero in each currency. An account's raw balance
(``Σ amount``) is therefore positive for debit-normal accounts (assets, expenses) and negative
for credit-normal ones (liabilities, revenue, equity); ``Account.normal_sign`` flips the latter
for display, and ``ledger.selectors.payee_balance`` reports what we owe a payee as positive.

Accounts are multi-currency: the currency lives on each entry, and balances are per currency.

Transactions and entries are append-only: ``save()`` on an existing row, ``delete()``, and the
queryset's ``update()`` / ``delete()`` / ``bulk_update()`` raise ``ImmutableLedgerError``. A
mistake is corrected by a reversing transaction (``ledger.services.ledger_reverse``). On
PostgreSQL, migration 0003 adds triggers that refuse UPDATE/DELETE and check the per-currency
balance at commit, so raw SQL cannot bypass the rules either.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from ledger.exceptions import ImmutableLedgerError
from revenue_site.model_checks import (
    currency_is_lowercase_iso,
)

_M = TypeVar("_M", bound=models.Model)


class AppendOnlyQuerySet(models.QuerySet[_M]):
    """A queryset that can read and insert, but never update or delete."""

    def update(self, **kwargs: Any) -> int:
        raise ImmutableLedgerError(f"{self.model.__name__} rows cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ImmutableLedgerError(f"{self.model.__name__} rows cannot be deleted")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise ImmutableLedgerError(f"{self.model.__name__} rows cannot be updated")

    def update_or_create(self, *args: Any, **kwargs: Any) -> Any:
        raise ImmutableLedgerError(f"{self.model.__name__} rows cannot be updated")


class AppendOnlyModel(models.Model):
    """Rows are inserted once and then only read."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ImmutableLedgerError(f"{type(self).__name__} rows cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ImmutableLedgerError(f"{type(self).__name__} rows cannot be deleted")


class Account(models.Model):
    """A ledger account: a system account (``ledger.chart.SystemAccount``) or a payee's payable.

    Payee accounts name their payee generically (``payee_type`` + ``payee_id``), so the
    affiliates, content and marketplace apps can point at them without a foreign key from here.
    """

    class Type(models.TextChoices):
        ASSET = "asset", "Asset"
        LIABILITY = "liability", "Liability"
        EQUITY = "equity", "Equity"
        REVENUE = "revenue", "Revenue"
        EXPENSE = "expense", "Expense"

    class PayeeType(models.TextChoices):
        AFFILIATE = "affiliate", "Affiliate"
        CREATOR = "creator", "Creator"
        PROVIDER = "provider", "Provider"

    code = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=16, choices=Type.choices)
    payee_type = models.CharField(max_length=16, choices=PayeeType.choices, blank=True)
    payee_id = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["payee_type", "payee_id"],
                condition=models.Q(payee_id__isnull=False),
                name="ledger_account_one_per_payee",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(payee_type="", payee_id__isnull=True)
                    | (
                        ~models.Q(payee_type="")
                        & models.Q(payee_id__isnull=False, type="liability")
                    )
                ),
                name="ledger_account_payee_is_liability",
            ),
            models.CheckConstraint(
                condition=models.Q(type__in=["asset", "liability", "equity", "revenue", "expense"]),
                name="ledger_account_type_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"

    @property
    def is_payee_account(self) -> bool:
        return self.payee_id is not None

    @property
    def normal_sign(self) -> int:
        """+1 for debit-normal accounts (asset, expense), -1 for credit-normal ones."""
        return 1 if self.type in (self.Type.ASSET, self.Type.EXPENSE) else -1


class Transaction(AppendOnlyModel):
    """One money movement: a balanced set of entries, posted once per (source, key)."""

    source = models.CharField(
        max_length=100, help_text="Who posted it, e.g. 'subscriptions.invoice_paid'."
    )
    idempotency_key = models.CharField(max_length=255)
    memo = models.CharField(max_length=500, blank=True)
    posted_at = models.DateTimeField(
        default=timezone.now, help_text="Accounting date; balances 'as of' use it."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    reversal_of = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reversals",
    )

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "idempotency_key"], name="ledger_transaction_source_key_unique"
            ),
            models.CheckConstraint(
                condition=~models.Q(source="") & ~models.Q(idempotency_key=""),
                name="ledger_transaction_source_key_not_empty",
            ),
        ]
        indexes = [
            models.Index(fields=["posted_at"], name="ledger_txn_posted_at_idx"),
            # Staff look postings up by key alone (the unique index leads with source).
            models.Index(fields=["idempotency_key"], name="ledger_txn_key_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.source}:{self.idempotency_key}"


class Entry(AppendOnlyModel):
    """One line of a transaction: signed minor units on one account (debit +, credit -)."""

    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField(help_text="Minor units; debit positive, credit negative.")
    currency = models.CharField(max_length=3)
    # A copy of transaction.posted_at (rows never change), so "balance as of" reads one
    # indexed table instead of joining transactions.
    posted_at = models.DateTimeField()

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "entries"
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(amount=0), name="ledger_entry_amount_not_zero"
            ),
            models.CheckConstraint(
                condition=currency_is_lowercase_iso(), name="ledger_entry_currency_iso"
            ),
        ]
        indexes = [
            models.Index(
                fields=["account", "currency", "posted_at"], name="ledger_entry_acct_cur_at_idx"
            ),
            models.Index(fields=["posted_at"], name="ledger_entry_posted_at_idx"),
        ]

    def __str__(self) -> str:
        side = "Dr" if self.amount > 0 else "Cr"
        return f"{side} {self.account_id} {abs(self.amount)} {self.currency}"

    @property
    def is_debit(self) -> bool:
        return self.amount > 0


# --- payouts: the shared engine's rows ---------------------------------------------------
# Affiliates, creators and marketplace providers are payees (Account.PayeeType + id); a payout
# batch pays each payee's approved balance above the minimum. A batch has a status so a crash
# mid-way resumes and never pays anyone twice (each payout has its own idempotency key).


class PayeeProfile(models.Model):
    class Method(models.TextChoices):
        STRIPE_CONNECT = "stripe_connect", "Stripe Connect transfer"
        PAYPAL = "paypal", "PayPal (mass-payout CSV)"
        BANK_CSV = "bank_csv", "Bank transfer (CSV)"

    payee_type = models.CharField(max_length=16, choices=Account.PayeeType.choices)
    payee_id = models.PositiveBigIntegerField()
    method = models.CharField(max_length=16, choices=Method.choices, blank=True)
    stripe_account_id = models.CharField(max_length=255, blank=True)
    # What Stripe last told us about the connected account (``account.updated``): Express
    # onboarding is complete once payouts are enabled. ``stripe_account_synced_at`` is the
    # ``created`` time of the event (or read) they came from, so an older event delivered late
    # does not overwrite them.
    stripe_charges_enabled = models.BooleanField(default=False)
    stripe_payouts_enabled = models.BooleanField(default=False)
    stripe_details_submitted = models.BooleanField(default=False)
    stripe_account_synced_at = models.DateTimeField(null=True, blank=True, editable=False)
    paypal_email = models.EmailField(blank=True)
    bank_account_name = models.CharField(max_length=200, blank=True)
    bank_iban = models.CharField(max_length=34, blank=True)
    bank_bic = models.CharField(max_length=11, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["payee_type", "payee_id"], name="ledger_payeeprofile_one_per_payee"
            )
        ]
        indexes = [
            # account.updated finds the profiles paid through a connected account.
            models.Index(
                fields=["stripe_account_id"],
                condition=~models.Q(stripe_account_id=""),
                name="ledger_payee_stripe_acct_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.payee_type} {self.payee_id} ({self.method or 'no method'})"

    @property
    def onboarding_complete(self) -> bool:
        """Whether this payee can be paid by their method: on Stripe Connect, the connected
        account has payouts enabled; by bank transfer, the account name and IBAN are filled in;
        by PayPal, the email is. ``onboarding_complete_q()`` is the same test in SQL."""
        if self.method == self.Method.STRIPE_CONNECT:
            return bool(self.stripe_account_id) and self.stripe_payouts_enabled
        if self.method == self.Method.BANK_CSV:
            return bool(self.bank_account_name and self.bank_iban)
        if self.method == self.Method.PAYPAL:
            return bool(self.paypal_email)
        return False

    @classmethod
    def onboarding_complete_q(cls, prefix: str = "") -> models.Q:
        """``onboarding_complete`` as a filter (``prefix``: the path to a profile, e.g.
        ``"profile__"``), for lists that show or filter on it without loading profiles."""

        def q(**kwargs: Any) -> models.Q:
            return models.Q(**{prefix + k: v for k, v in kwargs.items()})

        return (
            (
                q(method=cls.Method.STRIPE_CONNECT, stripe_payouts_enabled=True)
                & ~q(stripe_account_id="")
            )
            | (q(method=cls.Method.BANK_CSV) & ~q(bank_account_name="") & ~q(bank_iban=""))
            | (q(method=cls.Method.PAYPAL) & ~q(paypal_email=""))
        )


class PayoutBatch(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft (payouts computed, awaiting approval)"
        APPROVED = "approved", "Approved"
        EXECUTING = "executing", "Executing"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Completed with failures"

    payee_type = models.CharField(max_length=16, choices=Account.PayeeType.choices)
    as_of = models.DateField(help_text="Balances approved up to the end of this day are paid.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "payout batches"
        ordering = ["-as_of", "-pk"]
        constraints = [
            # One batch per payee type and day: re-running the monthly job resumes it.
            models.UniqueConstraint(
                fields=["payee_type", "as_of"], name="ledger_payoutbatch_one_per_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.payee_type} payouts as of {self.as_of} ({self.status})"


class Payout(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (left for the next batch)"

    batch = models.ForeignKey(PayoutBatch, on_delete=models.PROTECT, related_name="payouts")
    payee_type = models.CharField(max_length=16, choices=Account.PayeeType.choices)
    payee_id = models.PositiveBigIntegerField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    method = models.CharField(max_length=16, choices=PayeeProfile.Method.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    stripe_transfer_id = models.CharField(max_length=255, blank=True)
    external_reference = models.CharField(max_length=255, blank=True)
    failure_message = models.TextField(blank=True)
    skip_reason = models.TextField(
        blank=True, help_text="Why the payee was not paid in this batch (SKIPPED): the next pays."
    )
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "payee_type", "payee_id", "currency"]
        indexes = [models.Index(fields=["payee_type", "payee_id", "status"])]
        constraints = [
            models.UniqueConstraint(
                fields=["batch", "payee_type", "payee_id", "currency"],
                name="ledger_payout_once_per_batch",
            ),
            models.CheckConstraint(
                condition=models.Q(amount__gt=0), name="ledger_payout_amount_gt_0"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"payout {self.pk}: {self.amount} {self.currency} to {self.payee_type} {self.payee_id}"
        )

    @property
    def idempotency_key(self) -> str:
        return f"payout-{self.pk}"
