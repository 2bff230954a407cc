"""Revenue and costs by stream from the ledger: hand-computed postings through the streams'
own services (or ``ledger_post`` / ``ledger_reverse`` with their real sources and accounts
where the service needs a real Stripe payment), then the report against the hand computation.

The scenario (usd; February sells, March takes some back):

February
- subscription invoice ``in_sub1`` of a referred customer: 12000 paid, 2000 tax → revenue
  10000; the affiliate's 20 % commission 2000 (``expense.commissions``); Stripe's fee 378;
- subscription invoice ``in_sub2`` (not referred): 3000, no tax;
- API usage invoice ``in_api1``: 5000 to ``revenue.api_usage``;
- a one-time content licence bought by the referred customer: 10000 paid, 1000 tax; commission
  20 % of 9000 = 1800 off the top; the item's creators A 60 % / B 40 % share 80 % of the
  remaining 7200 = 5760 (A 3456, B 2304); the platform keeps 1440;
- a marketplace order of 20000 released to its provider: 17000 to the provider, 3000 (15 %)
  commission to the platform.

March
- 6000 of ``in_sub1``'s 12000 refunded: revenue 5000 and tax 1000 reversed; the commission's
  half (1000) clawed back;
- ``in_sub2`` disputed and lost: 3000 reversed, plus Stripe's dispute fee 1500;
- half of the licence refunded: tax 500, platform 1620, A 1728, B 1152 reversed; commission 900
  clawed back;
- 5000 of the marketplace order refunded after release: provider 4250 and commission 750 back;
  the provider's payout of 10000 (not a share: ignored).
"""

from __future__ import annotations

import itertools
from dataclasses import astuple
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from affiliates.models import Program
from affiliates.services import clawbacks, commissions
from analytics import revenue
from analytics.revenue import StreamRow
from content import purchases, royalties, sale_reversals
from content.models import ContentShare, License
from ledger.chart import SystemAccount
from ledger.models import Account, Entry
from ledger.payouts import PAYOUT_SOURCE
from ledger.services import (
    REVERSAL_SOURCE,
    Line,
    account_for_payee,
    ledger_post,
    ledger_reverse,
    system_account,
)
from marketplace import orders
from subscriptions.models import InvoicePayment
from subscriptions.services import invoice_postings, stripe_fees
from tests.affiliates.factories import AffiliateFactory, ReferralFactory
from tests.content.factories import (
    ContentItemFactory,
    CreatorFactory,
    LicenseFactory,
    LicenseTypeFactory,
)
from tests.marketplace.factories_orders import OrderFactory

pytestmark = pytest.mark.django_db
# On PostgreSQL the report sets its session settings first (analytics.revenue._reporting).
SETTINGS_QUERY = int(connection.vendor == "postgresql")

FEB = date(2026, 2, 1), date(2026, 2, 28)
MAR = date(2026, 3, 1), date(2026, 3, 31)
START, END = FEB[0], MAR[1]


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def row(period, stream, **columns: Any) -> StreamRow:
    """A StreamRow from its input columns; net revenue, margin and gross margin computed by
    hand here, not by the code under test."""
    c = {name: columns.get(name, 0) for name in revenue.INPUT_COLUMNS}
    net = c["gross"] - c["refunds"] - c["creator_share"] - c["provider_share"]
    margin = net - c["commissions"] - c["stripe_fees"] - c["disputes"]
    gross_margin = columns.get("gross_margin")
    return StreamRow(period, stream, **c, net_revenue=net, margin=margin, gross_margin=gross_margin)


def invoice(
    invoice_id: str, *, paid: int, tax: int, customer: str, on: datetime, account: str = ""
) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": customer,
        "currency": "usd",
        "status": "paid",
        "amount_paid": paid,
        "total_taxes": [{"amount": tax}] if tax else [],
        "status_transitions": {"paid_at": ts(on)},
        "metadata": {"revenue_account": account} if account else {},
    }


