"""The fake answers errors as Stripe does: type, code, param, Stripe's message, doc_url, and for
declines the decline code, the charge and the PaymentIntent (devstripe/errors.py)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import stripe

from tests.devstripe import conformance

pytestmark = pytest.mark.django_db


def _error(exc: pytest.ExceptionInfo[stripe.StripeError]) -> Any:
    return exc.value.error


@pytest.fixture
def customer(stripe_fake: Any) -> Any:
    return stripe.Customer.create(email="errors@example.com")


@pytest.fixture
def price(stripe_fake: Any) -> Any:
    product = stripe.Product.create(name="Errors")
    return stripe.Price.create(
        product=product.id, currency="usd", unit_amount=900, recurring={"interval": "month"}
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: stripe.Customer.retrieve("cus_nope"), "No such customer: 'cus_nope'"),
        (lambda: stripe.Price.retrieve("price_nope"), "No such price: 'price_nope'"),
        (lambda: stripe.Subscription.retrieve("sub_nope"), "No such subscription: 'sub_nope'"),
        (lambda: stripe.Invoice.retrieve("in_nope"), "No such invoice: 'in_nope'"),
        (lambda: stripe.Product.delete("prod_nope"), "No such product: 'prod_nope'"),
        (
            lambda: stripe.PaymentMethod.attach("pm_nope", customer="cus_nope"),
            "No such PaymentMethod: 'pm_nope'",
        ),
    ],
)
def test_an_unknown_id_in_the_url_is_404_resource_missing(stripe_fake, call, message):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        call()
    assert exc.value.http_status == 404
    error = _error(exc)
    assert (error.type, error.code, error.param, error.message) == (
        "invalid_request_error",
        "resource_missing",
        "id",
        message,
    )
    assert error.doc_url == "https://stripe.com/docs/error-codes/resource-missing"


def test_an_unknown_id_in_a_parameter_is_400_naming_the_parameter(customer):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Subscription.create(customer=customer.id, items=[{"price": "price_gone"}])
    assert exc.value.http_status == 400
    error = _error(exc)
    assert (error.code, error.param, error.message) == (
        "resource_missing",
        "items[0][price]",
        "No such price: 'price_gone'",
    )

    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.PaymentIntent.create(amount=100, currency="usd", customer="cus_gone")
    assert (_error(exc).param, _error(exc).message) == ("customer", "No such customer: 'cus_gone'")


def test_unknown_parameters_top_level_and_nested(customer, price):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Customer.create(favourite_colour="blue")
    error = _error(exc)
    assert (error.code, error.param, error.message) == (
        "parameter_unknown",
        "favourite_colour",
        "Received unknown parameter: favourite_colour",
    )

    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Subscription.create(
            customer=customer.id, items=[{"price": price.id, "colour": "red"}]
        )
    assert (_error(exc).code, _error(exc).param) == ("parameter_unknown", "items[0][colour]")


def test_missing_required_parameters(stripe_fake):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Price.create(unit_amount=100, product="prod_x")
    assert exc.value.http_status == 400
    error = _error(exc)
    assert (error.code, error.param, error.message) == (
        "parameter_missing",
        "currency",
        "Missing required param: currency.",
    )

    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Price.create(currency="usd", unit_amount=100, product_data={"name": "x"},
                            recurring={"interval_count": 2})  # fmt: skip
    assert (_error(exc).code, _error(exc).param) == ("parameter_missing", "recurring[interval]")

    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.PaymentIntent.create(currency="usd")
    assert (_error(exc).code, _error(exc).param) == ("parameter_missing", "amount")


def test_invalid_values_name_the_parameter(stripe_fake):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.PaymentIntent.create(amount="ten", currency="usd")
    error = _error(exc)
    assert (error.code, error.param, error.message) == (
        "parameter_invalid_integer",
        "amount",
        "Invalid integer: ten",
    )

    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Price.create(currency="usd", unit_amount="", product_data={"name": "x"})
    assert (_error(exc).code, _error(exc).param) == ("parameter_invalid_empty", "unit_amount")

    # localstripe's own checks are read back from the failed assertion.
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe.Price.create(currency="usd", unit_amount=5, product_data={"name": "x"},
                            recurring={"interval": "fortnight"})  # fmt: skip
    error = _error(exc)
    assert error.param == "recurring[interval]"
    assert error.message == "Invalid recurring[interval]: must be one of day, week, month, or year"


@pytest.mark.parametrize(
    ("card", "code", "decline_code", "message", "param"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline", "Your card was declined.",
         None),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds",
         "Your card has insufficient funds.", None),
        ("pm_card_chargeDeclinedLostCard", "card_declined", "lost_card",
         "Your card was declined.", None),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card",
         "Your card has expired.", "exp_month"),
        ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc",
         "Your card's security code is incorrect.", "cvc"),
    ],
)  # fmt: skip
def test_attaching_a_declining_test_card_is_a_card_error(
    customer, card, code, decline_code, message, param
):
    with pytest.raises(stripe.CardError) as exc:
        stripe.PaymentMethod.attach(card, customer=customer.id)
    assert exc.value.http_status == 402
    error = _error(exc)
    assert (error.type, error.code, error.decline_code, error.message, error.param) == (
        "card_error",
        code,
        decline_code,
        message,
        param,
    )


def test_a_declined_payment_intent_carries_the_payment_intent_and_charge(customer):
    method = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=customer.id)
    with pytest.raises(stripe.CardError) as exc:
        stripe.PaymentIntent.create(
            amount=1200, currency="usd", customer=customer.id, payment_method=method.id,
            confirm=True,
        )  # fmt: skip
    raw = exc.value.json_body["error"]
    assert (raw["type"], raw["code"], raw["decline_code"]) == (
        "card_error",
        "card_declined",
        "generic_decline",
    )
    assert raw["charge"].startswith("ch_")
    intent = raw["payment_intent"]
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["decline_code"] == "generic_decline"
    assert raw["payment_method"]["id"] == method.id
    # The error object inside the PaymentIntent is Stripe's (the rest: test_conformance.py).
    assert [v for v in conformance.violations(intent) if "last_payment_error" in v] == []
    assert stripe.PaymentIntent.retrieve(intent["id"]).status == "requires_payment_method"


def test_an_unattached_declining_card_is_declined_when_charged(stripe_fake):
    with pytest.raises(stripe.CardError) as exc:
        stripe.PaymentIntent.create(
            amount=500, currency="usd", payment_method="pm_card_chargeDeclinedInsufficientFunds",
            confirm=True,
        )  # fmt: skip
    assert (_error(exc).decline_code, _error(exc).message) == (
        "insufficient_funds",
        "Your card has insufficient funds.",
    )
    assert _error(exc).payment_intent.id.startswith("pi_")


def test_an_idempotent_replay_of_an_error_is_the_same_stripe_error(stripe_fake):
    key = "errors-" + uuid.uuid4().hex
    bodies = []
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError) as exc:
            stripe.Customer.create(favourite_colour="blue", idempotency_key=key)
        bodies.append(exc.value.json_body)
    assert bodies[0] == bodies[1]
    assert bodies[0]["error"]["code"] == "parameter_unknown"
