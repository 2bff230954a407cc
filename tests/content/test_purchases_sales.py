"""The sale side of a one-time licence: the buyer's Stripe customer, the referring affiliate's
commission off the top, tax on the sale, failed and canceled payments, and refunds and
disputes reversing every part (commission included). Stripe is the fake, its events delivered
to our webhook inbox signed as Stripe signs them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.db.models import Q, Sum
from django.utils import timezone
from djstripe import models as djm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from affiliates.models import Commission
from content.earnings import creator_earnings, earnings_row
from content.licensing import license_reinstate, license_suspend
from content.models import License, LicenseType
from content.purchases import (
    DISPUTE_SOURCE,
    SALE_SOURCE,
    license_payment_failed,
    license_payment_succeeded,
    license_sale_split,
)
from content.sales_tax import sale_tax
from content.services import content_shares_set
from ledger.chart import SystemAccount
from ledger.models import Account, Entry, Transaction
from revenue_site.money import apply_rate
from subscriptions.models import BillingCustomer
from subscriptions.services.billing.customers import billing_customer_ensure
from tests.accounts.factories import UserFactory
from tests.affiliates.factories import AffiliateFactory, ProgramFactory, ReferralFactory
from tests.content.factories import (
    ContentItemFactory,
    CreatorFactory,
    LicenseFactory,
    LicenseTypeFactory,
)
from tests.content.test_purchases import buy_url, client_for
from tests.stripe_harness import SignedInbox, three_d_secure_card

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]

CLEARING = SystemAccount.STRIPE_CLEARING.value
REVENUE = SystemAccount.REVENUE_CONTENT.value
TAX = SystemAccount.SALES_TAX_PAYABLE.value
SHARES = [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]


def balance(code: str, currency: str = "usd") -> int:
    """The account's balance from the content app's postings and the commissions (Stripe's
    fees, booked from the balance transactions by the subscriptions app, are left out)."""
    rows = Entry.objects.filter(account__code=code, currency=currency).filter(
        Q(transaction__source__startswith="content.")
        | Q(transaction__source__startswith="affiliates.")
    )
    return rows.aggregate(t=Sum("amount"))["t"] or 0


def customer_id(user) -> str:
    return BillingCustomer.objects.get(user=user).stripe_customer_id


def payee_total(payee_type: str, payee_id: int, currency: str = "usd") -> int:
    rows = Entry.objects.filter(
        account__payee_type=payee_type, account__payee_id=payee_id, currency=currency
    )
    return rows.aggregate(t=Sum("amount"))["t"] or 0


def books_balance() -> None:
    for row in Entry.objects.values("currency").annotate(t=Sum("amount")):
        assert row["t"] == 0, row


def three_creator_item(*, fee: str = "20.00"):
    owner = CreatorFactory(platform_fee_percent=Decimal(fee))
    a, b = CreatorFactory(), CreatorFactory()
    item = ContentItemFactory(owner=owner)
    content_shares_set(item=item, shares=list(zip((owner, a, b), SHARES, strict=True)))
    return item, (owner, a, b)


def creators_owed(creators, currency: str = "usd") -> list[int]:
    return [-payee_total(Account.PayeeType.CREATOR, c.pk, currency) for c in creators]


def affiliate_owed(affiliate, currency: str = "usd") -> int:
    return -payee_total(Account.PayeeType.AFFILIATE, affiliate.pk, currency)


def referred_buyer(*, rate: str = "20", **program):
    """A buyer with a Stripe customer referred by an approved affiliate."""
    buyer = UserFactory(password=None)
    _, customer = billing_customer_ensure(user=buyer)
    affiliate = AffiliateFactory(
        program=ProgramFactory(commission_rate=Decimal(rate), hold_days=30, **program)
    )
    ReferralFactory(affiliate=affiliate, stripe_customer_id=customer.id, user=buyer)
    return buyer, affiliate


@pytest.fixture
def inbox(client, django_capture_on_commit_callbacks):
    return SignedInbox(client, django_capture_on_commit_callbacks)


def buy(buyer, item, lt, card: str = "pm_card_visa") -> License:
    response = client_for(buyer).post(
        buy_url(item), {"license_type": lt.pk, "payment_method": card}, "json"
    )
    assert response.status_code == 201, response.content
    return License.objects.get(pk=response.json()["id"])


# --- the split: hypothesis over awkward amounts and shares -----------------------------------


@settings(max_examples=300, deadline=None)
@given(
    price=st.one_of(st.sampled_from([1, 2, 3, 999, 1000, 1001, 10**12]), st.integers(1, 10**9)),
    fee=st.decimals(min_value=0, max_value=100, places=2),
    tax_rate=st.sampled_from([None, Decimal(0), Decimal("7.25"), Decimal(10), Decimal(20)]),
    inclusive=st.booleans(),
    commission_rate=st.one_of(st.none(), st.decimals(min_value=0, max_value=100, places=4)),
    shares=st.sampled_from(
        [
            SHARES,
            [Decimal(100)],
            [Decimal("0.0001"), Decimal("99.9999")],
            [Decimal("50"), Decimal("25"), Decimal("12.5"), Decimal("12.5")],
        ]
    ),
)
def test_tax_commission_platform_and_creators_add_up_to_what_was_paid(
    price, fee, tax_rate, inclusive, commission_rate, shares
):
    from django.test import override_settings

    rates = {"DE": tax_rate} if tax_rate is not None else {}
    with override_settings(CONTENT_TAX_RATES=rates):
        tax = sale_tax(price=price, country="de", inclusive=inclusive)
    assert tax.net + tax.tax == tax.total
    assert tax.total == (price if inclusive else price + tax.tax)
    commission = apply_rate(tax.net, commission_rate / 100) if commission_rate is not None else 0
    split = license_sale_split(
        amount=tax.total,
        tax=tax.tax,
        commission=commission,
        platform_fee_percent=fee,
        shares=list(enumerate(shares, start=1)),
    )
    parts = [split.tax, split.commission, split.platform, *(p for _, p in split.creators)]
    assert sum(parts) == split.total == tax.total
    assert all(part >= 0 for part in parts)
    # Creators never get more than their rate of what is left after tax and commission.
    rest = tax.net - commission
    assert sum(p for _, p in split.creators) <= rest * (100 - fee) / 100


def test_999_with_an_affiliate_and_three_creators():
    split = license_sale_split(
        amount=999,
        commission=200,
        platform_fee_percent=Decimal(20),
        shares=[(1, SHARES[0]), (2, SHARES[1]), (3, SHARES[2])],
    )
    # 999 - 200 = 799; creators 799 * 0.8 = 639.2 -> 639 (213 each), platform 160.
    assert (split.commission, split.platform, split.creators) == (
        200,
        160,
        [(1, 213), (2, 213), (3, 213)],
    )


@pytest.mark.parametrize(
    ("price", "inclusive", "rate", "tax", "net"),
    [
        (999, False, "20", 200, 999),  # 199.8 -> 200, added
        (1200, True, "20", 200, 1000),  # 1200 * 20 / 120
        (1001, False, "10", 100, 1001),
        (1, True, "20", 0, 1),  # 1/6 rounds to 0
        (3, True, "50", 1, 2),  # 3 * 50 / 150 = 1
        (999, False, "0", 0, 999),
    ],
)
def test_sale_tax_rounds_half_up_exactly(settings, price, inclusive, rate, tax, net):
    settings.CONTENT_TAX_RATES = {"FR": Decimal(rate)}
    result = sale_tax(price=price, country="fr", inclusive=inclusive)
    assert (result.tax, result.net) == (tax, net)
    assert sale_tax(price=price, country="US", inclusive=inclusive).tax == 0


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    price=st.sampled_from([1, 3, 999, 1001, 123457]),
    currency=st.sampled_from(["usd", "jpy"]),
    tax=st.sampled_from([0, 1, 100]),
    rate=st.sampled_from(["0", "10", "33.3333", "100"]),
    fee=st.sampled_from(["0.00", "15.00", "33.33", "100.00"]),
)
def test_the_booked_sale_balances_and_credits_every_part(price, currency, tax, rate, fee):
    """Service level (no Stripe): a referred buyer's payment books tax, commission, fee and
    every co-creator, and the books balance in the sale's currency."""
    item, creators = three_creator_item(fee=fee)
    lt = LicenseTypeFactory(item=item, amount=price, currency=currency)
    buyer = UserFactory(password=None)
    affiliate = AffiliateFactory(program=ProgramFactory(commission_rate=Decimal(rate)))
    referral = ReferralFactory(affiliate=affiliate, user=buyer)
    license = LicenseFactory(
        license_type=lt, holder=buyer, status=License.Status.PENDING, issued_at=None
    )
    paid = price + tax
    pi_id = f"pi_h{license.pk}"
    sale = license_payment_succeeded(
        payment_intent={
            "id": pi_id,
            "amount": paid,
            "amount_received": paid,
            "currency": currency,
            "customer": referral.stripe_customer_id,
            "metadata": {"content_license": str(license.pk), "tax_amount": str(tax)},
        },
        occurred_at=timezone.now(),
    )
    assert sale is not None
    commission = Commission.objects.get(stripe_payment_intent_id=pi_id)
    assert commission.amount == apply_rate(price, Decimal(rate) / 100)
    expected = license_sale_split(
        amount=paid,
        tax=tax,
        commission=commission.amount,
        platform_fee_percent=Decimal(fee),
        shares=[(c.pk, s) for c, s in zip(creators, SHARES, strict=True)],
    )
    lines = dict(sale.entries.values_list("account__code", "amount"))
    assert lines[CLEARING] == paid
    assert -lines.get(TAX, 0) == tax
    assert -lines.get(REVENUE, 0) == expected.platform + expected.commission
    assert sum(sale.entries.values_list("amount", flat=True)) == 0
    owed = {c.pk: -payee_total(Account.PayeeType.CREATOR, c.pk, currency) for c in creators}
    assert owed == dict(expected.creators)
    assert affiliate_owed(affiliate, currency) == commission.amount
    books_balance()


