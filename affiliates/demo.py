"""Demo affiliate program: two programs, three affiliates, links, 90 days of clicks, referrals
of the subscriptions demo's customers, commissions in every status and one paid payout batch.

Runs after the subscriptions demo (ORDER 20), whose Stripe customers and paid invoices it
refers to. Applications and links go through the application services. Commissions, the
payout batch and payouts are created as rows here, not through the commission/payout
services: those services (affiliates/services/commissions.py, ledger/payouts.py) had not
landed when this was written, so the demo's commissions have no ledger postings yet.

Idempotent: programs by slug, users by email, links by fixed code, clicks by a deterministic
click_uid (bulk insert ignoring conflicts), referrals by Stripe customer, commissions by
(invoice, affiliate), the batch by (payee type, as_of).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import User
from affiliates.models import Affiliate, Click, Commission, Program, Referral, ReferralLink
from affiliates.services.applications import (
    affiliate_apply,
    affiliate_approve,
    affiliate_suspend,
    referral_link_create,
)
from ledger.models import Account, PayeeProfile, Payout, PayoutBatch
from revenue_site.demo import DEMO_ADMIN_EMAIL, DEMO_PASSWORD
from revenue_site.money import apply_rate

ORDER = 30

PERCENT_SLUG = "demo-partners"
FLAT_SLUG = "demo-bounty"
PAID_BATCH_AS_OF = date(2026, 1, 31)

# email, name, program slug, final status, link codes
AFFILIATES = [
    (
        "pat.partner@demo.example",
        "Pat Partner",
        PERCENT_SLUG,
        "approved",
        ["demo-pat", "demo-pat-blog"],
    ),
    ("quinn.applicant@demo.example", "Quinn Applicant", FLAT_SLUG, "pending", []),
    ("sam.suspended@demo.example", "Sam Suspended", FLAT_SLUG, "suspended", ["demo-sam"]),
]

# referred demo customer email → (affiliate email, commission status)
REFERRALS = {
    "ada@demo.example": ("pat.partner@demo.example", Commission.Status.PAID),
    "grace@demo.example": ("pat.partner@demo.example", Commission.Status.PAID),
    "alan@demo.example": ("pat.partner@demo.example", Commission.Status.APPROVED),
    "edsger@demo.example": ("pat.partner@demo.example", Commission.Status.HELD),
    "barbara@demo.example": ("pat.partner@demo.example", Commission.Status.REVERSED),
    "margaret@demo.example": ("sam.suspended@demo.example", Commission.Status.HELD),
    "katherine@demo.example": ("sam.suspended@demo.example", None),  # trial: no invoice yet
}


def _programs() -> dict[str, Program]:
    percent, _ = Program.objects.get_or_create(
        slug=PERCENT_SLUG,
        defaults={
            "name": "Demo Partners (20%)",
            "landing_url": "http://127.0.0.1:8000/",
            "allowed_hosts": ["127.0.0.1", "localhost"],
            "commission_type": Program.CommissionType.PERCENT,
            "commission_rate": Decimal("20"),
            "duration": Program.Duration.RECURRING,
            "recurring_months": 12,
            "hold_days": 30,
            "minimum_payout": 1000,
            "tiers": [{"min_revenue": 0, "rate": "20"}, {"min_revenue": 500000, "rate": "25"}],
        },
    )
    flat, _ = Program.objects.get_or_create(
        slug=FLAT_SLUG,
        defaults={
            "name": "Demo Bounty ($25 per sign-up)",
            "landing_url": "http://127.0.0.1:8000/",
            "allowed_hosts": ["127.0.0.1", "localhost"],
            "commission_type": Program.CommissionType.FLAT,
            "commission_flat_amount": 2500,
            "duration": Program.Duration.FIRST_PAYMENT,
            "hold_days": 14,
        },
    )
    return {PERCENT_SLUG: percent, FLAT_SLUG: flat}


def _affiliates(programs: dict[str, Program]) -> dict[str, Affiliate]:
    staff = User.objects.filter(email=DEMO_ADMIN_EMAIL).first()
    result = {}
    for email, name, slug, status, codes in AFFILIATES:
        user, created = User.objects.get_or_create(email=email, defaults={"name": name})
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        affiliate = affiliate_apply(
            user=user,
            program=programs[slug],
            website=f"https://{name.split()[0].lower()}.demo.example",
            promotion_plan="Blog posts and a newsletter.",
        )
        if status in ("approved", "suspended") and affiliate.status == Affiliate.Status.PENDING:
            affiliate_approve(affiliate=affiliate, actor=staff, note="demo")
            if status == "suspended":
                affiliate_suspend(affiliate=affiliate, actor=staff, note="demo: traffic quality")
        for code in codes:
            if not ReferralLink.objects.filter(code=code).exists():
                link = referral_link_create(
                    affiliate=affiliate, campaign=code.removeprefix("demo-"), landing_path="/"
                )
                # Fixed demo codes so the links are easy to try: /r/demo-pat
                ReferralLink.objects.filter(pk=link.pk).update(code=code)
        result[email] = affiliate
    return result


def _clicks(affiliates: dict[str, Affiliate]) -> int:
    rng = random.Random(42)  # noqa: S311 - demo data, not security
    now = timezone.now()
    rows = []
    links = ReferralLink.objects.filter(affiliate__in=affiliates.values()).order_by("pk")
    for link in links:
        for day in range(90):
            for n in range(rng.randint(0, 6)):
                rows.append(
                    Click(
                        link=link,
                        clicked_at=now - timedelta(days=day, minutes=rng.randint(0, 1400)),
                        ip_hash=f"{rng.getrandbits(256):064x}",
                        user_agent="Mozilla/5.0 (demo)",
                        referrer="https://blog.demo.example/",
                        click_uid=f"demo-{link.code}-{day}-{n}"[:32],
                    )
                )
    Click.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    return len(rows)


def _referrals_and_commissions(affiliates: dict[str, Affiliate]) -> int:
    made = 0
    now = timezone.now()
    for customer_email, (affiliate_email, status) in REFERRALS.items():
        affiliate = affiliates[affiliate_email]
        customer = djstripe_models.Customer.objects.filter(subscriber__email=customer_email).first()
        if customer is None:
            continue
        link = affiliate.links.order_by("pk").first()
        referral, _ = Referral.objects.get_or_create(
            stripe_customer_id=customer.id,
            defaults={
                "affiliate": affiliate,
                "link": link,
                "user": customer.subscriber,
                "source": Referral.Source.COOKIE,
                "referred_at": now - timedelta(days=60),
            },
        )
        invoice = (
            djstripe_models.Invoice.objects.filter(customer=customer, stripe_data__paid=True)
            .order_by("created")
            .first()
        )
        if status is None or invoice is None:
            continue
        program = affiliate.program
        base = int(invoice.stripe_data.get("amount_paid") or 0)
        if program.commission_type == Program.CommissionType.FLAT:
            amount = int(program.commission_flat_amount or 0)
        else:
            amount = apply_rate(base, program.commission_rate / Decimal(100))
        paid_at = {
            Commission.Status.PAID: now - timedelta(days=75),
            Commission.Status.APPROVED: now - timedelta(days=45),
        }.get(status, now - timedelta(days=5))
        _, created = Commission.objects.get_or_create(
            stripe_invoice_id=invoice.id,
            affiliate=affiliate,
            defaults={
                "referral": referral,
                "base_amount": base,
                "amount": amount,
                "currency": str(invoice.stripe_data.get("currency") or program.currency),
                "rule": {
                    "type": program.commission_type,
                    "rate": str(program.commission_rate),
                    "flat_amount": program.commission_flat_amount,
                    "demo": True,
                },
                "status": status,
                "paid_at_invoice": paid_at,
                "available_at": paid_at + timedelta(days=program.hold_days),
                "approved_at": (
                    paid_at + timedelta(days=program.hold_days)
                    if status in (Commission.Status.APPROVED, Commission.Status.PAID)
                    else None
                ),
                "reversed_amount": amount if status == Commission.Status.REVERSED else 0,
                "reversed_at": now - timedelta(days=2)
                if status == Commission.Status.REVERSED
                else None,
            },
        )
        made += int(created)
    return made


def _paid_batch(affiliates: dict[str, Affiliate]) -> None:
    affiliate = affiliates["pat.partner@demo.example"]
    PayeeProfile.objects.get_or_create(
        payee_type=Account.PayeeType.AFFILIATE,
        payee_id=affiliate.pk,
        defaults={"method": PayeeProfile.Method.PAYPAL, "paypal_email": "pat@paypal.demo.example"},
    )
    batch, _ = PayoutBatch.objects.get_or_create(
        payee_type=Account.PayeeType.AFFILIATE,
        as_of=PAID_BATCH_AS_OF,
        defaults={"status": PayoutBatch.Status.COMPLETED, "completed_at": timezone.now()},
    )
    paid = Commission.objects.filter(affiliate=affiliate, status=Commission.Status.PAID)
    by_currency: dict[str, int] = {}
    for commission in paid:
        by_currency[commission.currency] = by_currency.get(commission.currency, 0) + (
            commission.amount - commission.reversed_amount
        )
    for currency, amount in by_currency.items():
        if amount <= 0:
            continue
        payout, _ = Payout.objects.get_or_create(
            batch=batch,
            payee_type=Account.PayeeType.AFFILIATE,
            payee_id=affiliate.pk,
            currency=currency,
            defaults={
                "amount": amount,
                "method": PayeeProfile.Method.PAYPAL,
                "status": Payout.Status.PAID,
                "paid_at": timezone.now(),
                "external_reference": "demo-paypal-csv",
            },
        )
        paid.filter(currency=currency, payout__isnull=True).update(payout=payout)


@transaction.atomic
def seed(*, out: Callable[[str], None]) -> None:
    programs = _programs()
    affiliates = _affiliates(programs)
    _clicks(affiliates)
    _referrals_and_commissions(affiliates)
    _paid_batch(affiliates)
    out(
        f"  affiliates: {len(programs)} programs, {len(affiliates)} affiliates, "
        f"{Click.objects.filter(link__affiliate__in=affiliates.values()).count()} clicks, "
        f"{Commission.objects.filter(affiliate__in=affiliates.values()).count()} commissions "
        f"(portal login pat.partner@demo.example / the demo password)"
    )
