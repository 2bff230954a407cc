"""Staff console for payout batches: approve / execute / export CSV actions, bounded queries."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.urls import reverse

from affiliates.models import Referral
from affiliates.services.commissions import commission_accrue, commissions_approve_due
from ledger.models import PayeeProfile, PayoutBatch
from ledger.payouts import payout_batch_run
from tests.affiliates.factories import AffiliateFactory, ProgramFactory

pytestmark = pytest.mark.django_db

PAID = datetime(2026, 1, 10, tzinfo=UTC)


def _payees(n: int) -> None:
    for i in range(n):
        affiliate = AffiliateFactory(program=ProgramFactory(minimum_payout=100, hold_days=1))
        PayeeProfile.objects.create(
            payee_type="affiliate",
            payee_id=affiliate.pk,
            method="paypal",
            paypal_email=f"payee{affiliate.pk}@example.com",
        )
        referral = Referral.objects.create(
            affiliate=affiliate,
            stripe_customer_id=f"cus_pa{affiliate.pk}",
            source="code",
            referred_at=PAID,
        )
        commission_accrue(
            invoice={
                "id": f"in_pa{affiliate.pk}_{i}",
                "customer": referral.stripe_customer_id,
                "amount_paid": 10050,
                "currency": "usd",
                "status_transitions": {"paid_at": int(PAID.timestamp())},
            },
            occurred_at=PAID,
        )
    commissions_approve_due(now=datetime(2026, 1, 20, tzinfo=UTC))


def test_draft_batch_approve_execute_and_export_from_the_admin(admin_client):
    _payees(2)
    batch = payout_batch_run(payee_type="affiliate", as_of=date(2026, 1, 31), execute=False)
    url = reverse("admin:ledger_payoutbatch_changelist")

    admin_client.post(url, {"action": "execute", "_selected_action": [batch.pk]})
    batch.refresh_from_db()
    assert batch.status == "draft"  # not approved yet: refused

    admin_client.post(url, {"action": "approve", "_selected_action": [batch.pk]})
    admin_client.post(url, {"action": "execute", "_selected_action": [batch.pk]})
    batch.refresh_from_db()
    assert batch.status == PayoutBatch.Status.COMPLETED
    assert set(batch.payouts.values_list("status", flat=True)) == {"paid"}

    response = admin_client.post(url, {"action": "export_csv", "_selected_action": [batch.pk]})
    rows = response.content.decode().splitlines()
    assert response["Content-Type"] == "text/csv"
    assert len(rows) == 2 and all(",20.10,USD," in row for row in rows)  # 20 % of 100.50


@pytest.mark.parametrize("name", ["payoutbatch", "payout", "payeeprofile"])
def test_changelists_render_with_bounded_queries(admin_client, name, django_assert_max_num_queries):
    _payees(6)
    payout_batch_run(payee_type="affiliate", as_of=date(2026, 1, 31))
    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse(f"admin:ledger_{name}_changelist"))
    assert response.status_code == 200


def test_batch_change_page_lists_its_payouts(admin_client, django_assert_max_num_queries):
    _payees(5)
    batch = payout_batch_run(payee_type="affiliate", as_of=date(2026, 1, 31))
    with django_assert_max_num_queries(15):
        response = admin_client.get(reverse("admin:ledger_payoutbatch_change", args=[batch.pk]))
    assert response.status_code == 200
    assert response.content.decode().count("$20.10") == 5
