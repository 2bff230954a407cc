"""The services marketplace, second half: orders of a listing's package, their transition
history and the messages between buyer and provider.

The state machine (which transitions exist, from which states, and who may take them) is
declared once, in ``marketplace.orders.TRANSITIONS``; these models only store where an order
is. Money is integer minor units + a lowercase currency, snapshotted from the package (or the
provider's quote) so later package edits do not change an order.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models.functions import Length, Lower
from django.db.models.lookups import Exact

from marketplace.models.listings import PERCENT_VALIDATORS, Listing, ListingPackage, Provider


class Order(models.Model):
    """One buyer's order of one package of a listing."""

    class State(models.TextChoices):
        REQUESTED = "requested", "Requested"
        QUOTED = "quoted", "Quoted"
        PAID = "paid", "Paid (funds held)"
        IN_PROGRESS = "in_progress", "In progress"
        DELIVERED = "delivered", "Delivered"
        REVISION_REQUESTED = "revision_requested", "Revision requested"
        ACCEPTED = "accepted", "Accepted"
        RELEASED = "released", "Released to the provider"
        DISPUTED = "disputed", "Disputed"
        REFUNDED = "refunded", "Refunded"
        CANCELED = "canceled", "Canceled"

    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="marketplace_orders"
    )
    # The listing's provider, copied so "orders of my listings" is one indexed filter.
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="orders")
    listing = models.ForeignKey(Listing, on_delete=models.PROTECT, related_name="orders")
    package = models.ForeignKey(ListingPackage, on_delete=models.PROTECT, related_name="orders")
    state = models.CharField(max_length=20, choices=State.choices, default=State.REQUESTED)
    price = models.BigIntegerField(help_text="Minor units of `currency`: the package's, or quoted.")
    currency = models.CharField(max_length=3)
    commission_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        validators=PERCENT_VALIDATORS,
        help_text="The platform's commission (%), fixed when the order is placed.",
    )
    requirements = models.TextField(blank=True)
    quote_note = models.TextField(blank=True)
    revisions_allowed = models.PositiveSmallIntegerField(default=0)
    revisions_used = models.PositiveSmallIntegerField(default=0)
    refunded_amount = models.BigIntegerField(
        default=0, help_text="Minor units refunded to the buyer so far (booked in the ledger)."
    )
    disputed_amount = models.BigIntegerField(
        default=0,
        help_text="Minor units Stripe took back for a dispute on the charge (open or lost; "
        "given back when the dispute is won), booked in the ledger.",
    )
    transferred_amount = models.BigIntegerField(
        default=0,
        help_text="Minor units transferred to the provider's connected account, net "
        "of transfer reversals.",
    )
    transfer_pending = models.BooleanField(
        default=False,
        help_text="Released, but Stripe was unavailable for the Connect transfer: retried hourly.",
    )
    transfer_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_transfer_id = models.CharField(max_length=255, blank=True)
    stripe_dispute_id = models.CharField(max_length=255, blank=True)
    stripe_dispute_status = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    quoted_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was canceled or refunded in full."
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["buyer", "-created_at"], name="mkt_order_buyer_idx"),
            models.Index(fields=["provider", "-created_at"], name="mkt_order_provider_idx"),
            # The auto-accept timer: delivered orders by delivery time.
            models.Index(fields=["state", "delivered_at"], name="mkt_order_state_delivered_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(price__gte=0), name="marketplace_order_price_gte_0"
            ),
            models.CheckConstraint(
                condition=models.Q(Exact(Length("currency"), 3))
                & models.Q(currency=Lower("currency")),
                name="marketplace_order_currency_iso",
            ),
            models.CheckConstraint(
                condition=models.Q(refunded_amount__gte=0)
                & models.Q(refunded_amount__lte=models.F("price")),
                name="marketplace_order_refund_within_price",
            ),
            models.CheckConstraint(
                condition=models.Q(disputed_amount__gte=0)
                & models.Q(disputed_amount__lte=models.F("price") - models.F("refunded_amount")),
                name="marketplace_order_disputed_within_price",
            ),
            models.CheckConstraint(
                condition=models.Q(transferred_amount__gte=0),
                name="marketplace_order_transferred_gte_0",
            ),
            models.CheckConstraint(
                condition=models.Q(revisions_used__lte=models.F("revisions_allowed")),
                name="marketplace_order_revisions_within_package",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    state__in=[
                        "requested",
                        "quoted",
                        "paid",
                        "in_progress",
                        "delivered",
                        "revision_requested",
                        "accepted",
                        "released",
                        "disputed",
                        "refunded",
                        "canceled",
                    ]
                ),
                name="marketplace_order_state_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Order {self.pk} ({self.state})"

    @property
    def commission_rate(self) -> Decimal:
        return self.commission_percent / Decimal(100)

    @property
    def amount_held(self) -> int:
        """What the buyer paid and has not been refunded (minor units)."""
        return self.price - self.refunded_amount if self.paid_at else 0


class OrderEvent(models.Model):
    """One transition of an order: append-only, written with the change it records."""

    class Actor(models.TextChoices):
        BUYER = "buyer", "Buyer"
        PROVIDER = "provider", "Provider"
        STAFF = "staff", "Staff"
        SYSTEM = "system", "System (timer or Stripe)"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    transition = models.CharField(max_length=32)
    from_state = models.CharField(max_length=20, choices=Order.State.choices)
    to_state = models.CharField(max_length=20, choices=Order.State.choices)
    actor = models.CharField(max_length=10, choices=Actor.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    amount = models.BigIntegerField(
        null=True, blank=True, help_text="Money the transition moved (quote, refund), if any."
    )
    note = models.TextField(blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["order", "at"], name="mkt_orderevent_order_idx")]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_state} → {self.to_state} ({self.actor})"


class OrderMessage(models.Model):
    """A message between the buyer and the provider (or staff) on an order."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["order", "created_at"], name="mkt_ordermsg_order_idx")]

    def __str__(self) -> str:
        return f"Message {self.pk} on order {self.order_id}"