# --- buying: the customer, the commission, tax -----------------------------------------------


def test_a_referred_buyer_pays_as_their_customer_and_the_affiliate_earns_off_the_top(
    stripe_fake, inbox
):
    item, creators = three_creator_item()
    lt = LicenseTypeFactory(item=item, amount=999)
    buyer, affiliate = referred_buyer(rate="20")

    license = buy(buyer, item, lt)
    inbox.deliver_new()

    intent = stripe.PaymentIntent.retrieve(license.stripe_payment_intent_id)
    assert intent.customer == customer_id(buyer)
    assert intent.amount == 999
    commission = Commission.objects.get()
    assert (commission.stripe_payment_intent_id, commission.stripe_invoice_id) == (intent.id, "")
    assert (commission.amount, commission.base_amount, commission.status) == (200, 999, "held")
    assert balance(CLEARING) == 999
    assert balance(REVENUE) == -160  # the platform's fee on what the affiliate left
    assert affiliate_owed(affiliate) == 200
    assert creators_owed(creators) == [213, 213, 213]
    books_balance()

    # Every event delivered again changes nothing.
    entries = Entry.objects.count()
    inbox.deliver(list(stripe.Event.list(limit=100).last_response.data["data"]))
    assert Entry.objects.count() == entries
    assert Commission.objects.count() == 1


