"""Plan admin: changelist queries, tiers validation in the price inline, push/archive actions."""

from __future__ import annotations

import json

import pytest
import stripe
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse
from djstripe import models as djm

from subscriptions.models import Plan, PlanPrice
from subscriptions.pricing import tiers_parse
from tests.subscriptions.factories import PlanFactory, PlanPriceFactory

CHANGELIST = "admin:subscriptions_plan_changelist"


def _inline_form(plan_data: dict, price: dict) -> dict:
    data = {
        "name": "Team",
        "slug": "team",
        "description": "",
        "tier_rank": "2",
        "seats": "20",
        "api_calls_per_month": "",
        "features": json.dumps({"sso": True}),
        "prices-TOTAL_FORMS": "1",
        "prices-INITIAL_FORMS": "0",
        "prices-MIN_NUM_FORMS": "0",
        "prices-MAX_NUM_FORMS": "1000",
        **plan_data,
    }
    defaults = {
        "nickname": "",
        "lookup_key": "team-monthly",
        "currency": "usd",
        "interval": "month",
        "interval_count": "1",
        "billing_scheme": "tiered",
        "unit_amount": "",
        "tiers_mode": "graduated",
        "tiers": "[]",
        "usage_type": "licensed",
        "trial_days": "",
        "active": "on",
    }
    data.update({f"prices-0-{k}": v for k, v in {**defaults, **price}.items()})
    return data


@pytest.mark.django_db
def test_changelist_queries_are_bounded(admin_client, django_assert_max_num_queries):
    for _ in range(15):
        PlanPriceFactory(plan=PlanFactory())
    with django_assert_max_num_queries(10):
        response = admin_client.get(reverse(CHANGELIST) + "?is_archived__exact=0&q=plan")
    assert response.status_code == 200
    assert response.content.decode().count('class="field-price_count"') == 15


@pytest.mark.django_db
def test_add_plan_with_a_tiered_price(admin_client):
    tiers = [
        {"up_to": 5, "unit_amount": 1500},
        {"up_to": None, "unit_amount": 1000, "flat_amount": 500},
    ]
    response = admin_client.post(
        reverse("admin:subscriptions_plan_add"), _inline_form({}, {"tiers": json.dumps(tiers)})
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    price = PlanPrice.objects.get(lookup_key="team-monthly")
    assert price.tiers == [
        {"up_to": 5, "unit_amount": 1500, "flat_amount": 0},
        {"up_to": None, "unit_amount": 1000, "flat_amount": 500},
    ]
    assert price.plan.features == {"sso": True}


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([{"up_to": 10, "unit_amount": 1}, {"up_to": 5, "unit_amount": 1}], "ascending"),
        ([{"up_to": 5, "unit_amount": 1}, {"up_to": 10, "unit_amount": 1}], "open-ended"),
        ([{"up_to": None, "unit_amount": 1}, {"up_to": None, "unit_amount": 1}], "last tier"),
        ([{"up_to": None, "unit_amount": -1}], "non-negative"),
        ([{"up_to": None, "unit_amount": 1.5}], "non-negative"),
        ([{"up_to": None}], "needs a unit_amount"),
        ([], "non-empty"),
    ],
)
@pytest.mark.django_db
def test_bad_tiers_are_refused_with_a_reason(admin_client, tiers, message):
    response = admin_client.post(
        reverse("admin:subscriptions_plan_add"), _inline_form({}, {"tiers": json.dumps(tiers)})
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Plan.objects.exists()


@pytest.mark.django_db
def test_per_unit_price_needs_an_amount_and_no_tiers(admin_client):
    response = admin_client.post(
        reverse("admin:subscriptions_plan_add"),
        _inline_form({}, {"billing_scheme": "per_unit", "tiers_mode": "", "unit_amount": ""}),
    )
    assert response.status_code == 200
    assert "A per-unit price needs an amount" in response.content.decode()


def test_tiers_parse_accepts_stripe_inf():
    assert tiers_parse([{"up_to": "inf", "flat_amount": 100}]) == [
        {"up_to": None, "unit_amount": 0, "flat_amount": 100}
    ]


def test_push_and_archive_actions_call_the_services_and_log(stripe_fake, admin_client, admin_user):
    price = PlanPriceFactory(tiered=True)
    plan = price.plan

    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "push_to_stripe", "_selected_action": [plan.pk]},
        follow=True,
    )

    assert "Pushed to Stripe: 1 plan(s)." in response.content.decode()
    price.refresh_from_db()
    assert djm.Price.objects.get(id=price.stripe_price_id).billing_scheme == "tiered"
    assert LogEntry.objects.filter(
        object_id=str(plan.pk), action_flag=CHANGE, user=admin_user
    ).exists()

    response = admin_client.post(
        reverse(CHANGELIST), {"action": "archive", "_selected_action": [plan.pk]}, follow=True
    )
    assert "Archived: 1 plan(s)." in response.content.decode()
    assert stripe.Price.retrieve(price.stripe_price_id).active is False
    assert Plan.objects.get(pk=plan.pk).is_archived


