"""Staff console for subscriptions, one module per concern."""

from subscriptions.admin import catalog, customers, states, webhooks  # noqa: F401
