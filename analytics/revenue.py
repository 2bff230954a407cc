"""Revenue and costs by stream, read from the ledger; affiliate ROI; top payees (issue 13).

Everything here is aggregated in the database: ``revenue_by_stream`` runs two grouped queries
(entries summed by month, posting source and account; Stripe's fees summed by month, stream
and account), whatever the number of entries; the Python that follows walks those few
groups, never entries.

Streams and columns (minor units of ``currency``; a period is ``[start 00:00 UTC, end + 1
00:00 UTC)`` by ``Entry.posted_at``; months by UTC calendar month):

- **gross**: what buyers paid, excluding sales tax: the credits a sale posting makes to the
  stream's revenue account and to the payees' payables (creators' and providers' shares are
  inside what the buyer paid). Sale postings: ``subscriptions.invoice_paid`` (to the account
  the invoice names: ``revenue.subscriptions``, ``revenue.api_usage`` for usage invoices,
  ``revenue.content`` for recurring licences), ``content.license_sale``,
  ``content.invoice_split`` (moves a usage invoice's content lines from ``revenue.api_usage``
  to ``revenue.content`` and the creators: gross leaves api_usage and enters content, so it
  is counted once) and ``marketplace.order_release``. Marketplace revenue is recognised at
  release: the buyer's payment sits in ``liability.marketplace_held`` until then, and a
  refund before release never was revenue (it is in no column).
- **refunds**: what refunds gave back, excluding tax, at the same level as gross (the
  creators' and providers' parts included): ``subscriptions.refund``,
  ``content.license_refund``, ``content.invoice_split_refund`` (moves the content part of an
  invoice refund from api_usage to content) and ``marketplace.order_clawback`` (a refund
  after release; a lost marketplace dispute is booked as a full refund there, so it is here).
- **creator_share** / **provider_share**: pass-through shares, net: what the sale postings
  credit to ``payable.creator.*`` / ``payable.provider.*``, less what refunds, disputes and
  clawbacks take back from them (payouts and Connect transfers move money out of the
  payables and are not shares: they are not counted).
- **net_revenue** = gross - refunds - creator_share - provider_share: the platform's own
  revenue after refunds (the shares were never the platform's). Lost disputes are a cost,
  below.
- **commissions**: affiliate commissions, net of clawbacks and reinstatements
  (``affiliates.commission`` / ``.clawback`` / ``.commission_reinstated``), attributed to the
  stream that funded them: a commission debited to ``expense.commissions`` (commissions on
  invoices, booked out of subscription revenue) is a subscriptions cost; one debited to
  ``revenue.content`` (a one-time content sale's) is a content cost. Commissions on usage
  invoices and recurring-licence invoices are also booked to ``expense.commissions`` and
  therefore show under subscriptions: the posting does not say which invoice paid them.
- **stripe_fees**: ``expense.stripe_fees``, attributed through the fee's balance transaction
  to the charge (dj-stripe's mirror) and its payment intent: a one-time licence sale's →
  content, a marketplace order's → marketplace, an invoice's → the stream of the revenue
  account its ``invoice_paid`` posting credits (an invoice mixing API usage and content
  royalties counts whole under api_usage); anything not traceable (mirror rows missing) →
  subscriptions.
- **disputes**: the disputed amount of lost (and still open) disputes, at the gross level
  like refunds (``subscriptions.dispute``, ``content.license_dispute``,
  ``content.invoice_split_dispute``, less their ``…_won`` postings), plus the dispute fees
  (``expense.disputes``, net of fees returned, attributed like Stripe's fees through the
  dispute's balance transaction).
- **margin** = net_revenue - commissions - stripe_fees - disputes: the platform's revenue less
  its costs. Summed over the streams it equals the change of the revenue accounts less the
  change of the expense accounts over the period (the income statement), which the tests check.
- **gross_margin** = margin ÷ gross, a 4-decimal string (ROUND_HALF_UP), None when gross is 0.

A generic ``ledger.reversal`` counts as a negated posting of the source it reverses, so a
corrected sale lowers gross, a corrected refund lowers refunds, and so on. Postings from any
other source (manual corrections) count only where they touch a stream's revenue account
(gross), ``revenue.refunds`` (subscriptions refunds), ``expense.creator_share`` /
``expense.provider_share`` (shares) or ``expense.commissions`` (subscriptions commissions).
Nothing posts to ``revenue.affiliates``, ``revenue.refunds`` or the share expense accounts
today.

**The affiliates row** is informational: its gross / refunds / net_revenue are
``revenue.affiliates`` (the program's own revenue, none today), and its commissions column is
every commission of the period, already attributed to the selling streams above. ``totals``
add the selling streams' rows plus the affiliates row's own revenue only (its commissions are
not added again), so nothing is counted twice: ``totals.commissions`` equals the affiliates
row's commissions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    Exists,
    F,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Concat, Substr, TruncMonth
from django.urls import reverse
from djstripe import models as djm

from affiliates.models import Affiliate, Commission
from content.models import Creator
from ledger.chart import SystemAccount
from ledger.models import Account, Entry, Transaction
from marketplace.models import Order, Provider
from subscriptions.models import InvoicePayment

STREAMS = ("subscriptions", "api_usage", "content", "marketplace", "affiliates")
SELLING_STREAMS = STREAMS[:4]
GROUP_BY_CHOICES = ("month",)
PAYEE_TYPES = tuple(Account.PayeeType.values)
FOUR_PLACES = Decimal("0.0001")
# The columns summed from the ledger; net_revenue, margin and gross_margin follow from them.
INPUT_COLUMNS = (
    "gross",
    "refunds",
    "commissions",
    "creator_share",
    "provider_share",
    "stripe_fees",
    "disputes",
)

# Posting sources, as the streams name them (kept as literals: analytics reads the ledger,
# it does not import the streams' services). tests/analytics/test_revenue.py checks each
# against the constant its app defines.
REVERSAL = "ledger.reversal"
INVOICE_PAID = "subscriptions.invoice_paid"
CONTENT_SALE = "content.license_sale"
STRIPE_FEE = "subscriptions.stripe_fee"
DISPUTE_FEE = "subscriptions.dispute_fee"
DISPUTE_FEE_RETURNED = "subscriptions.dispute_fee_returned"

SALE, REFUND, DISPUTE, COMMISSION = "sale", "refund", "dispute", "commission"
SOURCE_ROLES: dict[str, str] = {
    INVOICE_PAID: SALE,
    CONTENT_SALE: SALE,
    "content.invoice_split": SALE,
    "marketplace.order_release": SALE,
    "subscriptions.refund": REFUND,
    "content.license_refund": REFUND,
    "content.invoice_split_refund": REFUND,
    "marketplace.order_clawback": REFUND,
    "subscriptions.dispute": DISPUTE,
    "subscriptions.dispute_won": DISPUTE,
    "content.license_dispute": DISPUTE,
    "content.license_dispute_won": DISPUTE,
    "content.invoice_split_dispute": DISPUTE,
    "content.invoice_split_dispute_won": DISPUTE,
    "affiliates.commission": COMMISSION,
    "affiliates.clawback": COMMISSION,
    "affiliates.commission_reinstated": COMMISSION,
}
# Which idempotency key prefix a fee posting's key puts before its balance transaction id.
FEE_KEY_PREFIXES = {
    STRIPE_FEE: "stripe:fee:",
    DISPUTE_FEE: "stripe:dispute_fee:",
    DISPUTE_FEE_RETURNED: "stripe:dispute_fee:",
}

REVENUE_STREAM_ACCOUNTS = {
    SystemAccount.REVENUE_SUBSCRIPTIONS.value: "subscriptions",
    SystemAccount.REVENUE_API_USAGE.value: "api_usage",
    SystemAccount.REVENUE_CONTENT.value: "content",
    SystemAccount.REVENUE_MARKETPLACE.value: "marketplace",
    SystemAccount.REVENUE_AFFILIATES.value: "affiliates",
}
CREATOR_PAYABLE, PROVIDER_PAYABLE, AFFILIATE_PAYABLE = (
    "payable.creator",
    "payable.provider",
    "payable.affiliate",
)
# Accounts the first query reads: the streams' revenue, payee payables (by type) and the
# platform's costs other than Stripe's fees (which the second query attributes).
LEDGER_ACCOUNTS = (
    *REVENUE_STREAM_ACCOUNTS,
    SystemAccount.REFUNDS.value,
    SystemAccount.COMMISSION_EXPENSE.value,
    SystemAccount.CREATOR_SHARE_EXPENSE.value,
    SystemAccount.PROVIDER_SHARE_EXPENSE.value,
)
FEE_ACCOUNTS = (SystemAccount.STRIPE_FEES.value, SystemAccount.DISPUTE_LOSSES.value)
MONEY_COLUMNS = (
    "gross",
    "refunds",
    "net_revenue",
    "commissions",
    "creator_share",
    "provider_share",
    "stripe_fees",
    "disputes",
    "margin",
)


def rate(numerator: int, denominator: int) -> str | None:
    """``numerator / denominator`` as a 4-decimal string (ROUND_HALF_UP); None when ÷ 0."""
    if not denominator:
        return None
    value = (Decimal(numerator) / Decimal(denominator)).quantize(FOUR_PLACES, ROUND_HALF_UP)
    return str(value)


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """``[start 00:00 UTC, end + 1 day 00:00 UTC)``."""
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )


def months_between(start: date, end: date) -> list[str]:
    """``YYYY-MM`` of every calendar month overlapping ``[start, end]``, oldest first."""
    months = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


@dataclass(frozen=True)
class StreamRow:
    """One stream's revenue and costs in one period (``None``: the whole report period)."""

    period: str | None
    stream: str
    gross: int = 0
    refunds: int = 0
    net_revenue: int = 0
    commissions: int = 0
    creator_share: int = 0
    provider_share: int = 0
    stripe_fees: int = 0
    disputes: int = 0
    margin: int = 0
    gross_margin: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RevenueReport:
    """Rows per (period, stream) for every stream and period (zeros included), and one
    ``totals`` row per period (``stream="total"``)."""

    start: date
    end: date
    currency: str
    group_by: str | None
    rows: list[StreamRow]
    totals: list[StreamRow]

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "currency": self.currency,
            "group_by": self.group_by,
            "rows": [row.as_dict() for row in self.rows],
            "totals": [row.as_dict() for row in self.totals],
        }


