"""Balance transactions on the fake Stripe: card fees, refunds, dispute withdrawals and fees."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from djstripe import models as djm

from devstripe.balance import card_fee
from tests.stripe_paths import invoice_charge_id
from tests.subscriptions.effects_helpers import (
    EventFeed,
    key,
    make_customer,
    make_price,
    subscribe,
)

pytestmark = pytest.mark.django_db


def _raw(obj: Any) -> dict[str, Any]:
    # Raw JSON: the library turns some amounts into Decimal.
    return obj.last_response.data


def _paid_charge(*, unit_amount: int, card: str = "pm_card_visa") -> str:
    customer, pm = make_customer(card=card)
    sub = subscribe(customer, pm, make_price(unit_amount=unit_amount))
    return invoice_charge_id(sub.latest_invoice)


@pytest.mark.parametrize(
    ("amount", "fee"),
    [(2500, 103), (1000, 59), (4200, 152), (50, 31), (1724, 80), (1, 30), (100_000, 2930)],
)
def test_card_fee_is_2_9_percent_rounded_half_up_plus_30(amount, fee):
    # 1724 * 2.9 % = 49.996 -> 50; 50 * 2.9 % = 1.45 -> 1; 1 * 2.9 % = 0.029 -> 0.
    assert card_fee(amount) == fee


def test_a_card_charge_carries_stripes_fee(stripe_fake):
    charge_id = _paid_charge(unit_amount=2500)
    charge = _raw(stripe.Charge.retrieve(charge_id))

    txn = _raw(stripe.BalanceTransaction.retrieve(charge["balance_transaction"]))
    assert txn["id"].startswith("txn_")
    assert (txn["source"], txn["type"], txn["reporting_category"]) == (
        charge_id,
        "charge",
        "charge",
    )
    assert (txn["amount"], txn["fee"], txn["net"], txn["currency"]) == (2500, 103, 2397, "usd")
    assert txn["fee_details"] == [
        {
            "amount": 103,
            "application": None,
            "currency": "usd",
            "description": "Stripe processing fees",
            "type": "stripe_fee",
        }
    ]
    # Card funds become available two days later.
    assert txn["available_on"] == txn["created"] + 2 * 86400
    assert txn["status"] == "pending"


def test_a_refund_returns_no_fee(stripe_fake):
    charge_id = _paid_charge(unit_amount=2500)
    refund = stripe.Refund.create(charge=charge_id, amount=1000, idempotency_key=key("re"))

    txn = _raw(stripe.BalanceTransaction.retrieve(refund.balance_transaction))
    assert (txn["source"], txn["type"], txn["reporting_category"]) == (
        refund.id,
        "refund",
        "refund",
    )
    assert (txn["amount"], txn["fee"], txn["net"], txn["fee_details"]) == (-1000, 0, -1000, [])
    assert txn["status"] == "available"


def _dispute(charge_id: str) -> dict[str, Any]:
    [dispute] = stripe.Dispute.list(charge=charge_id)["data"]
    return _raw(stripe.Dispute.retrieve(dispute.id))


def test_a_dispute_withdraws_the_amount_and_the_dispute_fee(stripe_fake):
    charge_id = _paid_charge(unit_amount=4200, card="pm_card_createDispute")
    dispute = _dispute(charge_id)

    [withdrawal] = dispute["balance_transactions"]
    assert withdrawal["id"].startswith("txn_")
    assert (withdrawal["source"], withdrawal["type"]) == (dispute["id"], "adjustment")
    assert withdrawal["reporting_category"] == "dispute"
    assert (withdrawal["amount"], withdrawal["fee"], withdrawal["net"]) == (-4200, 1500, -5700)
    assert withdrawal["fee_details"] == [
        {
            "amount": 1500,
            "application": None,
            "currency": "usd",
            "description": "Dispute fee",
            "type": "stripe_fee",
        }
    ]
    assert _raw(stripe.BalanceTransaction.retrieve(withdrawal["id"])) == withdrawal
    # The created event carries the withdrawal (Stripe withdraws when the dispute opens).
    [event] = stripe.Event.list(type="charge.dispute.created").last_response.data["data"]
    assert event["data"]["object"]["balance_transactions"] == [withdrawal]


def test_a_won_dispute_reinstates_the_amount_and_the_fee(stripe_fake):
    charge_id = _paid_charge(unit_amount=4200, card="pm_card_createDispute")
    dispute_id = _dispute(charge_id)["id"]
    stripe.Dispute.modify(dispute_id, evidence={"uncategorized_text": "winning_evidence"})

    withdrawal, reinstatement = _dispute(charge_id)["balance_transactions"]
    assert withdrawal["net"] == -5700
    assert reinstatement["reporting_category"] == "dispute_reversal"
    assert (reinstatement["source"], reinstatement["type"]) == (dispute_id, "adjustment")
    assert (reinstatement["amount"], reinstatement["fee"], reinstatement["net"]) == (
        4200,
        -1500,
        5700,
    )
    assert reinstatement["fee_details"][0]["amount"] == -1500
    events = stripe.Event.list(limit=100).last_response.data["data"]
    for type_ in ("charge.dispute.funds_reinstated", "charge.dispute.closed"):
        [event] = [e for e in events if e["type"] == type_]
        assert event["data"]["object"]["balance_transactions"] == [withdrawal, reinstatement]


@pytest.mark.parametrize("how", ["losing_evidence", "accepted"])
def test_a_lost_dispute_reinstates_nothing(stripe_fake, how):
    charge_id = _paid_charge(unit_amount=4200, card="pm_card_createDispute")
    dispute_id = _dispute(charge_id)["id"]
    if how == "accepted":
        stripe.Dispute.close(dispute_id)
    else:
        stripe.Dispute.modify(dispute_id, evidence={"uncategorized_text": how})

    [withdrawal] = _dispute(charge_id)["balance_transactions"]
    assert withdrawal["net"] == -5700


def _ids(page: Any) -> list[str]:
    return [t["id"] for t in _raw(page)["data"]]


def test_list_filters_by_source_and_type_newest_first_and_pages(stripe_fake):
    charge_id = _paid_charge(unit_amount=4200, card="pm_card_createDispute")
    charge_txn = stripe.Charge.retrieve(charge_id).balance_transaction
    dispute = _dispute(charge_id)
    stripe.Dispute.modify(dispute["id"], evidence={"uncategorized_text": "winning_evidence"})
    refunds = [
        stripe.Refund.create(charge=charge_id, amount=100, idempotency_key=key("re"))
        for _ in range(2)
    ]
    withdrawal, reinstatement = (t["id"] for t in _dispute(charge_id)["balance_transactions"])
    refund_txns = [r.balance_transaction for r in refunds]

    everything = [*refund_txns[::-1], reinstatement, withdrawal, charge_txn]
    assert _ids(stripe.BalanceTransaction.list(limit=100)) == everything
    assert _ids(stripe.BalanceTransaction.list(source=charge_id)) == [charge_txn]
    assert _ids(stripe.BalanceTransaction.list(source=dispute["id"])) == [reinstatement, withdrawal]
    assert _ids(stripe.BalanceTransaction.list(source=refunds[0].id)) == [refund_txns[0]]
    assert _ids(stripe.BalanceTransaction.list(type="refund")) == refund_txns[::-1]
    assert _ids(stripe.BalanceTransaction.list(type="adjustment")) == [reinstatement, withdrawal]
    assert _ids(stripe.BalanceTransaction.list(type="payout")) == []

    first = stripe.BalanceTransaction.list(limit=2)
    assert (_ids(first), first.has_more) == (everything[:2], True)
    paged = [t.id for t in stripe.BalanceTransaction.list(limit=2).auto_paging_iter()]
    assert paged == everything


def test_unknown_list_parameters_and_ids_are_refused(stripe_fake):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.BalanceTransaction.list(payout_status="paid")
    assert exc.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.BalanceTransaction.retrieve("txn_missing")
    assert exc.value.http_status == 404


def test_dj_stripe_syncs_the_dispute_balance_transactions(stripe_fake):
    charge_id = _paid_charge(unit_amount=4200, card="pm_card_createDispute")
    dispute_id = _dispute(charge_id)["id"]
    stripe.Dispute.modify(dispute_id, evidence={"uncategorized_text": "winning_evidence"})

    djm.Dispute.sync_from_stripe_data(
        stripe.Dispute.retrieve(dispute_id), api_key=stripe_fake.api_key
    )
    synced = djm.BalanceTransaction.objects.filter(source=dispute_id).order_by("amount")
    assert [(t.type, t.amount, t.fee, t.net) for t in synced] == [
        ("adjustment", -4200, 1500, -5700),
        ("adjustment", 4200, -1500, 5700),
    ]


def _balance() -> tuple[dict[str, int], dict[str, int]]:
    raw = _raw(stripe.Balance.retrieve())
    assert raw["object"] == "balance"
    for part in raw["available"] + raw["pending"]:
        assert part["source_types"] == {"card": part["amount"]}
    return (
        {a["currency"]: a["amount"] for a in raw["available"]},
        {p["currency"]: p["amount"] for p in raw["pending"]},
    )


def test_the_balance_adds_up_the_balance_transactions(stripe_fake):
    feed = EventFeed()
    feed.new_events()
    assert _balance() == ({"usd": 0}, {"usd": 0})
    [told] = feed.new_events()
    assert (told["type"], told["data"]["object"]["available"][0]["amount"]) == (
        "balance.available",
        0,
    )

    customer = stripe.Customer.create(email="balance@example.com", idempotency_key=key("cus"))
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    stripe.PaymentIntent.create(
        amount=2500, currency="usd", customer=customer.id, payment_method=pm.id, confirm=True,
        idempotency_key=key("pi"),
    )  # fmt: skip
    # The charge's net is pending for two days: nothing new is available, nothing is told.
    assert _balance() == ({"usd": 0}, {"usd": 2500 - 103})
    assert [e["type"] for e in feed.new_events() if e["type"].startswith("balance")] == []

    stripe.Payout.create(amount=700, currency="eur", status="failed")  # out and back
    stripe.Payout.create(amount=400, currency="usd", status="paid")
    assert _balance() == ({"eur": 0, "usd": -400}, {"usd": 2500 - 103})
    [told] = [e for e in feed.new_events() if e["type"] == "balance.available"]
    assert told["data"]["object"]["available"] == [
        {"amount": 0, "currency": "eur", "source_types": {"card": 0}},
        {"amount": -400, "currency": "usd", "source_types": {"card": -400}},
    ]
