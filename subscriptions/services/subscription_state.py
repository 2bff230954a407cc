"""What subscription events do to our side: the subscription's state and MRR movements.

``subscription_state_apply`` keeps one ``SubscriptionState`` row per Stripe subscription,
guarded by the event time (older events never overwrite newer state), records an MRR movement
when the subscription's MRR changes (unique per event and subscription) and closes the
subscription's open dunning cases when it is canceled.

Delivery order does not matter (issue 14's webhook storm test): an event that is not newer
than everything applied to its customer replays the customer's subscription events from its
time on, in event order, as ``manage.py analytics_rebuild`` does for all of them, so the
movements (whose kinds depend on the customer's earlier ones) end as in-order delivery leaves
them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from djstripe import models as djm

from analytics.mrr import subscription_mrr
from analytics.rebuild import customer_movements_rebuild
from analytics.services import mrr_movement_record
from revenue_site.stripe_payloads import stripe_id
from subscriptions.models import SubscriptionState, WebhookEvent
from subscriptions.services.dunning import dunning_cases_close
from subscriptions.stripe_expand import subscription_discounts_expanded

logger = logging.getLogger(__name__)

# The events subscriptions.receivers applies here (paused / resumed come with an update).
APPLIED_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)


@transaction.atomic
def subscription_state_apply(
    *, subscription: Mapping[str, Any], event_id: str, occurred_at: datetime
) -> SubscriptionState:
    """Apply a subscription as of ``occurred_at`` (the event's ``created``) to our state.

    An event newer than every one applied to the customer's subscriptions so far updates the
    state and, when the subscription's MRR changes, records an MRR movement (once per event).
    Any other (delivered out of order, or of the same second as an applied one: Stripe's
    ``created`` has one-second resolution) replays the customer's subscription events from its
    time on in event order (``analytics.rebuild.customer_movements_rebuild``): the movements
    and states end as in-order delivery leaves them, whatever order the events came in.
    When the subscription becomes canceled its open dunning cases are CLOSED.
    """
    sub_id = stripe_id(subscription.get("id"))
    customer_id = stripe_id(subscription.get("customer"))
    status = str(subscription.get("status") or "")
    # An event lists discounts by id; their coupons come from the mirror.
    subscription = subscription_discounts_expanded(subscription=subscription)
    currency, mrr = subscription_mrr(subscription, at=occurred_at)
    # Serialise MRR changes per customer: a movement's kind depends on the customer's total.
    list(djm.Customer.objects.select_for_update().filter(id=customer_id).values_list("pk"))
    late = SubscriptionState.objects.filter(
        stripe_customer_id=customer_id, as_of__gte=occurred_at
    ).exists()
    state, created = SubscriptionState.objects.select_for_update().get_or_create(
        stripe_subscription_id=sub_id,
        defaults={
            "stripe_customer_id": customer_id,
            "status": status,
            "currency": currency,
            "mrr": mrr,
            "as_of": occurred_at,
        },
    )
    if late and _customer_replay(customer_id=customer_id, since=occurred_at, event_id=event_id):
        state.refresh_from_db()
    else:
        # In order (or the replay could not tell): older events never overwrite newer state.
        old_mrr = 0
        stale = False
        if not created:
            stale = occurred_at < state.as_of or (
                occurred_at == state.as_of and state.status == "canceled" and status != "canceled"
            )
            if not stale:
                old_mrr = state.mrr
                state.stripe_customer_id = customer_id
                state.status = status
                state.currency = currency or state.currency
                state.mrr = mrr
                state.as_of = occurred_at
                state.save()
        if not stale and mrr != old_mrr:
            mrr_movement_record(
                stripe_customer_id=customer_id,
                stripe_subscription_id=sub_id,
                currency=state.currency,
                old_mrr=old_mrr,
                new_mrr=mrr,
                occurred_at=occurred_at,
                source_event_id=event_id,
            )
    if status == "canceled":
        dunning_cases_close(subscription_id=sub_id, at=occurred_at)
    return state


def _customer_replay(*, customer_id: str, since: datetime, event_id: str) -> bool:
    """Replay the customer's applied subscription events created at or after ``since`` (the
    inbox keeps them; dj-stripe's Event rows hold those processed, ``event_id``'s included)
    and set its subscriptions' states from the replay. False, changing nothing, when the
    replay could not tell (an event not in the inbox: pruned, or not received through it)."""
    subscriptions = list(
        SubscriptionState.objects.filter(stripe_customer_id=customer_id).values_list(
            "stripe_subscription_id", flat=True
        )
    )
    event_ids = WebhookEvent.objects.filter(
        object_id__in=subscriptions, type__in=APPLIED_EVENTS, stripe_created__gte=since
    ).values_list("stripe_event_id", flat=True)
    events = [
        (event_id, created, event_type, subscription_discounts_expanded(subscription=obj))
        for event_id, created, event_type, obj in (
            (row.id, row.created, row.type, (row.data or {}).get("object"))
            for row in djm.Event.objects.filter(id__in=list(event_ids)).only(
                "id", "created", "type", "data"
            )
        )
        if isinstance(obj, Mapping) and created is not None
    ]
    if event_id not in {event[0] for event in events}:
        return False
    replayed = customer_movements_rebuild(
        stripe_customer_id=customer_id, since=since, events=events
    )
    if replayed is None:
        logger.warning(
            "subscription events of customer %s since %s are no longer all in the inbox; "
            "its MRR movements may need analytics_rebuild",
            customer_id,
            since.isoformat(),
        )
        return False
    touched = {stripe_id(obj.get("id")) for _, _, _, obj in events}
    for sub_id in sorted(touched):
        final = replayed.get(sub_id)
        if final is None:
            continue
        SubscriptionState.objects.filter(stripe_subscription_id=sub_id).update(
            status=final.status, currency=final.currency, mrr=final.mrr, as_of=final.as_of
        )
    return True
