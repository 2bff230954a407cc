"""Responding to disputes on the fake Stripe, as in Stripe's test mode: evidence and closing."""

from __future__ import annotations

import pytest
import stripe
from djstripe import models as djm

from tests.stripe_paths import invoice_charge_id
from tests.subscriptions.effects_helpers import EventFeed, make_customer, make_price, subscribe

pytestmark = pytest.mark.django_db


@pytest.fixture
def dispute(stripe_fake):
    customer, pm = make_customer(card="pm_card_createDispute")
    sub = subscribe(customer, pm, make_price(unit_amount=4200))
    charge_id = invoice_charge_id(sub.latest_invoice)
    [data] = stripe.Dispute.list(charge=charge_id)["data"]
    feed = EventFeed()
    feed.new_events()  # the subscription's and the dispute's opening events
    return data.id, feed


def _dispute_events(feed: EventFeed) -> list[tuple[str, str]]:
    return [
        (e["type"], e["data"]["object"]["status"])
        for e in feed.new_events()
        if e["type"].startswith("charge.dispute.")
    ]


def test_winning_evidence_wins_the_dispute(dispute):
    dispute_id, feed = dispute

    won = stripe.Dispute.modify(dispute_id, evidence={"uncategorized_text": "winning_evidence"})

    assert won.status == "won"
    assert won.evidence["uncategorized_text"] == "winning_evidence"
    assert won.evidence_details["has_evidence"] is True
    assert won.evidence_details["submission_count"] == 1
    assert stripe.Dispute.retrieve(dispute_id).status == "won"
    assert _dispute_events(feed) == [
        ("charge.dispute.updated", "under_review"),
        ("charge.dispute.funds_reinstated", "won"),
        ("charge.dispute.closed", "won"),
    ]


def test_losing_evidence_loses_the_dispute(dispute):
    dispute_id, feed = dispute

    lost = stripe.Dispute.modify(dispute_id, evidence={"uncategorized_text": "losing_evidence"})

    assert lost.status == "lost"
    assert _dispute_events(feed) == [
        ("charge.dispute.updated", "under_review"),
        ("charge.dispute.closed", "lost"),
    ]


def test_closing_accepts_the_dispute_as_lost(dispute):
    dispute_id, feed = dispute

    closed = stripe.Dispute.close(dispute_id)

    assert closed.status == "lost"
    assert _dispute_events(feed) == [("charge.dispute.closed", "lost")]


def test_other_evidence_is_stored_and_under_review(dispute):
    dispute_id, feed = dispute

    staged = stripe.Dispute.modify(
        dispute_id, evidence={"product_description": "Team plan"}, submit=False
    )
    assert (staged.status, staged.evidence["product_description"]) == (
        "needs_response",
        "Team plan",
    )
    assert staged.evidence_details["submission_count"] == 0

    submitted = stripe.Dispute.modify(
        dispute_id, evidence={"uncategorized_text": "the customer used it"}
    )
    assert submitted.status == "under_review"
    assert submitted.evidence["product_description"] == "Team plan"
    assert submitted.evidence_details["submission_count"] == 1
    assert _dispute_events(feed) == [
        ("charge.dispute.updated", "needs_response"),
        ("charge.dispute.updated", "under_review"),
    ]


def test_a_closed_dispute_refuses_evidence_and_closing_but_takes_metadata(dispute):
    dispute_id, _feed = dispute
    stripe.Dispute.close(dispute_id)

    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Dispute.modify(dispute_id, evidence={"uncategorized_text": "winning_evidence"})
    assert exc.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Dispute.close(dispute_id)

    tagged = stripe.Dispute.modify(dispute_id, metadata={"case": "42"})
    assert (tagged.status, tagged.metadata["case"]) == ("lost", "42")


def test_unknown_evidence_fields_are_refused(dispute):
    dispute_id, _feed = dispute
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Dispute.modify(dispute_id, evidence={"favourite_colour": "blue"})
    assert exc.value.http_status == 400
    assert stripe.Dispute.retrieve(dispute_id).status == "needs_response"


def test_dj_stripe_processes_the_closing_events(dispute):
    dispute_id, feed = dispute
    stripe.Dispute.modify(dispute_id, evidence={"uncategorized_text": "winning_evidence"})

    for event in feed.new_events():
        djm.Event.process(event)

    assert djm.Dispute.objects.get(id=dispute_id).status == "won"
