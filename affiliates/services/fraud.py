"""Fraud rules for referrals and commissions.

Each rule is a small named function taking a referral and returning a reason (a short string
staff read in the review queue) or None. ``referral_flags`` runs the referral rules,
``commission_flags`` adds the commission's own; a commission with flags waits for staff review
(``commission_review``) instead of being approved after its hold.

Thresholds are settings with defaults:

- ``AFFILIATE_FRAUD_MAX_CLICKS_PER_IP`` (20): more clicks than this from one hashed IP on the
  affiliate's links within ``AFFILIATE_FRAUD_CLICK_WINDOW_HOURS`` (24) before the referral;
- ``AFFILIATE_FRAUD_MIN_SECONDS_TO_CONVERT`` (10): the referral came fewer seconds after its click;
- ``AFFILIATE_FRAUD_PUBLIC_EMAIL_DOMAINS``: domains shared by unrelated people, exempt from the
  same-domain rule.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from djstripe import models as djm

from affiliates.models import Click, Commission, Referral

PUBLIC_EMAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
        "mail.ru",
        "yandex.ru",
        "qq.com",
        "163.com",
    }
)


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def _domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower()


def _customer_data(customer_id: str) -> dict[str, Any]:
    row = djm.Customer.objects.filter(id=customer_id).values_list("stripe_data", flat=True).first()
    return dict(row or {})


def _customer_email(referral: Referral) -> str:
    email = str(_customer_data(referral.stripe_customer_id).get("email") or "")
    if not email and referral.user is not None:
        email = referral.user.email
    return email.strip().lower()


def _fingerprints(customer_ids: set[str]) -> set[str]:
    """Card fingerprints of the customers' payment methods in the dj-stripe mirror."""
    if not customer_ids:
        return set()
    rows = djm.PaymentMethod.objects.filter(customer__id__in=customer_ids).values_list(
        "stripe_data", flat=True
    )
    return {str(fp) for data in rows if (fp := ((data or {}).get("card") or {}).get("fingerprint"))}


def self_referral_email(referral: Referral) -> str | None:
    """The referred customer's email is the affiliate's own."""
    mine = referral.affiliate.user.email.strip().lower()
    if mine and _customer_email(referral) == mine:
        return "self_referral_email"
    return None


def self_referral_domain(referral: Referral) -> str | None:
    """Same email domain as the affiliate, unless the domain is a public mail provider."""
    mine = _domain(referral.affiliate.user.email)
    public = _setting("AFFILIATE_FRAUD_PUBLIC_EMAIL_DOMAINS", PUBLIC_EMAIL_DOMAINS)
    theirs = _customer_email(referral)
    if not mine or mine in public or not theirs:
        return None
    return "self_referral_domain" if _domain(theirs) == mine else None


def self_referral_payment(referral: Referral) -> str | None:
    """The referred customer is, or pays with the card of, a customer the affiliate uses.

    The affiliate's own customers are the dj-stripe customers of their user (subscriber) and
    any customer with the affiliate's email; cards compare by Stripe's card fingerprint.
    """
    user = referral.affiliate.user
    own = set(djm.Customer.objects.filter(subscriber=user).values_list("id", flat=True)) | set(
        djm.Customer.objects.filter(email__iexact=user.email).values_list("id", flat=True)
    )
    if referral.stripe_customer_id in own:
        return "self_referral_customer"
    own.discard(referral.stripe_customer_id)
    theirs = _fingerprints({referral.stripe_customer_id})
    if theirs and theirs & _fingerprints(own):
        return "self_referral_card"
    return None


def _click(referral: Referral) -> Click | None:
    if not referral.click_uid:
        return None
    return Click.objects.filter(click_uid=referral.click_uid).first()


def many_clicks_from_one_ip(referral: Referral) -> str | None:
    """More than N clicks from the converting click's IP on the affiliate's links within 24 h."""
    click = _click(referral)
    if click is None:
        return None
    limit = int(_setting("AFFILIATE_FRAUD_MAX_CLICKS_PER_IP", 20))
    window = timedelta(hours=int(_setting("AFFILIATE_FRAUD_CLICK_WINDOW_HOURS", 24)))
    count = Click.objects.filter(
        link__affiliate_id=referral.affiliate_id,
        ip_hash=click.ip_hash,
        clicked_at__gt=referral.referred_at - window,
        clicked_at__lte=referral.referred_at,
    ).count()
    return "many_clicks_from_one_ip" if count > limit else None


def fast_conversion(referral: Referral) -> str | None:
    """The referral happened seconds after its click (bots, cookie stuffing)."""
    click = _click(referral)
    if click is None:
        return None
    minimum = int(_setting("AFFILIATE_FRAUD_MIN_SECONDS_TO_CONVERT", 10))
    seconds = (referral.referred_at - click.clicked_at).total_seconds()
    return "fast_conversion" if 0 <= seconds < minimum else None


REFERRAL_RULES: tuple[Callable[[Referral], str | None], ...] = (
    self_referral_email,
    self_referral_domain,
    self_referral_payment,
    many_clicks_from_one_ip,
    fast_conversion,
)


def referral_flags(*, referral: Referral) -> list[str]:
    """The reasons the referral looks fraudulent (empty when none fired), in rule order."""
    return [reason for rule in REFERRAL_RULES if (reason := rule(referral)) is not None]


def commission_flags(*, commission: Commission) -> list[str]:
    """The referral's reasons plus those already stored on the referral (attribution's)."""
    reasons = referral_flags(referral=commission.referral)
    for stored in commission.referral.flags or []:
        if stored not in reasons:
            reasons.append(str(stored))
    return reasons
