# ruff: noqa: F811  (pytest fixtures imported from api_helpers are parameters here)
"""A catalog that starts in Stripe: Products and Prices made with the stripe client (as a
finance team would in the dashboard) become plans and prices, through `stripe_catalog sync`
and through the product.* / price.* webhooks (signed events posted to our inbox), and can be
subscribed to through the API at once; the paid invoice reaches the ledger.
"""

from __future__ import annotations

import copy
import io
import time
import uuid
from typing import Any

import pytest
import stripe
from django.core.management import call_command
from djstripe import models as djm

from ledger.models import Transaction
from subscriptions.models import Plan, PlanPrice, WebhookEvent
from subscriptions.services.catalog import plan_push_to_stripe
from subscriptions.services.catalog_pull import stripe_catalog_sync
from subscriptions.services.invoice_postings import invoice_paid_key
from tests.stripe_harness import make_webhook_endpoint, post_signed_event
from tests.subscriptions.api_helpers import (  # noqa: F401 (fixtures)
    _clear_throttles,
    alice,
    bob,
    client_for,
    error_of,
)
from tests.subscriptions.factories import PlanFactory, PlanPriceFactory

SUBS = "/api/v1/subscriptions/"
PLANS = "/api/v1/plans/"


@pytest.fixture(autouse=True)
def _eager(celery_eager: None) -> None:
    """The inbox processes in-process, on commit."""


class Inbox:
    """Posts the fake's new events, signed, to our webhook inbox, oldest first."""

    def __init__(self, client: Any, capture: Any) -> None:
        self.client = client
        self.capture = capture
        self.endpoint = make_webhook_endpoint()
        self.seen: set[str] = set()

    def skip_existing(self) -> None:
        self.seen.update(e["id"] for e in self._events())

    def _events(self) -> list[dict[str, Any]]:
        listing = stripe.Event.list(limit=100)
        events = [event.to_dict(for_json=True) for event in listing.auto_paging_iter()]
        return sorted(events, key=lambda e: e["created"])

    def post(self, event: dict[str, Any]) -> None:
        with self.capture(execute=True):
            response = post_signed_event(self.client, self.endpoint, event)
        assert response.status_code == 200, response.content
        row = WebhookEvent.objects.get(stripe_event_id=event["id"])
        assert row.status == WebhookEvent.Status.SUCCEEDED, row.last_error

    def deliver_new(self) -> list[str]:
        fresh = [e for e in self._events() if e["id"] not in self.seen]
        for event in fresh:
            self.seen.add(event["id"])
            self.post(event)
        return [e["type"] for e in fresh]

    def deliver_deleted(self, template_type: str, obj: dict[str, Any]) -> None:
        """A `<object>.deleted` event as Stripe sends it (the fake cannot delete prices and
        sends no product.deleted), built from one of the fake's events of the same object."""
        template = next(e for e in self._events() if e["type"] == template_type)
        event = copy.deepcopy(template)
        event.update(
            id=f"evt_test_{uuid.uuid4().hex[:20]}",
            type=f"{obj['object']}.deleted",
            created=int(time.time()),
            data={"object": obj},
        )
        self.post(event)


@pytest.fixture
def inbox(client, django_capture_on_commit_callbacks) -> Inbox:
    return Inbox(client, django_capture_on_commit_callbacks)


def _dashboard_catalog() -> dict[str, Any]:
    """Pro: a monthly per-unit price, a yearly volume-tiered one, a one-time setup fee."""
    product = stripe.Product.create(
        name="Pro",
        description="For growing teams.",
        metadata={
            "seats": "10",
            "api_calls_per_month": "50000",
            "features": "sso, audit_log",
            "tier_rank": "3",
        },
    )
    monthly = stripe.Price.create(
        product=product.id,
        currency="usd",
        unit_amount=1200,
        recurring={"interval": "month"},
        lookup_key="pro-monthly",
        nickname="Pro monthly",
    )
    yearly = stripe.Price.create(
        product=product.id,
        currency="usd",
        billing_scheme="tiered",
        tiers_mode="volume",
        tiers=[{"up_to": 5, "unit_amount": 9000}, {"up_to": "inf", "unit_amount": 8000}],
        recurring={"interval": "year", "trial_period_days": 7},
    )
    setup = stripe.Price.create(product=product.id, currency="usd", unit_amount=5000)
    return {"product": product, "monthly": monthly, "yearly": yearly, "setup": setup}