def pay_invoice(
    invoice_id: str, *, paid: int, tax: int, customer: str, on: datetime, account: str = ""
) -> None:
    """``invoice.paid`` as the receivers take it: the revenue posting, then the commission;
    the invoice payment index links its payment intent (``pi_<invoice>``) and charge."""
    data = invoice(invoice_id, paid=paid, tax=tax, customer=customer, on=on, account=account)
    InvoicePayment.objects.create(
        stripe_invoice_payment_id=f"inpay_{invoice_id}",
        stripe_invoice_id=invoice_id,
        stripe_payment_intent_id=f"pi_{invoice_id}",
        stripe_charge_id=f"ch_{invoice_id}",
        status="paid",
        amount=paid,
        currency="usd",
        created=on,
    )
    invoice_postings.invoice_paid_record(invoice=data, occurred_at=on)
    commissions.commission_accrue(invoice=data, occurred_at=on)


def content_item_with_two_creators():
    a, b = CreatorFactory(display_name="Ada"), CreatorFactory(display_name="Bea")
    item = ContentItemFactory(owner=a, platform_fee_percent=Decimal("20"))
    ContentShare.objects.create(item=item, creator=a, percent=Decimal("60"))
    ContentShare.objects.create(item=item, creator=b, percent=Decimal("40"))
    return item, a, b


def sell_licence(item, *, customer: str, paid: int, tax: int, on: datetime) -> License:
    """``payment_intent.succeeded`` for a one-time licence (the split and the commission)."""
    license = LicenseFactory(
        license_type=LicenseTypeFactory(item=item, amount=paid),
        status=License.Status.PENDING,
        amount=paid,
    )
    purchases.license_payment_succeeded(
        payment_intent={
            "id": f"pi_licence{license.pk}",
            "object": "payment_intent",
            "customer": customer,
            "amount": paid,
            "amount_received": paid,
            "currency": "usd",
            "status": "succeeded",
            "metadata": {purchases.METADATA_KEY: str(license.pk), "tax_amount": str(tax)},
        },
        occurred_at=on,
    )
    license.refresh_from_db()
    return license


def release_order(order, *, on: datetime) -> Any:
    """The held payment and its release, posted as ``marketplace.orders`` posts them (the
    service needs a real Stripe payment; sources, keys and accounts are its own)."""
    held = system_account(SystemAccount.LIABILITY_MARKETPLACE_HELD)
    ledger_post(
        idempotency_key=f"order:{order.pk}:paid",
        source=orders.PAID_SOURCE,
        lines=[
            Line.debit(system_account(SystemAccount.STRIPE_CLEARING), order.price, "usd"),
            Line.credit(held, order.price, "usd"),
        ],
        posted_at=on,
    )
    commission = order.price * 15 // 100
    return ledger_post(
        idempotency_key=f"order:{order.pk}:release",
        source=orders.RELEASE_SOURCE,
        lines=[
            Line.debit(held, order.price, "usd"),
            Line.credit(
                account_for_payee(payee_type="provider", payee_id=order.provider_id),
                order.price - commission,
                "usd",
            ),
            Line.credit(system_account(SystemAccount.REVENUE_MARKETPLACE), commission, "usd"),
        ],
        posted_at=on,
    )


def refund_order_after_release(order, release, *, amount: int, on: datetime) -> None:
    """A staff refund after release, as ``orders.order_refund`` books it: the release
    reversed pro rata (the clawback), then the held money back to the buyer."""
    held = system_account(SystemAccount.LIABILITY_MARKETPLACE_HELD)
    ledger_reverse(
        transaction=release,
        amount=amount,
        idempotency_key=f"order:{order.pk}:clawback:{amount}",
        source=orders.CLAWBACK_SOURCE,
        posted_at=on,
    )
    ledger_post(
        idempotency_key=f"order:{order.pk}:refund:{amount}",
        source=orders.REFUND_SOURCE,
        lines=[
            Line.debit(held, amount, "usd"),
            Line.credit(system_account(SystemAccount.STRIPE_CLEARING), amount, "usd"),
        ],
        posted_at=on,
    )


