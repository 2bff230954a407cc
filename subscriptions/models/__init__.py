from subscriptions.models.billing import BillingCustomer, DunningCase, SubscriptionState
from subscriptions.models.catalog import Plan, PlanPrice
from subscriptions.models.webhooks import WebhookEvent

__all__ = [
    "BillingCustomer",
    "DunningCase",
    "Plan",
    "PlanPrice",
    "SubscriptionState",
    "WebhookEvent",
]
