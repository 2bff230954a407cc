"""Recurring licences: sold as a Stripe Subscription to the licence type's Stripe Price.

- ``license_subscribe``: a PENDING licence (key generated now, shown once), the type's Price
  (pushed if it has none yet: ``content.services.license_type_price_push``), then a Stripe
  Subscription for the buyer's customer (``billing_customer_ensure``) with the payment method
  attached and as its default, ``payment_behavior=error_if_incomplete`` (a declined first
  payment raises 402 and leaves no subscription) and the idempotency key from the licence's
  pk. When Stripe answers that the first payment needs the buyer's action (3-D Secure,
  ``invoice_payment_intent_requires_action``, nothing created), the subscription is created
  again with ``payment_behavior=default_incomplete``: ``incomplete``, its first invoice open
  with a PaymentIntent for the buyer to confirm in their browser (``Purchase.payment``, from
  the invoice's ``confirmation_secret``); the licence stays PENDING until ``invoice.paid``.
  One left unconfirmed is canceled after ``CONTENT_PENDING_PAYMENT_MINUTES``
  (``content.acquire.pending_licenses_release``), or by Stripe after 23 hours
  (``incomplete_expired``). Its metadata names the licence (``content_license``) and the
  revenue account (``revenue.content``), which the invoices carry under
  ``parent.subscription_details``: the subscriptions app's invoice postings book them as
  content revenue, not SaaS revenue. A failure deletes the pending licence.
- ``license_subscription_changed`` (``customer.subscription.*``): the licence is ACTIVE while
  the subscription is active (or trialing, or past due while Stripe retries) and does not
  expire; once it is set to cancel, is canceled, or is unpaid, the licence expires at the
  end of the period paid for (``paid_through``; the beat task marks it EXPIRED then, or at
  once when that is past). Events older than the subscription's state
  (``SubscriptionState.as_of``) change nothing.
- ``license_invoice_paid`` (``invoice.paid``): activates a licence still pending, moves
  ``paid_through`` to the end of the period the invoice paid, and splits the invoice's
  revenue (paid less tax) to the creators and the platform fee once per invoice
  (``royalties.revenue_split_post``). Renewals book again, each under its own invoice.
  A refund of one of these invoices reverses its split (``royalties.content_invoice_refunded``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import stripe
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from content.models import License, LicenseType
from content.purchases import PaymentStep, Purchase, _pending_license_create
from content.royalties import revenue_split_post, split_key
from content.services import license_type_price_push
from ledger.chart import SystemAccount
from ledger.models import Transaction
from revenue_site.stripe_errors import (
    BillingError,
    BillingInputError,
    PaymentDeclined,
    stripe_errors,
)
from revenue_site.stripe_payloads import invoice_tax, stripe_id, stripe_time
from revenue_site.stripe_setup import stripe_api_key
from subscriptions.models import SubscriptionState
from subscriptions.services.billing import billing_customer_ensure
from subscriptions.services.invoice_payments import invoice_payment_step
from subscriptions.services.invoice_postings import invoice_revenue_account

logger = logging.getLogger(__name__)

METADATA_KEY = "content_license"
# Statuses in which a recurring licence stays usable (past_due: Stripe is still retrying).
LIVE_STATUSES = ("active", "trialing", "past_due")
# Stripe's 402 code for a first payment that needs the customer (error_if_incomplete).
ACTION_REQUIRED = "invoice_payment_intent_requires_action"
ENDED_STATUSES = ("canceled", "unpaid", "incomplete_expired")


def license_subscribe(
    *, buyer: User, item_id: int, license_type_id: int, payment_method: str
) -> Purchase:
    """Buy a recurring licence (see the module docstring). Returns the licence (ACTIVE when
    the first invoice was paid at once) and its key.

    Raises ContentItem.DoesNotExist, ValidationError naming ``license_type`` or
    ``payment_method``, ExclusiveLicenseTakenError (409) before any charge, and the
    ``stripe_errors`` kinds (PaymentDeclined 402, ...), after which no licence is left."""
    if not isinstance(payment_method, str) or not payment_method.strip():
        raise ValidationError({"payment_method": ["A Stripe payment method id."]})
    purchase = _pending_license_create(
        buyer=buyer,
        item_id=item_id,
        license_type_id=license_type_id,
        pricing=LicenseType.Pricing.RECURRING,
    ).purchase
    license = purchase.license
    try:
        try:
            subscription = _subscription_create(license=license, payment_method=payment_method)
        except PaymentDeclined as exc:
            if exc.code != ACTION_REQUIRED:
                raise
            subscription = _subscription_create(
                license=license, payment_method=payment_method, behavior="default_incomplete"
            )
    except BillingError:
        License.objects.filter(pk=license.pk, status=License.Status.PENDING).delete()
        raise
    License.objects.filter(pk=license.pk).update(stripe_subscription_id=subscription["id"])
    with transaction.atomic():
        locked = License.objects.select_for_update().get(pk=license.pk)
        _apply(locked, subscription, occurred_at=license.created_at)
    license.refresh_from_db()
    step = None
    if license.status == License.Status.PENDING:
        step = _first_payment_step(subscription)
    return Purchase(license=license, key=purchase.key, payment=step)


def _first_payment_step(subscription: Mapping[str, Any]) -> PaymentStep | None:
    """What the buyer's browser needs to confirm an incomplete subscription's first payment
    (its first invoice, expanded with ``confirmation_secret``; never an error)."""
    invoice = subscription.get("latest_invoice")
    step = invoice_payment_step(invoice=invoice) if isinstance(invoice, Mapping) else None
    return PaymentStep(**step) if step else None


@stripe_errors(
    param_fields={
        "payment_method": "payment_method",
        "default_payment_method": "payment_method",
        "items": "license_type",
        "price": "license_type",
    }
)
def _subscription_create(
    *, license: License, payment_method: str, behavior: str = "error_if_incomplete"
) -> dict[str, Any]:
    license_type = license_type_price_push(license_type=license.license_type)
    billing_customer, customer = billing_customer_ensure(user=license.holder)
    payment_method = payment_method.strip()
    try:
        method = stripe.PaymentMethod.attach(
            payment_method,
            customer=customer.id,
            api_key=stripe_api_key(),
            idempotency_key=f"pm-attach-{billing_customer.pk}-{payment_method}",
        )
    except stripe.InvalidRequestError as exc:
        raise BillingInputError(
            exc.user_message or "Unknown payment method.", field="payment_method"
        ) from exc
    subscription = stripe.Subscription.create(
        customer=customer.id,
        items=[{"price": license_type.stripe_price_id, "quantity": 1}],
        default_payment_method=method.id,
        payment_behavior=behavior,
        metadata={
            METADATA_KEY: str(license.pk),
            "revenue_account": SystemAccount.REVENUE_CONTENT.value,
            "billing_customer": str(billing_customer.pk),
        },
        expand=["latest_invoice.confirmation_secret"],
        api_key=stripe_api_key(),
        # A refused create leaves nothing, so the second one (default_incomplete) is new.
        idempotency_key=f"content-license-sub-{license.pk}"
        + ("" if behavior == "error_if_incomplete" else f"-{behavior}"),
    )
    return dict(subscription.to_dict())


def _period(subscription: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    """The current period (on the subscription's item at our API version)."""
    items = (subscription.get("items") or {}).get("data") or []
    if not items:
        return None, None
    item = items[0]
    return stripe_time(item.get("current_period_start")), stripe_time(
        item.get("current_period_end")
    )


def _apply(license: License, subscription: Mapping[str, Any], *, occurred_at: datetime) -> None:
    """The licence's status and expiry for the subscription's state (the licence is locked)."""
    status = str(subscription.get("status") or "")
    start, end = _period(subscription)
    fields: dict[str, Any] = {}
    if status in LIVE_STATUSES:
        if license.status == License.Status.PENDING:
            fields.update(status=License.Status.ACTIVE, issued_at=occurred_at)
        if license.status in (License.Status.PENDING, License.Status.ACTIVE):
            cancel_at = stripe_time(subscription.get("cancel_at"))
            if subscription.get("cancel_at_period_end") or cancel_at:
                fields["expires_at"] = cancel_at or end
            else:
                fields["expires_at"] = None
    elif status in ENDED_STATUSES:
        # Usable through the period paid for, and not past the subscription's end.
        paid_end = license.paid_through or (start if status == "unpaid" else end) or occurred_at
        expires = min(paid_end, license.expires_at) if license.expires_at else paid_end
        fields["expires_at"] = expires
        never_paid = license.status == License.Status.PENDING
        if never_paid or (license.status == License.Status.ACTIVE and expires <= timezone.now()):
            fields["status"] = License.Status.EXPIRED
    changed = {name: value for name, value in fields.items() if getattr(license, name) != value}
    if changed:
        for name, value in changed.items():
            setattr(license, name, value)
        license.save(update_fields=list(changed))


def _license_for(subscription_id: str, metadata: Mapping[str, Any]) -> License | None:
    query = License.objects.select_for_update().select_related("content__owner")
    license = query.filter(stripe_subscription_id=subscription_id).first()
    if license is None and str(metadata.get(METADATA_KEY) or "").isdigit():
        # The subscribe call's answer was not saved yet (its event came first).
        license = query.filter(pk=int(metadata[METADATA_KEY]), stripe_subscription_id="").first()
        if license is not None:
            license.stripe_subscription_id = subscription_id
            license.save(update_fields=["stripe_subscription_id"])
    return license


@transaction.atomic
def license_subscription_changed(
    *, subscription: Mapping[str, Any], occurred_at: datetime
) -> License | None:
    """Apply a ``customer.subscription.*`` event to the licence it pays for (None for other
    subscriptions and for events older than the subscription's recorded state)."""
    metadata = subscription.get("metadata") or {}
    sub_id = stripe_id(subscription.get("id"))
    if not sub_id or not isinstance(metadata, Mapping) or METADATA_KEY not in metadata:
        return None
    state = SubscriptionState.objects.filter(stripe_subscription_id=sub_id).first()
    if state is not None and occurred_at < state.as_of:
        return None  # an older event than the state already applied
    license = _license_for(sub_id, metadata)
    if license is None:
        return None
    _apply(license, subscription, occurred_at=occurred_at)
    return license


def pending_subscription_settle(*, license_pk: int, subscription_id: str, now: datetime) -> bool:
    """A recurring licence still PENDING past the wait (``pending_licenses_release``): what
    Stripe says of its subscription now decides. ``incomplete`` (the buyer never confirmed the
    first payment) is canceled, with a key per run (Stripe replays a failed answer to the same
    key), and the licence ends as a canceled never-paid one (EXPIRED); a live one (its events
    missed or late) activates it; an ended one ends it. Returns whether the licence changed."""
    with stripe_errors():
        subscription = stripe.Subscription.retrieve(subscription_id, api_key=stripe_api_key())
        if subscription.status == "incomplete":
            subscription = stripe.Subscription.cancel(
                subscription_id,
                api_key=stripe_api_key(),
                idempotency_key=f"content-license-sub-abandon-{license_pk}-{now:%Y%m%dT%H%M%S}",
            )
    with transaction.atomic():
        license = (
            License.objects.select_for_update()
            .filter(pk=license_pk, status=License.Status.PENDING)
            .first()
        )
        if license is None:
            return False
        _apply(license, subscription.to_dict(), occurred_at=now)
        return license.status != License.Status.PENDING


def _subscription_details(invoice: Mapping[str, Any]) -> Mapping[str, Any]:
    parent = invoice.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, Mapping) else None
    return details if isinstance(details, Mapping) else {}


