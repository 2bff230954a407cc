"""The fake's injected faults (``devstripe/faults.py``) and the invoice list's filters."""

import time

import pytest
import stripe

from tests.subscriptions.effects_helpers import key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_client_retries(monkeypatch):
    monkeypatch.setattr(stripe, "max_network_retries", 0)


def test_a_fault_before_runs_nothing_and_one_after_runs_the_write(stripe_fake):
    stripe_fake.fail_next("POST", "/v1/customers", when="before")
    with pytest.raises(stripe.APIError):
        stripe.Customer.create(email="a@example.com", idempotency_key=key("a"))
    assert stripe.Customer.list().data == []

    stripe_fake.fail_next("POST", "/v1/customers", when="after")
    same = key("b")
    with pytest.raises(stripe.APIError):
        stripe.Customer.create(email="b@example.com", idempotency_key=same)
    assert [c.email for c in stripe.Customer.list().data] == ["b@example.com"]
    # As Stripe: the failed answer is saved under the key and replayed; nothing runs again.
    with pytest.raises(stripe.APIError):
        stripe.Customer.create(email="b@example.com", idempotency_key=same)
    assert len(stripe.Customer.list().data) == 1
    # Only `count` requests fail.
    assert stripe.Customer.create(email="c@example.com", idempotency_key=key("c")).id


def test_a_prefix_fault_matches_sub_paths_and_a_flush_forgets_faults(stripe_fake):
    customer = stripe.Customer.create(email="a@example.com", idempotency_key=key("a"))
    stripe_fake.fail_next("POST", "/v1/customers/*", status=503, count=2)
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            stripe.Customer.modify(customer.id, name="x", idempotency_key=key("m"))
    assert stripe.Customer.modify(customer.id, name="y", idempotency_key=key("m")).name == "y"
    stripe_fake.fail_next("POST", "/v1/customers")
    stripe_fake.flush()
    assert stripe.Customer.create(email="d@example.com", idempotency_key=key("d")).id


def test_invoices_list_by_created_and_status(stripe_fake):
    customer = stripe.Customer.create(email="a@example.com", idempotency_key=key("a"))
    first = stripe.Invoice.create(customer=customer.id, currency="usd", idempotency_key=key("i"))
    time.sleep(1.1)
    second = stripe.Invoice.create(customer=customer.id, currency="usd", idempotency_key=key("j"))
    stripe.Invoice.finalize_invoice(second.id, idempotency_key=key("f"))

    listed = stripe.Invoice.list(customer=customer.id, created={"gt": first.created}).data
    assert [i.id for i in listed] == [second.id]
    assert [i.id for i in stripe.Invoice.list(customer=customer.id, status="draft").data] == [
        first.id
    ]
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe.Invoice.list(status="pending")
    assert raised.value.param == "status"
