"""Idempotency keys on the fake Stripe: a repeated POST is replayed, not run again."""

from __future__ import annotations

import uuid

import pytest
import stripe

import devstripe
from devstripe import idempotency, resources
from tests.subscriptions.effects_helpers import make_customer, make_price

pytestmark = pytest.mark.django_db


def _key() -> str:
    return f"test-idem-{uuid.uuid4().hex}"


def _customer_ids() -> list[str]:
    return [c.id for c in stripe.Customer.list(limit=100).auto_paging_iter()]


def test_a_repeated_create_returns_the_first_result_and_creates_one_object(stripe_fake):
    key = _key()
    first = stripe.Customer.create(email="once@example.com", idempotency_key=key)
    again = stripe.Customer.create(email="once@example.com", idempotency_key=key)

    assert again.id == first.id
    assert again.to_dict() == first.to_dict()
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert again.last_response.headers["Idempotency-Key"] == key
    assert _customer_ids() == [first.id]


def test_parameters_in_another_order_are_the_same_request(stripe_fake):
    key = _key()
    first = stripe.Customer.create(
        email="a@example.com", metadata={"x": "1", "y": "2"}, idempotency_key=key
    )
    again = stripe.Customer.create(
        metadata={"y": "2", "x": "1"}, email="a@example.com", idempotency_key=key
    )
    assert again.id == first.id
    assert len(_customer_ids()) == 1


def test_the_same_key_with_other_parameters_is_refused(stripe_fake):
    key = _key()
    first = stripe.Customer.create(email="first@example.com", idempotency_key=key)

    with pytest.raises(stripe.IdempotencyError) as exc:
        stripe.Customer.create(email="second@example.com", idempotency_key=key)
    assert exc.value.http_status == 400
    assert key in str(exc.value)
    with pytest.raises(stripe.IdempotencyError):  # another endpoint is another request
        stripe.Product.create(name="first@example.com", idempotency_key=key)
    assert _customer_ids() == [first.id]


def test_different_keys_make_different_objects(stripe_fake):
    first = stripe.Customer.create(email="same@example.com", idempotency_key=_key())
    second = stripe.Customer.create(email="same@example.com", idempotency_key=_key())
    assert first.id != second.id
    assert sorted(_customer_ids()) == sorted([first.id, second.id])


def test_keys_are_scoped_to_the_api_key(stripe_fake):
    key = _key()
    first = stripe.Customer.create(email="k@example.com", idempotency_key=key)
    other = stripe.Customer.create(
        email="k@example.com", idempotency_key=key, api_key="sk_test_another_key_0000"
    )
    assert other.id != first.id


def test_an_error_is_replayed_and_not_run_again(stripe_fake):
    customer, _pm = make_customer()
    price = make_price(unit_amount=700)
    declined = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=customer.id)
    key = _key()
    params = {
        "customer": customer.id,
        "items": [{"price": price.id}],
        "default_payment_method": declined.id,
        "payment_behavior": "error_if_incomplete",
    }
    with pytest.raises(stripe.CardError) as first:
        stripe.Subscription.create(**params, idempotency_key=key)
    with pytest.raises(stripe.CardError) as again:
        stripe.Subscription.create(**params, idempotency_key=key)

    assert again.value.json_body == first.value.json_body
    assert again.value.headers["Idempotent-Replayed"] == "true"
    invoices = stripe.Invoice.list(customer=customer.id)["data"]
    assert len(invoices) == 1  # one attempt, one invoice


def test_get_requests_ignore_the_key(stripe_fake):
    customer = stripe.Customer.create(email="g@example.com", idempotency_key=_key())
    stripe.Customer.modify(customer.id, email="changed@example.com")
    # A GET carries no key in Stripe; the fake answers it live whatever the headers say.
    assert stripe.Customer.retrieve(customer.id).email == "changed@example.com"


def test_a_flush_forgets_the_keys(stripe_fake):
    key = _key()
    first = stripe.Customer.create(email="before@example.com", idempotency_key=key)
    stripe_fake.flush()

    after = stripe.Customer.create(email="after@example.com", idempotency_key=key)
    assert after.id != first.id
    assert after.last_response.headers.get("Idempotent-Replayed") is None
    assert _customer_ids() == [after.id]


def test_saved_responses_travel_with_the_state_file(tmp_path, monkeypatch):
    devstripe.install()  # the state file is an extension of localstripe's store
    saved = idempotency.SavedResponse(
        fingerprint="f", status=200, body=b"{}", content_type="application/json", saved_at=1.0
    )
    monkeypatch.setattr(resources, "STATE_FILE", str(tmp_path / "state.pickle"))
    monkeypatch.setattr(idempotency, "saved", {("sk_test_x|", "k1"): saved})

    resources.store.dump_to_disk()
    idempotency.forget_all()
    assert idempotency.saved == {}
    resources.store.try_load_from_disk()

    assert idempotency.saved == {("sk_test_x|", "k1"): saved}
    assert "_devstripe:idempotency" not in resources.store


def test_saved_responses_expire_after_a_day(monkeypatch):
    saved = idempotency.SavedResponse(
        fingerprint="f", status=200, body=b"{}", content_type="application/json", saved_at=1000.0
    )
    monkeypatch.setattr(idempotency, "saved", {("s", "k"): saved})
    assert idempotency.lookup(("s", "k"), now=1000.0 + idempotency.TTL_SECONDS) == saved
    assert idempotency.lookup(("s", "k"), now=1001.0 + idempotency.TTL_SECONDS) is None
    assert idempotency.saved == {}