def test_an_unreferred_buyer_pays_no_commission_and_reuses_one_customer(stripe_fake, inbox):
    item, creators = three_creator_item()
    buyer = UserFactory(password=None)
    buy(buyer, item, LicenseTypeFactory(item=item, amount=999))
    buy(buyer, item, LicenseTypeFactory(item=item, amount=999))
    inbox.deliver_new()
    customers = {i.customer for i in stripe.PaymentIntent.list(limit=10).data}
    assert customers == {customer_id(buyer)}
    assert not Commission.objects.exists()
    assert balance(REVENUE) == -400
    assert sum(creators_owed(creators)) == 2 * 799


def test_a_flat_commission_is_capped_at_the_sale_and_paid_on_the_first_payment_only(
    stripe_fake, inbox
):
    item, creators = three_creator_item()
    buyer, affiliate = referred_buyer(commission_type="flat", commission_flat_amount=5000)
    buy(buyer, item, LicenseTypeFactory(item=item, amount=999))
    buy(buyer, item, LicenseTypeFactory(item=item, amount=999))
    inbox.deliver_new()
    commission = Commission.objects.get()
    assert (commission.amount, commission.rule["capped_at_base"]) == (999, True)
    assert affiliate_owed(affiliate) == 999
    # The second sale is not the first payment: no commission, an ordinary split.
    assert balance(REVENUE) == -200
    assert sum(creators_owed(creators)) == 799
    books_balance()


