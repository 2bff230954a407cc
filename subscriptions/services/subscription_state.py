"""What subscription events do to our side: the subscription's state and MRR movements.

``subscription_state_apply`` keeps one ``SubscriptionState`` row per Stripe subscription,
guarded by the event time (older events never overwrite newer state), records an MRR movement
when the subscription's MRR changes (unique per event and subscription) and closes the
subscription's open dunning cases when it is canceled.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from djstripe import models as djm

from analytics.mrr import subscription_mrr
from analytics.services import mrr_movement_record
from revenue_site.stripe_payloads import stripe_id
from subscriptions.models import SubscriptionState
from subscriptions.services.dunning import dunning_cases_close
from subscriptions.stripe_expand import subscription_discounts_expanded


@transaction.atomic
def subscription_state_apply(
    *, subscription: Mapping[str, Any], event_id: str, occurred_at: datetime
) -> SubscriptionState:
    """Apply a subscription as of ``occurred_at`` (the event's ``created``) to our state.

    Older events never overwrite newer state: an event created before the state's ``as_of``
    changes nothing. Stripe's ``created`` has one-second resolution, so an event of the same
    second is applied (in delivery order), except that it cannot bring a canceled subscription
    back. When the subscription's MRR changes an MRR movement is recorded (once per event);
    when it becomes canceled its open dunning cases are CLOSED.
    """
    sub_id = stripe_id(subscription.get("id"))
    customer_id = stripe_id(subscription.get("customer"))
    status = str(subscription.get("status") or "")
    # An event lists discounts by id; their coupons come from the mirror.
    subscription = subscription_discounts_expanded(subscription=subscription)
    currency, mrr = subscription_mrr(subscription, at=occurred_at)
    # Serialise MRR changes per customer: a movement's kind depends on the customer's total.
    list(djm.Customer.objects.select_for_update().filter(id=customer_id).values_list("pk"))
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
    old_mrr = 0
    if not created:
        stale = occurred_at < state.as_of or (
            occurred_at == state.as_of and state.status == "canceled" and status != "canceled"
        )
        if stale:
            return state
        old_mrr = state.mrr
        state.stripe_customer_id = customer_id
        state.status = status
        state.currency = currency or state.currency
        state.mrr = mrr
        state.as_of = occurred_at
        state.save()
    if mrr != old_mrr:
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
