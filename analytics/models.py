"""MRR movements: one row per change of a customer's MRR, per DESIGN.md §6."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q


class MRRMovement(models.Model):
    class Kind(models.TextChoices):
        NEW = "new", "New"
        EXPANSION = "expansion", "Expansion"
        CONTRACTION = "contraction", "Contraction"
        CHURN = "churn", "Churn"
        REACTIVATION = "reactivation", "Reactivation"

    stripe_customer_id = models.CharField(max_length=255)
    stripe_subscription_id = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    old_mrr = models.BigIntegerField()
    new_mrr = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    occurred_at = models.DateTimeField(help_text="Stripe `created` of the event that caused it.")
    source_event_id = models.CharField(max_length=255, help_text="Stripe event id.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-pk"]
        indexes = [
            models.Index(fields=["currency", "occurred_at"]),
            models.Index(fields=["stripe_customer_id", "currency", "occurred_at"]),
        ]
        constraints = [
            # One movement per (event, subscription): redelivery and retries cannot double it.
            models.UniqueConstraint(
                fields=["source_event_id", "stripe_subscription_id"],
                name="analytics_mrrmovement_once_per_event",
            ),
            models.CheckConstraint(
                condition=Q(old_mrr__gte=0) & Q(new_mrr__gte=0),
                name="analytics_mrrmovement_non_negative",
            ),
            models.CheckConstraint(
                condition=~Q(old_mrr=F("new_mrr")), name="analytics_mrrmovement_is_a_change"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.stripe_customer_id} {self.old_mrr}->{self.new_mrr} {self.currency}"
        )

    @property
    def delta(self) -> int:
        return self.new_mrr - self.old_mrr
