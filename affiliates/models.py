"""The affiliate program: programs, affiliates, links, clicks, referrals, commissions.

Money is integer minor units + currency; rates are Decimal percentages. Commission rows carry
the rule they were computed with, so a later change of the program never rewrites history.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q


class Program(models.Model):
    class CommissionType(models.TextChoices):
        PERCENT = "percent", "Percent of the paid amount"
        FLAT = "flat", "Flat amount per conversion"

    class Duration(models.TextChoices):
        FIRST_PAYMENT = "first_payment", "First payment only"
        RECURRING = "recurring", "Recurring for N months"
        LIFETIME = "lifetime", "Lifetime"

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=64, unique=True)
    landing_url = models.URLField(help_text="Where links without a landing path go.")
    allowed_hosts = models.JSONField(
        default=list,
        blank=True,
        help_text='Hosts links may land on, e.g. ["example.com", "www.example.com"].',
    )
    attribution_window_days = models.PositiveSmallIntegerField(default=30)
    commission_type = models.CharField(
        max_length=7, choices=CommissionType.choices, default=CommissionType.PERCENT
    )
    commission_rate = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        default=Decimal("20"),
        help_text="Percent of the paid amount (percent rules).",
    )
    commission_flat_amount = models.BigIntegerField(
        null=True, blank=True, help_text="Minor units per conversion (flat rules)."
    )
    duration = models.CharField(
        max_length=13, choices=Duration.choices, default=Duration.FIRST_PAYMENT
    )
    recurring_months = models.PositiveSmallIntegerField(null=True, blank=True)
    tiers = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "Optional rate tiers by the affiliate's referred revenue in the month, "
            'e.g. [{"min_revenue": 0, "rate": "20"}, {"min_revenue": 500000, "rate": "30"}].'
        ),
    )
    hold_days = models.PositiveSmallIntegerField(default=30)
    minimum_payout = models.BigIntegerField(default=5000)
    currency = models.CharField(max_length=3, default="usd")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(commission_rate__gte=0) & Q(commission_rate__lte=100),
                name="affiliates_program_rate_0_100",
            ),
            models.CheckConstraint(
                condition=Q(commission_flat_amount__isnull=True) | Q(commission_flat_amount__gte=0),
                name="affiliates_program_flat_gte_0",
            ),
            models.CheckConstraint(
                condition=~Q(duration="recurring") | Q(recurring_months__gte=1),
                name="affiliates_program_recurring_needs_months",
            ),
            models.CheckConstraint(
                condition=Q(minimum_payout__gte=0), name="affiliates_program_min_payout_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Affiliate(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        SUSPENDED = "suspended", "Suspended"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="affiliate"
    )
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="affiliates")
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.PENDING)
    website = models.URLField(blank=True)
    promotion_plan = models.TextField(blank=True, help_text="How they intend to promote us.")
    applied_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    staff_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-applied_at"]
        indexes = [models.Index(fields=["status", "-applied_at"])]

    def __str__(self) -> str:
        return str(self.user)

    @property
    def is_approved(self) -> bool:
        """May use the portal and its API, earn commissions and be paid."""
        return self.status == self.Status.APPROVED


class ReferralLink(models.Model):
    affiliate = models.ForeignKey(Affiliate, on_delete=models.PROTECT, related_name="links")
    code = models.SlugField(max_length=32, unique=True)
    campaign = models.CharField(max_length=100, blank=True)
    sub_id = models.CharField(max_length=100, blank=True)
    landing_path = models.CharField(
        max_length=500, blank=True, help_text="Path on the program's landing host, e.g. /pricing"
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.code


class Click(models.Model):
    id = models.BigAutoField(primary_key=True)
    link = models.ForeignKey(ReferralLink, on_delete=models.PROTECT, related_name="clicks")
    clicked_at = models.DateTimeField(db_index=True)
    ip_hash = models.CharField(max_length=64, help_text="HMAC of the client IP, never the IP.")
    user_agent = models.CharField(max_length=400, blank=True)
    referrer = models.CharField(max_length=500, blank=True)
    click_uid = models.CharField(
        max_length=32,
        unique=True,
        help_text="Set at the redirect; makes buffered writes idempotent.",
    )

    class Meta:
        ordering = ["-clicked_at"]
        indexes = [
            models.Index(fields=["link", "clicked_at"]),
            models.Index(fields=["ip_hash", "clicked_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.link_id} at {self.clicked_at:%Y-%m-%d %H:%M}"


class ClickDaily(models.Model):
    """Clicks of a link on one day (UTC) whose raw rows were pruned past CLICK_RETENTION_DAYS
    (``affiliates.services.retention``): click figures are the Click rows plus these."""

    link = models.ForeignKey(ReferralLink, on_delete=models.PROTECT, related_name="click_days")
    day = models.DateField()
    clicks = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["link", "day"], name="affiliates_clickdaily_link_day")
        ]
        indexes = [models.Index(fields=["day"], name="affiliates_clickdaily_day_idx")]

    def __str__(self) -> str:
        return f"{self.link_id} on {self.day}: {self.clicks}"


class Referral(models.Model):
    class Source(models.TextChoices):
        CODE = "code", "Referral code at sign-up"
        COOKIE = "cookie", "Referral cookie"
        METADATA = "metadata", "Stripe customer metadata"

    affiliate = models.ForeignKey(Affiliate, on_delete=models.PROTECT, related_name="referrals")
    link = models.ForeignKey(
        ReferralLink, null=True, blank=True, on_delete=models.PROTECT, related_name="referrals"
    )
    stripe_customer_id = models.CharField(
        max_length=255, unique=True, help_text="One referral per customer."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="referrals_received",
    )
    source = models.CharField(max_length=8, choices=Source.choices)
    click_uid = models.CharField(max_length=32, blank=True)
    referred_at = models.DateTimeField()
    flags = models.JSONField(default=list, blank=True, help_text="Fraud rule names that fired.")

    class Meta:
        ordering = ["-referred_at"]
        indexes = [models.Index(fields=["affiliate", "-referred_at"])]

    def __str__(self) -> str:
        return f"{self.stripe_customer_id} via {self.affiliate_id}"


class Commission(models.Model):
    class Status(models.TextChoices):
        HELD = "held", "Held"
        APPROVED = "approved", "Approved"
        PAID = "paid", "Paid"
        REVERSED = "reversed", "Reversed"

    affiliate = models.ForeignKey(Affiliate, on_delete=models.PROTECT, related_name="commissions")
    referral = models.ForeignKey(Referral, on_delete=models.PROTECT, related_name="commissions")
    # The source document: the paid invoice (subscriptions), or the PaymentIntent of a one-time
    # sale (a content licence). Exactly one is set.
    stripe_invoice_id = models.CharField(
        max_length=255, blank=True, help_text="The paid invoice; blank for a one-time sale."
    )
    stripe_payment_intent_id = models.CharField(
        max_length=255,
        blank=True,
        help_text="The one-time sale's PaymentIntent (content licence); blank for an invoice.",
    )
    base_amount = models.BigIntegerField(
        help_text="The paid amount (net of tax) the rule applied to."
    )
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    rule = models.JSONField(default=dict, help_text="The program rule as applied.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.HELD)
    flags = models.JSONField(
        default=list, blank=True, help_text="Fraud reasons; a flagged commission waits for review."
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    paid_at_invoice = models.DateTimeField(help_text="When the invoice (or the sale) was paid.")
    available_at = models.DateTimeField(help_text="End of the hold period.")
    approved_at = models.DateTimeField(null=True, blank=True)
    reversed_amount = models.BigIntegerField(default=0)
    reversed_at = models.DateTimeField(null=True, blank=True)
    payout = models.ForeignKey(
        "ledger.Payout", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-paid_at_invoice", "-pk"]
        indexes = [
            models.Index(fields=["status", "available_at"]),
            models.Index(fields=["affiliate", "status"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_invoice_id", "affiliate"],
                condition=~Q(stripe_invoice_id=""),
                name="affiliates_commission_once",
            ),
            models.UniqueConstraint(
                fields=["stripe_payment_intent_id", "affiliate"],
                condition=~Q(stripe_payment_intent_id=""),
                name="affiliates_commission_sale_once",
            ),
            models.CheckConstraint(
                condition=(Q(stripe_invoice_id="") & ~Q(stripe_payment_intent_id=""))
                | (~Q(stripe_invoice_id="") & Q(stripe_payment_intent_id="")),
                name="affiliates_commission_one_source",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="affiliates_commission_gte_0"),
            models.CheckConstraint(
                condition=Q(reversed_amount__gte=0) & Q(reversed_amount__lte=models.F("amount")),
                name="affiliates_commission_reversal_bounded",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} on {self.source_id} ({self.status})"

    @property
    def source_id(self) -> str:
        """The Stripe id of what was paid: the invoice, or the one-time sale's PaymentIntent."""
        return self.stripe_invoice_id or self.stripe_payment_intent_id
