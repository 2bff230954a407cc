# ruff: noqa: F811  (pytest fixtures imported from api_helpers are parameters here)
"""Customer billing API against the fake Stripe, through the real stripe client and dj-stripe."""

from __future__ import annotations

import stripe
from djstripe import models as djm
from rest_framework.test import APIClient

from subscriptions.models import BillingCustomer
from tests.stripe_harness import three_d_secure_card
from tests.subscriptions.api_helpers import (  # noqa: F401 (fixtures)
    _clear_throttles,
    alice,
    bob,
    catalog,
    client_for,
    error_of,
)
from tests.subscriptions.effects_helpers import EventFeed

SUBS = "/api/v1/subscriptions/"


def _subscribe(user, price, **extra):
    body = {"price": price.stripe_price_id, "payment_method": "pm_card_visa", **extra}
    return client_for(user).post(SUBS, body, format="json")


def test_plans_are_public_with_prices_tiers_and_entitlements(
    catalog, django_assert_max_num_queries
):
    with django_assert_max_num_queries(2):
        response = APIClient().get("/api/v1/plans/")

    assert response.status_code == 200
    plans = {p["slug"]: p for p in response.json()}
    assert list(plans) == ["basic", "team"]
    team = plans["team"]
    assert team["entitlements"] == {
        "seats": 20,
        "api_calls_per_month": None,
        "features": {"sso": True, "audit_log": True},
    }
    (price,) = team["prices"]
    assert price["id"] == catalog["team"].stripe_price_id
    assert price["billing_scheme"] == "tiered" and price["tiers_mode"] == "graduated"
    assert price["tiers"] == [
        {"up_to": 5, "unit_amount": 1500, "flat_amount": 0},
        {"up_to": None, "unit_amount": 1000, "flat_amount": 0},
    ]
    assert price["trial_days"] == 14 and price["interval"] == "month"
    basic = plans["basic"]["prices"]
    assert {(p["interval"], p["unit_amount"], p["tiers_mode"]) for p in basic} == {
        ("month", 1000, None),
        ("year", 10_000, None),
    }


def test_plans_list_query_count_does_not_grow_with_the_catalog(
    catalog, django_assert_max_num_queries
):
    from tests.subscriptions.factories import PlanPriceFactory

    for _ in range(5):
        PlanPriceFactory(stripe_price_id=f"price_fake_{_}")
    with django_assert_max_num_queries(2):
        response = APIClient().get("/api/v1/plans/")
    assert len(response.json()) == 7


def test_archived_plans_are_hidden(catalog):
    from subscriptions.services.catalog import plan_archive

    plan_archive(plan=catalog["basic"].plan)
    slugs = [p["slug"] for p in APIClient().get("/api/v1/plans/").json()]
    assert slugs == ["team"]


def test_subscribe_creates_customer_subscription_and_mirror_rows(catalog, alice):
    response = _subscribe(alice, catalog["basic"], quantity=3, referral_code="FRIEND10")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "active"
    assert body["price"] == catalog["basic"].stripe_price_id
    assert body["quantity"] == 3
    assert body["cancel_at_period_end"] is False and body["trial_end"] is None
    assert body["current_period_end"]
    mirrored = djm.Subscription.objects.get(id=body["id"])
    assert mirrored.customer.subscriber == alice
    assert BillingCustomer.objects.get(user=alice).stripe_customer_id == mirrored.customer.id
    remote = stripe.Subscription.retrieve(body["id"])
    assert remote.metadata["referral_code"] == "FRIEND10"
    assert stripe.Customer.retrieve(mirrored.customer.id).metadata["referral_code"] == "FRIEND10"
    invoice = djm.Invoice.objects.get(
        stripe_data__parent__subscription_details__subscription=mirrored.id
    )
    assert invoice.stripe_data["amount_paid"] == 3000


def test_second_subscribe_reuses_the_stripe_customer(catalog, alice):
    assert _subscribe(alice, catalog["basic"]).status_code == 201
    assert _subscribe(alice, catalog["team"], quantity=2).status_code == 201
    assert len(stripe.Customer.list(email=alice.email).data) == 1
    assert djm.Customer.objects.filter(subscriber=alice).count() == 1
    assert djm.Subscription.objects.filter(customer__subscriber=alice).count() == 2


def test_price_trial_days_and_override(catalog, alice):
    trial = _subscribe(alice, catalog["team"]).json()
    assert trial["status"] == "trialing" and trial["trial_end"]
    none = _subscribe(alice, catalog["team"], trial_days=0).json()
    assert none["status"] == "active"


