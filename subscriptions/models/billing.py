"""Our side of billing: which user is which Stripe customer, the state we derive from Stripe
events (guarded by event time), the dunning list, and which invoice a payment intent paid."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class BillingCustomer(models.Model):
    """One Stripe Customer per user, claimed here first so concurrent subscribes create one."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="billing_customer"
    )
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    livemode = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_customer_id"],
                condition=~Q(stripe_customer_id=""),
                name="subscriptions_billingcustomer_unique_stripe_customer",
            )
        ]

    def __str__(self) -> str:
        return self.stripe_customer_id or f"user {self.user_id} (not in Stripe yet)"


class SubscriptionState(models.Model):
    """The latest state we applied for a Stripe subscription, and the event time it came from.

    An event whose `created` is older than `as_of` never overwrites it (out-of-order delivery).
    """

    stripe_subscription_id = models.CharField(max_length=255, unique=True)
    stripe_customer_id = models.CharField(max_length=255, db_index=True)
    status = models.CharField(max_length=32)
    currency = models.CharField(max_length=3)
    mrr = models.BigIntegerField(default=0, help_text="Minor units, DESIGN.md §6.")
    as_of = models.DateTimeField(help_text="Stripe `created` of the event last applied.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(mrr__gte=0), name="subscriptions_state_mrr_gte_0")
        ]

    def __str__(self) -> str:
        return f"{self.stripe_subscription_id} {self.status}"


class DunningCase(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RECOVERED = "recovered", "Recovered (paid)"
        CLOSED = "closed", "Closed (canceled or written off)"

    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_customer_id = models.CharField(max_length=255, db_index=True)
    amount_due = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    attempt_count = models.PositiveIntegerField(default=0)
    next_payment_attempt = models.DateTimeField(null=True, blank=True)
    last_failure_code = models.CharField(
        max_length=64, blank=True, help_text="The payment intent's last_payment_error.code."
    )
    last_decline_code = models.CharField(
        max_length=64,
        blank=True,
        help_text="The issuer's reason (last_payment_error.decline_code).",
    )
    last_failure_message = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["status", "-opened_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_due__gte=0), name="subscriptions_dunning_amount_gte_0"
            )
        ]

    def __str__(self) -> str:
        return f"{self.stripe_invoice_id} ({self.status})"


class InvoicePayment(models.Model):
    """Which invoice a Stripe payment intent pays: our index of Stripe's invoice payments.

    Stripe's charges and payment intents no longer name their invoice (API 2025-03-31 on);
    the link is the invoice payment (``inpay_…``). dj-stripe 2.11 does not mirror those, so
    refunds and disputes find their invoice here without a Stripe call per event. Filled from
    ``invoice_payment.paid`` and ``invoice.paid`` events, and by a one-off Stripe lookup where
    an event came before the link was known (``subscriptions.services.invoice_payments``).
    """

    stripe_invoice_payment_id = models.CharField(max_length=255, unique=True)
    stripe_invoice_id = models.CharField(max_length=255, db_index=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(max_length=32, help_text="Stripe's: open, paid or canceled.")
    amount = models.BigIntegerField(help_text="Minor units: amount_paid, else amount_requested.")
    currency = models.CharField(max_length=3)
    created = models.DateTimeField(help_text="Stripe `created` of the invoice payment.")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["-created"], name="subscriptions_inpay_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_payment_intent_id"],
                condition=~Q(stripe_payment_intent_id=""),
                name="subscriptions_invoicepayment_unique_payment_intent",
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="subscriptions_invoicepayment_amount_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stripe_invoice_payment_id} ({self.stripe_invoice_id})"
