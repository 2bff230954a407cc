"""API plans: how a plan's charges price a customer's usage, the free allowance (the charge's own
and a subscription plan's "API calls per month" on `api_calls`), and the charge so far in the
usage summary."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from marketplace import selectors
from marketplace.models import ApiPlan, ApiPlanCharge, CustomerApiPlan, Meter
from tests.accounts.factories import UserFactory
from tests.marketplace.helpers import SUMMARY, api_calls, bearer, event, key_for, post_events
from tests.subscriptions.api_helpers import catalog  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def _plan(code: str = "usage", *, default: bool = False, currency: str = "usd") -> ApiPlan:
    return ApiPlan.objects.create(code=code, name=code, currency=currency, is_default=default)


def _charge(plan: ApiPlan, meter: Meter, model: str, **fields) -> ApiPlanCharge:
    charge = ApiPlanCharge(plan=plan, meter=meter, price_model=model, **fields)
    charge.full_clean()
    charge.save()
    return charge


def _charge_of(client: APIClient, metric: str = "api_calls") -> dict | None:
    response = client.get(SUMMARY, {"metric": metric})
    assert response.status_code == 200, response.content
    return response.json()["charge"]


@pytest.mark.parametrize(
    ("model", "fields", "field"),
    [
        ("per_unit", {}, "unit_amount"),
        ("package", {"package_amount": Decimal(5)}, "package_size"),
        ("package", {"package_size": 100}, "package_amount"),
        ("graduated", {"tiers": []}, "tiers"),
        ("volume", {"tiers": [{"up_to": 10, "unit_amount": 1}]}, "tiers"),
        ("graduated", {"tiers": [{"up_to": None, "unit_amount": -1}]}, "tiers"),
        ("graduated", {"tiers": ["x"]}, "tiers"),
        ("percentage", {}, "percent"),
    ],
)
def test_a_charge_that_makes_no_price_names_the_field(model, fields, field):
    charge = ApiPlanCharge(plan=_plan(), meter=api_calls(), price_model=model, **fields)
    with pytest.raises(ValidationError) as raised:
        charge.full_clean()
    assert field in raised.value.message_dict


def test_only_one_default_plan():
    _plan("a", default=True)
    with pytest.raises(ValidationError):  # what the admin form shows
        ApiPlan(code="b", name="b", currency="usd", is_default=True).full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        _plan("b", default=True)


def test_without_a_plan_usage_is_recorded_but_not_charged():
    client = bearer(key_for(UserFactory()))
    assert post_events(client, [event("e1", 5)]).status_code == 202
    assert _charge_of(client) is None


def test_default_plan_free_units_then_per_unit_sub_minor_price():
    plan = _plan(default=True)
    _charge(plan, api_calls(), "per_unit", unit_amount=Decimal("0.5"), free_units=100)
    client = bearer(key_for(UserFactory()))
    post_events(client, [event("e1", 200), event("e2", 51)])

    charge = _charge_of(client)

    assert charge["plan"] == "usage" and charge["currency"] == "usd"
    assert Decimal(charge["quantity"]) == 251
    assert Decimal(charge["free_units"]) == 100
    assert Decimal(charge["free_quantity"]) == 100
    assert Decimal(charge["billable_quantity"]) == 151
    assert charge["amount"] == 76  # 151 * 0.5 = 75.5, half up, rounded once
    assert [line["amount"] for line in charge["lines"]] == [76]
    assert charge["period"]["start"].endswith("T00:00:00Z")


def test_a_customer_plan_overrides_the_default_and_graduated_lines_add_up():
    default = _plan("default", default=True)
    _charge(default, api_calls(), "per_unit", unit_amount=Decimal(1))
    pro = _plan("pro", currency="eur")
    tiers = [
        {"up_to": 1000, "unit_amount_decimal": "0.35"},
        {"up_to": 5000, "unit_amount_decimal": "0.2", "flat_amount": 100},
        {"up_to": None, "unit_amount": 0, "flat_amount_decimal": "250.5"},
    ]
    _charge(pro, api_calls(), "graduated", tiers=tiers)
    user = UserFactory()
    CustomerApiPlan.objects.create(customer=user, plan=pro)
    client = bearer(key_for(user))
    post_events(client, [event("e1", 6001)])

    charge = _charge_of(client)

    # 1000 * 0.35 + (4000 * 0.2 + 100) + (1001 * 0 + 250.5) = 350 + 900 + 250.5 = 1500.5 → 1501
    assert (charge["plan"], charge["currency"], charge["amount"]) == ("pro", "eur", 1501)
    assert [line["tier"] for line in charge["lines"]] == [1, 2, 3]
    assert sum(line["amount"] for line in charge["lines"]) == 1501
    assert [Decimal(line["quantity"]) for line in charge["lines"]] == [1000, 4000, 1001]


def test_package_volume_and_percentage_charges_on_other_meters():
    plan = _plan(default=True)
    storage = Meter.objects.create(code="storage", name="Storage", unit="GB", aggregation="max")
    revenue = Meter.objects.create(
        code="gmv", name="GMV", unit="cent", aggregation="sum", property="amount"
    )
    requests = Meter.objects.create(code="req", name="Req", unit="req", aggregation="count")
    _charge(plan, requests, "package", package_size=100, package_amount=Decimal(25))
    _charge(
        plan,
        storage,
        "volume",
        tiers=[{"up_to": 10, "unit_amount": 50}, {"up_to": None, "unit_amount": 30}],
    )
    _charge(plan, revenue, "percentage", percent=Decimal("2.5"))
    client = bearer(key_for(UserFactory()))
    batch = [event(f"r{i}", metric="req") for i in range(101)]
    batch += [event("s1", 4, metric="storage"), event("s2", 12, metric="storage")]
    batch += [
        event("g1", metric="gmv", properties={"amount": 1999}),
        event("g2", metric="gmv", properties={"amount": 20001}),
    ]
    assert post_events(client, batch).status_code == 202

    assert _charge_of(client, "req")["amount"] == 50  # 101 calls: 2 started packages
    assert _charge_of(client, "storage")["amount"] == 360  # max 12 GB, all at tier 2: 12 * 30
    assert _charge_of(client, "gmv")["amount"] == 550  # 2.5 % of 22,000
    assert _charge_of(client, "api_calls") is None  # the plan does not price it


def test_subscription_plan_api_calls_are_free_and_overage_is_billed(catalog):  # noqa: F811
    plan = _plan(default=True)
    _charge(plan, api_calls(), "per_unit", unit_amount=Decimal("0.1"), free_units=500)
    alice = UserFactory()
    client = bearer(key_for(alice))
    post_events(client, [event("e1", 10_000), event("e2", 1_500)])
    assert _charge_of(client)["amount"] == 1100  # 11,000 billable at 0.1 (no subscription)

    subscribe = APIClient()
    subscribe.force_authenticate(alice)
    body = {"price": catalog["basic"].stripe_price_id, "payment_method": "pm_card_visa"}
    assert subscribe.post("/api/v1/subscriptions/", body, format="json").status_code == 201

    charge = _charge_of(client)
    assert Decimal(charge["free_units"]) == 10_500  # the plan's 500 + basic's 10,000
    assert Decimal(charge["billable_quantity"]) == 1000
    assert charge["amount"] == 100

    body = {"price": catalog["team"].stripe_price_id, "payment_method": "pm_card_visa"}
    assert subscribe.post("/api/v1/subscriptions/", body, format="json").status_code == 201
    charge = _charge_of(client)  # team: unlimited calls
    assert charge["free_units"] is None and charge["amount"] == 0


def test_charges_for_a_period_list_every_priced_meter_by_code():
    plan = _plan(default=True)
    other = Meter.objects.create(code="aaa", name="A", unit="u", aggregation="sum")
    _charge(plan, api_calls(), "per_unit", unit_amount=Decimal(2))
    _charge(plan, other, "per_unit", unit_amount=Decimal(3))
    user, neighbour = UserFactory(), UserFactory()
    post_events(bearer(key_for(user)), [event("e1", 7)])
    post_events(bearer(key_for(neighbour)), [event("e1", 1000), event("x", 5, metric="aaa")])
    charge = selectors.usage_charge(customer=user, meter=api_calls(), at=timezone.now())
    assert charge is not None

    charges = selectors.usage_charges_for_period(
        customer=user, plan=plan, start=charge.period_start, end=charge.period_end
    )

    assert [(c.meter.code, c.quantity, c.rating.amount) for c in charges] == [
        ("aaa", 0, 0),
        ("api_calls", 7, 14),
    ]
