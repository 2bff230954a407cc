"""Reads of marketplace orders, scoped to the caller: a buyer sees their orders, a provider the
orders of their listings; anyone else's ids are not found (404)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import User
from ledger.models import Account, Payout
from marketplace.models import Order, OrderEvent, OrderMessage, Provider


def order_list_for(
    *, user: User, role: str | None = None, state: str | None = None
) -> QuerySet[Order]:
    """Orders ``user`` bought or sells (``role`` "buyer" / "provider" narrows), newest first."""
    mine = Q(buyer=user) | Q(provider__user=user)
    if role == "buyer":
        mine = Q(buyer=user)
    elif role == "provider":
        mine = Q(provider__user=user)
    orders = Order.objects.filter(mine).select_related("provider")
    if state:
        orders = orders.filter(state=state)
    return orders.order_by("-created_at", "-pk")


def order_get_for(*, user: User, order_id: int) -> Order:
    """One of ``user``'s orders (as buyer or provider); raises Order.DoesNotExist otherwise."""
    return order_list_for(user=user).get(pk=order_id)


def order_events(*, order: Order) -> QuerySet[OrderEvent]:
    return order.events.order_by("at", "pk")


def order_messages(*, order: Order) -> QuerySet[OrderMessage]:
    return order.messages.select_related("author").order_by("created_at", "pk")


def provider_for(*, user: User) -> Provider | None:
    return Provider.objects.filter(user=user).first()


def provider_payouts(*, provider: Provider) -> QuerySet[Payout]:
    """The payout engine's payouts to ``provider`` (CSV or Connect), newest first."""
    return Payout.objects.filter(
        payee_type=Account.PayeeType.PROVIDER, payee_id=provider.pk
    ).order_by("-pk")


def provider_transfers(*, provider: Provider) -> QuerySet[Order]:
    """Orders whose earnings were transferred to the provider's connected account at release."""
    return (
        Order.objects.filter(provider=provider)
        .exclude(stripe_transfer_id="")
        .order_by("-released_at", "-pk")
    )
