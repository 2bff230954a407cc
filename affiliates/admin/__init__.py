"""Staff console for affiliates, one module per concern."""

from affiliates.admin import commissions, programs  # noqa: F401
