"""The staff customer page, the dunning list, and the read-only Stripe mirror."""

from __future__ import annotations

import pytest
import stripe
from django.urls import reverse
from djstripe import models as djm

from ledger.models import Transaction
from subscriptions.models import BillingCustomer, DunningCase
from subscriptions.selectors import customer_overview
from tests.accounts.factories import UserFactory
from tests.stripe_paths import invoice_charge_id
from tests.subscriptions.effects_helpers import EventFeed, make_customer, make_price, subscribe

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client


def _paying_customers(n: int, feed: EventFeed, price) -> list[BillingCustomer]:
    customers = []
    for i in range(n):
        customer, pm = make_customer(email=f"c{i}@example.com")
        subscribe(customer, pm, price, quantity=i + 1, metadata={"referral_code": f"REF{i}"})
        feed.process_new()
        customers.append(
            BillingCustomer.objects.create(
                user=UserFactory(email=f"c{i}@example.com"), stripe_customer_id=customer.id
            )
        )
    return customers


def test_changelist_and_customer_page_have_bounded_queries(
    stripe_fake, staff_client, django_assert_max_num_queries
):
    feed = EventFeed()
    price = make_price(unit_amount=1000)
    customers = _paying_customers(4, feed, price)
    url = reverse("admin:subscriptions_billingcustomer_changelist")

    with django_assert_max_num_queries(12):
        response = staff_client.get(url)
    assert response.status_code == 200
    assert all(c.stripe_customer_id in response.content.decode() for c in customers)

    with django_assert_max_num_queries(12):
        response = staff_client.get(url + "?subscription_status=active&past_due=yes")
    assert response.status_code == 200

    target = customers[2]
    page = reverse("admin:subscriptions_billingcustomer_change", args=[target.pk])
    with django_assert_max_num_queries(20):
        response = staff_client.get(page)
    body = response.content.decode()
    assert response.status_code == 200
    sub = djm.Subscription.objects.get(customer__id=target.stripe_customer_id)
    invoice = djm.Invoice.objects.get(customer__id=target.stripe_customer_id)
    assert sub.id in body and invoice.id in body
    assert f"stripe:invoice.paid:{invoice.id}" in body
    assert "REF2" in body
    assert "$30.00" in body or "30.00" in body  # 3 x 1000 paid


def test_filters_select_the_right_customers(stripe_fake, staff_client):
    feed = EventFeed()
    price = make_price(unit_amount=1000)
    paying = _paying_customers(1, feed, price)[0]
    declined, pm = make_customer(card="pm_card_chargeCustomerFail", email="late@example.com")
    subscribe(declined, pm, price)
    feed.process_new()
    late = BillingCustomer.objects.create(
        user=UserFactory(email="late@example.com"), stripe_customer_id=declined.id
    )
    url = reverse("admin:subscriptions_billingcustomer_changelist")

    body = staff_client.get(url + "?past_due=yes").content.decode()
    assert late.stripe_customer_id in body and paying.stripe_customer_id not in body
    body = staff_client.get(url + "?subscription_status=active").content.decode()
    assert paying.stripe_customer_id in body and late.stripe_customer_id not in body


def test_partial_refund_action_refunds_at_stripe_and_the_event_books_it_once(
    stripe_fake, staff_client
):
    feed = EventFeed()
    price = make_price(unit_amount=2000)
    customer = _paying_customers(1, feed, price)[0]
    charge = djm.Charge.objects.get(customer__id=customer.stripe_customer_id)
    url = reverse(
        "admin:subscriptions_billingcustomer_action", args=[customer.pk, "refund", charge.id]
    )

    form = staff_client.get(url)
    assert form.status_code == 200
    token = form.context["form"].initial["token"]
    data = {"amount": "700", "reason": "requested_by_customer", "token": token}
    assert staff_client.post(url, data).status_code == 302
    again = staff_client.post(url, data)  # double submit: refused, nothing refunded twice
    assert again.status_code == 200
    assert "already submitted" in again.content.decode()

    assert stripe.Charge.retrieve(charge.id)["amount_refunded"] == 700
    feed.process_new()
    reversal = Transaction.objects.get(source="subscriptions.refund")
    assert sum(e.amount for e in reversal.entries.all() if e.amount > 0) == 700

    too_much = {"amount": "5000", "reason": "requested_by_customer", "token": "other"}
    response = staff_client.post(url, too_much)
    assert response.status_code == 200  # the form again, with Stripe's reason
    assert "greater than" in response.content.decode()


