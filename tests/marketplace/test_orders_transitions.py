"""The whole order transition table: every transition from every state by every actor, through
the API (buyer, provider, a stranger) and the services (staff, the system). The expected
table is written out here, independently of ``marketplace.orders.TRANSITIONS``."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from marketplace import orders
from marketplace.models import Order, OrderEvent
from tests.accounts.factories import UserFactory
from tests.marketplace.factories_orders import OrderFactory

pytestmark = pytest.mark.django_db

S = Order.State
STATES = list(S.values)
ACTORS = list(OrderEvent.Actor.values)

# (transition, state, actor) that are allowed; everything else is refused.
_FUNDED = [S.PAID, S.IN_PROGRESS, S.DELIVERED, S.REVISION_REQUESTED]
ALLOWED: set[tuple[str, str, str]] = {
    ("quote", S.REQUESTED, "provider"),
    ("pay", S.REQUESTED, "buyer"),
    ("pay", S.QUOTED, "buyer"),
    *(("cancel", s, a) for s in (S.REQUESTED, S.QUOTED) for a in ("buyer", "provider", "staff")),
    ("start", S.PAID, "provider"),
    ("deliver", S.IN_PROGRESS, "provider"),
    ("deliver", S.REVISION_REQUESTED, "provider"),
    ("request_revision", S.DELIVERED, "buyer"),
    ("accept", S.DELIVERED, "buyer"),
    ("accept", S.DELIVERED, "system"),
    ("release", S.ACCEPTED, "system"),
    ("release", S.ACCEPTED, "staff"),
    ("dispute", S.DELIVERED, "buyer"),
    ("dispute", S.REVISION_REQUESTED, "buyer"),
    *(("stripe_dispute", s, "system") for s in [*_FUNDED, S.ACCEPTED]),
    ("stripe_dispute_won", S.DISPUTED, "system"),
    ("resolve_release", S.DISPUTED, "staff"),
    ("partial_refund", S.DISPUTED, "staff"),
    ("partial_refund", S.RELEASED, "staff"),
    *(
        ("refund", s, a)
        for s in [*_FUNDED, S.ACCEPTED, S.DISPUTED, S.RELEASED]
        for a in ("staff", "system")
    ),
}
TARGET = {
    "quote": S.QUOTED,
    "pay": S.PAID,
    "cancel": S.CANCELED,
    "start": S.IN_PROGRESS,
    "deliver": S.DELIVERED,
    "request_revision": S.REVISION_REQUESTED,
    "accept": S.ACCEPTED,
    "release": S.RELEASED,
    "dispute": S.DISPUTED,
    "stripe_dispute": S.DISPUTED,
    "stripe_dispute_won": None,  # back to the state the Stripe dispute found
    "resolve_release": S.RELEASED,
    "partial_refund": S.RELEASED,
    "refund": S.REFUNDED,
}


@pytest.mark.parametrize("transition", sorted(TARGET))
def test_the_table_is_exactly_the_expected_one(transition):
    spec = orders.TRANSITIONS[transition]
    assert spec.target == TARGET[transition]
    for state in STATES:
        for actor in ACTORS:
            order = Order(state=state)
            expected = (transition, state, actor) in ALLOWED
            assert orders.transition_allowed(order=order, transition=transition, actor=actor) is (
                expected
            ), (transition, state, actor)
    assert set(orders.TRANSITIONS) == set(TARGET)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def url(order: Order, transition: str) -> str:
    return f"/api/v1/marketplace/orders/{order.pk}/{transition}"


API_CASES = [
    (state, path, actor)
    for state in STATES
    for path in orders.API_TRANSITIONS
    for actor in ("buyer", "provider")
]


@pytest.mark.parametrize(("state", "path", "actor"), API_CASES)
def test_every_api_transition_from_every_state_by_buyer_and_provider(state, path, actor, request):
    name = orders.API_TRANSITIONS[path]
    allowed = (name, state, actor) in ALLOWED
    if name == "pay" and allowed:
        request.getfixturevalue("stripe_fake")
    order = OrderFactory(state=state)
    user = order.buyer if actor == "buyer" else order.provider.user
    body = {"payment_method": "pm_card_visa"} if name == "pay" else {}
    events = order.events.count()

    response = client_for(user).post(url(order, path), body, "json")

    order.refresh_from_db()
    if allowed:
        assert response.status_code == 200, response.content
        # Accepting releases the funds at once.
        expected = S.RELEASED if name == "accept" else TARGET[name]
        assert order.state == expected
        assert response.json()["state"] == expected
        assert order.events.count() > events
        assert order.events.order_by("-pk").last().actor == actor
    else:
        assert response.status_code == 409, response.content
        error = response.json()["error"]
        assert error["code"] == "invalid_transition"
        assert error["state"] == state
        assert order.state == state
        assert order.events.count() == events


@pytest.mark.parametrize("path", list(orders.API_TRANSITIONS))
def test_a_stranger_gets_404_on_every_transition(path):
    order = OrderFactory(state=S.REQUESTED)
    response = client_for(UserFactory(password=None)).post(url(order, path), {}, "json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    order.refresh_from_db()
    assert order.state == S.REQUESTED


def test_an_unknown_transition_is_404():
    order = OrderFactory(state=S.REQUESTED)
    assert client_for(order.buyer).post(url(order, "release"), {}, "json").status_code == 404
    assert client_for(order.buyer).post(url(order, "refund"), {}, "json").status_code == 404


STAFF_CASES = [
    (state, name)
    for state in STATES
    for name in ("release", "resolve_release", "partial_refund", "refund", "cancel")
    if (name, state, "staff") not in ALLOWED
]


@pytest.mark.parametrize(("state", "name"), STAFF_CASES)
def test_staff_transitions_refused_from_other_states(state, name):
    order = OrderFactory(state=state)
    staff = UserFactory(is_staff=True, password=None)
    with pytest.raises(orders.OrderTransitionError) as caught:
        if name == "release":
            orders.order_release(order=order, user=staff)
        elif name == "resolve_release":
            orders.order_resolve_release(order=order, user=staff)
        elif name == "partial_refund":
            orders.order_refund(order=order, user=staff, amount=1)
        elif name == "refund":
            orders.order_refund(order=order, user=staff)
        else:
            orders.order_cancel(order=order, user=staff, staff=True)
    assert caught.value.state == state
    order.refresh_from_db()
    assert order.state == state


@pytest.mark.parametrize("state", STATES)
def test_the_timer_accepts_only_delivered_orders(state):
    order = OrderFactory(state=state)
    if state == S.DELIVERED:
        orders._accept(order, actor=orders.Actor.SYSTEM, user=None)
        order.refresh_from_db()
        assert order.state == S.ACCEPTED
        assert order.events.get().actor == "system"
    else:
        with pytest.raises(orders.OrderTransitionError):
            orders._accept(order, actor=orders.Actor.SYSTEM, user=None)


def test_revisions_stop_at_the_packages_allowance():
    order = OrderFactory(state=S.DELIVERED, revisions_allowed=1)
    seller = order.provider.user
    client = client_for(order.buyer)
    assert client.post(url(order, "request-revision"), {}, "json").status_code == 200
    client_for(seller).post(url(order, "deliver"), {}, "json")
    response = client.post(url(order, "request-revision"), {}, "json")
    assert response.status_code == 409
    assert response.json()["error"]["state"] == S.DELIVERED
    assert "revisions" in response.json()["error"]["message"]
    order.refresh_from_db()
    assert (order.revisions_used, order.state) == (1, S.DELIVERED)


def test_a_quote_sets_a_custom_price_and_the_note():
    order = OrderFactory(state=S.REQUESTED, price=10000)
    response = client_for(order.provider.user).post(
        url(order, "quote"), {"price": 12345, "note": "Bigger than it looks"}, "json"
    )
    assert response.status_code == 200
    order.refresh_from_db()
    assert (order.price, order.quote_note, order.state) == (12345, "Bigger than it looks", "quoted")
    assert order.quoted_at is not None
    bad = client_for(order.provider.user).post(url(order, "quote"), {"price": -1}, "json")
    assert bad.status_code == 400