def test_tax_is_added_booked_as_payable_and_only_the_net_is_split(stripe_fake, inbox, settings):
    settings.CONTENT_TAX_RATES = {"FR": Decimal(20)}  # the fake's cards are issued in France
    item, creators = three_creator_item()
    buyer, affiliate = referred_buyer(rate="20")
    license = buy(buyer, item, LicenseTypeFactory(item=item, amount=999))
    inbox.deliver_new()

    intent = stripe.PaymentIntent.retrieve(license.stripe_payment_intent_id)
    assert intent.amount == 1199
    assert (intent.metadata["tax_amount"], intent.metadata["tax_country"]) == ("200", "FR")
    assert license.amount == 999  # net of tax
    assert balance(CLEARING) == 1199
    assert balance(TAX) == -200
    assert affiliate_owed(affiliate) == 200
    assert balance(REVENUE) == -160
    assert creators_owed(creators) == [213, 213, 213]

    stripe.Refund.create(payment_intent=intent.id, amount=600)
    inbox.deliver_new()
    # Half the payment back: half the tax, commission and split reversed.
    assert balance(TAX) == -100
    assert affiliate_owed(affiliate) == 100
    stripe.Refund.create(payment_intent=intent.id)
    inbox.deliver_new()
    assert (balance(TAX), balance(REVENUE), affiliate_owed(affiliate)) == (0, 0, 0)
    assert creators_owed(creators) == [0, 0, 0]
    books_balance()


def test_tax_included_in_the_price(stripe_fake, inbox, settings):
    settings.CONTENT_TAX_RATES = {"FR": Decimal(20)}
    settings.CONTENT_PRICES_INCLUDE_TAX = True
    item, creators = three_creator_item(fee="0.00")
    license = buy(UserFactory(password=None), item, LicenseTypeFactory(item=item, amount=1200))
    inbox.deliver_new()
    assert stripe.PaymentIntent.retrieve(license.stripe_payment_intent_id).amount == 1200
    assert license.amount == 1000
    assert balance(TAX) == -200
    assert creators_owed(creators) == [334, 333, 333]


def test_jpy_with_tax_and_an_affiliate_in_whole_yen(stripe_fake, inbox, settings):
    settings.CONTENT_TAX_RATES = {"FR": Decimal(10)}
    item, creators = three_creator_item(fee="15.00")
    buyer, affiliate = referred_buyer(rate="10")
    buy(buyer, item, LicenseTypeFactory(item=item, amount=1001, currency="jpy"))
    inbox.deliver_new()
    # paid 1001 + 100 tax; commission 100; 901 left: creators 765 (255 each), platform 136.
    assert balance(CLEARING, "jpy") == 1101
    assert balance(TAX, "jpy") == -100
    assert affiliate_owed(affiliate, "jpy") == 100
    assert balance(REVENUE, "jpy") == -136
    assert creators_owed(creators, "jpy") == [255, 255, 255]
    books_balance()


# --- refunds and disputes reverse the commission too ----------------------------------------


def test_partial_refunds_claw_back_pro_rata_and_the_last_one_takes_the_rest(stripe_fake, inbox):
    item, creators = three_creator_item()
    buyer, affiliate = referred_buyer(rate="20")
    license = buy(buyer, item, LicenseTypeFactory(item=item, amount=999))
    inbox.deliver_new()

    stripe.Refund.create(payment_intent=license.stripe_payment_intent_id, amount=333)
    inbox.deliver_new()
    commission = Commission.objects.get()
    assert (commission.reversed_amount, commission.status) == (67, "held")  # 200 / 3 -> 67
    assert License.objects.get(pk=license.pk).status == License.Status.ACTIVE
    stripe.Refund.create(payment_intent=license.stripe_payment_intent_id, amount=333)
    inbox.deliver_new()
    assert Commission.objects.get().reversed_amount == 133  # 400 / 3 -> 133
    stripe.Refund.create(payment_intent=license.stripe_payment_intent_id)
    inbox.deliver_new()

    commission.refresh_from_db()
    assert (commission.reversed_amount, commission.status) == (200, "reversed")
    assert License.objects.get(pk=license.pk).status == License.Status.REVOKED
    assert (balance(CLEARING), balance(REVENUE), affiliate_owed(affiliate)) == (0, 0, 0)
    assert creators_owed(creators) == [0, 0, 0]
    books_balance()