class _Sums:
    """Column sums per (period, stream) while the grouped query results are walked."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str | None, str], dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )

    def add(self, period: str | None, stream: str, column: str, amount: int) -> None:
        self.cells[(period, stream)][column] += amount


def _stream_of(klass: str) -> str | None:
    """The stream an account (class) belongs to, for gross/refunds/disputes/shares."""
    if klass in REVENUE_STREAM_ACCOUNTS:
        return REVENUE_STREAM_ACCOUNTS[klass]
    if klass == CREATOR_PAYABLE:
        return "content"
    if klass == PROVIDER_PAYABLE:
        return "marketplace"
    return None


def _apply(sums: _Sums, period: str | None, source: str, klass: str, total: int) -> None:
    """Attribute one (source, account class) sum; ``total`` is signed (debit +, credit -)."""
    role = SOURCE_ROLES.get(source)
    stream = _stream_of(klass)
    if klass == CREATOR_PAYABLE and role in (SALE, REFUND, DISPUTE):
        sums.add(period, "content", "creator_share", -total)
    if klass == PROVIDER_PAYABLE and role in (SALE, REFUND, DISPUTE):
        sums.add(period, "marketplace", "provider_share", -total)
    if role == COMMISSION:
        if klass == AFFILIATE_PAYABLE:
            sums.add(period, "affiliates", "commissions", -total)
        elif klass == SystemAccount.COMMISSION_EXPENSE:
            sums.add(period, "subscriptions", "commissions", total)
        elif stream is not None and klass in REVENUE_STREAM_ACCOUNTS:
            sums.add(period, stream, "commissions", total)
        return
    if role in (SALE, REFUND, DISPUTE):
        if stream is not None:
            column = {SALE: "gross", REFUND: "refunds", DISPUTE: "disputes"}[role]
            sums.add(period, stream, column, -total if role == SALE else total)
        return
    # Any other source (payouts, transfers, held funds, manual corrections): only the
    # platform's revenue and cost accounts count; payables moving to payees are not revenue.
    if klass in REVENUE_STREAM_ACCOUNTS:
        sums.add(period, REVENUE_STREAM_ACCOUNTS[klass], "gross", -total)
    elif klass == SystemAccount.REFUNDS:
        sums.add(period, "subscriptions", "refunds", total)
    elif klass == SystemAccount.COMMISSION_EXPENSE:
        sums.add(period, "subscriptions", "commissions", total)
    elif klass == SystemAccount.CREATOR_SHARE_EXPENSE:
        sums.add(period, "content", "creator_share", total)
    elif klass == SystemAccount.PROVIDER_SHARE_EXPENSE:
        sums.add(period, "marketplace", "provider_share", total)


def _effective(field: str) -> Any:
    """The transaction's ``field``, or for a generic reversal the reversed posting's.

    A subquery rather than a join: it runs only for the (few) reversal rows, where a join
    would hash every transaction of the period once more.
    """
    reversed_field = Transaction.objects.filter(pk=OuterRef("transaction__reversal_of_id")).values(
        field
    )[:1]
    return Case(
        When(transaction__source=REVERSAL, then=Subquery(reversed_field)),
        default=F(f"transaction__{field}"),
        output_field=CharField(),
    )


def _period_expression(group_by: str | None) -> Any:
    if group_by == "month":
        return TruncMonth("posted_at", tzinfo=UTC)
    return Value(None, output_field=CharField())


def _period_key(value: Any, group_by: str | None) -> str | None:
    if group_by != "month":
        return None
    return f"{value.year:04d}-{value.month:02d}"


def _ledger_groups(
    *, since: datetime, until: datetime, currency: str, group_by: str | None
) -> Iterable[Mapping[str, Any]]:
    """Σ amount per (period, effective source, account class): one query."""
    klass = Case(
        When(account__payee_type="", then=F("account__code")),
        default=Concat(Value("payable."), F("account__payee_type")),
        output_field=CharField(),
    )
    return (
        Entry.objects.filter(currency=currency, posted_at__gte=since, posted_at__lt=until)
        .filter(Q(account__code__in=LEDGER_ACCOUNTS) | Q(account__payee_id__isnull=False))
        .annotate(period=_period_expression(group_by), eff_source=_effective("source"), klass=klass)
        .values("period", "eff_source", "klass")
        .annotate(total=Sum("amount"))
        .order_by()
    )


def _fee_balance_transaction_id() -> Any:
    """The balance transaction id at the end of a fee posting's key ("" for other sources).

    Fee postings are never reversed by a generic reversal (a returned dispute fee is its own
    posting), so the posting's own source and key are read.
    """
    return Case(
        *(
            When(
                transaction__source=source, then=Substr("transaction__idempotency_key", len(p) + 1)
            )
            for source, p in FEE_KEY_PREFIXES.items()
        ),
        default=Value(""),
        output_field=CharField(),
    )


def _fee_groups(
    *, since: datetime, until: datetime, currency: str, group_by: str | None
) -> Iterable[Mapping[str, Any]]:
    """Σ amount of Stripe's fees and dispute fees per (period, stream, account): one query.

    A fee's stream comes from its balance transaction through dj-stripe's mirror: a charge's
    fee is on the mirrored charge with that balance transaction; a dispute fee's balance
    transaction names the dispute as its source. The charge's (or dispute's) payment intent
    then says whose payment it was: a one-time licence sale (its ``content.license_sale``
    posting), a marketplace order, or an invoice (the revenue account its ``invoice_paid``
    posting credits). Untraceable → subscriptions.
    """
    charge_pi = djm.Charge.objects.filter(balance_transaction_id=OuterRef("txn_id")).values(
        "payment_intent_id"
    )[:1]
    dispute_id = djm.BalanceTransaction.objects.filter(id=OuterRef("txn_id")).values("source")[:1]
    dispute_pi = djm.Dispute.objects.filter(id=OuterRef("dispute_id")).values("payment_intent_id")[
        :1
    ]
    invoice_id = InvoicePayment.objects.filter(stripe_payment_intent_id=OuterRef("pi")).values(
        "stripe_invoice_id"
    )[:1]

    def invoice_credits(account: SystemAccount) -> Exists:
        return Exists(
            Entry.objects.filter(
                transaction__source=INVOICE_PAID,
                transaction__idempotency_key=Concat(Value("stripe:invoice.paid:"), OuterRef("inv")),
                account__code=account.value,
            )
        )

    stream = Case(
        When(pi="", then=Value("subscriptions")),
        When(
            Exists(
                Transaction.objects.filter(
                    source=CONTENT_SALE,
                    idempotency_key=Concat(Value("stripe:content.payment_intent:"), OuterRef("pi")),
                )
            ),
            then=Value("content"),
        ),
        When(
            Exists(Order.objects.filter(stripe_payment_intent_id=OuterRef("pi"))),
            then=Value("marketplace"),
        ),
        When(invoice_credits(SystemAccount.REVENUE_API_USAGE), then=Value("api_usage")),
        When(invoice_credits(SystemAccount.REVENUE_CONTENT), then=Value("content")),
        default=Value("subscriptions"),
        output_field=CharField(),
    )
    return (
        Entry.objects.filter(
            currency=currency,
            posted_at__gte=since,
            posted_at__lt=until,
            account__code__in=FEE_ACCOUNTS,
        )
        .annotate(
            period=_period_expression(group_by),
            txn_id=_fee_balance_transaction_id(),
            dispute_id=Subquery(dispute_id),
            # A processing fee's charge, or a dispute fee's dispute: one lookup path each.
            pi=Coalesce(
                Case(
                    When(account__code=SystemAccount.STRIPE_FEES.value, then=Subquery(charge_pi)),
                    default=Subquery(dispute_pi),
                    output_field=CharField(),
                ),
                Value(""),
                output_field=CharField(),
            ),
            inv=Subquery(invoice_id),
            stream=stream,
        )
        .values("period", "stream", "account__code")
        .annotate(total=Sum("amount"))
        .order_by()
    )


# On PostgreSQL the report's queries run with JIT off (compiling the fee query's expressions
# cost seconds, more than running it) and enough memory to group in a hash table instead of
# sorting to disk; both only for the report's own transaction (``set_config(..., true)``).
REPORT_SETTINGS = {"jit": "off", "work_mem": "64MB"}


@contextmanager
def _reporting() -> Iterator[None]:
    """Run the report's queries with ``REPORT_SETTINGS`` on PostgreSQL (one more query).

    Inside a transaction already (a request under ``ATOMIC_REQUESTS``, a test) the settings
    last until that transaction ends; otherwise the report gets a transaction of its own.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(REPORT_SETTINGS)),
                [value for pair in REPORT_SETTINGS.items() for value in pair],
            )
        yield


