"""Affiliate reads for the portal, the affiliate API and the staff performance view.

Everything an affiliate sees goes through a function here that takes the affiliate and scopes
by it, so another affiliate's object id is simply "not found". Each figure is one aggregate
query.

Definitions used by the dashboard:
- clicks: Click rows of the affiliate's links, plus the daily counts (ClickDaily) of the days
  whose rows were pruned past CLICK_RETENTION_DAYS;
- sign-ups: Referral rows (one per referred Stripe customer);
- conversions: referrals with at least one commission (a commission exists only for a paid
  invoice); conversion rate = conversions ÷ clicks;
- earnings by status: per currency, the commission amount net of clawbacks for held, approved
  and paid commissions, and the clawed-back amount (``reversed_amount``) as "reversed".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth.models import AnonymousUser
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from affiliates.models import (
    Affiliate,
    Click,
    ClickDaily,
    Commission,
    Program,
    Referral,
    ReferralLink,
)
from ledger.models import Account, PayeeProfile, Payout

EARNING_STATUSES = ("held", "approved", "paid", "reversed")


def affiliate_for_user(*, user: User | AnonymousUser | None) -> Affiliate | None:
    """The user's affiliate row (with program), or None for a non-affiliate/anonymous user."""
    if user is None or not user.is_authenticated:
        return None
    return Affiliate.objects.select_related("program", "user").filter(user=user).first()


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


# --- links -----------------------------------------------------------------------------------


def links_with_click_counts(links: QuerySet[ReferralLink]) -> QuerySet[ReferralLink]:
    """``click_count`` on each link: its Click rows plus its pruned days' counts."""
    rolled_up = (
        ClickDaily.objects.filter(link=OuterRef("pk"))
        .values("link")
        .annotate(total=Sum("clicks"))
        .values("total")
    )
    return links.annotate(
        click_count=Count("clicks") + Coalesce(Subquery(rolled_up), 0),
    )


def link_list(*, affiliate: Affiliate) -> QuerySet[ReferralLink]:
    return links_with_click_counts(ReferralLink.objects.filter(affiliate=affiliate)).order_by(
        "-created_at", "-pk"
    )


def link_get(*, affiliate: Affiliate, pk: int) -> ReferralLink:
    link = link_list(affiliate=affiliate).filter(pk=pk).first()
    if link is None:
        raise Http404("No such link.")
    return link


# --- commissions -----------------------------------------------------------------------------


