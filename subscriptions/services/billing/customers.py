"""The user's Stripe Customer and the Billing Portal session for it."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction
from djstripe import models as djstripe_models
from djstripe.settings import djstripe_settings

from accounts.models import User
from revenue_site.stripe_errors import stripe_errors
from revenue_site.stripe_setup import stripe_api_key
from subscriptions.models import BillingCustomer


def request_digest(*parts: Any) -> str:
    """A short digest of request parameters, for idempotency keys."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@stripe_errors()
def billing_customer_ensure(*, user: User) -> tuple[BillingCustomer, djstripe_models.Customer]:
    """The user's Stripe Customer, created exactly once, mirrored with `subscriber=user`.

    The BillingCustomer row is claimed first (OneToOne on user: concurrent callers meet on the
    unique constraint), then locked with select_for_update while the Stripe Customer is
    created, so a concurrent subscribe waits and finds the id. The create's idempotency key
    is the row's pk, so a retried request after a crash gets the same Stripe Customer back.
    """
    BillingCustomer.objects.get_or_create(
        user=user, defaults={"livemode": bool(settings.STRIPE_LIVE_MODE)}
    )
    with transaction.atomic():
        billing_customer = BillingCustomer.objects.select_for_update().get(user=user)
        if billing_customer.stripe_customer_id:
            mirrored = djstripe_models.Customer.objects.filter(
                id=billing_customer.stripe_customer_id
            ).first()
            if mirrored is not None:
                return billing_customer, mirrored
            customer = stripe.Customer.retrieve(
                billing_customer.stripe_customer_id, api_key=stripe_api_key()
            )
        else:
            customer = stripe.Customer.create(
                email=user.email,
                name=user.get_full_name() or "",
                metadata={
                    djstripe_settings.SUBSCRIBER_CUSTOMER_KEY: str(user.pk),
                    "billing_customer": str(billing_customer.pk),
                },
                api_key=stripe_api_key(),
                idempotency_key=f"customer-create-{billing_customer.pk}",
            )
            billing_customer.stripe_customer_id = customer.id
            billing_customer.livemode = bool(customer["livemode"])
            billing_customer.save(update_fields=["stripe_customer_id", "livemode"])
        mirrored = djstripe_models.Customer.sync_from_stripe_data(
            customer, api_key=stripe_api_key()
        )
        if mirrored.subscriber_id != user.pk:
            mirrored.subscriber = user
            mirrored.save(update_fields=["subscriber"])
    return billing_customer, mirrored


@stripe_errors()
def billing_portal_session_create(
    *, user: User, return_url: str, request_key: str | None = None
) -> dict[str, Any]:
    """A Stripe Billing Portal session for the user's Stripe Customer: `{"id", "url"}`."""
    billing_customer, customer = billing_customer_ensure(user=user)
    params: dict[str, Any] = {"customer": customer.id, "return_url": return_url}
    digest = request_digest(params, request_key or uuid.uuid4().hex)
    with stripe_errors(param_fields={"return_url": "return_url"}):
        session = stripe.billing_portal.Session.create(
            **params,
            api_key=stripe_api_key(),
            idempotency_key=f"portal-session-{billing_customer.pk}-{digest}",
        )
    return {"id": session["id"], "url": session["url"]}