@pytest.fixture
def scenario(stripe_fake):
    referral = ReferralFactory(
        stripe_customer_id="cus_ref",
        affiliate=AffiliateFactory(
            program__commission_rate=Decimal("20"),
            program__duration=Program.Duration.LIFETIME,
        ),
        referred_at=at(1, 1),
    )
    # February.
    pay_invoice("in_sub1", paid=12000, tax=2000, customer="cus_ref", on=at(2, 3))
    stripe_fees.charge_fee_record(
        charge={
            "id": "ch_in_sub1",
            "balance_transaction": {
                "id": "txn_sub1",
                "fee": 378,
                "currency": "usd",
                "created": ts(at(2, 3)),
            },
        },
        occurred_at=at(2, 3),
    )
    pay_invoice("in_sub2", paid=3000, tax=0, customer="cus_plain", on=at(2, 5))
    pay_invoice(
        "in_api1",
        paid=5000,
        tax=0,
        customer="cus_plain",
        on=at(2, 7),
        account=SystemAccount.REVENUE_API_USAGE,
    )
    item, a, b = content_item_with_two_creators()
    licence = sell_licence(item, customer="cus_ref", paid=10000, tax=1000, on=at(2, 10))
    order = OrderFactory(price=20000, package__listing__provider__display_name="Pixel Works")
    release = release_order(order, on=at(2, 20))

    # March.
    refund = {
        "id": "ch_in_sub1",
        "object": "charge",
        "payment_intent": "pi_in_sub1",
        "amount": 12000,
        "amount_refunded": 6000,
        "refunds": {"data": [{"id": "re_1", "amount": 6000, "status": "succeeded", "created": 1}]},
    }
    invoice_postings.charge_refund_record(charge=refund, occurred_at=at(3, 5))
    clawbacks.commission_refunds_record(charge=refund, occurred_at=at(3, 5))
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "charge": "ch_in_sub2",
        "payment_intent": "pi_in_sub2",
        "amount": 3000,
        "status": "lost",
        "created": ts(at(3, 8)),
        "balance_transactions": [
            {"id": "txn_dp1", "fee": 1500, "currency": "usd", "created": ts(at(3, 8))}
        ],
    }
    invoice_postings.dispute_closed_record(dispute=dispute, occurred_at=at(3, 20))
    stripe_fees.dispute_fees_record(dispute=dispute, occurred_at=at(3, 8))
    sale_reversals.license_charge_refunded(
        charge={
            "id": "ch_licence",
            "object": "charge",
            "payment_intent": licence.stripe_payment_intent_id,
            "amount": 10000,
            "amount_refunded": 5000,
            "refunded": False,
            "refunds": {
                "data": [{"id": "re_2", "amount": 5000, "status": "succeeded", "created": 2}]
            },
        },
        occurred_at=at(3, 12),
    )
    refund_order_after_release(order, release, amount=5000, on=at(3, 15))
    ledger_post(  # the provider's payout: money leaving the payable, not a share
        idempotency_key="payout-1",
        source=PAYOUT_SOURCE,
        lines=[
            Line.debit(
                account_for_payee(payee_type="provider", payee_id=order.provider_id), 10000, "usd"
            ),
            Line.credit(system_account(SystemAccount.PAYOUTS_IN_TRANSIT), 10000, "usd"),
        ],
        posted_at=at(3, 25),
    )
    return {"referral": referral, "a": a, "b": b, "order": order}


FEB_ROWS = [
    row("2026-02", "subscriptions", gross=13000, commissions=2000, stripe_fees=378,
        gross_margin="0.8171"),
    row("2026-02", "api_usage", gross=5000, gross_margin="1.0000"),
    row("2026-02", "content", gross=9000, creator_share=5760, commissions=1800,
        gross_margin="0.1600"),
    row("2026-02", "marketplace", gross=20000, provider_share=17000, gross_margin="0.1500"),
    row("2026-02", "affiliates", commissions=3800),
]  # fmt: skip
MAR_ROWS = [
    row("2026-03", "subscriptions", refunds=5000, commissions=-1000, disputes=4500),
    row("2026-03", "api_usage"),
    row("2026-03", "content", refunds=4500, creator_share=-2880, commissions=-900),
    row("2026-03", "marketplace", refunds=5000, provider_share=-4250),
    row("2026-03", "affiliates", commissions=-1900),
]  # fmt: skip