def commission_list(
    *,
    affiliate: Affiliate,
    status: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[Commission]:
    """The affiliate's commissions, newest first; dates filter the invoice's paid time."""
    qs = Commission.objects.filter(affiliate=affiliate).select_related("referral")
    if status:
        qs = qs.filter(status=status)
    if date_from:
        qs = qs.filter(paid_at_invoice__gte=_day_start(date_from))
    if date_to:
        qs = qs.filter(paid_at_invoice__lt=_day_start(date_to + timedelta(days=1)))
    return qs.order_by("-paid_at_invoice", "-pk")


def commission_get(*, affiliate: Affiliate, pk: int) -> Commission:
    commission = commission_list(affiliate=affiliate).filter(pk=pk).first()
    if commission is None:
        raise Http404("No such commission.")
    return commission


# --- payouts ---------------------------------------------------------------------------------


def payout_list(*, affiliate: Affiliate) -> QuerySet[Payout]:
    return (
        Payout.objects.filter(payee_type=Account.PayeeType.AFFILIATE, payee_id=affiliate.pk)
        .select_related("batch")
        .order_by("-batch__as_of", "-pk")
    )


def payee_profile_get(*, affiliate: Affiliate) -> PayeeProfile | None:
    return PayeeProfile.objects.filter(
        payee_type=Account.PayeeType.AFFILIATE, payee_id=affiliate.pk
    ).first()


# --- dashboard -------------------------------------------------------------------------------


@dataclass
class DayPoint:
    day: date
    clicks: int = 0
    earnings: int = 0  # in the program currency


@dataclass
class AffiliateStats:
    clicks: int
    signups: int
    conversions: int
    conversion_rate: Decimal  # percent, 2 places
    earnings: dict[str, dict[str, int]]  # currency -> status -> minor units
    currency: str
    series: list[DayPoint] = field(default_factory=list)


def _earnings(*, affiliate: Affiliate) -> dict[str, dict[str, int]]:
    net = F("amount") - F("reversed_amount")
    rows = (
        Commission.objects.filter(affiliate=affiliate)
        .values("currency")
        .annotate(
            held=Sum(net, filter=Q(status=Commission.Status.HELD), default=0),
            approved=Sum(net, filter=Q(status=Commission.Status.APPROVED), default=0),
            paid=Sum(net, filter=Q(status=Commission.Status.PAID), default=0),
            reversed=Sum("reversed_amount", default=0),
        )
        .order_by("currency")
    )
    return {
        row["currency"]: {
            "held": int(row["held"]),
            "approved": int(row["approved"]),
            "paid": int(row["paid"]),
            "reversed": int(row["reversed"]),
        }
        for row in rows
    }


def _series(*, affiliate: Affiliate, days: int, today: date) -> list[DayPoint]:
    start_day = today - timedelta(days=days - 1)
    start = _day_start(start_day)
    points = {
        start_day + timedelta(days=i): DayPoint(start_day + timedelta(days=i)) for i in range(days)
    }
    clicks = (
        Click.objects.filter(link__affiliate=affiliate, clicked_at__gte=start)
        .annotate(day=TruncDate("clicked_at"))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
    )
    for click_row in clicks:
        if click_row["day"] in points:
            points[click_row["day"]].clicks = click_row["n"]
    rolled_up = (
        ClickDaily.objects.filter(link__affiliate=affiliate, day__gte=start_day)
        .values("day")
        .annotate(n=Sum("clicks"))
        .order_by()
    )
    for click_row in rolled_up:
        if click_row["day"] in points:
            points[click_row["day"]].clicks += int(click_row["n"])
    earnings = (
        Commission.objects.filter(
            affiliate=affiliate,
            paid_at_invoice__gte=start,
            currency=affiliate.program.currency,
        )
        .annotate(day=TruncDate("paid_at_invoice"))
        .values("day")
        .annotate(total=Sum(F("amount") - F("reversed_amount")))
        .order_by()
    )
    for row in earnings:
        if row["day"] in points:
            points[row["day"]].earnings = int(row["total"] or 0)
    return [points[d] for d in sorted(points)]


def affiliate_stats(
    *, affiliate: Affiliate, days: int = 90, with_series: bool = True
) -> AffiliateStats:
    """The dashboard figures (all-time totals) and a daily series of the last ``days`` days."""
    clicks = Click.objects.filter(link__affiliate=affiliate).count() + int(
        ClickDaily.objects.filter(link__affiliate=affiliate).aggregate(n=Sum("clicks"))["n"] or 0
    )
    referral_counts = Referral.objects.filter(affiliate=affiliate).aggregate(
        signups=Count("pk", distinct=True),
        conversions=Count("pk", filter=Q(commissions__isnull=False), distinct=True),
    )
    conversions = referral_counts["conversions"]
    rate = (
        (Decimal(conversions) * 100 / Decimal(clicks)).quantize(Decimal("0.01"), ROUND_HALF_UP)
        if clicks
        else Decimal("0.00")
    )
    today = timezone.localdate()
    return AffiliateStats(
        clicks=clicks,
        signups=referral_counts["signups"],
        conversions=conversions,
        conversion_rate=rate,
        earnings=_earnings(affiliate=affiliate),
        currency=affiliate.program.currency,
        series=_series(affiliate=affiliate, days=days, today=today) if with_series else [],
    )


# --- staff: program performance --------------------------------------------------------------


@dataclass
class ProgramPerformance:
    program: Program
    clicks: int = 0
    referrals: int = 0
    conversions: int = 0
    revenue: dict[str, int] = field(default_factory=dict)  # currency -> base amounts
    commissions: dict[str, int] = field(default_factory=dict)  # currency -> net commission


def program_performance(*, date_from: date, date_to: date) -> list[ProgramPerformance]:
    """Per program for [date_from, date_to]: clicks → referrals → conversions → revenue →
    commissions. One grouped query per figure (revenue and commissions share one, per currency;
    a conversion is a referral with a commission paid in the range)."""
    start, end = _day_start(date_from), _day_start(date_to + timedelta(days=1))
    result = {p.pk: ProgramPerformance(program=p) for p in Program.objects.order_by("name")}
    clicks = (
        Click.objects.filter(clicked_at__gte=start, clicked_at__lt=end)
        .values(pid=F("link__affiliate__program_id"))
        .annotate(n=Count("id"))
        .order_by()
    )
    for click_row in clicks:
        result[click_row["pid"]].clicks = click_row["n"]
    rolled_up = (
        ClickDaily.objects.filter(day__gte=date_from, day__lte=date_to)
        .values(pid=F("link__affiliate__program_id"))
        .annotate(n=Sum("clicks"))
        .order_by()
    )
    for click_row in rolled_up:
        result[click_row["pid"]].clicks += int(click_row["n"])
    referrals = (
        Referral.objects.filter(referred_at__gte=start, referred_at__lt=end)
        .values(pid=F("affiliate__program_id"))
        .annotate(n=Count("pk"))
        .order_by()
    )
    for referral_row in referrals:
        result[referral_row["pid"]].referrals = referral_row["n"]
    in_range = Commission.objects.filter(paid_at_invoice__gte=start, paid_at_invoice__lt=end)
    conversions = (
        in_range.values(pid=F("affiliate__program_id"))
        .annotate(n=Count("referral_id", distinct=True))
        .order_by()
    )
    for conversion_row in conversions:
        result[conversion_row["pid"]].conversions = conversion_row["n"]
    money = (
        in_range.values("currency", pid=F("affiliate__program_id"))
        .annotate(
            revenue=Sum("base_amount"),
            commissions=Sum(F("amount") - F("reversed_amount")),
        )
        .order_by()
    )
    for row in money:
        perf = result[row["pid"]]
        perf.revenue[row["currency"]] = int(row["revenue"] or 0)
        perf.commissions[row["currency"]] = int(row["commissions"] or 0)
    return list(result.values())
