"""Staff console: commission changelist (filters, review queue, bounded queries) and actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from affiliates.models import Commission, Referral
from affiliates.services.commissions import commission_accrue
from ledger.selectors import payee_balance
from tests.affiliates.factories import AffiliateFactory, ProgramFactory

pytestmark = pytest.mark.django_db

URL = reverse("admin:affiliates_commission_changelist")
_n = iter(range(1, 100_000))


def _commissions(n: int, *, flags: list[str] | None = None, paid_at=None) -> list[Commission]:
    paid_at = paid_at or datetime.now(UTC) - timedelta(days=1)
    made = []
    for _ in range(n):
        affiliate = AffiliateFactory(program=ProgramFactory(hold_days=0))
        referral = Referral.objects.create(
            affiliate=affiliate,
            stripe_customer_id=f"cus_adm{next(_n)}",
            source="code",
            referred_at=paid_at,
        )
        commission = commission_accrue(
            invoice={
                "id": f"in_adm{next(_n)}",
                "customer": referral.stripe_customer_id,
                "amount_paid": 5000,
                "currency": "usd",
                "status_transitions": {"paid_at": int(paid_at.timestamp())},
            },
            occurred_at=paid_at,
        )
        if flags:
            Commission.objects.filter(pk=commission.pk).update(flags=flags)
        made.append(commission)
    return made


@pytest.mark.parametrize(
    "query", ["", "?status__exact=held", "?flagged=review", "?flagged=no", "?q=in_adm1"]
)
def test_changelist_queries_do_not_grow_with_rows(
    admin_client, query, django_assert_max_num_queries
):
    _commissions(2, flags=["fast_conversion"])
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(URL + query).status_code == 200
    _commissions(12, flags=["fast_conversion"])
    _commissions(3)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(URL + query)
    assert response.status_code == 200


def test_the_review_queue_lists_flagged_held_commissions_with_reasons(admin_client):
    flagged = _commissions(1, flags=["self_referral_domain", "fast_conversion"])[0]
    clean = _commissions(1)[0]

    page = admin_client.get(URL + "?flagged=review").content.decode()

    assert "self_referral_domain, fast_conversion" in page
    assert flagged.stripe_invoice_id in page and clean.stripe_invoice_id not in page


def test_approve_and_reject_on_review_call_the_service_and_log(admin_client):
    approve, reject = _commissions(2, flags=["fast_conversion"])

    admin_client.post(URL, {"action": "approve_on_review", "_selected_action": [approve.pk]})
    admin_client.post(URL, {"action": "reject_on_review", "_selected_action": [reject.pk]})

    approve.refresh_from_db()
    reject.refresh_from_db()
    assert approve.status == "approved" and approve.reviewed_by is not None
    assert (reject.status, reject.reversed_amount) == ("reversed", 1000)
    assert payee_balance(payee_type="affiliate", payee_id=reject.affiliate_id) == {}
    assert LogEntry.objects.filter(object_id__in=[str(approve.pk), str(reject.pk)]).count() == 2


def test_money_fields_are_read_only(admin_client):
    commission = _commissions(1)[0]
    page = admin_client.get(reverse("admin:affiliates_commission_change", args=[commission.pk]))
    assert page.status_code == 200
    assert 'name="amount"' not in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
