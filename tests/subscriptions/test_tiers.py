"""One rule for a price's tiers (`pricing.tiers_parse`, applied by `PlanPrice.clean`): the same
bad tiers are refused with the same reason by the rule itself, the model, the staff form, the
catalog push and the catalog pull."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from subscriptions.models import Plan, PlanPrice
from subscriptions.pricing import TiersError, tiers_parse
from subscriptions.services.catalog import CatalogError, plan_push_to_stripe
from subscriptions.services.catalog_pull import plan_price_pull
from tests.subscriptions.factories import PlanFactory, PlanPriceFactory
from tests.subscriptions.test_catalog_admin import _inline_form

# (tiers, the reason given, whether Stripe could send such tiers to our pull)
BAD_TIERS = [
    ([{"up_to": 10, "unit_amount": 1}, {"up_to": 5, "unit_amount": 1}], "ascending", True),
    ([{"up_to": 5, "unit_amount": 1}, {"up_to": 10, "unit_amount": 1}], "open-ended", True),
    ([{"up_to": None, "unit_amount": 1}, {"up_to": None, "unit_amount": 1}], "last tier", True),
    ([{"up_to": "inf", "unit_amount": 1}, {"up_to": "inf", "unit_amount": 1}], "last tier", True),
    ([{"up_to": 0, "unit_amount": 1}, {"up_to": None, "unit_amount": 1}], "above 0", True),
    ([{"up_to": True, "unit_amount": 1}, {"up_to": None, "unit_amount": 1}], "integer", False),
    ([{"up_to": None, "unit_amount": -1}], "non-negative", True),
    ([{"up_to": None, "flat_amount": -5}], "non-negative", True),
    ([{"up_to": None, "unit_amount": 1.5}], "non-negative", False),
    ([{"up_to": None, "unit_amount": "100"}], "non-negative", False),
    ([{"up_to": None}], "needs a unit_amount", True),
    ([{"up_to": None, "unit_amount": 1, "price": 2}], "unknown keys", False),
    (["5"], "must be an object", False),
    ([], "non-empty", False),
    ({"up_to": None, "unit_amount": 1}, "non-empty", False),
]
CASES = [
    pytest.param(tiers, reason, id=f"{reason}-{i}")
    for i, (tiers, reason, _) in enumerate(BAD_TIERS)
]


def _reason(tiers: object) -> str:
    with pytest.raises(TiersError) as raised:
        tiers_parse(tiers)
    return str(raised.value)


@pytest.mark.parametrize(("tiers", "reason"), CASES)
def test_the_rule_names_the_fault(tiers, reason):
    assert reason in _reason(tiers)


def test_good_tiers_come_back_in_the_stored_shape():
    assert tiers_parse(
        [{"up_to": 5, "unit_amount": 1500}, {"up_to": "inf", "flat_amount": 100}]
    ) == [
        {"up_to": 5, "unit_amount": 1500, "flat_amount": 0},
        {"up_to": None, "unit_amount": 0, "flat_amount": 100},
    ]


@pytest.mark.parametrize(("tiers", "reason"), CASES)
def test_the_model_refuses_them_on_the_tiers_field(tiers, reason):
    price = PlanPrice(
        lookup_key="x",
        billing_scheme=PlanPrice.BillingScheme.TIERED,
        tiers_mode=PlanPrice.TiersMode.GRADUATED,
        tiers=tiers,
    )
    with pytest.raises(ValidationError) as raised:
        price.clean()
    assert raised.value.message_dict == {"tiers": [_reason(tiers)]}


@pytest.mark.parametrize(("tiers", "reason"), CASES)
@pytest.mark.django_db
def test_the_staff_form_refuses_them_with_the_same_reason(admin_client, tiers, reason):
    response = admin_client.post(
        reverse("admin:subscriptions_plan_add"), _inline_form({}, {"tiers": json.dumps(tiers)})
    )
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.forms[0].errors
    assert errors["tiers"] == [_reason(tiers)]
    assert not Plan.objects.exists()


@pytest.mark.parametrize(("tiers", "reason"), CASES)
def test_the_catalog_push_refuses_a_row_with_them(stripe_fake, tiers, reason):
    price = PlanPriceFactory(tiered=True, tiers=tiers)  # written around the form

    with pytest.raises(CatalogError) as raised:
        plan_push_to_stripe(plan=price.plan)

    assert str(raised.value) == f"price {price.lookup_key}: {_reason(tiers)}"
    price.refresh_from_db()
    assert not price.stripe_price_id


@pytest.mark.parametrize(
    ("tiers", "reason"),
    [pytest.param(t, r, id=f"{r}-{i}") for i, (t, r, sendable) in enumerate(BAD_TIERS) if sendable],
)
@pytest.mark.django_db
def test_the_catalog_pull_refuses_a_stripe_price_with_them(tiers, reason, caplog):
    PlanFactory(source=Plan.Source.STRIPE, stripe_product_id="prod_tiers")
    stripe_price = {
        "id": "price_bad_tiers",
        "object": "price",
        "type": "recurring",
        "product": "prod_tiers",
        "currency": "usd",
        "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "tiers": tiers,
        "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
        "lookup_key": None,
        "metadata": {},
        "active": True,
    }

    assert plan_price_pull(price=stripe_price) is None

    assert not PlanPrice.objects.exists()
    assert _reason(tiers) in caplog.text


def test_a_per_unit_price_with_tiers_is_refused_by_model_and_push(stripe_fake):
    price = PlanPriceFactory(tiers=[{"up_to": None, "unit_amount": 1}])

    with pytest.raises(ValidationError) as raised:
        price.clean()
    assert raised.value.message_dict == {"tiers": ["Only tiered prices have tiers."]}
    with pytest.raises(CatalogError, match="Only tiered prices have tiers"):
        plan_push_to_stripe(plan=price.plan)
