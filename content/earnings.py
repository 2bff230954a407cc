"""Creators' earnings, read from the ledger: by content item and month, and the staff
statement (CSV). Reads only; nothing here writes.

Every amount comes from the entries on the creator's payable (``payable.creator.<id>``), so a
creator's earnings are their own share by construction (a co-creator sees their part of a
shared item, never the owner's). Each entry is attributed to a content item through the
posting it belongs to (or, for a reversal, the posting it reverses): the sale posting's key
names the PaymentIntent, whose licence names the item; a recurring licence's invoice split
names the licence, a usage royalty's split names the charge line whose reference names the
licence; a won dispute's book-back names the dispute, whose reversal names the posting it
reversed. Other postings join by registering their source (``earning_source_register``,
``book_back_source_register``); until then their amounts are counted under ``content: null``.

Amounts are credit-positive minor units: ``sales`` and ``royalties`` are what was booked to
the creator, ``reversals`` what refunds and disputes took back (≤ 0) net of what won
disputes booked back, ``other`` anything else that is not a payout, and ``net`` their sum.
Payouts are not earnings: they are listed by ``creator/payouts/`` and appear in the statement
as their own lines.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Expression,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Concat, StrIndex, Substr, TruncMonth

from content.models import ContentItem, Creator, License
from content.purchases import (
    DISPUTE_SOURCE,
    DISPUTE_WON_SOURCE,
    SALE_SOURCE,
    dispute_key,
    dispute_won_key,
    sale_key,
)
from content.royalties import SPLIT_DISPUTE_WON_SOURCE, SPLIT_SOURCE
from content.services import PAYEE_TYPE
from ledger.chart import payee_account_code
from ledger.models import Entry, Transaction
from ledger.payouts import PAYOUT_SOURCE
from marketplace.models import UsageChargeLine
from revenue_site.money import from_minor

Category = Literal["sales", "royalties"]


@dataclass(frozen=True)
class EarningSource:
    """Postings of ``source`` that book earnings to creators (only those whose key contains
    ``key_contains``, when given): their category, and an expression that yields the content
    item id of an Entry annotated with ``root_key`` (the key of the earning posting the entry
    traces back to: its own, the one a reversal reverses, or the one a won dispute books back)."""

    category: Category
    content_id: Callable[[], Expression | Subquery]
    key_contains: str = ""


@dataclass(frozen=True)
class BookBackSource:
    """Postings of ``source`` that book back (part of) an earlier reversal of earnings, as a
    won dispute does: counted under ``reversals`` (they undo one), attributed to the content of
    the earning posting they trace back to. ``root`` yields (given an Entry annotated with
    ``original_key``) the key of that posting, ``root_source`` names its source."""

    root_source: str
    root: Callable[[], Expression | Subquery]


_SOURCES: dict[tuple[str, str], EarningSource] = {}
_BOOK_BACKS: dict[str, BookBackSource] = {}


def earning_source_register(source: str, spec: EarningSource) -> None:
    _SOURCES[(source, spec.key_contains)] = spec


def book_back_source_register(source: str, spec: BookBackSource) -> None:
    _BOOK_BACKS[source] = spec


def _key_tail(key: Expression | OuterRef, after: str) -> Expression:
    """What follows the first ``after`` in ``key`` (the key must contain it)."""
    return Substr(key, StrIndex(key, Value(after)) + len(after))


def _as_pk(text: Expression) -> Cast:
    return Cast(text, output_field=BigIntegerField())


def _sale_content_id() -> Subquery:
    prefix = len(sale_key(""))
    return Subquery(
        # The non-empty filter matches the partial unique index on the PaymentIntent id.
        License.objects.exclude(stripe_payment_intent_id="")
        .filter(stripe_payment_intent_id=Substr(OuterRef("root_key"), prefix + 1))
        .values("content_id")[:1]
    )


# Keys of invoice splits (``content.royalties.split_key``) end in ``:license-<pk>`` (a recurring
# licence's invoice: a sale) or ``:line-<pk>`` (a usage charge line: royalties).
_SPLIT_LICENSE = ":license-"
_SPLIT_LINE = ":line-"


def _recurring_content_id() -> Subquery:
    return Subquery(
        License.objects.filter(pk=_as_pk(_key_tail(OuterRef("root_key"), _SPLIT_LICENSE))).values(
            "content_id"
        )[:1]
    )


def _royalty_content_id() -> Subquery:
    # The charge line's reference is ``license-<pk>-<kind>`` (content.royalties).
    reference = F("reference")
    after = Substr(reference, len("license-") + 1)
    licence_pk = _as_pk(Substr(after, 1, StrIndex(after, Value("-")) - 1))
    line = (
        UsageChargeLine.objects.filter(
            pk=_as_pk(_key_tail(OuterRef(OuterRef("root_key")), _SPLIT_LINE))
        )
        .annotate(licence_pk=licence_pk)
        .values("licence_pk")[:1]
    )
    return Subquery(License.objects.filter(pk=Subquery(line)).values("content_id")[:1])


def _license_dispute_won_root() -> Subquery:
    """``stripe:content.dispute.won:<dispute>`` -> the sale the dispute's reversal reversed."""
    dispute = Substr(OuterRef("original_key"), len(dispute_won_key("")) + 1)
    return Subquery(
        Transaction.objects.filter(
            source=DISPUTE_SOURCE, idempotency_key=Concat(Value(dispute_key("")), dispute)
        ).values("reversal_of__idempotency_key")[:1]
    )


