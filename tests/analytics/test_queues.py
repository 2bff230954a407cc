"""The dashboard's work queues: each count is the number of rows its link's changelist shows,
one query per queue, and staff see only the queues of models they may view."""

from datetime import date
from decimal import Decimal

import pytest
from django.utils import timezone
from djstripe.models import Dispute

from affiliates.models import Affiliate, Commission
from analytics.queues import QUEUES, queues_for
from ledger.models import Account, PayeeProfile, Payout, PayoutBatch
from marketplace.models import Listing, Order
from subscriptions.models import DunningCase, WebhookEvent
from tests.accounts.factories import StaffUserFactory, SuperuserFactory, UserFactory
from tests.affiliates.factories import AffiliateFactory, CommissionFactory
from tests.marketplace.factories import ListingFactory

pytestmark = pytest.mark.django_db


def _waiting_and_done_rows():
    """Two rows waiting in every queue, and one row next to it that does not wait."""
    for flags, status, reviewed in (
        (["ip_match"], Commission.Status.HELD, None),
        (["velocity"], Commission.Status.HELD, None),
        (["ip_match"], Commission.Status.HELD, timezone.now()),  # reviewed already
        ([], Commission.Status.HELD, None),  # not flagged
    ):
        CommissionFactory(flags=flags, status=status, reviewed_at=reviewed)
    AffiliateFactory(status=Affiliate.Status.PENDING)
    AffiliateFactory(status=Affiliate.Status.PENDING)
    AffiliateFactory(status=Affiliate.Status.APPROVED)
    for n, status in enumerate(("needs_response", "under_review", "won")):
        Dispute.objects.create(
            id=f"dp_{n}", stripe_data={"id": f"dp_{n}", "status": status, "amount": 100}
        )
    for n, status in enumerate(("failed", "failed", "succeeded")):
        WebhookEvent.objects.create(
            stripe_event_id=f"evt_{n}",
            type="invoice.paid",
            stripe_created=timezone.now(),
            payload={},
            status=status,
        )
    batch = PayoutBatch.objects.create(
        payee_type=Account.PayeeType.AFFILIATE, as_of=date(2026, 1, 31)
    )
    for payee_id, status in ((1, "failed"), (2, "failed"), (3, "paid")):
        Payout.objects.create(
            batch=batch,
            payee_type=Account.PayeeType.AFFILIATE,
            payee_id=payee_id,
            amount=500,
            currency="usd",
            method=PayeeProfile.Method.BANK_CSV,
            status=status,
        )
    for n, status in enumerate(("open", "open", "recovered")):
        DunningCase.objects.create(
            stripe_invoice_id=f"in_{n}",
            stripe_customer_id="cus_1",
            amount_due=900,
            currency="usd",
            status=status,
            opened_at=timezone.now(),
        )
    listing = ListingFactory()
    package = listing.packages.get()
    buyer = UserFactory()
    for state in (Order.State.DISPUTED, Order.State.DISPUTED, Order.State.PAID):
        Order.objects.create(
            buyer=buyer,
            provider=listing.provider,
            listing=listing,
            package=package,
            state=state,
            price=5000,
            currency="usd",
            commission_percent=Decimal("15.00"),
        )
    ListingFactory(status=Listing.Status.PENDING_REVIEW)
    ListingFactory(status=Listing.Status.PENDING_REVIEW)


def test_each_queue_counts_what_its_link_shows(client, django_assert_max_num_queries):
    _waiting_and_done_rows()
    boss = SuperuserFactory()
    # the superuser's has_perm asks nothing of the database: one COUNT per queue
    with django_assert_max_num_queries(len(QUEUES)):
        waiting = queues_for(user=boss)

    assert [q.key for q in waiting] == [spec.key for spec in QUEUES]
    assert {q.key: q.count for q in waiting} == {spec.key: 2 for spec in QUEUES}
    client.force_login(boss)
    for queue in waiting:
        response = client.get(queue.url)
        assert response.status_code == 200, queue.url
        assert response.context["cl"].result_count == queue.count, queue.key


def test_staff_see_only_the_queues_of_models_they_may_view():
    affiliate_manager = StaffUserFactory(groups=["Affiliate manager"])
    keys = [q.key for q in queues_for(user=affiliate_manager)]
    assert keys == ["fraud_reviews", "affiliate_applications"]
    assert queues_for(user=StaffUserFactory()) == []