def test_declined_card_is_402_with_the_decline_code_and_leaves_no_subscription(catalog, alice):
    response = _subscribe(alice, catalog["basic"], payment_method="pm_card_chargeCustomerFail")

    error = error_of(response, 402, "card_declined")
    assert error["decline_code"] == "generic_decline"  # what Stripe gives for this card
    assert error["fields"] == {}
    assert not djm.Subscription.objects.filter(customer__subscriber=alice).exists()


def test_a_card_that_needs_3d_secure_subscribes_incomplete_until_the_customer_confirms(
    catalog, alice, stripe_fake
):
    card = three_d_secure_card()
    response = _subscribe(alice, catalog["basic"], payment_method=card)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "incomplete"
    remote = stripe.Subscription.retrieve(body["id"], expand=["latest_invoice.confirmation_secret"])
    secret = remote.latest_invoice.confirmation_secret.client_secret
    assert body["payment"]["client_secret"] == secret
    assert secret.startswith(body["payment"]["payment_intent"] + "_secret_")
    assert client_for(alice).get("/api/v1/entitlements/").json()["plans"] == []

    feed = EventFeed()
    feed.process_new()
    # What Stripe.js does with the answer: confirm the first invoice's payment with the card,
    # then the 3-D Secure step.
    stripe.PaymentIntent.confirm(body["payment"]["payment_intent"], payment_method=card)
    stripe_fake.authenticate(
        body["payment"]["payment_intent"], client_secret=body["payment"]["client_secret"]
    )
    feed.process_new()

    assert stripe.Subscription.retrieve(body["id"]).status == "active"
    assert djm.Subscription.objects.get(id=body["id"]).stripe_data["status"] == "active"
    assert client_for(alice).get("/api/v1/entitlements/").json()["plans"] == ["basic"]


def test_stripe_failing_after_the_subscription_exists_still_answers_201_with_the_secret(
    catalog, alice, stripe_fake
):
    """The subscription exists once Stripe created it: an error now would have the customer
    retry and subscribe twice. The status is unknown, the secret is all the browser needs."""
    card = three_d_secure_card()
    stripe_fake.fail_next("GET", "/v1/payment_intents/*", status=503, count=10)

    response = _subscribe(alice, catalog["basic"], payment_method=card)

    assert response.status_code == 201, response.content
    payment = response.json()["payment"]
    assert payment["status"] == ""
    assert payment["client_secret"].startswith(payment["payment_intent"] + "_secret_")


def test_a_subscription_charged_at_once_has_no_payment_step(catalog, alice):
    body = _subscribe(alice, catalog["basic"]).json()
    assert body["status"] == "active" and body["payment"] is None


def test_bad_input_is_400_naming_the_field(catalog, alice):
    client = client_for(alice)
    missing = client.post(SUBS, {"price": catalog["basic"].stripe_price_id}, format="json")
    assert "payment_method" in error_of(missing, 400, "validation_error")["fields"]
    zero = _subscribe(alice, catalog["basic"], quantity=0)
    assert "quantity" in error_of(zero, 400)["fields"]
    bad_pm = _subscribe(alice, catalog["basic"], payment_method="pm_does_not_exist")
    assert "payment_method" in error_of(bad_pm, 400)["fields"]


def test_unknown_or_inactive_price_is_400_naming_price(catalog, alice):
    from subscriptions.services.catalog import plan_archive

    unknown = client_for(alice).post(
        SUBS, {"price": "price_nope", "payment_method": "pm_card_visa"}, format="json"
    )
    assert "price" in error_of(unknown, 400, "validation_error")["fields"]
    plan_archive(plan=catalog["basic"].plan)
    archived = _subscribe(alice, catalog["basic"])
    assert "price" in error_of(archived, 400)["fields"]


def test_anonymous_cannot_subscribe(catalog):
    response = APIClient().post(SUBS, {}, format="json")
    error_of(response, 401)


def test_change_quantity_and_price(catalog, alice):
    sub_id = _subscribe(alice, catalog["basic"]).json()["id"]
    client = client_for(alice)

    more = client.post(f"{SUBS}{sub_id}/change", {"quantity": 4}, format="json")
    assert more.status_code == 200, more.content
    assert more.json()["quantity"] == 4

    upgrade = client.post(
        f"{SUBS}{sub_id}/change",
        {"price": catalog["team"].stripe_price_id, "proration_behavior": "always_invoice"},
        format="json",
    )
    assert upgrade.status_code == 200, upgrade.content
    assert upgrade.json()["price"] == catalog["team"].stripe_price_id
    assert upgrade.json()["quantity"] == 4
    remote = stripe.Subscription.retrieve(sub_id)
    assert remote["items"].data[0].price.id == catalog["team"].stripe_price_id
    mirrored = djm.Subscription.objects.get(id=sub_id)
    assert (
        mirrored.stripe_data["items"]["data"][0]["price"]["id"] == catalog["team"].stripe_price_id
    )