def test_push_action_reports_a_failing_plan_and_pushes_the_others(stripe_fake, admin_client):
    good = PlanPriceFactory()
    broken = PlanPriceFactory(tiered=True, tiers=[])  # the form refuses this; old rows may not

    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "push_to_stripe", "_selected_action": [good.plan.pk, broken.plan.pk]},
        follow=True,
    )

    content = response.content.decode()
    assert "a tiered price needs tiers" in content
    assert "Pushed to Stripe: 1 plan(s)." in content
    good.refresh_from_db()
    broken.refresh_from_db()
    assert good.stripe_price_id and not broken.stripe_price_id
    # The failed push rolled our rows back; a fixed plan pushes onto the same product id.
    broken.tiers = [{"up_to": None, "unit_amount": 100, "flat_amount": 0}]
    broken.save()
    admin_client.post(
        reverse(CHANGELIST), {"action": "push_to_stripe", "_selected_action": [broken.plan.pk]}
    )
    broken.refresh_from_db()
    assert broken.plan.stripe_product_id == f"prod_plan_{broken.plan.pk}"
    assert broken.stripe_price_id


@pytest.mark.django_db
def test_a_plan_made_in_stripe_is_read_only_and_push_refuses_it(admin_client):
    price = PlanPriceFactory(
        plan__source=Plan.Source.STRIPE,
        plan__stripe_product_id="prod_dash",
        plan__seats=10,
        source=PlanPrice.Source.STRIPE,
        stripe_price_id="price_dash",
    )
    plan = price.plan

    page = admin_client.get(reverse("admin:subscriptions_plan_change", args=[plan.pk]))

    content = page.content.decode()
    assert page.status_code == 200
    assert 'name="seats"' not in content and 'name="name"' not in content
    assert 'name="prices-0-unit_amount"' not in content
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "push_to_stripe", "_selected_action": [plan.pk]},
        follow=True,
    )
    assert "is made in Stripe: edit it there" in response.content.decode()
    assert Plan.objects.get(pk=plan.pk).seats == 10


@pytest.mark.django_db
def test_a_price_made_in_stripe_on_an_admin_plan_cannot_be_edited_here(admin_client):
    from subscriptions.admin.catalog import PlanPriceForm

    price = PlanPriceFactory(source=PlanPrice.Source.STRIPE, stripe_price_id="price_dash")
    data = {
        field: getattr(price, field)
        for field in PlanPriceForm.Meta.fields
        if field not in ("tiers", "tiers_mode")
    }
    form = PlanPriceForm(
        instance=price, data={**data, "tiers": "[]", "tiers_mode": "", "unit_amount": 5}
    )

    assert not form.is_valid()
    assert "made in Stripe" in str(form.errors)
    price = PlanPrice.objects.get(pk=price.pk)  # the invalid form changed the instance
    unchanged = PlanPriceForm(instance=price, data={**data, "tiers": "[]", "tiers_mode": ""})
    assert unchanged.is_valid(), unchanged.errors
