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
            # The snapshot task and the reports find late movements by creation time.
            models.Index(fields=["currency", "created_at"], name="analytics_m_cur_created_idx"),
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


class MRRSnapshot(models.Model):
    """One currency's MRR figures of one completed UTC day (DESIGN.md §6), computed by the
    ``analytics.tasks.snapshots_compute`` beat task from the movement rows: the MRR and active
    customers at the end of the day, and the day's movements (amounts ≥ 0) and churn count.

    Reports read these for completed days and compute only what follows the last valid
    snapshot live; a movement that lands late (its ``occurred_at`` inside a snapshotted day)
    makes the reports ignore the snapshots from that day on until the task recomputes them.
    """

    date = models.DateField()
    currency = models.CharField(max_length=3)
    mrr = models.BigIntegerField(help_text="Minor units, at the end of the day.")
    active_customers = models.PositiveIntegerField()
    new = models.BigIntegerField(default=0)
    expansion = models.BigIntegerField(default=0)
    contraction = models.BigIntegerField(default=0)
    churn = models.BigIntegerField(default=0)
    reactivation = models.BigIntegerField(default=0)
    customers_churned = models.PositiveIntegerField(
        default=0, help_text="Churn movements of the day (a customer going to 0 MRR)."
    )
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["currency", "date"]
        verbose_name = "MRR snapshot"
        constraints = [
            models.UniqueConstraint(
                fields=["currency", "date"], name="analytics_mrrsnapshot_once_per_day"
            ),
            models.CheckConstraint(
                condition=Q(mrr__gte=0)
                & Q(new__gte=0)
                & Q(expansion__gte=0)
                & Q(contraction__gte=0)
                & Q(churn__gte=0)
                & Q(reactivation__gte=0),
                name="analytics_mrrsnapshot_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.currency}: MRR {self.mrr}, {self.active_customers} customers"


class SnapshotCursor(models.Model):
    """How far the snapshot task has read the movement rows: every movement created before
    ``movements_created_before`` is in the snapshots (the task sets it before reading:
    ``analytics.snapshots.movements_seen_before``). One row per snapshot kind (``name``)."""

    name = models.CharField(max_length=32, unique=True)
    movements_created_before = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.movements_created_before}"


class MRRCohortChange(models.Model):
    """How one day changed one monthly cohort (the customers whose first paid month, the month
    of their ``new`` movement, is ``cohort``) in one currency: the change of the cohort's MRR
    and of its active customers, and how many customers joined it. Written with the daily
    snapshots (only days that change a cohort have a row); the cohort matrices sum them."""

    currency = models.CharField(max_length=3)
    date = models.DateField()
    cohort = models.DateField(help_text="First day of the cohort's month.")
    mrr_change = models.BigIntegerField(default=0)
    active_change = models.IntegerField(default=0)
    customers_joined = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["currency", "date", "cohort"]
        constraints = [
            models.UniqueConstraint(
                fields=["currency", "cohort", "date"], name="analytics_cohortchange_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.currency} cohort {self.cohort:%Y-%m}: {self.mrr_change:+d}"