def test_action_on_another_customers_charge_is_refused(stripe_fake, staff_client):
    feed = EventFeed()
    price = make_price(unit_amount=2000)
    a, b = _paying_customers(2, feed, price)
    charge_of_b = djm.Charge.objects.get(customer__id=b.stripe_customer_id)
    url = reverse(
        "admin:subscriptions_billingcustomer_action", args=[a.pk, "refund", charge_of_b.id]
    )
    assert staff_client.get(url).status_code == 403


def test_dunning_list_shows_open_cases_first(staff_client, django_assert_max_num_queries):
    from django.utils import timezone

    now = timezone.now()
    for i, status in enumerate(["recovered", "open", "closed", "open"]):
        DunningCase.objects.create(
            stripe_invoice_id=f"in_{i}",
            stripe_customer_id="cus_x",
            amount_due=100,
            currency="usd",
            status=status,
            opened_at=now,
        )
    with django_assert_max_num_queries(8):
        response = staff_client.get(reverse("admin:subscriptions_dunningcase_changelist"))
    order = [case.status for case in response.context["cl"].result_list]
    assert order[:2] == ["open", "open"]


def test_stripe_mirror_is_view_only_but_webhook_endpoints_stay_editable(staff_client):
    from django.contrib import admin

    request = staff_client.get("/admin/").wsgi_request
    for model in (djm.Customer, djm.Subscription, djm.Invoice, djm.Charge, djm.Price):
        model_admin = admin.site._registry[model]
        assert model_admin.has_view_permission(request)
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)
    assert admin.site._registry[djm.WebhookEndpoint].has_add_permission(request)


def test_cancel_action_calls_the_billing_service_and_the_event_churns(stripe_fake, staff_client):
    from analytics.models import MRRMovement

    feed = EventFeed()
    price = make_price(unit_amount=1000)
    customer = _paying_customers(1, feed, price)[0]
    sub = djm.Subscription.objects.get(customer__id=customer.stripe_customer_id)
    url = reverse(
        "admin:subscriptions_billingcustomer_action", args=[customer.pk, "cancel", sub.id]
    )

    response = staff_client.post(url, {})  # at_period_end unticked: cancel now
    assert response.status_code == 302
    assert stripe.Subscription.retrieve(sub.id)["status"] == "canceled"
    feed.process_new()
    assert MRRMovement.objects.filter(stripe_subscription_id=sub.id, kind="churn").count() == 1
    from django.contrib.admin.models import LogEntry

    assert "Cancel subscription" in LogEntry.objects.get().change_message


def test_customer_page_shows_a_won_dispute_and_its_booking_back(
    stripe_fake, staff_client, django_assert_max_num_queries
):
    feed = EventFeed()
    customer, pm = make_customer(card="pm_card_createDispute", email="won@example.com")
    sub = subscribe(customer, pm, make_price(unit_amount=1800))
    charge_id = invoice_charge_id(sub.latest_invoice)
    [dispute] = stripe.Dispute.list(charge=charge_id)["data"]
    stripe.Dispute.modify(dispute.id, evidence={"uncategorized_text": "winning_evidence"})
    feed.process_new()
    billing = BillingCustomer.objects.create(
        user=UserFactory(email="won@example.com"), stripe_customer_id=customer.id
    )
    page = reverse("admin:subscriptions_billingcustomer_change", args=[billing.pk])

    with django_assert_max_num_queries(20):
        body = staff_client.get(page).content.decode()

    for key in (
        f"stripe:invoice.paid:{sub.latest_invoice}",
        f"stripe:dispute:{dispute.id}",
        f"stripe:dispute.won:{dispute.id}",
    ):
        assert key in body


def test_customer_page_offers_a_refund_while_something_is_left(stripe_fake, staff_client):
    feed = EventFeed()
    customer = _paying_customers(1, feed, make_price(unit_amount=2000))[0]
    charge = djm.Charge.objects.get(customer__id=customer.stripe_customer_id)
    page = reverse("admin:subscriptions_billingcustomer_change", args=[customer.pk])
    refund_url = reverse(
        "admin:subscriptions_billingcustomer_action", args=[customer.pk, "refund", charge.id]
    )

    stripe.Refund.create(charge=charge.id, amount=1500)
    feed.process_new()
    assert customer_overview(customer=customer).refundable == {charge.id: 500}
    assert refund_url in staff_client.get(page).content.decode()

    stripe.Refund.create(charge=charge.id)
    feed.process_new()
    assert customer_overview(customer=customer).refundable == {charge.id: 0}
    assert refund_url not in staff_client.get(page).content.decode()