def test_the_monthly_report_matches_the_hand_computation(scenario):
    report = revenue.revenue_by_stream(start=START, end=END, currency="USD")

    assert report.currency == "usd"
    assert report.rows == FEB_ROWS + MAR_ROWS
    # The totals add the selling streams and leave the affiliates row's commissions out.
    assert report.totals == [
        row("2026-02", "total", gross=47000, creator_share=5760, provider_share=17000,
            commissions=3800, stripe_fees=378, gross_margin="0.4269"),
        row("2026-03", "total", refunds=14500, creator_share=-2880, provider_share=-4250,
            commissions=-1900, disputes=4500),
    ]  # fmt: skip
    assert report.totals[0].net_revenue == 24240 and report.totals[0].margin == 20062
    assert report.totals[1].margin == -9970


def test_the_whole_period_in_one_row_per_stream(scenario):
    report = revenue.revenue_by_stream(start=START, end=END, currency="usd", group_by=None)

    assert report.rows == [
        row(None, "subscriptions", gross=13000, refunds=5000, commissions=1000,
            stripe_fees=378, disputes=4500, gross_margin="0.1632"),
        row(None, "api_usage", gross=5000, gross_margin="1.0000"),
        row(None, "content", gross=9000, refunds=4500, creator_share=2880, commissions=900,
            gross_margin="0.0800"),
        row(None, "marketplace", gross=20000, refunds=5000, provider_share=12750,
            gross_margin="0.1125"),
        row(None, "affiliates", commissions=1900),
    ]  # fmt: skip
    [total] = report.totals
    assert (total.gross, total.net_revenue, total.margin, total.gross_margin) == (
        47000,
        16870,
        10092,
        "0.2147",
    )
    assert report.as_dict()["rows"][0] == {
        "period": None,
        "stream": "subscriptions",
        "gross": 13000,
        "refunds": 5000,
        "net_revenue": 8000,
        "commissions": 1000,
        "creator_share": 0,
        "provider_share": 0,
        "stripe_fees": 378,
        "disputes": 4500,
        "margin": 2122,
        "gross_margin": "0.1632",
    }


def test_a_period_boundary_is_a_utc_day(scenario):
    """[start 00:00, end + 1 00:00): February 3 alone is in_sub1, its commission and fee."""
    report = revenue.revenue_by_stream(
        start=date(2026, 2, 3), end=date(2026, 2, 3), currency="usd", group_by=None
    )
    assert report.rows[0] == row(
        None, "subscriptions", gross=10000, commissions=2000, stripe_fees=378,
        gross_margin="0.7622",
    )  # fmt: skip
    assert all(r == row(None, r.stream) for r in report.rows[1:4])


def test_another_currency_is_not_mixed_in(scenario):
    report = revenue.revenue_by_stream(start=START, end=END, currency="eur", group_by=None)
    assert [astuple(r)[2:-1] for r in report.totals] == [(0,) * 9]


def test_margin_is_the_income_statement(scenario):
    """Σ margin = -(change of the revenue accounts) - (change of the expense accounts)."""
    report = revenue.revenue_by_stream(start=START, end=END, currency="usd", group_by=None)
    revenue_and_expense = Entry.objects.filter(
        account__type__in=[Account.Type.REVENUE, Account.Type.EXPENSE], currency="usd"
    )
    assert report.totals[0].margin == -sum(e.amount for e in revenue_and_expense)


def test_affiliate_roi(scenario):
    roi = revenue.affiliate_roi(start=START, end=END, currency="usd")
    # Commissioned revenue net of tax: 10000 (in_sub1) + 9000 (the licence); commissions
    # 2000 + 1800 less the clawbacks 1000 + 900.
    assert (roi.referred_revenue, roi.commissions, roi.roi) == (19000, 1900, "10.0000")
    assert revenue.affiliate_roi(start=MAR[0], end=MAR[1], currency="usd").roi is None


def test_top_payees(scenario, django_assert_max_num_queries):
    a, b, order = scenario["a"], scenario["b"], scenario["order"]
    with django_assert_max_num_queries(2 + SETTINGS_QUERY):
        creators = revenue.top_payees(payee_type="creator", start=START, end=END, currency="usd")
    assert [(p.payee_id, p.name, p.earned) for p in creators] == [
        (a.pk, "Ada", 3456 - 1728),
        (b.pk, "Bea", 2304 - 1152),
    ]
    assert creators[0].admin_url == f"/admin/content/creator/{a.pk}/change/"
    [provider] = revenue.top_payees(payee_type="provider", start=START, end=END, currency="usd")
    # The payout of 10000 is not earnings.
    assert (provider.payee_id, provider.name, provider.earned) == (
        order.provider_id,
        "Pixel Works",
        17000 - 4250,
    )
    [affiliate] = revenue.top_payees(payee_type="affiliate", start=START, end=END, currency="usd")
    assert affiliate.earned == 1900
    assert affiliate.name == scenario["referral"].affiliate.user.email
    assert (
        revenue.top_payees(payee_type="creator", start=START, end=END, currency="usd", limit=1)
        == creators[:1]
    )
    with pytest.raises(ValueError):
        revenue.top_payees(payee_type="customer", start=START, end=END, currency="usd")