def _split_dispute_won_root() -> Subquery:
    """``stripe:content.dispute.won:<dispute>:<split pk>`` -> that split's key."""
    rest = Substr(OuterRef("original_key"), len(dispute_won_key("")) + 1)
    return Subquery(
        Transaction.objects.filter(pk=_as_pk(_key_tail(rest, ":"))).values("idempotency_key")[:1]
    )


earning_source_register(SALE_SOURCE, EarningSource(category="sales", content_id=_sale_content_id))
earning_source_register(
    SPLIT_SOURCE,
    EarningSource(category="sales", content_id=_recurring_content_id, key_contains=_SPLIT_LICENSE),
)
earning_source_register(
    SPLIT_SOURCE,
    EarningSource(category="royalties", content_id=_royalty_content_id, key_contains=_SPLIT_LINE),
)
book_back_source_register(
    DISPUTE_WON_SOURCE, BookBackSource(root_source=SALE_SOURCE, root=_license_dispute_won_root)
)
book_back_source_register(
    SPLIT_DISPUTE_WON_SOURCE,
    BookBackSource(root_source=SPLIT_SOURCE, root=_split_dispute_won_root),
)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# Querysets of annotated / aggregated entries: typed loosely, the stubs cannot follow the
# annotations (``content_id``, ``period``) that later filters and orderings name.
EntryRows = QuerySet[Any, Any]