def test_a_dispute_suspends_and_reverses_everything_at_once_and_a_win_books_it_back(
    stripe_fake, inbox
):
    item, creators = three_creator_item()
    buyer, affiliate = referred_buyer(rate="20")
    license = buy(buyer, item, LicenseTypeFactory(item=item, amount=2500), "pm_card_createDispute")
    events = inbox.deliver_new()
    assert "charge.dispute.created" in {e["type"] for e in events}

    license.refresh_from_db()
    assert (license.status, license.suspended_by) == ("suspended", "dispute")
    assert (balance(CLEARING), balance(REVENUE), affiliate_owed(affiliate)) == (0, 0, 0)
    assert creators_owed(creators) == [0, 0, 0]
    assert Commission.objects.get().status == Commission.Status.REVERSED
    # The creator's earnings show the sale and its reversal on the item.
    (row,) = [earnings_row(r) for r in creator_earnings(creator=creators[0])]
    assert (row["content_id"], row["sales"], row["reversals"], row["net"]) == (
        item.pk,
        534,
        -534,
        0,
    )

    dispute = stripe.Dispute.list(limit=1).data[0]
    stripe.Dispute.modify(dispute.id, evidence={"uncategorized_text": "winning_evidence"})
    events = inbox.deliver_new()
    assert {"charge.dispute.funds_reinstated", "charge.dispute.closed"} <= {
        e["type"] for e in events
    }

    license.refresh_from_db()
    assert (license.status, license.suspended_by) == ("active", "")
    commission = Commission.objects.get()
    assert (commission.status, commission.reversed_amount) == ("held", 0)
    # The book-back is attributed to the item too, as an undone reversal.
    (row,) = [earnings_row(r) for r in creator_earnings(creator=creators[0])]
    assert (row["content_id"], row["sales"], row["reversals"], row["other"]) == (
        item.pk,
        534,
        0,
        0,
    )
    assert balance(CLEARING) == 2500
    assert affiliate_owed(affiliate) == 500
    assert balance(REVENUE) == -400  # 2000 * 20 %
    assert creators_owed(creators) == [534, 533, 533]
    books_balance()
    entries = Entry.objects.count()
    inbox.deliver(events)  # redelivered: nothing twice
    assert Entry.objects.count() == entries


def test_winning_a_dispute_leaves_a_staff_suspension_standing(stripe_fake, inbox):
    item, creators = three_creator_item()
    buyer, _ = referred_buyer(rate="20")
    license = buy(buyer, item, LicenseTypeFactory(item=item, amount=2500), "pm_card_createDispute")
    events = inbox.new()
    disputes = [e for e in events if e["type"].startswith("charge.dispute.")]
    assert disputes
    inbox.deliver([e for e in events if e not in disputes])  # paid: active
    license_suspend(license=license)  # staff, for their own reasons
    inbox.deliver(disputes)
    dispute = stripe.Dispute.list(limit=1).data[0]
    stripe.Dispute.modify(dispute.id, evidence={"uncategorized_text": "winning_evidence"})
    inbox.deliver_new()

    license.refresh_from_db()
    assert (license.status, license.suspended_by) == ("suspended", "staff")
    assert creators_owed(creators) == [534, 533, 533]  # the money is booked back all the same
    license_reinstate(license=license)
    license.refresh_from_db()
    assert (license.status, license.suspended_by) == ("active", "")


def test_a_lost_dispute_revokes_without_reversing_twice(stripe_fake, inbox):
    item, creators = three_creator_item()
    buyer, affiliate = referred_buyer(rate="20")
    license = buy(buyer, item, LicenseTypeFactory(item=item, amount=2500), "pm_card_createDispute")
    inbox.deliver_new()
    stripe.Dispute.close(stripe.Dispute.list(limit=1).data[0].id)
    inbox.deliver_new()

    license.refresh_from_db()
    assert license.status == License.Status.REVOKED
    assert Transaction.objects.filter(source=DISPUTE_SOURCE).count() == 1
    assert (balance(CLEARING), balance(REVENUE), affiliate_owed(affiliate)) == (0, 0, 0)
    assert creators_owed(creators) == [0, 0, 0]
    assert Commission.objects.get().status == Commission.Status.REVERSED
    books_balance()


def test_dispute_events_before_the_payment_event_give_the_same_books(stripe_fake, inbox):
    item, creators = three_creator_item()
    buyer, affiliate = referred_buyer(rate="20")
    lt = LicenseTypeFactory(item=item, amount=2500)
    # A purchase whose answer from Stripe was lost: the licence is still pending when the
    # dispute's events arrive, before payment_intent.succeeded.
    license = LicenseFactory(
        license_type=lt, holder=buyer, status=License.Status.PENDING, issued_at=None
    )
    intent = stripe.PaymentIntent.create(
        amount=2500,
        currency="usd",
        customer=customer_id(buyer),
        payment_method="pm_card_createDispute",
        payment_method_types=["card"],
        confirm=True,
        metadata={"content_license": str(license.pk)},
    )
    License.objects.filter(pk=license.pk).update(stripe_payment_intent_id=intent.id)
    events = inbox.new()
    disputes = [e for e in events if e["type"].startswith("charge.dispute")]
    assert disputes

    inbox.deliver(disputes)
    inbox.deliver([e for e in events if e not in disputes])

    license.refresh_from_db()
    assert license.status == License.Status.SUSPENDED
    assert Transaction.objects.filter(source=SALE_SOURCE).count() == 1
    assert Commission.objects.get().status == Commission.Status.REVERSED
    assert (balance(CLEARING), balance(REVENUE), affiliate_owed(affiliate)) == (0, 0, 0)
    assert creators_owed(creators) == [0, 0, 0]
    books_balance()


