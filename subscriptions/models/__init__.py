from subscriptions.models.billing import (
    BillingCustomer,
    DunningCase,
    InvoicePayment,
    SubscriptionState,
)
from subscriptions.models.catalog import Plan, PlanPrice
from subscriptions.models.webhooks import MirrorEvent, WebhookEvent

__all__ = [
    "BillingCustomer",
    "DunningCase",
    "InvoicePayment",
    "MirrorEvent",
    "Plan",
    "PlanPrice",
    "SubscriptionState",
    "WebhookEvent",
]
