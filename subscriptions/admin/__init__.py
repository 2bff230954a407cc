"""Staff console for subscriptions, one module per concern."""

from subscriptions.admin import catalog, customers, webhooks  # noqa: F401