def _subscribe(user: Any, price_id: str, **extra: Any) -> Any:
    body = {"price": price_id, "payment_method": "pm_card_visa", **extra}
    return client_for(user).post(SUBS, body, format="json")


def _rows() -> list[tuple[Any, ...]]:
    plans = Plan.objects.order_by("pk").values_list()
    prices = PlanPrice.objects.order_by("pk").values_list()
    return [*plans, *prices]


def test_a_catalog_made_in_stripe_is_synced_subscribable_and_paid_into_the_ledger(
    stripe_fake, inbox, alice, bob
):
    made = _dashboard_catalog()
    inbox.skip_existing()  # the sync brings them, not the webhooks
    out, err = io.StringIO(), io.StringIO()

    call_command("stripe_catalog", "sync", stdout=out, stderr=err)

    assert "1 products, 3 prices" in out.getvalue()
    assert "1 created" in out.getvalue()
    assert "1 one-time prices skipped (not subscribable)" in out.getvalue()
    plan = Plan.objects.get(stripe_product_id=made["product"].id)
    assert (plan.source, plan.name, plan.slug, plan.description) == (
        Plan.Source.STRIPE,
        "Pro",
        "pro",
        "For growing teams.",
    )
    assert (plan.seats, plan.api_calls_per_month, plan.tier_rank, plan.is_archived) == (
        10,
        50_000,
        3,
        False,
    )
    assert plan.features == {"sso": True, "audit_log": True}
    monthly = PlanPrice.objects.get(stripe_price_id=made["monthly"].id)
    assert (monthly.source, monthly.plan, monthly.lookup_key, monthly.nickname) == (
        PlanPrice.Source.STRIPE,
        plan,
        "pro-monthly",
        "Pro monthly",
    )
    assert (monthly.currency, monthly.interval, monthly.interval_count) == ("usd", "month", 1)
    assert (monthly.billing_scheme, monthly.unit_amount, monthly.active) == ("per_unit", 1200, True)
    yearly = PlanPrice.objects.get(stripe_price_id=made["yearly"].id)
    assert yearly.lookup_key == made["yearly"].id  # no lookup key in Stripe
    assert (yearly.interval, yearly.billing_scheme, yearly.tiers_mode, yearly.trial_days) == (
        "year",
        "tiered",
        "volume",
        7,
    )
    assert yearly.tiers == [
        {"up_to": 5, "unit_amount": 9000, "flat_amount": 0},
        {"up_to": None, "unit_amount": 8000, "flat_amount": 0},
    ]
    assert not PlanPrice.objects.filter(stripe_price_id=made["setup"].id).exists()

    catalog = client_for(alice).get(PLANS).json()
    (listed,) = [p for p in catalog if p["slug"] == "pro"]
    assert {p["id"] for p in listed["prices"]} == {made["monthly"].id, made["yearly"].id}
    assert listed["entitlements"] == {
        "seats": 10,
        "api_calls_per_month": 50_000,
        "features": {"sso": True, "audit_log": True},
    }

    created = _subscribe(alice, made["monthly"].id, quantity=2)
    assert created.status_code == 201, created.content
    one_time = _subscribe(bob, made["setup"].id)
    assert "price" in error_of(one_time, 400)["fields"]
    tiered = _subscribe(bob, made["yearly"].id, quantity=3, trial_days=0)
    assert tiered.status_code == 201, tiered.content

    types = inbox.deliver_new()

    assert "invoice.paid" in types
    for sub_id, amount in ((created.json()["id"], 2 * 1200), (tiered.json()["id"], 3 * 9000)):
        invoice_id = stripe.Subscription.retrieve(sub_id).latest_invoice
        posting = Transaction.objects.get(idempotency_key=invoice_paid_key(invoice_id))
        assert sorted(posting.entries.values_list("amount", flat=True)) == [-amount, amount]
    entitlements = client_for(alice).get("/api/v1/entitlements/").json()
    assert (entitlements["seats"], entitlements["plans"]) == (10, ["pro"])
    # The product/price events the fake sent for the subscriptions' objects changed nothing.
    assert Plan.objects.count() == 1 and PlanPrice.objects.count() == 2