def test_the_report_costs_two_queries_whatever_the_postings(
    scenario, django_assert_max_num_queries
):
    with django_assert_max_num_queries(2 + SETTINGS_QUERY):
        revenue.revenue_by_stream(start=START, end=END, currency="usd")


def test_bad_arguments():
    with pytest.raises(ValueError):
        revenue.revenue_by_stream(start=END, end=START, currency="usd")
    with pytest.raises(ValueError):
        revenue.revenue_by_stream(start=START, end=END, currency="usd", group_by="week")


def test_the_sources_are_the_streams_own():
    """The report names the posting sources as literals; they must be the apps' constants."""
    from affiliates.services.commissions import (
        CLAWBACK_SOURCE,
        COMMISSION_SOURCE,
        REINSTATED_SOURCE,
    )

    expected = {
        invoice_postings.INVOICE_PAID_SOURCE: revenue.SALE,
        purchases.SALE_SOURCE: revenue.SALE,
        royalties.SPLIT_SOURCE: revenue.SALE,
        orders.RELEASE_SOURCE: revenue.SALE,
        invoice_postings.REFUND_SOURCE: revenue.REFUND,
        purchases.REFUND_SOURCE: revenue.REFUND,
        royalties.SPLIT_REFUND_SOURCE: revenue.REFUND,
        orders.CLAWBACK_SOURCE: revenue.REFUND,
        invoice_postings.DISPUTE_SOURCE: revenue.DISPUTE,
        invoice_postings.DISPUTE_WON_SOURCE: revenue.DISPUTE,
        purchases.DISPUTE_SOURCE: revenue.DISPUTE,
        purchases.DISPUTE_WON_SOURCE: revenue.DISPUTE,
        royalties.SPLIT_DISPUTE_SOURCE: revenue.DISPUTE,
        royalties.SPLIT_DISPUTE_WON_SOURCE: revenue.DISPUTE,
        COMMISSION_SOURCE: revenue.COMMISSION,
        CLAWBACK_SOURCE: revenue.COMMISSION,
        REINSTATED_SOURCE: revenue.COMMISSION,
    }
    assert expected == revenue.SOURCE_ROLES
    assert revenue.REVERSAL == REVERSAL_SOURCE
    assert {
        stripe_fees.STRIPE_FEE_SOURCE: stripe_fees.stripe_fee_key(""),
        stripe_fees.DISPUTE_FEE_SOURCE: stripe_fees.dispute_fee_key(""),
        stripe_fees.DISPUTE_FEE_RETURNED_SOURCE: stripe_fees.dispute_fee_key(""),
    } == revenue.FEE_KEY_PREFIXES
    assert revenue.CONTENT_SALE == purchases.SALE_SOURCE
    assert purchases.sale_key("") == "stripe:content.payment_intent:"
    assert invoice_postings.invoice_paid_key("") == "stripe:invoice.paid:"


# --- property: the rows add up, margins are the income statement ----------------------------

_keys = itertools.count()
ACCOUNTS = {
    "subscriptions": SystemAccount.REVENUE_SUBSCRIPTIONS,
    "api_usage": SystemAccount.REVENUE_API_USAGE,
    "content": SystemAccount.REVENUE_CONTENT,
    "marketplace": SystemAccount.REVENUE_MARKETPLACE,
}
amounts = st.integers(min_value=1, max_value=10**7)
days = st.integers(min_value=0, max_value=89)


@st.composite
def postings(draw):
    """One money movement, shaped like a stream's: (kind, day, amounts...)."""
    kind = draw(
        st.sampled_from(
            ["invoice", "sale", "split", "release", "commission", "fee", "dispute_fee", "payout"]
        )
    )
    return (
        kind,
        draw(days),
        draw(st.sampled_from(list(ACCOUNTS))),
        draw(amounts),
        draw(amounts),
        draw(st.booleans()),
        draw(st.floats(0, 1)),
    )