def _row(period: str | None, stream: str, cell: dict[str, int]) -> StreamRow:
    gross = cell["gross"]
    net = gross - cell["refunds"] - cell["creator_share"] - cell["provider_share"]
    margin = net - cell["commissions"] - cell["stripe_fees"] - cell["disputes"]
    return StreamRow(
        period=period,
        stream=stream,
        gross=gross,
        refunds=cell["refunds"],
        net_revenue=net,
        commissions=cell["commissions"],
        creator_share=cell["creator_share"],
        provider_share=cell["provider_share"],
        stripe_fees=cell["stripe_fees"],
        disputes=cell["disputes"],
        margin=margin,
        gross_margin=rate(margin, gross),
    )


def _total(period: str | None, rows: list[StreamRow]) -> StreamRow:
    cell: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.stream == "affiliates":  # its own revenue only: its commissions are the streams'
            row = replace(row, commissions=0)
        for column in INPUT_COLUMNS:
            cell[column] += getattr(row, column)
    return _row(period, "total", cell)


def revenue_by_stream(
    *, start: date, end: date, currency: str, group_by: str | None = "month"
) -> RevenueReport:
    """Revenue and costs by stream from the ledger (see the module docstring).

    ``group_by="month"``: rows per calendar month overlapping ``[start, end]`` (clipped to it)
    and stream; ``None``: one row per stream for the whole period. Every stream of ``STREAMS``
    has a row in every period, zeros included. Two queries. Raises ValueError for an unknown
    ``group_by`` or ``end`` before ``start``.
    """
    if group_by is not None and group_by not in GROUP_BY_CHOICES:
        raise ValueError(f"group_by must be one of {GROUP_BY_CHOICES} or None")
    if end < start:
        raise ValueError("end is before start")
    currency = currency.lower()
    since, until = period_bounds(start, end)
    sums = _Sums()
    with _reporting():
        ledger = list(
            _ledger_groups(since=since, until=until, currency=currency, group_by=group_by)
        )
        fees = list(_fee_groups(since=since, until=until, currency=currency, group_by=group_by))
    for group in ledger:
        period = _period_key(group["period"], group_by)
        _apply(sums, period, group["eff_source"], group["klass"], int(group["total"]))
    for group in fees:
        period = _period_key(group["period"], group_by)
        column = (
            "stripe_fees" if group["account__code"] == SystemAccount.STRIPE_FEES else "disputes"
        )
        sums.add(period, group["stream"], column, int(group["total"]))

    periods: list[str | None] = list(months_between(start, end)) if group_by == "month" else [None]
    rows, totals = [], []
    for period in periods:
        period_rows = [
            _row(period, stream, sums.cells.get((period, stream), defaultdict(int)))
            for stream in STREAMS
        ]
        rows.extend(period_rows)
        totals.append(_total(period, period_rows))
    return RevenueReport(
        start=start, end=end, currency=currency, group_by=group_by, rows=rows, totals=totals
    )