def test_change_needs_something_to_change_and_a_valid_proration(catalog, alice):
    sub_id = _subscribe(alice, catalog["basic"]).json()["id"]
    client = client_for(alice)
    error_of(client.post(f"{SUBS}{sub_id}/change", {}, format="json"), 400)
    bad = client.post(
        f"{SUBS}{sub_id}/change", {"quantity": 2, "proration_behavior": "sometimes"}, format="json"
    )
    assert "proration_behavior" in error_of(bad, 400)["fields"]


def test_cancel_at_period_end_then_resume(catalog, alice):
    sub_id = _subscribe(alice, catalog["basic"]).json()["id"]
    client = client_for(alice)

    pending = client.post(f"{SUBS}{sub_id}/cancel", {"at_period_end": True}, format="json")
    assert pending.status_code == 200
    assert pending.json()["status"] == "active" and pending.json()["cancel_at_period_end"] is True
    assert stripe.Subscription.retrieve(sub_id).cancel_at_period_end is True

    resumed = client.post(f"{SUBS}{sub_id}/resume")
    assert resumed.status_code == 200
    assert resumed.json()["cancel_at_period_end"] is False
    assert djm.Subscription.objects.get(id=sub_id).cancel_at_period_end is False
    # Nothing left to resume.
    error_of(client.post(f"{SUBS}{sub_id}/resume"), 409, "conflict")


def test_cancel_immediately(catalog, alice):
    sub_id = _subscribe(alice, catalog["basic"]).json()["id"]
    client = client_for(alice)

    response = client.post(f"{SUBS}{sub_id}/cancel", {"at_period_end": False}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert stripe.Subscription.retrieve(sub_id).status == "canceled"
    assert djm.Subscription.objects.get(id=sub_id).status == "canceled"
    error_of(client.post(f"{SUBS}{sub_id}/cancel", {"at_period_end": False}), 409)
    error_of(client.post(f"{SUBS}{sub_id}/change", {"quantity": 2}), 409)


def test_customers_only_see_their_own_subscriptions_and_invoices(
    catalog, alice, bob, django_assert_max_num_queries
):
    alices = _subscribe(alice, catalog["basic"]).json()["id"]
    bobs = _subscribe(bob, catalog["team"], trial_days=0).json()["id"]
    as_alice = client_for(alice)

    with django_assert_max_num_queries(4):
        listed = as_alice.get(SUBS)
    assert [s["id"] for s in listed.json()["results"]] == [alices]
    error_of(as_alice.get(f"{SUBS}{bobs}/"), 404, "not_found")
    for action, body in [("change", {"quantity": 9}), ("cancel", {}), ("resume", {})]:
        error_of(as_alice.post(f"{SUBS}{bobs}/{action}", body, format="json"), 404)
    assert stripe.Subscription.retrieve(bobs).status == "active"
    assert stripe.Subscription.retrieve(bobs)["items"].data[0].quantity == 1

    with django_assert_max_num_queries(4):
        invoices = as_alice.get("/api/v1/invoices/")
    assert invoices.status_code == 200
    rows = invoices.json()["results"]
    assert len(rows) == 1
    assert rows[0]["amount_paid"] == 1000 and rows[0]["currency"] == "usd"
    assert rows[0]["status"] == "paid"
    bob_invoice_ids = set(
        djm.Invoice.objects.filter(customer__subscriber=bob).values_list("id", flat=True)
    )
    assert bob_invoice_ids and not bob_invoice_ids & {r["id"] for r in rows}

    detail = as_alice.get(f"{SUBS}{alices}/")
    assert detail.status_code == 200 and detail.json()["id"] == alices


def test_entitlements_take_the_best_of_current_plans(catalog, alice, bob):
    client = client_for(alice)
    assert client.get("/api/v1/entitlements/").json() == {
        "seats": 0,
        "api_calls_per_month": 0,
        "features": {},
        "plans": [],
    }
    _subscribe(alice, catalog["basic"])
    assert client.get("/api/v1/entitlements/").json() == {
        "seats": 5,
        "api_calls_per_month": 10_000,
        "features": {"sso": False},
        "plans": ["basic"],
    }
    team_id = _subscribe(alice, catalog["team"]).json()["id"]  # trialing counts
    assert client.get("/api/v1/entitlements/").json() == {
        "seats": 20,
        "api_calls_per_month": None,
        "features": {"sso": True, "audit_log": True},
        "plans": ["basic", "team"],
    }
    client.post(f"{SUBS}{team_id}/cancel", {"at_period_end": False}, format="json")
    assert client.get("/api/v1/entitlements/").json()["plans"] == ["basic"]
    # Bob's plans are not Alice's.
    assert client_for(bob).get("/api/v1/entitlements/").json()["plans"] == []