def _post(kind, day, stream, amount, other, reverse, share, creator, provider, affiliate):
    on = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day, hours=12)
    clearing = system_account(SystemAccount.STRIPE_CLEARING)
    tax = system_account(SystemAccount.SALES_TAX_PAYABLE)
    key = f"k{next(_keys)}"
    if kind == "invoice":
        lines = [
            Line.debit(clearing, amount + other, "usd"),
            Line.credit(system_account(ACCOUNTS[stream]), amount, "usd"),
            Line.credit(tax, other, "usd"),
        ]
        source = invoice_postings.INVOICE_PAID_SOURCE
    elif kind == "sale":
        lines = [
            Line.debit(clearing, amount + other, "usd"),
            Line.credit(system_account(SystemAccount.REVENUE_CONTENT), amount, "usd"),
            Line.credit(creator, other, "usd"),
        ]
        source = purchases.SALE_SOURCE
    elif kind == "split":
        lines = [
            Line.debit(system_account(SystemAccount.REVENUE_API_USAGE), amount + other, "usd"),
            Line.credit(system_account(SystemAccount.REVENUE_CONTENT), amount, "usd"),
            Line.credit(creator, other, "usd"),
        ]
        source = royalties.SPLIT_SOURCE
    elif kind == "release":
        lines = [
            Line.debit(
                system_account(SystemAccount.LIABILITY_MARKETPLACE_HELD), amount + other, "usd"
            ),
            Line.credit(provider, other, "usd"),
            Line.credit(system_account(SystemAccount.REVENUE_MARKETPLACE), amount, "usd"),
        ]
        source = orders.RELEASE_SOURCE
    elif kind == "commission":
        funding = (
            SystemAccount.COMMISSION_EXPENSE
            if stream != "content"
            else SystemAccount.REVENUE_CONTENT
        )
        lines = [
            Line.debit(system_account(funding), amount, "usd"),
            Line.credit(affiliate, amount, "usd"),
        ]
        source = commissions.COMMISSION_SOURCE
    elif kind == "fee":
        lines = [
            Line.debit(system_account(SystemAccount.STRIPE_FEES), amount, "usd"),
            Line.credit(clearing, amount, "usd"),
        ]
        source = stripe_fees.STRIPE_FEE_SOURCE
        key = stripe_fees.stripe_fee_key(f"txn_{key}")
    elif kind == "dispute_fee":
        lines = [
            Line.debit(system_account(SystemAccount.DISPUTE_LOSSES), amount, "usd"),
            Line.credit(clearing, amount, "usd"),
        ]
        source = stripe_fees.DISPUTE_FEE_SOURCE
        key = stripe_fees.dispute_fee_key(f"txn_{key}")
    else:
        lines = [
            Line.debit(provider, amount, "usd"),
            Line.credit(system_account(SystemAccount.PAYOUTS_IN_TRANSIT), amount, "usd"),
        ]
        source = PAYOUT_SOURCE
    posting = ledger_post(idempotency_key=key, source=source, lines=lines, posted_at=on)
    if reverse and kind in ("invoice", "sale", "split", "release", "commission"):
        reverse_source = {
            "invoice": invoice_postings.REFUND_SOURCE,
            "sale": purchases.DISPUTE_SOURCE,
            "split": REVERSAL_SOURCE,
            "release": orders.CLAWBACK_SOURCE,
            "commission": commissions.CLAWBACK_SOURCE,
        }[kind]
        gross = amount + other if kind != "commission" else amount
        part = max(1, int(gross * share))
        ledger_reverse(
            transaction=posting,
            amount=part,
            idempotency_key=f"{key}:back",
            source=reverse_source,
            posted_at=on + timedelta(days=day % 40),
        )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(postings(), max_size=12), st.sampled_from(["month", None]))
