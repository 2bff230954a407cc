"""The staff console's API plans, customer plans and period closes."""

from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from marketplace import period_close
from marketplace.models import (
    ApiPlan,
    ApiPlanCharge,
    CustomerApiPlan,
    UsageChargeLine,
    UsagePeriodClose,
    month_bounds,
)
from tests.accounts.factories import UserFactory
from tests.marketplace.helpers import api_calls, bearer, event, key_for, post_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan():
    plan = ApiPlan.objects.create(code="payg", name="PAYG", currency="usd", is_default=True)
    ApiPlanCharge.objects.create(
        plan=plan, meter=api_calls(), price_model="per_unit", unit_amount=Decimal(1)
    )
    return plan


@pytest.fixture
def closes(plan):
    start, end = month_bounds(timezone.now())
    rows = []
    for number in range(6):
        close = UsagePeriodClose.objects.create(
            customer=UserFactory(),
            period_start=start,
            period_end=end,
            status=UsagePeriodClose.Status.FINALIZED,
            plan=plan,
            currency="usd",
            amount=1000 + number,
            stripe_invoice_id=f"in_{number}",
        )
        UsageChargeLine.objects.create(
            period_close=close,
            meter=api_calls(),
            quantity=1000,
            free_quantity=0,
            billable_quantity=1000,
            amount=1000 + number,
            description="API calls",
        )
        rows.append(close)
    CustomerApiPlan.objects.create(customer=rows[0].customer, plan=plan)
    return rows


@pytest.mark.parametrize(
    ("model", "query"),
    [
        (ApiPlan, ""),
        (CustomerApiPlan, "?q=example"),
        (UsagePeriodClose, ""),
        (UsagePeriodClose, "?status__exact=finalized&q=example"),
    ],
)
def test_changelists_render_with_bounded_queries(
    admin_client, closes, model, query, django_assert_max_num_queries
):
    url = reverse(f"admin:marketplace_{model._meta.model_name}_changelist") + query
    with django_assert_max_num_queries(12):
        response = admin_client.get(url)
    assert response.status_code == 200


def test_a_close_page_shows_its_lines_and_money_and_cannot_be_edited(admin_client, closes):
    close = closes[1]
    page = admin_client.get(reverse("admin:marketplace_usageperiodclose_change", args=[close.pk]))
    assert page.status_code == 200
    content = page.content.decode()
    assert "in_1" in content and "API calls" in content
    listing = admin_client.get(reverse("admin:marketplace_usageperiodclose_changelist"))
    assert "10.01 USD" in listing.content.decode()
    response = admin_client.post(
        reverse("admin:marketplace_usageperiodclose_change", args=[close.pk]), {"amount": 1}
    )
    assert response.status_code == 403


def test_the_plan_form_refuses_a_charge_that_is_no_price(admin_client):
    url = reverse("admin:marketplace_apiplan_add")
    prefix = "charges"
    response = admin_client.post(
        url,
        {
            "code": "bad",
            "name": "Bad",
            "currency": "usd",
            "is_active": "on",
            "description": "",
            f"{prefix}-TOTAL_FORMS": "1",
            f"{prefix}-INITIAL_FORMS": "0",
            f"{prefix}-0-meter": api_calls().pk,
            f"{prefix}-0-price_model": "graduated",
            f"{prefix}-0-tiers": '[{"up_to": 10, "unit_amount": 1}]',
            f"{prefix}-0-free_units": "0",
            f"{prefix}-0-package_round": "up",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "open-ended" in response.content.decode()
    assert not ApiPlan.objects.filter(code="bad").exists()


def test_retry_now_resumes_a_failed_close_and_logs(admin_client, plan, stripe_fake, monkeypatch):
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    user = UserFactory()
    post_events(bearer(key_for(user)), [event("e1", 30)])
    start, end = month_bounds(timezone.now())
    after = end + period_close.grace() + timedelta(minutes=1)
    stripe_fake.fail_next("POST", "/v1/invoices", when="before")
    failed = period_close.usage_period_close(customer=user, period_start=start, now=after)
    assert failed.status == UsagePeriodClose.Status.INVOICING and failed.last_error

    response = admin_client.post(
        reverse("admin:marketplace_usageperiodclose_changelist"),
        {"action": "retry_now", "_selected_action": [failed.pk]},
    )

    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.status in (UsagePeriodClose.Status.FINALIZED, UsagePeriodClose.Status.PAID)
    assert failed.stripe_invoice_id and failed.last_error == ""
    assert LogEntry.objects.filter(object_id=str(failed.pk)).exists()


def test_read_only_staff_cannot_retry(client, closes, django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user(
        email="viewer@example.com", password="pw-123456789", is_staff=True
    )
    staff.user_permissions.add(Permission.objects.get(codename="view_usageperiodclose"))
    client.force_login(staff)
    page = client.get(reverse("admin:marketplace_usageperiodclose_changelist"))
    assert page.status_code == 200
    assert "retry_now" not in page.content.decode()