def test_sync_is_idempotent(stripe_fake):
    _dashboard_catalog()
    stripe_catalog_sync()
    before = _rows()

    again = stripe_catalog_sync()

    assert _rows() == before
    assert (again.plans_created, again.plans_updated, again.prices_created) == (0, 0, 0)
    assert (again.prices_updated, again.prices_linked, again.deactivated) == (0, 0, 0)
    assert again.one_time_skipped == 1


def test_products_and_prices_made_after_the_sync_arrive_by_webhook(stripe_fake, inbox, alice, bob):
    made = _dashboard_catalog()
    stripe_catalog_sync()
    inbox.skip_existing()
    weekly = stripe.Price.create(
        product=made["product"].id,
        currency="usd",
        unit_amount=300,
        recurring={"interval": "week", "interval_count": 2},
        lookup_key="pro-fortnightly",
    )
    starter = stripe.Product.create(name="Starter", metadata={"seats": "unlimited"})
    starter_price = stripe.Price.create(
        product=starter.id,
        currency="eur",
        unit_amount=900,
        recurring={"interval": "month"},
        metadata={"trial_days": "14"},
    )

    delivered = inbox.deliver_new()
    catalog_types = [t for t in delivered if t.split(".")[0] in ("product", "price")]
    assert catalog_types == ["price.created", "product.created", "price.created"]

    row = PlanPrice.objects.get(stripe_price_id=weekly.id)
    assert (row.plan.stripe_product_id, row.interval, row.interval_count, row.unit_amount) == (
        made["product"].id,
        "week",
        2,
        300,
    )
    plan = Plan.objects.get(stripe_product_id=starter.id)
    assert (plan.slug, plan.seats, plan.api_calls_per_month, plan.features) == (
        "starter",
        None,
        None,
        {},
    )
    assert (plan.tier_rank, plan.source) == (0, Plan.Source.STRIPE)
    price = PlanPrice.objects.get(stripe_price_id=starter_price.id)
    assert (price.currency, price.trial_days, price.plan) == ("eur", 14, plan)
    assert _subscribe(alice, weekly.id).status_code == 201
    created = _subscribe(bob, starter_price.id)
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "trialing"  # the price's trial from its metadata


