"""Creators' earnings, read from the ledger: by content item and month, and the staff
statement (CSV). Reads only; nothing here writes.

Every amount comes from the entries on the creator's payable (``payable.creator.<id>``), so a
creator's earnings are their own share by construction (a co-creator sees their part of a
shared item, never the owner's). Each entry is attributed to a content item through the
posting it belongs to (or, for a reversal, the posting it reverses): the sale posting's key
names the PaymentIntent, whose licence names the item. Other content postings (usage
royalties, adjustments) join by registering their source with ``earning_source_register``;
until then their amounts are counted under ``content: null``.

Amounts are credit-positive minor units: ``sales`` and ``royalties`` are what was booked to
the creator, ``reversals`` (≤ 0) what refunds and lost disputes took back, ``other`` anything
else that is not a payout, and ``net`` their sum. Payouts are not earnings: they are listed by
``creator/payouts/`` and appear in the statement as their own lines.
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
from django.db.models.functions import Coalesce, Substr, TruncMonth

from content.models import ContentItem, Creator, License
from content.purchases import SALE_SOURCE, sale_key
from content.services import PAYEE_TYPE
from ledger.chart import payee_account_code
from ledger.models import Entry
from ledger.payouts import PAYOUT_SOURCE
from revenue_site.money import from_minor

Category = Literal["sales", "royalties"]


@dataclass(frozen=True)
class EarningSource:
    """A ledger source that books earnings to creators: its category, and an expression that
    yields the content item id of an Entry annotated with ``original_key`` (the key of the
    posting, or of the posting a reversal reverses)."""

    category: Category
    content_id: Callable[[], Expression | Subquery]


_SOURCES: dict[str, EarningSource] = {}


def earning_source_register(source: str, spec: EarningSource) -> None:
    _SOURCES[source] = spec


def _sale_content_id() -> Subquery:
    prefix = len(sale_key(""))
    return Subquery(
        # The non-empty filter matches the partial unique index on the PaymentIntent id.
        License.objects.exclude(stripe_payment_intent_id="")
        .filter(stripe_payment_intent_id=Substr(OuterRef("original_key"), prefix + 1))
        .values("content_id")[:1]
    )


earning_source_register(SALE_SOURCE, EarningSource(category="sales", content_id=_sale_content_id))


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
    whens = [
        When(original_source=source, then=spec.content_id()) for source, spec in _SOURCES.items()
    ]
    return entries.annotate(
        original_source=Coalesce(F("transaction__reversal_of__source"), F("transaction__source")),
        original_key=Coalesce(
            F("transaction__reversal_of__idempotency_key"), F("transaction__idempotency_key")
        ),
        content_id=Case(*whens, default=Value(None), output_field=BigIntegerField()),
        period=TruncMonth("posted_at", tzinfo=UTC),
    )


def _sources_of(category: Category) -> list[str]:
    return [source for source, spec in _SOURCES.items() if spec.category == category]


def _aggregate(entries: EntryRows, *group: str) -> EntryRows:
    original = Q(transaction__reversal_of__isnull=True)
    return (
        entries.values(*group)
        .annotate(
            sales_raw=Sum(
                "amount", filter=original & Q(transaction__source__in=_sources_of("sales"))
            ),
            royalties_raw=Sum(
                "amount", filter=original & Q(transaction__source__in=_sources_of("royalties"))
            ),
            reversals_raw=Sum("amount", filter=Q(transaction__reversal_of__isnull=False)),
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