def _paid_period_end(invoice: Mapping[str, Any]) -> datetime | None:
    """The end of the service period the invoice's lines bill (the latest line's)."""
    ends = [
        stripe_time((line.get("period") or {}).get("end"))
        for line in (invoice.get("lines") or {}).get("data") or []
    ]
    known = [end for end in ends if end is not None]
    return max(known) if known else None


@transaction.atomic
def license_invoice_paid(
    *, invoice: Mapping[str, Any], occurred_at: datetime
) -> Transaction | None:
    """A paid invoice of a recurring licence's subscription: activate and extend the licence
    and split the invoice's revenue once (key ``split_key(invoice, "license-<pk>")``).
    Returns the split, or None for other invoices and when nothing was paid."""
    details = _subscription_details(invoice)
    metadata = details.get("metadata") or {}
    if not isinstance(metadata, Mapping) or METADATA_KEY not in metadata:
        return None
    invoice_id = stripe_id(invoice.get("id"))
    license = _license_for(stripe_id(details.get("subscription")), metadata)
    if license is None:
        logger.error(
            "invoice %s pays for a licence that does not exist (%s)",
            invoice_id,
            metadata.get(METADATA_KEY),
        )
        return None
    paid_end = _paid_period_end(invoice)
    fields: list[str] = []
    if paid_end is not None and (license.paid_through is None or paid_end > license.paid_through):
        license.paid_through = paid_end
        fields.append("paid_through")
    if license.status == License.Status.PENDING:
        license.status, license.issued_at = License.Status.ACTIVE, occurred_at
        fields += ["status", "issued_at"]
    if fields:
        license.save(update_fields=fields)
    paid = int(invoice.get("amount_paid") or 0)
    tax = min(invoice_tax(invoice), paid)
    return revenue_split_post(
        item=license.content,
        revenue=paid - tax,
        currency=str(invoice.get("currency") or license.currency).lower(),
        from_account=invoice_revenue_account(invoice),
        idempotency_key=split_key(invoice_id, f"license-{license.pk}"),
        memo=f"Licence {license.key_prefix} paid by invoice {invoice_id}",
        posted_at=occurred_at,
    )
