"""A customer's subscriptions: subscribe (directly or through Checkout), change, cancel,
resume, trials, coupons, resync."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import stripe
from django.db import transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import User
from affiliates.services.attribution import referral_attribute
from revenue_site.stripe_errors import (
    BillingError,
    BillingInputError,
    stripe_errors,
)
from revenue_site.stripe_payloads import stripe_id
from revenue_site.stripe_setup import stripe_api_key
from subscriptions.models import PlanPrice
from subscriptions.services.billing.customers import billing_customer_ensure, request_digest
from subscriptions.services.invoice_payments import invoice_payment_step
from subscriptions.stripe_expand import SUBSCRIPTION_EXPAND

logger = logging.getLogger(__name__)

PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")
# Statuses from which a subscription can still be changed or resumed.
LIVE_STATUSES = ("active", "trialing", "past_due", "incomplete", "unpaid")
# Stripe's 402 code, with payment_behavior=error_if_incomplete, for a first payment that needs
# the customer (3-D Secure).
ACTION_REQUIRED = "invoice_payment_intent_requires_action"


class SubscriptionStateError(BillingError):
    """The subscription is in a state that does not allow the operation (e.g. canceled)."""

    code = "conflict"
    http_status = 409


def _state_key(purpose: str, subscription: Any, params: dict[str, Any]) -> str:
    """Idempotency key for a write on an existing subscription.

    Derived from the subscription id, the purpose, the request parameters and the state the
    request was made against: a retry of the same request (same state) reuses the key and
    Stripe replays its answer; the same request made later from another state is a new change.
    """
    items = subscription.get("items", {}).get("data", [])
    state = {
        "status": subscription.get("status"),
        "cancel_at_period_end": subscription.get("cancel_at_period_end"),
        "trial_end": subscription.get("trial_end"),
        "items": [
            (i.get("id"), (i.get("price") or {}).get("id"), i.get("quantity")) for i in items
        ],
        "discounts": sorted(stripe_id(d) for d in subscription.get("discounts") or []),
    }
    return f"subscription-{purpose}-{subscription['id']}-{request_digest(params, state)}"


def _sync_subscription(subscription: Any) -> djstripe_models.Subscription:
    """Mirror a Stripe subscription (and its latest invoice) into dj-stripe."""
    with transaction.atomic():
        mirrored = djstripe_models.Subscription.sync_from_stripe_data(
            subscription, api_key=stripe_api_key()
        )
    invoice_id = subscription.get("latest_invoice")
    if isinstance(invoice_id, dict):
        invoice_id = invoice_id.get("id")
    if invoice_id:
        invoice = stripe.Invoice.retrieve(invoice_id, api_key=stripe_api_key())
        with transaction.atomic():
            djstripe_models.Invoice.sync_from_stripe_data(invoice, api_key=stripe_api_key())
    return mirrored


def _retrieve_subscription(subscription_id: str) -> Any:
    try:
        return stripe.Subscription.retrieve(
            subscription_id, api_key=stripe_api_key(), expand=SUBSCRIPTION_EXPAND
        )
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise BillingInputError("No such subscription.", field="subscription") from exc
        raise


def _modify(
    subscription: Any,
    purpose: str,
    params: dict[str, Any],
    *,
    param_fields: dict[str, str] | None = None,
) -> djstripe_models.Subscription:
    """Apply ``params`` to a subscription at Stripe and mirror the result.

    The idempotency key comes from the purpose, the parameters and the subscription's state
    (``_state_key``); ``param_fields`` names our input fields for Stripe's parameters.
    """
    with stripe_errors(param_fields=param_fields):
        updated = stripe.Subscription.modify(
            subscription["id"],
            **params,
            api_key=stripe_api_key(),
            expand=SUBSCRIPTION_EXPAND,
            idempotency_key=_state_key(purpose, subscription, params),
        )
    return _sync_subscription(updated)


def _active_price(price_id: str) -> PlanPrice:
    price = (
        PlanPrice.objects.select_related("plan")
        .filter(stripe_price_id=price_id, active=True, plan__is_archived=False)
        .first()
        if price_id
        else None
    )
    if price is None:
        raise BillingInputError("Unknown or inactive price.", field="price")
    return price


@stripe_errors()
def subscription_create(
    *,
    user: User,
    price_id: str,
    quantity: int = 1,
    payment_method_id: str,
    coupon: str | None = None,
    trial_days: int | None = None,
    referral_code: str | None = None,
    referral_cookie: str | None = None,
    request_key: str | None = None,
    allow_incomplete: bool = False,
) -> djstripe_models.Subscription:
    """Subscribe `user` to the Stripe price `price_id` and mirror the result.

    Creates the user's Stripe Customer on first use, attaches the payment method and makes it
    the subscription's default, then creates the subscription with
    `payment_behavior="error_if_incomplete"` so a declined first payment raises
    `PaymentDeclined` and leaves nothing behind; a first payment that needs 3-D Secure makes
    it `default_incomplete` instead (`incomplete` until the customer confirms it in their
    browser: `subscription_first_payment`) (`allow_incomplete=True` keeps an incomplete
    subscription with an open invoice instead; the demo uses it for a past-due customer).
    `trial_days` overrides the price's default trial. `referral_code` goes into the
    subscription's and (first one wins) the customer's metadata for attribution;
    `referral_code` and `referral_cookie` (the /r/<code> cookie's value) attribute the
    customer to an affiliate once the Stripe customer exists (affiliates' referral_attribute).

    `request_key` (the client's Idempotency-Key, if any) makes a retried request return the
    same subscription; without it each call is a new subscribe.

    Raises BillingInputError (field `price`, `quantity`, `payment_method`, `coupon`),
    PaymentDeclined.
    """
    if quantity < 1:
        raise BillingInputError("Quantity must be at least 1.", field="quantity")
    if trial_days is not None and trial_days < 0:
        raise BillingInputError("Trial days must not be negative.", field="trial_days")
    price = _active_price(price_id)
    billing_customer, customer = billing_customer_ensure(user=user)
    referral_attribute(
        stripe_customer_id=customer.id,
        user=user,
        referral_code=referral_code,
        cookie_value=referral_cookie,
        metadata_code=(customer.metadata or {}).get("referral_code"),
        at=timezone.now(),
    )
    fields = {
        "payment_method": "payment_method",
        "default_payment_method": "payment_method",
        "items": "price",
        "price": "price",
        "quantity": "quantity",
        "discounts": "coupon",
        "coupon": "coupon",
        "trial_period_days": "trial_days",
    }
    with stripe_errors(param_fields=fields):
        try:
            method = stripe.PaymentMethod.attach(
                payment_method_id,
                customer=customer.id,
                api_key=stripe_api_key(),
                idempotency_key=f"pm-attach-{billing_customer.pk}-{payment_method_id}",
            )
        except stripe.InvalidRequestError as exc:
            raise BillingInputError(
                exc.user_message or "Unknown payment method.", field="payment_method"
            ) from exc
        metadata = {"billing_customer": str(billing_customer.pk)}
        if referral_code:
            metadata["referral_code"] = referral_code
            if not (customer.metadata or {}).get("referral_code"):
                stripe.Customer.modify(
                    customer.id,
                    metadata={"referral_code": referral_code},
                    api_key=stripe_api_key(),
                    idempotency_key=f"customer-referral-{billing_customer.pk}",
                )
        params: dict[str, Any] = {
            "customer": customer.id,
            "items": [{"price": price.stripe_price_id, "quantity": quantity}],
            "default_payment_method": method.id,
            "payment_behavior": "allow_incomplete" if allow_incomplete else "error_if_incomplete",
            "metadata": metadata,
        }
        days = trial_days if trial_days is not None else price.trial_days
        if days:
            params["trial_period_days"] = days
        if coupon:
            params["discounts"] = [{"coupon": coupon}]
        digest = request_digest(params, request_key or uuid.uuid4().hex)
        key = f"subscription-create-{billing_customer.pk}-{digest}"
        try:
            subscription = stripe.Subscription.create(
                **params, api_key=stripe_api_key(), expand=SUBSCRIPTION_EXPAND, idempotency_key=key
            )
        except stripe.CardError as exc:
            if exc.code != ACTION_REQUIRED:
                raise
            # The first payment needs the customer (3-D Secure) and Stripe created nothing:
            # create it waiting for them, its first invoice left for their browser to confirm
            # (subscription_first_payment); Stripe expires it after 23 hours if they never do.
            subscription = stripe.Subscription.create(
                **{**params, "payment_behavior": "default_incomplete"},
                api_key=stripe_api_key(),
                expand=SUBSCRIPTION_EXPAND,
                idempotency_key=f"{key}-default-incomplete",
            )
    return _sync_subscription(subscription)


def subscription_first_payment(
    *, subscription: djstripe_models.Subscription
) -> dict[str, str] | None:
    """What the customer's browser needs to confirm an ``incomplete`` subscription's first
    payment (``invoice_payment_step`` of its first invoice); None for any other subscription,
    and, logged, when Stripe cannot answer now (the subscription exists: never an error, or a
    retry without Idempotency-Key would subscribe twice; the open invoice's
    ``hosted_invoice_url`` takes the payment too). Not stored: asked of Stripe each time."""
    data = subscription.stripe_data
    invoice_id = stripe_id(data.get("latest_invoice"))
    if data.get("status") != "incomplete" or not invoice_id:
        return None
    try:
        with stripe_errors():
            invoice = stripe.Invoice.retrieve(
                invoice_id, expand=["confirmation_secret"], api_key=stripe_api_key()
            ).to_dict()
    except BillingError as exc:
        logger.warning("subscription %s: first payment unreadable now: %s", subscription.id, exc)
        return None
    return invoice_payment_step(invoice=invoice)


@stripe_errors()
def subscription_change(
    *,
    subscription_id: str,
    price_id: str | None = None,
    quantity: int | None = None,
    proration_behavior: str = "create_prorations",
) -> djstripe_models.Subscription:
    """Move a single-item subscription to another price and/or quantity (upgrade/downgrade).

    Stripe prorates per `proration_behavior` (create_prorations, none, always_invoice).
    Raises BillingInputError (nothing to change, unknown price, bad quantity),
    SubscriptionStateError (canceled).
    """
    if price_id is None and quantity is None:
        raise BillingInputError("Give a new price or quantity.", field="non_field_errors")
    if quantity is not None and quantity < 1:
        raise BillingInputError("Quantity must be at least 1.", field="quantity")
    if proration_behavior not in PRORATION_BEHAVIORS:
        raise BillingInputError("Unknown proration behavior.", field="proration_behavior")
    new_price = _active_price(price_id) if price_id is not None else None
    subscription = _retrieve_subscription(subscription_id)
    if subscription["status"] not in LIVE_STATUSES:
        raise SubscriptionStateError("The subscription is canceled.")
    item = subscription["items"]["data"][0]
    change: dict[str, Any] = {"id": item["id"]}
    if new_price is not None:
        change["price"] = new_price.stripe_price_id
    if quantity is not None:
        change["quantity"] = quantity
    params: dict[str, Any] = {"items": [change], "proration_behavior": proration_behavior}
    return _modify(
        subscription, "change", params, param_fields={"items": "price", "price": "price"}
    )


@stripe_errors()
def subscription_cancel(
    *, subscription_id: str, at_period_end: bool
) -> djstripe_models.Subscription:
    """Cancel now (status canceled) or at the end of the current period (stays active until
    then, `cancel_at_period_end` true). Raises SubscriptionStateError if already canceled."""
    subscription = _retrieve_subscription(subscription_id)
    if subscription["status"] == "canceled":
        raise SubscriptionStateError("The subscription is already canceled.")
    if at_period_end:
        return _modify(subscription, "cancel-at-period-end", {"cancel_at_period_end": True})
    updated = stripe.Subscription.cancel(
        subscription_id,
        api_key=stripe_api_key(),
        idempotency_key=_state_key("cancel", subscription, {}),
    )
    return _sync_subscription(updated)


@stripe_errors()
def subscription_resume(*, subscription_id: str) -> djstripe_models.Subscription:
    """Undo a pending cancel-at-period-end. Raises SubscriptionStateError if the subscription
    already ended or no cancellation is pending."""
    subscription = _retrieve_subscription(subscription_id)
    if subscription["status"] not in LIVE_STATUSES:
        raise SubscriptionStateError("A canceled subscription cannot be resumed.")
    if not subscription.get("cancel_at_period_end"):
        raise SubscriptionStateError("The subscription has no pending cancellation.")
    params: dict[str, Any] = {"cancel_at_period_end": False}
    return _modify(subscription, "resume", params)


@stripe_errors()
def subscription_extend_trial(
    *, subscription_id: str, trial_end: datetime
) -> djstripe_models.Subscription:
    """Set the trial to end at `trial_end` (aware datetime, in the future); no proration.

    Raises BillingInputError (naive or past `trial_end`), SubscriptionStateError (canceled).
    """
    if trial_end.tzinfo is None:
        raise BillingInputError("trial_end must be timezone-aware.", field="trial_end")
    if trial_end <= timezone.now():
        raise BillingInputError("trial_end must be in the future.", field="trial_end")
    subscription = _retrieve_subscription(subscription_id)
    if subscription["status"] not in LIVE_STATUSES:
        raise SubscriptionStateError("The subscription is canceled.")
    params: dict[str, Any] = {"trial_end": int(trial_end.timestamp()), "proration_behavior": "none"}
    return _modify(subscription, "extend-trial", params, param_fields={"trial_end": "trial_end"})


@stripe_errors()
def subscription_end_trial(*, subscription_id: str) -> djstripe_models.Subscription:
    """End a trial now: Stripe invoices the first period and charges the default payment
    method; a decline leaves the subscription past_due with the invoice open (dunning).
    Raises SubscriptionStateError if the subscription is not trialing."""
    subscription = _retrieve_subscription(subscription_id)
    if subscription["status"] != "trialing":
        raise SubscriptionStateError("The subscription is not in a trial.")
    params: dict[str, Any] = {"trial_end": "now"}
    return _modify(subscription, "end-trial", params)


@stripe_errors()
def subscription_apply_coupon(
    *, subscription_id: str, coupon_id: str
) -> djstripe_models.Subscription:
    """Apply a Stripe coupon to the subscription (replacing any discount it has).

    Raises BillingInputError (unknown coupon), SubscriptionStateError (canceled).
    """
    subscription = _retrieve_subscription(subscription_id)
    if subscription["status"] not in LIVE_STATUSES:
        raise SubscriptionStateError("The subscription is canceled.")
    params: dict[str, Any] = {"discounts": [{"coupon": coupon_id}]}
    return _modify(
        subscription,
        "apply-coupon",
        params,
        param_fields={"discounts": "coupon", "coupon": "coupon"},
    )


@stripe_errors()
def subscription_resync(*, subscription_id: str) -> djstripe_models.Subscription:
    """Re-read the subscription (and its latest invoice) from Stripe into the mirror."""
    return _sync_subscription(_retrieve_subscription(subscription_id))


@stripe_errors()
def checkout_session_create(
    *,
    user: User,
    price_id: str,
    quantity: int = 1,
    success_url: str,
    cancel_url: str,
    request_key: str | None = None,
) -> dict[str, Any]:
    """A Stripe Checkout Session (mode subscription) for the user's Stripe Customer.

    The caller has validated the redirect URLs (open-redirect guard lives in the API).
    Returns `{"id", "url", "expires_at"}` of the session. Raises BillingInputError.
    """
    if quantity < 1:
        raise BillingInputError("Quantity must be at least 1.", field="quantity")
    price = _active_price(price_id)
    billing_customer, customer = billing_customer_ensure(user=user)
    params: dict[str, Any] = {
        "mode": "subscription",
        "customer": customer.id,
        "client_reference_id": str(user.pk),
        "line_items": [{"price": price.stripe_price_id, "quantity": quantity}],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "subscription_data": {"metadata": {"billing_customer": str(billing_customer.pk)}},
    }
    if price.trial_days:
        params["subscription_data"]["trial_period_days"] = price.trial_days
    digest = request_digest(params, request_key or uuid.uuid4().hex)
    with stripe_errors(param_fields={"line_items": "price", "price": "price"}):
        session = stripe.checkout.Session.create(
            **params,
            api_key=stripe_api_key(),
            idempotency_key=f"checkout-session-{billing_customer.pk}-{digest}",
        )
    return {"id": session["id"], "url": session["url"], "expires_at": session["expires_at"]}