def _earning_entries(
    *, creator_ids: Iterable[int], start: date | None, end: date | None
) -> EntryRows:
    codes = [payee_account_code(PAYEE_TYPE, creator_id) for creator_id in creator_ids]
    entries: EntryRows = Entry.objects.filter(account__code__in=codes).exclude(
        transaction__source=PAYOUT_SOURCE
    )
    if start is not None:
        entries = entries.filter(posted_at__gte=day_start(start))
    if end is not None:
        entries = entries.filter(posted_at__lt=day_start(end + timedelta(days=1)))
    return (
        entries.annotate(
            original_source=Coalesce(
                F("transaction__reversal_of__source"), F("transaction__source")
            ),
            original_key=Coalesce(
                F("transaction__reversal_of__idempotency_key"), F("transaction__idempotency_key")
            ),
        )
        .annotate(
            root_source=Case(
                *(
                    When(original_source=source, then=Value(spec.root_source))
                    for source, spec in _BOOK_BACKS.items()
                ),
                default=F("original_source"),
                output_field=CharField(),
            ),
            root_key=Case(
                *(
                    When(original_source=source, then=spec.root())
                    for source, spec in _BOOK_BACKS.items()
                ),
                default=F("original_key"),
                output_field=CharField(),
            ),
        )
        .annotate(
            content_id=Case(
                *(
                    When(_matches(source, spec), then=spec.content_id())
                    for (source, _), spec in _SOURCES.items()
                ),
                default=Value(None),
                output_field=BigIntegerField(),
            ),
            category=Case(
                *(
                    When(_matches(source, spec), then=Value(spec.category))
                    for (source, _), spec in _SOURCES.items()
                ),
                default=Value(""),
                output_field=CharField(),
            ),
            period=TruncMonth("posted_at", tzinfo=UTC),
        )
    )


def _matches(source: str, spec: EarningSource) -> Q:
    match = Q(root_source=source)
    if spec.key_contains:
        match &= Q(root_key__contains=spec.key_contains)
    return match


def _aggregate(entries: EntryRows, *group: str) -> EntryRows:
    """Sum per ``group``: ``sales`` / ``royalties`` are earning postings by category;
    ``reversals`` are reversals of them and the postings that book reversals back."""
    undoing = Q(transaction__reversal_of__isnull=False) | Q(
        transaction__source__in=list(_BOOK_BACKS)
    )
    return (
        entries.values(*group)
        .annotate(
            sales_raw=Sum("amount", filter=~undoing & Q(category="sales")),
            royalties_raw=Sum("amount", filter=~undoing & Q(category="royalties")),
            reversals_raw=Sum("amount", filter=undoing),
            net_raw=Sum("amount"),
        )
        .order_by()
    )


def earnings_row(row: dict[str, Any]) -> dict[str, Any]:
    """An aggregated row in credit-positive minor units (``other`` is what is left of
    ``net``), with ``period`` as ``YYYY-MM``."""
    sales = -int(row["sales_raw"] or 0)
    royalties = -int(row["royalties_raw"] or 0)
    reversals = -int(row["reversals_raw"] or 0)
    net = -int(row["net_raw"] or 0)
    period = row.get("period")
    return {
        **{k: v for k, v in row.items() if not k.endswith("_raw")},
        "period": period.strftime("%Y-%m") if period is not None else None,
        "sales": sales,
        "royalties": royalties,
        "reversals": reversals,
        "other": net - sales - royalties - reversals,
        "net": net,
    }


def creator_earnings(
    *,
    creator: Creator,
    start: date | None = None,
    end: date | None = None,
    content_id: int | None = None,
) -> EntryRows:
    """The creator's earnings by (content item, month, currency), newest month first, as an
    aggregated values queryset (one query; paginate it, then ``earnings_row`` each row).
    ``start`` / ``end`` are inclusive UTC days."""
    entries = _earning_entries(creator_ids=[creator.pk], start=start, end=end)
    if content_id is not None:
        entries = entries.filter(content_id=content_id)
    return _aggregate(entries, "content_id", "period", "currency").order_by(
        "-period", F("content_id").asc(nulls_last=True), "currency"
    )


