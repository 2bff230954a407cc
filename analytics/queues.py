"""Work queues on the staff dashboard: what needs a person, how many, and where to do it.

Each queue is one COUNT on an indexed (or small) table, and links to the admin changelist
filtered to exactly the rows counted, so the number on the dashboard is the number of rows
the link shows. A staff user sees only the queues whose model they may view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.db.models import Model, QuerySet
from django.urls import reverse
from djstripe.models import Dispute

from affiliates.models import Affiliate, Commission
from ledger.models import Payout
from marketplace.models import Listing, ListingReviewQueue, Order
from subscriptions.models import DunningCase, WebhookEvent

# Stripe's dispute statuses that still wait for something (evidence, or the bank's answer).
OPEN_DISPUTE_STATUSES = (
    "warning_needs_response",
    "needs_response",
    "warning_under_review",
    "under_review",
)


@dataclass(frozen=True)
class QueueSpec:
    key: str
    label: str
    model: type[Model]  # the model whose changelist the link opens (permission checked on it)
    rows: Callable[[], QuerySet[Any]]  # exactly the rows the filtered changelist shows
    params: dict[str, str]  # the changelist's filter, as its query string


@dataclass(frozen=True)
class Queue:
    key: str
    label: str
    count: int
    url: str

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "count": self.count, "url": self.url}


QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec(
        key="fraud_reviews",
        label="Commissions flagged for fraud review",
        model=Commission,
        # affiliates.admin.commissions.FlaggedFilter's "review" choice, same rows.
        rows=lambda: Commission.objects.exclude(flags=[]).filter(
            status=Commission.Status.HELD, reviewed_at__isnull=True
        ),
        params={"flagged": "review"},
    ),
    QueueSpec(
        key="affiliate_applications",
        label="Affiliate applications to approve",
        model=Affiliate,
        rows=lambda: Affiliate.objects.filter(status=Affiliate.Status.PENDING),
        params={"status__exact": Affiliate.Status.PENDING},
    ),
    QueueSpec(
        key="open_disputes",
        label="Open card disputes (Stripe)",
        model=Dispute,
        rows=lambda: Dispute.objects.filter(stripe_data__status__in=OPEN_DISPUTE_STATUSES),
        params={"stripe_data__status__in": ",".join(OPEN_DISPUTE_STATUSES)},
    ),
    QueueSpec(
        key="failed_webhooks",
        label="Failed webhook events",
        model=WebhookEvent,
        rows=lambda: WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED),
        params={"status__exact": WebhookEvent.Status.FAILED},
    ),
    QueueSpec(
        key="failed_payouts",
        label="Failed payouts",
        model=Payout,
        rows=lambda: Payout.objects.filter(status=Payout.Status.FAILED),
        params={"status__exact": Payout.Status.FAILED},
    ),
    QueueSpec(
        key="dunning_cases",
        label="Open dunning cases",
        model=DunningCase,
        rows=lambda: DunningCase.objects.filter(status=DunningCase.Status.OPEN),
        params={"status__exact": DunningCase.Status.OPEN},
    ),
    QueueSpec(
        key="order_disputes",
        label="Disputed marketplace orders",
        model=Order,
        rows=lambda: Order.objects.filter(state=Order.State.DISPUTED),
        params={"state__exact": Order.State.DISPUTED},
    ),
    QueueSpec(
        key="listings_pending_review",
        label="Listings awaiting review",
        model=ListingReviewQueue,
        # The moderation queue's changelist lists exactly these (listing_review_queue).
        rows=lambda: Listing.objects.filter(status=Listing.Status.PENDING_REVIEW),
        params={},
    ),
)


def _view_permission(model: type[Model]) -> str:
    return f"{model._meta.app_label}.view_{model._meta.model_name}"


def _changelist_url(spec: QueueSpec) -> str:
    url = reverse(f"admin:{spec.model._meta.app_label}_{spec.model._meta.model_name}_changelist")
    return f"{url}?{urlencode(spec.params)}" if spec.params else url


def queues_for(*, user: Any) -> list[Queue]:
    """The queues ``user`` may open, with their counts: one COUNT query per queue."""
    visible = [spec for spec in QUEUES if user.has_perm(_view_permission(spec.model))]
    return [
        Queue(
            key=spec.key,
            label=spec.label,
            count=spec.rows().order_by().count(),
            url=_changelist_url(spec),
        )
        for spec in visible
    ]


__all__ = ["OPEN_DISPUTE_STATUSES", "QUEUES", "Queue", "queues_for"]
