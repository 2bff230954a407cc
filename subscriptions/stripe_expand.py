"""A subscription's discounts, with the coupon terms MRR needs.

At our Stripe API version a subscription lists its discounts by id (``discounts``) and a
discount names its coupon by id (``source.coupon``). MRR needs the coupon's terms
(``analytics.mrr``), so every subscription we read from Stripe expands them
(:data:`SUBSCRIPTION_EXPAND`), and so does dj-stripe's own re-read of a subscription when a
webhook arrives (:func:`install`, from ``SubscriptionsConfig.ready``). Events carry the ids
only: :func:`subscription_discounts_expanded` fills them in from the mirror dj-stripe has
just synced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from djstripe import models as djstripe_models

from revenue_site.stripe_payloads import stripe_id

SUBSCRIPTION_EXPAND = ["discounts.source.coupon"]


def install() -> None:
    """Make dj-stripe expand what we expand whenever it retrieves a subscription."""
    djstripe_models.Subscription.expand_fields = [*SUBSCRIPTION_EXPAND]


def _is_expanded(discount: Any) -> bool:
    return isinstance(discount, Mapping) and isinstance(
        (discount.get("source") or {}).get("coupon"), Mapping
    )


def subscription_discounts_expanded(*, subscription: Mapping[str, Any]) -> dict[str, Any]:
    """``subscription`` with each discount it lists by id replaced by the mirror's expanded one.

    A discount the mirror does not hold (it was removed since) stays an id; MRR leaves it out.
    One query, none when every discount is already expanded.
    """
    discounts = list(subscription.get("discounts") or [])
    if all(_is_expanded(d) for d in discounts):
        return dict(subscription)
    mirrored = (
        djstripe_models.Subscription.objects.filter(id=stripe_id(subscription.get("id")))
        .values_list("stripe_data", flat=True)
        .first()
    ) or {}
    known = {stripe_id(d): d for d in mirrored.get("discounts") or [] if _is_expanded(d)}
    return {
        **subscription,
        "discounts": [d if _is_expanded(d) else known.get(stripe_id(d), d) for d in discounts],
    }