def test_metadata_changes_arrive_by_webhook_and_bad_metadata_fails_closed(
    stripe_fake, inbox, alice
):
    made = _dashboard_catalog()
    inbox.deliver_new()  # this time the webhooks bring the whole catalog
    plan = Plan.objects.get(stripe_product_id=made["product"].id)
    assert (plan.seats, plan.features) == (10, {"sso": True, "audit_log": True})
    assert PlanPrice.objects.filter(plan=plan).count() == 2

    stripe.Product.modify(
        made["product"].id,
        name="Pro 2",
        metadata={"seats": "25", "features": '{"sso": true, "audit_log": false}', "tier_rank": ""},
    )
    inbox.deliver_new()
    plan.refresh_from_db()
    assert (plan.name, plan.seats, plan.tier_rank, plan.api_calls_per_month) == (
        "Pro 2",
        25,
        0,
        50_000,
    )
    assert plan.features == {"sso": True, "audit_log": False}

    # A typo keeps the last good entitlements (and a new product with one is not on sale).
    stripe.Product.modify(made["product"].id, metadata={"seats": "2O"})
    broken = stripe.Product.create(name="Broken", metadata={"api_calls_per_month": "lots"})
    broken_price = stripe.Price.create(
        product=broken.id, currency="usd", unit_amount=100, recurring={"interval": "month"}
    )
    inbox.deliver_new()
    plan.refresh_from_db()
    assert plan.seats == 25
    assert not Plan.objects.filter(stripe_product_id=broken.id).exists()
    assert "price" in error_of(_subscribe(alice, broken_price.id), 400)["fields"]
    # Fixed: the plan is made with the price it already had.
    stripe.Product.modify(broken.id, metadata={"api_calls_per_month": "1000"})
    inbox.deliver_new()
    fixed = Plan.objects.get(stripe_product_id=broken.id)
    assert fixed.api_calls_per_month == 1000
    assert PlanPrice.objects.get(stripe_price_id=broken_price.id).plan == fixed


def test_inactive_prices_and_archived_products_refuse_subscriptions_by_webhook(
    stripe_fake, inbox, alice
):
    made = _dashboard_catalog()
    stripe_catalog_sync()
    inbox.skip_existing()

    stripe.Price.modify(made["monthly"].id, active=False)
    inbox.deliver_new()
    assert PlanPrice.objects.get(stripe_price_id=made["monthly"].id).active is False
    assert "price" in error_of(_subscribe(alice, made["monthly"].id), 400)["fields"]

    stripe.Product.modify(made["product"].id, active=False)
    inbox.deliver_new()
    assert Plan.objects.get(stripe_product_id=made["product"].id).is_archived
    assert "price" in error_of(_subscribe(alice, made["yearly"].id), 400)["fields"]
    assert not any(p["slug"] == "pro" for p in client_for(alice).get(PLANS).json())

    # Back on sale.
    stripe.Product.modify(made["product"].id, active=True)
    stripe.Price.modify(made["monthly"].id, active=True)
    inbox.deliver_new()
    assert _subscribe(alice, made["monthly"].id).status_code == 201


def test_inactive_prices_and_archived_products_refuse_subscriptions_after_a_sync(
    stripe_fake, alice
):
    made = _dashboard_catalog()
    stripe_catalog_sync()
    stripe.Price.modify(made["monthly"].id, active=False)

    stripe_catalog_sync()

    assert "price" in error_of(_subscribe(alice, made["monthly"].id), 400)["fields"]
    assert _subscribe(alice, made["yearly"].id).status_code == 201
    stripe.Product.modify(made["product"].id, active=False)

    result = stripe_catalog_sync()

    assert result.plans_updated == 1
    assert "price" in error_of(_subscribe(alice, made["yearly"].id), 400)["fields"]


def test_deleted_products_and_prices_stop_selling(stripe_fake, inbox, alice):
    made = _dashboard_catalog()
    other = stripe.Product.create(name="Other")
    other_price = stripe.Price.create(
        product=other.id, currency="usd", unit_amount=100, recurring={"interval": "month"}
    )
    inbox.deliver_new()
    assert PlanPrice.objects.filter(stripe_price_id=other_price.id, active=True).exists()

    raw_price = stripe.Price.retrieve(made["monthly"].id).last_response.data
    inbox.deliver_deleted("price.created", {**raw_price, "deleted": True})
    raw_product = stripe.Product.retrieve(other.id).last_response.data
    inbox.deliver_deleted("product.created", raw_product)

    assert PlanPrice.objects.get(stripe_price_id=made["monthly"].id).active is False
    assert "price" in error_of(_subscribe(alice, made["monthly"].id), 400)["fields"]
    assert Plan.objects.get(stripe_product_id=other.id).is_archived
    assert PlanPrice.objects.get(stripe_price_id=other_price.id).active is False
    assert "price" in error_of(_subscribe(alice, other_price.id), 400)["fields"]
    assert _subscribe(alice, made["yearly"].id).status_code == 201


