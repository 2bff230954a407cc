"""Selectors behind the staff customer list and page: MRR and past-due per customer, and what
of a charge can still be refunded."""

from __future__ import annotations

import pytest
from django.utils import timezone

from subscriptions import selectors
from subscriptions.models import BillingCustomer, DunningCase, SubscriptionState
from tests.accounts.factories import UserFactory


def _state(customer: str, sub: str, status: str, mrr: int) -> SubscriptionState:
    return SubscriptionState.objects.create(
        stripe_subscription_id=sub,
        stripe_customer_id=customer,
        status=status,
        currency="usd",
        mrr=mrr,
        as_of=timezone.now(),
    )


@pytest.mark.django_db
def test_customer_list_sums_mrr_and_flags_past_due_or_dunning(django_assert_num_queries):
    for cus in ("cus_two", "cus_late", "cus_dunning", "cus_none"):
        BillingCustomer.objects.create(user=UserFactory(), stripe_customer_id=cus)
    _state("cus_two", "sub_a", "active", 1000)
    _state("cus_two", "sub_b", "trialing", 0)
    _state("cus_two", "sub_c", "active", 2500)
    _state("cus_late", "sub_d", "past_due", 700)
    _state("cus_dunning", "sub_e", "active", 300)
    DunningCase.objects.create(
        stripe_invoice_id="in_open",
        stripe_customer_id="cus_dunning",
        amount_due=300,
        currency="usd",
        opened_at=timezone.now(),
    )
    DunningCase.objects.create(  # a closed case does not make its customer past due
        stripe_invoice_id="in_closed",
        stripe_customer_id="cus_two",
        amount_due=1000,
        currency="usd",
        status=DunningCase.Status.RECOVERED,
        opened_at=timezone.now(),
    )

    with django_assert_num_queries(1):
        rows = {
            c.stripe_customer_id: (c.mrr_total, c.past_due) for c in selectors.customer_list_admin()
        }

    assert rows == {
        "cus_two": (3500, False),
        "cus_late": (700, True),
        "cus_dunning": (300, True),
        "cus_none": (None, False),
    }


@pytest.mark.parametrize(
    ("charge", "left"),
    [
        ({"status": "succeeded", "amount": 3000, "amount_refunded": 0}, 3000),
        ({"status": "succeeded", "amount": 3000, "amount_refunded": 700}, 2300),
        ({"status": "succeeded", "amount": 3000, "amount_refunded": 3000}, 0),
        ({"status": "succeeded", "amount": 3000}, 3000),
        ({"status": "failed", "amount": 3000, "amount_refunded": 0}, 0),
        ({"status": "pending", "amount": 3000, "amount_refunded": 0}, 0),
    ],
)
def test_charge_refundable_amount(charge, left):
    assert selectors.charge_refundable_amount(charge=charge) == left