# --- failed and canceled payments free the licence -------------------------------------------


def test_a_failed_payment_frees_an_exclusive_item_for_the_next_buyer(stripe_fake, inbox):
    exclusive = LicenseTypeFactory(kind=LicenseType.Kind.EXCLUSIVE, amount=50000)
    item = exclusive.item
    first = buy(UserFactory(password=None), item, exclusive, three_d_secure_card())
    assert first.status == License.Status.PENDING
    inbox.deliver_new()
    data = {"license_type": exclusive.pk, "payment_method": "pm_card_visa"}
    taken = client_for(UserFactory(password=None)).post(buy_url(item), data, "json")
    assert taken.status_code == 409

    stripe_fake.authenticate(first.stripe_payment_intent_id, success=False)
    events = inbox.deliver_new()
    assert "payment_intent.payment_failed" in {e["type"] for e in events}
    assert not License.objects.filter(pk=first.pk).exists()
    inbox.deliver(events)  # redelivered: nothing to drop, no error

    ok = client_for(UserFactory(password=None)).post(buy_url(item), data, "json")
    assert ok.status_code == 201 and ok.json()["status"] == "active"
    assert not Commission.objects.exists()


def test_a_canceled_payment_frees_an_exclusive_item(stripe_fake, inbox):
    exclusive = LicenseTypeFactory(kind=LicenseType.Kind.EXCLUSIVE, amount=50000)
    pending = buy(UserFactory(password=None), exclusive.item, exclusive, three_d_secure_card())
    stripe.PaymentIntent.cancel(pending.stripe_payment_intent_id, cancellation_reason="abandoned")
    events = inbox.deliver_new()
    assert "payment_intent.canceled" in {e["type"] for e in events}
    assert not License.objects.filter(pk=pending.pk).exists()
    assert buy(UserFactory(password=None), exclusive.item, exclusive).status == "active"


@pytest.mark.parametrize("order", ["success_first", "failure_first"])
def test_an_older_failure_never_undoes_a_later_success(stripe_fake, inbox, order):
    item, creators = three_creator_item()
    buyer, affiliate = referred_buyer(rate="20")
    lt = LicenseTypeFactory(item=item, kind=LicenseType.Kind.EXCLUSIVE, amount=999)
    license = buy(buyer, item, lt, three_d_secure_card())
    inbox.deliver_new()
    stripe_fake.authenticate(license.stripe_payment_intent_id, success=False)
    failed = inbox.new()
    # The buyer's browser retries with another card, which succeeds.
    stripe.PaymentIntent.confirm(license.stripe_payment_intent_id, payment_method="pm_card_visa")
    succeeded = inbox.new()
    assert [e["type"] for e in failed if e["type"].startswith("payment_intent")] == [
        "payment_intent.payment_failed"
    ]
    assert "payment_intent.succeeded" in {e["type"] for e in succeeded}

    if order == "success_first":
        inbox.deliver(succeeded + failed)
    else:
        inbox.deliver(failed + succeeded)

    license.refresh_from_db()
    assert license.status == License.Status.ACTIVE
    assert Transaction.objects.filter(source=SALE_SOURCE).count() == 1
    assert affiliate_owed(affiliate) == 200
    assert creators_owed(creators) == [213, 213, 213]
    assert not stripe.Refund.list(payment_intent=license.stripe_payment_intent_id).data


def test_a_failure_event_for_a_licence_already_issued_changes_nothing(stripe_fake):
    license = LicenseFactory(issued_at=timezone.now(), stripe_payment_intent_id="pi_x")
    stale = timezone.now() - timedelta(minutes=5)
    payload = {"id": "pi_x", "metadata": {"content_license": str(license.pk)}}
    assert license_payment_failed(payment_intent=payload, occurred_at=stale) is False
    assert License.objects.filter(pk=license.pk, status=License.Status.ACTIVE).exists()
    assert not djm.Event.objects.exists()
