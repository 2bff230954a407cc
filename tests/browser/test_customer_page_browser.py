"""The staff customer page in a real browser: a partial refund from the page, end to end."""

import pytest
import stripe

from accounts.models import User
from ledger.models import Transaction
from subscriptions.models import BillingCustomer
from tests.accounts.factories import UserFactory
from tests.subscriptions.effects_helpers import EventFeed, make_customer, make_price, subscribe

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_staff_refunds_part_of_a_payment_from_the_customer_page(live_server, page, stripe_fake):
    feed = EventFeed()
    price = make_price(unit_amount=2_500)
    customer, pm = make_customer(email="payer@example.com")
    subscribe(customer, pm, price)
    feed.process_new()  # invoice.paid and friends, as the webhook inbox would
    billing = BillingCustomer.objects.create(
        user=UserFactory(email="payer@example.com"), stripe_customer_id=customer.id
    )
    User.objects.create_superuser(email="boss@example.com", password="a-long-Passw0rd!")

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", "boss@example.com")
    page.fill("input[name=password]", "a-long-Passw0rd!")
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/subscriptions/billingcustomer/{billing.pk}/change/")
    assert "$25.00" in page.inner_text("#content-main")
    assert page.locator("input[name=_save]").count() == 0  # read-only page: actions only

    page.click("a:text-is('refund')")
    page.fill("input[name=amount]", "1000")
    page.click("input[type=submit]")

    message = page.inner_text(".messagelist")
    assert "Refund re_" in message
    charge = stripe.Charge.list(customer=customer.id).data[0]
    assert charge.amount_refunded == 1_000

    feed.process_new()  # charge.refunded reaches the ledger
    refund_id = message.split("Refund ", 1)[1].split(" ", 1)[0]
    reversal = Transaction.objects.get(idempotency_key=f"stripe:refund:{refund_id}")
    amounts = sorted(entry.amount for entry in reversal.entries.all())
    assert amounts == [-1_000, 1_000]