# --- affiliate ROI --------------------------------------------------------------------------


@dataclass(frozen=True)
class AffiliateRoi:
    """What referred customers paid against what their commissions cost (minor units)."""

    start: date
    end: date
    currency: str
    referred_revenue: int
    commissions: int
    roi: str | None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(start=self.start.isoformat(), end=self.end.isoformat())
        return data


def affiliate_roi(*, start: date, end: date, currency: str) -> AffiliateRoi:
    """The affiliate program's return in ``[start, end]``, from its commissions (one query).

    - ``referred_revenue``: revenue net of tax of the payments referred customers made in the
      period that earned a commission (``Commission.base_amount`` of commissions whose payment,
      ``paid_at_invoice``, is in the period; invoices and one-time sales alike). Payments that
      earn nothing (a rule's duration over, a suspended affiliate) are not counted.
    - ``commissions``: what those commissions cost, net of what was clawed back so far
      (``amount - reversed_amount``).
    - ``roi`` = referred_revenue ÷ commissions (revenue per unit of commission; 4 decimals),
      None when no commission cost anything.
    """
    since, until = period_bounds(start, end)
    currency = currency.lower()
    row = Commission.objects.filter(
        currency=currency, paid_at_invoice__gte=since, paid_at_invoice__lt=until
    ).aggregate(
        revenue=Coalesce(Sum("base_amount"), 0),
        amount=Coalesce(Sum("amount"), 0),
        reversed=Coalesce(Sum("reversed_amount"), 0),
    )
    revenue = int(row["revenue"])
    cost = int(row["amount"]) - int(row["reversed"])
    return AffiliateRoi(
        start=start,
        end=end,
        currency=currency,
        referred_revenue=revenue,
        commissions=cost,
        roi=rate(revenue, cost) if cost > 0 else None,
    )