def content_titles(*, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(ContentItem.objects.filter(pk__in=wanted).values_list("pk", "title"))


# --- the staff statement -----------------------------------------------------------------

STATEMENT_HEADER = [
    "creator_id",
    "creator",
    "line",
    "period",
    "content_id",
    "content",
    "currency",
    "sales",
    "royalties",
    "reversals",
    "other",
    "amount",
]


def earnings_statement_csv(*, creators: Iterable[Creator], start: date, end: date) -> str:
    """The creators' statement for [start, end] (UTC days, inclusive) as CSV, in major units
    with the currency code. Per creator and currency: the opening balance (owed at the start),
    one ``earnings`` line per content item and month, one ``payout`` line per payout booked
    in the period, and the closing balance; opening + earnings - payouts = closing.

    A fixed number of queries whatever the number of creators.
    """
    creators = sorted(creators, key=lambda c: (c.display_name, c.pk))
    ids = [c.pk for c in creators]
    opening = _balances(ids, day_start(start) - timedelta(microseconds=1))
    closing = _balances(ids, day_start(end + timedelta(days=1)) - timedelta(microseconds=1))
    earned: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    entries = _earning_entries(creator_ids=ids, start=start, end=end)
    rows = _aggregate(entries, "account__payee_id", "content_id", "period", "currency")
    for row in rows.order_by("account__payee_id", "currency", "period", "content_id"):
        earned[(row["account__payee_id"], row["currency"])].append(earnings_row(row))
    titles = content_titles(ids=[r["content_id"] for rs in earned.values() for r in rs])
    paid = _payouts(ids, start, end)

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=STATEMENT_HEADER, restval="", lineterminator="\n")
    writer.writeheader()
    for creator in creators:
        currencies = sorted(
            {cur for (cid, cur) in (*opening, *closing, *earned, *paid) if cid == creator.pk}
        )
        for currency in currencies:
            key = (creator.pk, currency)
            head = {"creator_id": creator.pk, "creator": creator.display_name}
            code = currency.upper()

            def money(amount: int, cur: str = currency) -> str:
                return str(from_minor(amount, cur))

            writer.writerow(
                {
                    **head,
                    "line": "opening_balance",
                    "period": start.isoformat(),
                    "currency": code,
                    "amount": money(opening.get(key, 0)),
                }
            )
            for row in earned.get(key, []):
                content = row["content_id"]
                writer.writerow(
                    {
                        **head,
                        "line": "earnings",
                        "period": row["period"],
                        "content_id": content or "",
                        "content": titles.get(content, ""),
                        "currency": code,
                        **{
                            name: money(row[name])
                            for name in ("sales", "royalties", "reversals", "other")
                        },
                        "amount": money(row["net"]),
                    }
                )
            for paid_at, amount in paid.get(key, []):
                writer.writerow(
                    {
                        **head,
                        "line": "payout",
                        "period": paid_at.date().isoformat(),
                        "currency": code,
                        "amount": money(-amount),
                    }
                )
            writer.writerow(
                {
                    **head,
                    "line": "closing_balance",
                    "period": end.isoformat(),
                    "currency": code,
                    "amount": money(closing.get(key, 0)),
                }
            )
    return out.getvalue()


def _balances(ids: list[int], as_of: datetime) -> dict[tuple[int, str], int]:
    """What we owed each creator at ``as_of``, per currency (non-zero only)."""
    codes = [payee_account_code(PAYEE_TYPE, creator_id) for creator_id in ids]
    rows = (
        Entry.objects.filter(account__code__in=codes, posted_at__lte=as_of)
        .values("account__payee_id", "currency")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return {
        (int(row["account__payee_id"] or 0), row["currency"]): -int(row["total"])
        for row in rows
        if row["total"]
    }


def _payouts(ids: list[int], start: date, end: date) -> dict[tuple[int, str], list[Any]]:
    """Payout postings (debits of the payable) booked in the period, oldest first."""
    codes = [payee_account_code(PAYEE_TYPE, creator_id) for creator_id in ids]
    rows = (
        Entry.objects.filter(
            account__code__in=codes,
            transaction__source=PAYOUT_SOURCE,
            posted_at__gte=day_start(start),
            posted_at__lt=day_start(end + timedelta(days=1)),
        )
        .values_list("account__payee_id", "currency", "posted_at", "amount")
        .order_by("posted_at", "pk")
    )
    paid: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for payee_id, currency, posted_at, amount in rows:
        paid[(int(payee_id or 0), currency)].append((posted_at, amount))
    return paid
