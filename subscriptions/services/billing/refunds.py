"""The staff refund of a payment, at Stripe; the ledger follows from the webhook."""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.core.cache import cache

from revenue_site.stripe_errors import BillingError, BillingInputError, stripe_errors
from revenue_site.stripe_setup import stripe_api_key

logger = logging.getLogger(__name__)


class RefundAlreadySubmittedError(BillingError):
    """The same refund form was submitted twice; Stripe was not asked again."""

    code = "refund_already_submitted"
    http_status = 409


@stripe_errors(param_fields={"amount": "amount"})
def charge_refund(
    *,
    charge_id: str,
    amount: int | None = None,
    reason: str = "requested_by_customer",
    request_key: str | None = None,
) -> str:
    """Refund ``amount`` minor units of a charge (all that is left when None) at Stripe.

    Returns the Stripe refund id. The ledger effect comes from the ``charge.refunded`` webhook
    (``invoice_postings.charge_refund_record``), keyed by that refund id, so it is posted
    exactly once however often either side runs. The Stripe idempotency key is derived from
    the charge and ``request_key`` (the staff form's one-time token, so a double-submitted
    form refunds once) or, without one, from the amount and how much was refunded before.
    When Stripe fails (or its answer is lost) the form's token is released, so staff can send
    the same form again: the same key, and Stripe replays a refund it made.

    Raises BillingInputError (a non-positive amount; Stripe refused: already refunded, amount
    larger than what is left, unknown charge), RefundAlreadySubmittedError (the form's token
    was used before), StripeUnavailable.
    """
    if amount is not None and amount <= 0:
        raise BillingInputError("the amount must be positive", field="amount")
    if request_key:
        key = f"refund:{charge_id}:{request_key}"
    else:
        charge = stripe.Charge.retrieve(charge_id, api_key=stripe_api_key())
        already = int(charge["amount_refunded"] or 0)
        key = f"refund:{charge_id}:{already}:{amount if amount is not None else 'rest'}"
    # Stripe replays an idempotent request; this also tells staff it was a double submit.
    # add() answers None when the cache is down: then only Stripe's idempotency key (the same
    # key) keeps a double submit from refunding twice, and it is not reported as one.
    marker = f"subscriptions:{key}"
    if request_key and cache.add(marker, "1", timeout=24 * 3600) is False:
        raise RefundAlreadySubmittedError("This refund was already submitted.")
    params: dict[str, Any] = {"charge": charge_id, "reason": reason}
    if amount is not None:
        params["amount"] = amount
    try:
        refund = stripe.Refund.create(**params, api_key=stripe_api_key(), idempotency_key=key)
    except stripe.StripeError:
        # Stripe failed or refused, or the answer was lost: the same form may be sent again
        # (staff retry after an outage) and goes to Stripe under the same key, which replays
        # a refund that was made; kept, the marker would call the retry a double submit.
        if request_key:
            cache.delete(marker)
        raise
    logger.info("refund %s of charge %s created (amount %s)", refund.id, charge_id, amount)
    return str(refund.id)
