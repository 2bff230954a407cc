"""The conformance checker itself: it must catch what it is there to catch."""

from __future__ import annotations

import copy

import pytest

from tests.devstripe.conformance import violations


@pytest.fixture
def refund() -> dict:
    """A refund as Stripe sends it at the pinned version (every non-nullable field present)."""
    return {
        "id": "re_1", "object": "refund", "amount": 500, "balance_transaction": "txn_1",
        "charge": "ch_1", "created": 1_700_000_000, "currency": "usd", "metadata": {},
        "payment_intent": "pi_1", "reason": None, "receipt_number": None,
        "source_transfer_reversal": None, "status": "succeeded", "transfer_reversal": None,
    }  # fmt: skip


def test_a_conforming_object_has_no_violations(refund):
    assert violations(refund) == []


def test_a_field_removed_from_the_api_version_is_reported(refund):
    refund["date"] = 1_700_000_000  # Refund.date is gone at this version
    assert violations(refund) == ["refund.date: not a field of Refund at this API version"]


def test_a_required_field_left_out_is_reported(refund):
    del refund["amount"]
    assert violations(refund) == ["refund.amount: missing (always sent by Stripe)"]


def test_types_nulls_and_closed_enums_are_checked(refund):
    bad = copy.deepcopy(refund)
    bad["amount"] = "500"
    bad["currency"] = None
    problems = violations(bad)
    assert "refund.amount: expected an integer, got '500'" in problems
    assert "refund.currency: null, but the field is not nullable" in problems
    # A closed enum: Event.type lists every event type of this version.
    event = {"object": "event", "type": "invoice.teleported"}
    assert any(
        p.startswith("event.type: 'invoice.teleported' is not one of") for p in violations(event)
    )


def test_an_expandable_field_is_an_id_or_the_object_it_names(refund):
    refund["charge"] = {"id": "ch_1", "object": "charge", "amount": "x"}
    problems = violations(refund)
    assert any(p.startswith("refund.charge.amount: expected an integer") for p in problems)
    refund["charge"] = 42
    assert violations(refund)


def test_a_deletion_reply_needs_only_its_id(refund):
    assert violations({"id": "prod_1", "object": "product", "deleted": True}) == []


def test_an_unknown_object_type_is_reported():
    assert violations({"object": "made_up_thing"}) == [
        "made_up_thing: unknown object type 'made_up_thing'"
    ]
