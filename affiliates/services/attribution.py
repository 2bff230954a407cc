"""Attribution: which affiliate referred a Stripe customer.

Candidates, in precedence order (the first that resolves to an eligible link wins):

1. ``referral_code`` — the code given explicitly at subscribe (the visitor typed it or the
   landing page passed ``?ref=``): an explicit statement beats anything remembered.
2. ``cookie_value`` — the signed first-party cookie set by ``/r/<code>``; it is overwritten at
   each click, so it holds the *last* click, and counts only within the program's attribution
   window (click time + ``attribution_window_days`` >= ``at``).
3. ``metadata_code`` — Stripe customer/subscription metadata ``referral_code`` (customers
   created outside our subscribe API, or a late webhook).

Eligible: an active link of an approved affiliate in an active program. One referral per
customer: the row is inserted and a concurrent or later attempt meets the unique
``stripe_customer_id`` (IntegrityError → the existing referral); the first referral stays.
The click uid is kept on the referral (from the cookie, or from the cookie when its code is the
explicit one) so the fraud rules can look at the click. Fraud rules are
``affiliates.services.fraud.referral_flags``; their reasons are stored on ``Referral.flags``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction

from accounts.models import User
from affiliates.models import Affiliate, Referral, ReferralLink
from affiliates.services import commissions, fraud, tracking


def _eligible_link(code: str | None) -> ReferralLink | None:
    code = (code or "").strip()
    if not code or len(code) > 32:
        return None
    return tracking.link_for_redirect(code=code)


def _cookie_candidate(cookie_value: str | None, *, at: datetime) -> tuple[ReferralLink, str] | None:
    cookie = tracking.referral_cookie_parse(cookie_value)
    if cookie is None:
        return None
    link = _eligible_link(cookie.code)
    if link is None:
        return None
    window = timedelta(days=link.affiliate.program.attribution_window_days)
    if cookie.clicked_at + window < at:
        return None
    return link, cookie.click_uid


def referral_attribute(
    *,
    stripe_customer_id: str,
    user: User | None = None,
    referral_code: str | None = None,
    cookie_value: str | None = None,
    metadata_code: str | None = None,
    at: datetime,
) -> Referral | None:
    """Record who referred `stripe_customer_id`; return the customer's referral, or None.

    Idempotent: a customer already referred keeps their referral (returned as is). Raises
    nothing for bad input: an unknown, disabled or expired candidate is skipped.
    """
    if not stripe_customer_id:
        return None
    existing = Referral.objects.filter(stripe_customer_id=stripe_customer_id).first()
    if existing is not None:
        return existing  # fast path; the insert below still settles races

    link: ReferralLink | None = None
    source = ""
    click_uid = ""
    cookie = _cookie_candidate(cookie_value, at=at)
    explicit = _eligible_link(referral_code)
    if explicit is not None:
        link, source = explicit, Referral.Source.CODE
        if cookie is not None and cookie[0].pk == explicit.pk:
            click_uid = cookie[1]
    elif cookie is not None:
        (link, click_uid), source = cookie, Referral.Source.COOKIE
    else:
        link = _eligible_link(metadata_code)
        source = Referral.Source.METADATA
    if link is None:
        return None

    affiliate: Affiliate = link.affiliate
    try:
        with transaction.atomic():
            referral = Referral.objects.create(
                affiliate=affiliate,
                link=link,
                stripe_customer_id=stripe_customer_id,
                user=user if user is not None and user.pk else None,
                source=source,
                click_uid=click_uid,
                referred_at=at,
            )
            flags = fraud.referral_flags(referral=referral)
            if flags:
                referral.flags = flags
                referral.save(update_fields=["flags"])
    except IntegrityError:
        return Referral.objects.get(stripe_customer_id=stripe_customer_id)
    # Stripe does not order customer.subscription.created before invoice.paid: a referral
    # recorded from a later event catches up on the invoices already paid (idempotent).
    commissions.commissions_accrue_for_referral(referral=referral)
    return referral
