"""The orders API: placing orders, buyer/provider isolation (others' ids are 404), list
queries, messages, provider earnings and payouts, the schema; the staff console."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from ledger.models import Account, PayeeProfile, Payout, PayoutBatch
from marketplace import orders
from marketplace.models import Listing, Order, OrderMessage
from tests.accounts.factories import SuperuserFactory, UserFactory
from tests.marketplace.factories_orders import (
    OrderFactory,
    OrderListingFactory,
    OrderPackageFactory,
    OrderProviderFactory,
)

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/marketplace/orders/"
S = Order.State


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_placing_an_order_snapshots_price_commission_and_revisions():
    provider = OrderProviderFactory(commission_percent_override=None)
    package = OrderPackageFactory(
        listing=OrderListingFactory(provider=provider), price=4200, revisions=2
    )
    buyer = UserFactory(password=None)
    response = client_for(buyer).post(
        ORDERS, {"package": package.pk, "requirements": "A fox, in blue"}, "json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "requested"
    assert (body["price"], body["currency"], body["revisions_allowed"]) == (4200, "usd", 2)
    assert body["commission_percent"] == "15.00"
    assert body["role"] == "buyer"
    assert body["transitions"] == ["pay", "cancel"]
    assert [e["transition"] for e in body["events"]] == ["request"]
    package.price = 9999
    package.save()
    assert Order.objects.get().price == 4200


@pytest.mark.parametrize(
    "case", ["unknown", "draft_listing", "own_listing", "bad_input", "unauthenticated"]
)
def test_placing_an_order_refuses_bad_packages(case):
    package = OrderPackageFactory()
    buyer = UserFactory(password=None)
    data: dict[str, object] = {"package": package.pk}
    if case == "unknown":
        data["package"] = 999999
    elif case == "draft_listing":
        Listing.objects.filter(pk=package.listing_id).update(status="draft", published_at=None)
    elif case == "own_listing":
        buyer = package.listing.provider.user
    elif case == "bad_input":
        data["package"] = "x"
    client = APIClient() if case == "unauthenticated" else client_for(buyer)
    response = client.post(ORDERS, data, "json")
    expected = {
        "unknown": 404,
        "draft_listing": 404,
        "own_listing": 400,
        "bad_input": 400,
        "unauthenticated": 401,
    }[case]
    assert response.status_code == expected
    assert set(response.json()["error"]) >= {"code", "message", "fields"}
    assert not Order.objects.exists()


def test_buyers_and_providers_see_only_their_orders():
    mine = OrderFactory()
    other = OrderFactory()
    seller = mine.provider.user
    # The seller also bought something once.
    bought = OrderFactory(buyer=seller)

    buyer_ids = [o["id"] for o in client_for(mine.buyer).get(ORDERS).json()["results"]]
    assert buyer_ids == [mine.pk]
    seller_view = client_for(seller).get(ORDERS).json()["results"]
    assert sorted(o["id"] for o in seller_view) == sorted([mine.pk, bought.pk])
    as_provider = client_for(seller).get(ORDERS, {"role": "provider"}).json()["results"]
    assert [o["id"] for o in as_provider] == [mine.pk]
    assert as_provider[0]["role"] == "provider"
    assert client_for(seller).get(ORDERS, {"role": "x"}).status_code == 400
    # Empty means not given (schemathesis: the schema says so for every optional filter).
    both = client_for(seller).get(ORDERS, {"role": "", "state": ""}).json()["results"]
    assert sorted(o["id"] for o in both) == sorted([mine.pk, bought.pk])

    for path in (f"{ORDERS}{other.pk}/", f"{ORDERS}{other.pk}/messages/"):
        assert client_for(mine.buyer).get(path).status_code == 404
        assert client_for(seller).get(path).status_code == 404
    response = client_for(mine.buyer).post(f"{ORDERS}{other.pk}/messages/", {"body": "hi"}, "json")
    assert response.status_code == 404
    assert client_for(mine.buyer).post(f"{ORDERS}{other.pk}/cancel", {}, "json").status_code == 404
    assert client_for(mine.buyer).get(f"{ORDERS}{mine.pk}/").status_code == 200
    assert client_for(seller).get(f"{ORDERS}{mine.pk}/").status_code == 200


def test_the_order_list_is_a_fixed_number_of_queries(django_assert_max_num_queries):
    buyer = UserFactory(password=None)
    for _ in range(8):
        OrderFactory(buyer=buyer)
    client = client_for(buyer)
    with django_assert_max_num_queries(4):
        response = client.get(ORDERS)
    assert response.json()["count"] == 8


def test_messages_between_buyer_and_provider():
    order = OrderFactory()
    seller = order.provider.user
    url = f"{ORDERS}{order.pk}/messages/"
    assert client_for(order.buyer).post(url, {"body": "When?"}, "json").status_code == 201
    assert client_for(seller).post(url, {"body": "Friday"}, "json").status_code == 201
    assert client_for(seller).post(url, {"body": "  "}, "json").status_code == 400
    body = client_for(order.buyer).get(url).json()
    assert [(m["author"], m["body"]) for m in body["results"]] == [
        (order.buyer.pk, "When?"),
        (seller.pk, "Friday"),
    ]
    assert OrderMessage.objects.count() == 2


def test_the_conflict_answer_names_the_current_state():
    order = OrderFactory(state=S.RELEASED)
    response = client_for(order.buyer).post(f"{ORDERS}{order.pk}/cancel", {}, "json")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "invalid_transition",
        "message": f"Order {order.pk} is released: it cannot cancel.",
        "fields": {},
        "state": "released",
    }


def test_provider_earnings_and_payouts():
    order = OrderFactory(state=S.ACCEPTED, price=10000)
    orders.order_release(order=order)
    seller = order.provider.user
    body = client_for(seller).get("/api/v1/provider/earnings/").json()
    assert body["balances"] == [{"currency": "usd", "payable": 8500}]
    assert [(r["source"], r["amount"], r["balance"]) for r in body["statement"]] == [
        ("marketplace.order_release", 8500, 8500)
    ]
    batch = PayoutBatch.objects.create(payee_type=Account.PayeeType.PROVIDER, as_of="2026-11-30")
    Payout.objects.create(
        batch=batch,
        payee_type=Account.PayeeType.PROVIDER,
        payee_id=order.provider_id,
        amount=8500,
        currency="usd",
        method=PayeeProfile.Method.BANK_CSV,
    )
    payouts = client_for(seller).get("/api/v1/provider/payouts/").json()
    assert [(p["amount"], p["status"]) for p in payouts["payouts"]] == [(8500, "pending")]
    assert payouts["order_transfers"] == []
    assert client_for(order.buyer).get("/api/v1/provider/earnings/").status_code == 403
    assert APIClient().get("/api/v1/provider/payouts/").status_code == 401


def test_the_schema_documents_every_order_endpoint_and_status():
    schema = APIClient().get("/api/schema/?format=json").json()
    paths = schema["paths"]
    create = paths["/api/v1/marketplace/orders/"]["post"]["responses"]
    assert {"201", "400", "401", "402", "404", "409", "503"} <= set(create)
    transition = paths["/api/v1/marketplace/orders/{order_id}/{transition}"]["post"]
    assert {"200", "400", "401", "402", "404", "409", "503"} <= set(transition["responses"])
    conflict = transition["responses"]["409"]["content"]["application/json"]["schema"]["$ref"]
    assert conflict.endswith("OrderTransitionConflict")
    for path in (
        "/api/v1/marketplace/orders/{order_id}/",
        "/api/v1/marketplace/orders/{order_id}/messages/",
        "/api/v1/provider/earnings/",
        "/api/v1/provider/payouts/",
    ):
        assert path in paths


# --- staff console -------------------------------------------------------------------------


@pytest.fixture
def admin_client(client):
    client.force_login(SuperuserFactory())
    return client


def test_the_order_changelist_and_change_page(admin_client, django_assert_max_num_queries):
    for _ in range(5):
        OrderFactory()
    order = OrderFactory(state=S.DISPUTED)
    orders.order_message_create(order=order, user=order.buyer, body="Late")
    with django_assert_max_num_queries(12):
        response = admin_client.get("/admin/marketplace/order/")
    assert response.status_code == 200
    page = admin_client.get(f"/admin/marketplace/order/{order.pk}/change/")
    assert page.status_code == 200
    content = page.content.decode()
    assert "resolve_release" in content and "refund…" in content
    assert "Late" in content


def test_staff_resolve_a_dispute_by_release_from_the_changelist(admin_client):
    order = OrderFactory(state=S.DISPUTED, price=10000)
    response = admin_client.post(
        "/admin/marketplace/order/",
        {"action": "resolve_release_selected", "_selected_action": [order.pk]},
        follow=True,
    )
    assert response.status_code == 200
    order.refresh_from_db()
    assert order.state == S.RELEASED
    event = order.events.get(transition="resolve_release")
    assert event.actor == "staff"


def test_a_forbidden_staff_action_is_reported_not_taken(admin_client):
    order = OrderFactory(state=S.REQUESTED)
    response = admin_client.post(
        "/admin/marketplace/order/",
        {"action": "release_selected", "_selected_action": [order.pk]},
        follow=True,
    )
    assert "cannot release" in response.content.decode()
    order.refresh_from_db()
    assert order.state == S.REQUESTED


def test_the_earnings_statement_csv(admin_client):
    order = OrderFactory(state=S.ACCEPTED, price=10000)
    orders.order_release(order=order)
    response = admin_client.get(f"/admin/marketplace/order/earnings-statement/{order.provider_id}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("provider,posted_at,source")
    assert lines[1].split(",")[-3:] == ["85.00", "usd", "85.00"]
    action = admin_client.post(
        "/admin/marketplace/order/",
        {"action": "earnings_statement_csv", "_selected_action": [order.pk]},
    )
    assert action.content.decode().splitlines()[1:] == lines[1:]


def test_the_refund_form_needs_the_change_permission(client):
    order = OrderFactory(state=S.DISPUTED)
    viewer = UserFactory(is_staff=True, password=None)
    client.force_login(viewer)
    assert client.get(f"/admin/marketplace/order/{order.pk}/refund/").status_code == 403