def test_rows_add_up_to_the_totals_and_margin_is_net_revenue_less_costs(movements, group_by):
    from django.db import transaction

    with transaction.atomic():
        creator = account_for_payee(payee_type="creator", payee_id=1)
        provider = account_for_payee(payee_type="provider", payee_id=1)
        affiliate = account_for_payee(payee_type="affiliate", payee_id=1)
        for movement in movements:
            _post(*movement, creator=creator, provider=provider, affiliate=affiliate)
        report = revenue.revenue_by_stream(
            start=date(2026, 1, 1), end=date(2026, 5, 31), currency="usd", group_by=group_by
        )
        expected_income = -sum(
            Entry.objects.filter(
                account__type__in=[Account.Type.REVENUE, Account.Type.EXPENSE]
            ).values_list("amount", flat=True)
        )
        transaction.set_rollback(True)

    assert {r.stream for r in report.rows} == set(revenue.STREAMS)
    for total in report.totals:
        rows = [r for r in report.rows if r.period == total.period]
        selling = [r for r in rows if r.stream != "affiliates"]
        for column in revenue.INPUT_COLUMNS:
            assert getattr(total, column) == sum(getattr(r, column) for r in selling)
        assert total.commissions == next(r for r in rows if r.stream == "affiliates").commissions
        for r in [*rows, total]:
            assert r.net_revenue == r.gross - r.refunds - r.creator_share - r.provider_share
            assert r.margin == r.net_revenue - (r.commissions + r.stripe_fees + r.disputes)
            assert r.gross_margin == revenue.rate(r.margin, r.gross)
    assert sum(t.margin for t in report.totals) == expected_income


def test_content_lines_of_a_usage_invoice_count_once_under_content():
    """A usage invoice of 8000 carrying a 2000 royalty line: the invoice books 8000 to API
    usage, the split moves 2000 on (platform 20 % = 400, the creators 1600): API usage keeps a
    gross of 6000, content has 2000 of which 1600 are the creators'."""
    item, _a, _b = content_item_with_two_creators()
    pay_invoice("in_use", paid=8000, tax=0, customer="cus_x", on=at(4, 2),
                account=SystemAccount.REVENUE_API_USAGE)  # fmt: skip
    royalties.revenue_split_post(
        item=item,
        revenue=2000,
        currency="usd",
        from_account=SystemAccount.REVENUE_API_USAGE,
        idempotency_key=royalties.split_key("in_use", "line-1"),
        memo="royalties",
        posted_at=at(4, 2),
    )
    report = revenue.revenue_by_stream(
        start=date(2026, 4, 1), end=date(2026, 4, 30), currency="usd", group_by=None
    )
    rows = {r.stream: r for r in report.rows}
    assert rows["api_usage"] == row(None, "api_usage", gross=6000, gross_margin="1.0000")
    assert rows["content"] == row(None, "content", gross=2000, creator_share=1600,
                                  gross_margin="0.2000")  # fmt: skip
    assert report.totals[0].gross == 8000


def test_a_won_dispute_nets_out_and_its_fee_comes_back():
    pay_invoice("in_w", paid=3000, tax=500, customer="cus_w", on=at(4, 2))
    dispute = {
        "id": "dp_w",
        "charge": "ch_in_w",
        "payment_intent": "pi_in_w",
        "amount": 3000,
        "status": "won",
        "created": ts(at(4, 3)),
        "balance_transactions": [
            {"id": "txn_w1", "fee": 1500, "currency": "usd", "created": ts(at(4, 3))},
            {"id": "txn_w2", "fee": -1500, "currency": "usd", "created": ts(at(4, 9))},
        ],
    }
    invoice_postings.dispute_closed_record(dispute=dispute, occurred_at=at(4, 9))
    stripe_fees.dispute_fees_record(dispute=dispute, occurred_at=at(4, 9))

    def subscriptions(start: date, end: date) -> StreamRow:
        report = revenue.revenue_by_stream(start=start, end=end, currency="usd", group_by=None)
        return report.rows[0]

    # While open (April 3 to 8): the disputed 2500 net of tax and the fee are costs.
    assert subscriptions(date(2026, 4, 1), date(2026, 4, 8)) == row(
        None, "subscriptions", gross=2500, disputes=2500 + 1500, gross_margin="-0.6000"
    )
    # Once won, both come back.
    assert subscriptions(date(2026, 4, 1), date(2026, 4, 30)) == row(
        None, "subscriptions", gross=2500, gross_margin="1.0000"
    )
