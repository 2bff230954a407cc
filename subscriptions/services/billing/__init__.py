"""Customer billing writes: the user's Stripe Customer, subscribe / change / cancel / resume,
the staff operations (extend trial, apply coupon, resync) and the staff refund.

- customers.py       the user's Stripe Customer, the Billing Portal session
- subscriptions.py   subscribe (directly or through Checkout), change, cancel, resume, trials,
                     coupons, resync
- refunds.py         refund a payment (the ledger follows from Stripe's ``charge.refunded``)

Callers use the package (``from subscriptions.services import billing``); the names below are
its surface.

Stripe is the source of truth: every service writes to Stripe first (with an idempotency key
derived from our row or the Stripe object and the purpose), then syncs the object Stripe
returned into dj-stripe's mirror so the API can answer from the database at once, without
waiting for the webhook (which syncs the same object again, harmlessly).

Errors are `BillingError` subclasses, Stripe's included: every service maps `stripe.StripeError`
through `revenue_site.stripe_errors` (declined 402, invalid request 400 naming the field, Stripe
unavailable 503); `SubscriptionStateError` and `RefundAlreadySubmittedError` are 409. Nothing
from Stripe leaves as a 500.
"""

from revenue_site.stripe_errors import (
    BillingError,
    BillingInputError,
    PaymentDeclined,
    StripeUnavailable,
)
from subscriptions.services.billing.customers import (
    billing_customer_ensure,
    billing_portal_session_create,
)
from subscriptions.services.billing.refunds import RefundAlreadySubmittedError, charge_refund
from subscriptions.services.billing.subscriptions import (
    LIVE_STATUSES,
    PRORATION_BEHAVIORS,
    SubscriptionStateError,
    checkout_session_create,
    subscription_apply_coupon,
    subscription_cancel,
    subscription_change,
    subscription_create,
    subscription_end_trial,
    subscription_extend_trial,
    subscription_first_payment,
    subscription_resume,
    subscription_resync,
)

__all__ = [
    "LIVE_STATUSES",
    "PRORATION_BEHAVIORS",
    "BillingError",
    "BillingInputError",
    "PaymentDeclined",
    "RefundAlreadySubmittedError",
    "StripeUnavailable",
    "SubscriptionStateError",
    "billing_customer_ensure",
    "billing_portal_session_create",
    "charge_refund",
    "checkout_session_create",
    "subscription_apply_coupon",
    "subscription_cancel",
    "subscription_change",
    "subscription_create",
    "subscription_end_trial",
    "subscription_extend_trial",
    "subscription_first_payment",
    "subscription_resume",
    "subscription_resync",
]