def test_a_product_gone_from_stripe_stops_selling_at_the_next_sync(stripe_fake):
    gone = stripe.Product.create(name="Gone")
    price = stripe.Price.create(
        product=gone.id, currency="usd", unit_amount=100, recurring={"interval": "month"}
    )
    stripe_catalog_sync()
    stripe.Product.delete(gone.id)  # the fake lets it go with its price still listed

    result = stripe_catalog_sync()

    assert Plan.objects.get(stripe_product_id=gone.id).is_archived
    assert result.deactivated == 1
    assert PlanPrice.objects.get(stripe_price_id=price.id).active is False


def test_an_admin_plan_is_linked_never_changed(stripe_fake, inbox, alice):
    plan = PlanFactory(
        name="Team", slug="team", seats=20, tier_rank=2, features={"sso": True}, description="X"
    )
    price = PlanPriceFactory(plan=plan, tiered=True, lookup_key="team-monthly", trial_days=14)
    plan_push_to_stripe(plan=plan)
    plan.refresh_from_db()
    price.refresh_from_db()
    # Someone edits the pushed product in Stripe and adds a yearly price to it there.
    stripe.Product.modify(plan.stripe_product_id, name="Renamed", metadata={"seats": "1"})
    added = stripe.Price.create(
        product=plan.stripe_product_id,
        currency="usd",
        unit_amount=99_000,
        recurring={"interval": "year"},
        lookup_key="team-yearly",
    )
    before_plan = Plan.objects.filter(pk=plan.pk).values().get()
    before_price = PlanPrice.objects.filter(pk=price.pk).values().get()

    inbox.deliver_new()
    stripe_catalog_sync()
    stripe_catalog_sync()

    assert Plan.objects.filter(pk=plan.pk).values().get() == before_plan
    assert PlanPrice.objects.filter(pk=price.pk).values().get() == before_price
    yearly = PlanPrice.objects.get(stripe_price_id=added.id)
    assert (yearly.plan, yearly.source, yearly.unit_amount) == (plan, "stripe", 99_000)
    assert Plan.objects.count() == 1 and PlanPrice.objects.count() == 2
    # Push still owns the admin plan (and leaves the Stripe-made price as it is).
    plan_push_to_stripe(plan=plan)
    assert stripe.Product.retrieve(plan.stripe_product_id).name == "Team"
    assert stripe.Price.retrieve(added.id).lookup_key == "team-yearly"
    assert _subscribe(alice, price.stripe_price_id, quantity=2).status_code == 201
    assert _subscribe(alice, added.id).status_code == 201
    # A re-price in our admin: the superseded Stripe price is not pulled back as a new one.
    price.tiers = [
        {"up_to": 5, "unit_amount": 1600, "flat_amount": 0},
        {"up_to": None, "unit_amount": 1100, "flat_amount": 0},
    ]
    price.save()
    old_id = price.stripe_price_id
    plan_push_to_stripe(plan=plan)
    inbox.deliver_new()
    stripe_catalog_sync()
    price.refresh_from_db()
    assert price.stripe_price_id != old_id
    assert not PlanPrice.objects.filter(stripe_price_id=old_id).exists()
    assert PlanPrice.objects.count() == 2


def test_push_refuses_a_plan_made_in_stripe(stripe_fake):
    from subscriptions.services.catalog import CatalogError

    made = _dashboard_catalog()
    stripe_catalog_sync()
    plan = Plan.objects.get(stripe_product_id=made["product"].id)
    with pytest.raises(CatalogError, match="made in Stripe"):
        plan_push_to_stripe(plan=plan)
    assert djm.Product.objects.filter(id=made["product"].id).exists()