# --- top payees -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TopPayee:
    payee_id: int
    name: str
    earned: int
    admin_url: str
    payee_type: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PAYEE_MODELS: dict[str, tuple[type[Any], str, str]] = {
    # payee type: (model, its display-name lookup, admin change page's URL name)
    Account.PayeeType.AFFILIATE: (Affiliate, "user__email", "admin:affiliates_affiliate_change"),
    Account.PayeeType.CREATOR: (Creator, "display_name", "admin:content_creator_change"),
    Account.PayeeType.PROVIDER: (Provider, "display_name", "admin:marketplace_provider_change"),
}
EARNING_ROLES = (SALE, REFUND, DISPUTE, COMMISSION)


def top_payees(
    *, payee_type: str, start: date, end: date, currency: str, limit: int = 10
) -> list[TopPayee]:
    """The payees of ``payee_type`` who earned most in ``[start, end]`` (two queries).

    Earned = net credits to their payable from earning postings (sales, splits, releases,
    commissions, less refunds', disputes' and clawbacks' share; payouts and transfers are not
    earnings), biggest first, ties by id; only payees who earned more than 0. Raises
    ValueError for an unknown payee type.
    """
    if payee_type not in PAYEE_MODELS:
        raise ValueError(f"payee_type must be one of {sorted(PAYEE_MODELS)}")
    since, until = period_bounds(start, end)
    earning_sources = [s for s, role in SOURCE_ROLES.items() if role in EARNING_ROLES]
    with _reporting():
        rows = list(
            Entry.objects.filter(
                currency=currency.lower(),
                posted_at__gte=since,
                posted_at__lt=until,
                account__payee_type=payee_type,
            )
            .annotate(eff_source=_effective("source"))
            .filter(eff_source__in=earning_sources)
            .values("account__payee_id")
            .annotate(earned=-Sum("amount"))
            .filter(earned__gt=0)
            .order_by("-earned", "account__payee_id")[:limit]
        )
    model, name_lookup, url_name = PAYEE_MODELS[payee_type]
    ids = [row["account__payee_id"] for row in rows]
    names = dict(model.objects.filter(pk__in=ids).values_list("pk", name_lookup))
    payees = [(int(row["account__payee_id"] or 0), int(row["earned"])) for row in rows]
    return [
        TopPayee(
            payee_type=payee_type,
            payee_id=payee_id,
            name=str(names.get(payee_id, f"{payee_type} {payee_id}")),
            earned=earned,
            admin_url=reverse(url_name, args=[payee_id]),
        )
        for payee_id, earned in payees
    ]


__all__ = [
    "MONEY_COLUMNS",
    "STREAMS",
    "AffiliateRoi",
    "RevenueReport",
    "StreamRow",
    "TopPayee",
    "affiliate_roi",
    "revenue_by_stream",
    "top_payees",
]
