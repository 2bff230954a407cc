"""Catalog services against the fake Stripe: push, re-price, archive, sync from Stripe."""

from __future__ import annotations

import io

import pytest
import stripe
from django.core.management import call_command
from djstripe import models as djm

from subscriptions.models import Plan
from subscriptions.services.catalog import plan_archive, plan_push_to_stripe
from subscriptions.services.catalog_pull import stripe_catalog_sync
from tests.subscriptions.factories import PlanFactory, PlanPriceFactory


def _stripe_prices(product_id):
    return list(stripe.Price.list(product=product_id, limit=100).auto_paging_iter())


def test_push_creates_product_and_tiered_price_in_stripe_and_the_mirror(stripe_fake):
    plan = PlanFactory(name="Team", slug="team")
    tiered = PlanPriceFactory(plan=plan, tiered=True, lookup_key="team-monthly")
    flat = PlanPriceFactory(plan=plan, yearly=True, unit_amount=90_000, lookup_key="team-yearly")

    plan = plan_push_to_stripe(plan=plan)

    tiered.refresh_from_db()
    flat.refresh_from_db()
    assert plan.stripe_product_id == f"prod_plan_{plan.pk}"
    product = stripe.Product.retrieve(plan.stripe_product_id)
    assert product.name == "Team" and product.metadata["plan"] == "team"
    remote = stripe.Price.retrieve(tiered.stripe_price_id, expand=["tiers"])
    assert remote.billing_scheme == "tiered" and remote.tiers_mode == "graduated"
    assert [(t.up_to, t.unit_amount) for t in remote.tiers] == [(5, 1500), (None, 1000)]
    assert remote.lookup_key == "team-monthly"
    mirrored = djm.Price.objects.get(id=tiered.stripe_price_id)
    assert mirrored.product.id == plan.stripe_product_id
    assert [t["up_to"] for t in mirrored.tiers] == [5, None]
    yearly = djm.Price.objects.get(id=flat.stripe_price_id)
    assert yearly.unit_amount == 90_000 and yearly.recurring["interval"] == "year"


def test_pushing_twice_creates_nothing_new(stripe_fake):
    plan = PlanFactory()
    PlanPriceFactory(plan=plan, tiered=True)
    PlanPriceFactory(plan=plan)
    plan_push_to_stripe(plan=plan)
    before = {p.id for p in _stripe_prices(plan.stripe_product_id)}

    plan_push_to_stripe(plan=plan)

    assert {p.id for p in _stripe_prices(plan.stripe_product_id)} == before
    assert len(stripe.Product.list(limit=100).data) == 1
    assert djm.Price.objects.count() == 2


def test_changing_an_amount_makes_a_new_price_and_deactivates_the_old(stripe_fake):
    price = PlanPriceFactory(unit_amount=1000, lookup_key="pro-monthly")
    plan_push_to_stripe(plan=price.plan)
    price.refresh_from_db()
    old_id = price.stripe_price_id

    price.unit_amount = 1200
    price.nickname = "Pro monthly"
    price.save()
    plan_push_to_stripe(plan=price.plan)

    price.refresh_from_db()
    assert price.stripe_price_id != old_id
    new = stripe.Price.retrieve(price.stripe_price_id)
    old = stripe.Price.retrieve(old_id)
    assert (new.unit_amount, new.active, new.lookup_key) == (1200, True, "pro-monthly")
    assert (old.active, old.lookup_key) == (False, None)
    assert djm.Price.objects.get(id=old_id).active is False
    assert djm.Price.objects.get(id=price.stripe_price_id).lookup_key == "pro-monthly"


def test_changing_only_the_nickname_updates_the_price_in_place(stripe_fake):
    price = PlanPriceFactory(nickname="Old")
    plan_push_to_stripe(plan=price.plan)
    price.refresh_from_db()
    price_id = price.stripe_price_id
    price.nickname = "New"
    price.save()

    plan_push_to_stripe(plan=price.plan)

    price.refresh_from_db()
    assert price.stripe_price_id == price_id
    assert stripe.Price.retrieve(price_id).nickname == "New"
    assert djm.Price.objects.get(id=price_id).nickname == "New"


def test_archive_deactivates_prices_and_keeps_everything(stripe_fake):
    price = PlanPriceFactory()
    plan_push_to_stripe(plan=price.plan)
    price.refresh_from_db()

    plan = plan_archive(plan=price.plan)

    assert plan.is_archived
    assert stripe.Price.retrieve(price.stripe_price_id).active is False
    assert stripe.Product.retrieve(plan.stripe_product_id).active is False
    assert djm.Price.objects.get(id=price.stripe_price_id).active is False
    assert Plan.objects.filter(pk=plan.pk).exists()
    # Pushing an archived plan does not re-activate anything.
    plan_push_to_stripe(plan=plan)
    assert stripe.Price.retrieve(price.stripe_price_id).active is False


def test_catalog_sync_pulls_stripe_and_links_by_lookup_key(stripe_fake):
    product = stripe.Product.create(name="Made in the dashboard", metadata={"plan": "dash"})
    remote = stripe.Price.create(
        product=product.id,
        currency="usd",
        unit_amount=500,
        recurring={"interval": "month"},
        lookup_key="dash-monthly",
    )
    plan = PlanFactory(slug="dash")
    price = PlanPriceFactory(plan=plan, lookup_key="dash-monthly", unit_amount=500)
    other = PlanPriceFactory(lookup_key="not-in-stripe")

    out = io.StringIO()
    call_command("stripe_catalog", "sync", stdout=out)

    plan.refresh_from_db()
    price.refresh_from_db()
    other.refresh_from_db()
    assert plan.stripe_product_id == product.id
    assert price.stripe_price_id == remote.id
    assert other.stripe_price_id == ""
    assert djm.Product.objects.filter(id=product.id).exists()
    assert djm.Price.objects.get(id=remote.id).lookup_key == "dash-monthly"
    assert "1 products, 1 prices" in out.getvalue()
    # Idempotent.
    assert stripe_catalog_sync().prices_linked == 0


def test_push_command_pushes_one_plan_by_slug(stripe_fake):
    price = PlanPriceFactory(plan__slug="cli")
    call_command("stripe_catalog", "push", "--plan", "cli", stdout=io.StringIO())
    price.refresh_from_db()
    assert price.stripe_price_id
    assert djm.Price.objects.filter(id=price.stripe_price_id).exists()


@pytest.mark.django_db
def test_push_command_refuses_an_unknown_slug():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="no plan"):
        call_command("stripe_catalog", "push", "--plan", "nope")
