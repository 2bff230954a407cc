"""Demo affiliate program: two programs, three affiliates, links, 90 days of clicks, referrals
of the subscriptions demo's customers, commissions in every status and one paid payout batch.

Runs after the subscriptions demo (ORDER 20), whose Stripe customers and paid invoices it
refers to. Everything goes through the services: applications and links, attribution (which
accrues the commissions with their ledger postings), approval, a payout batch, and a refund
with its clawback; the only demo shortcut is moving the end of a hold into the past.

Idempotent: programs by slug, users by email, links by fixed code, clicks by a deterministic
click_uid (bulk insert ignoring conflicts), referrals by Stripe customer, commissions by
(invoice, affiliate), the batch by (payee type, as_of).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

import stripe
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import User
from affiliates.models import Affiliate, Click, Commission, Program, ReferralLink
from affiliates.services.applications import (
    affiliate_apply,
    affiliate_approve,
    affiliate_suspend,
    referral_link_create,
)
from affiliates.services.attribution import referral_attribute
from affiliates.services.clawbacks import commission_refunds_record
from affiliates.services.commissions import commissions_approve_due
from ledger.models import Account, PayeeProfile, Payout
from ledger.payouts import payout_batch_run
from revenue_site.demo import DEMO_ADMIN_EMAIL, DEMO_PASSWORD
from revenue_site.stripe_payloads import stripe_id
from revenue_site.stripe_setup import stripe_api_key
from subscriptions.services.invoice_postings import charge_refund_record

ORDER = 30

PERCENT_SLUG = "demo-partners"
FLAT_SLUG = "demo-bounty"

# email, name, program slug, final status, link codes
AFFILIATES = [
    (
        "pat.partner@partners.example",
        "Pat Partner",
        PERCENT_SLUG,
        "approved",
        ["demo-pat", "demo-pat-blog"],
    ),
    ("quinn.applicant@partners.example", "Quinn Applicant", FLAT_SLUG, "pending", []),
    ("sam.suspended@partners.example", "Sam Suspended", FLAT_SLUG, "suspended", ["demo-sam"]),
]

# referred demo customer email → (affiliate email, commission status)
REFERRALS = {
    "ada@demo.example": ("pat.partner@partners.example", Commission.Status.PAID),
    "grace@demo.example": ("pat.partner@partners.example", Commission.Status.PAID),
    "alan@demo.example": ("pat.partner@partners.example", Commission.Status.APPROVED),
    "edsger@demo.example": ("pat.partner@partners.example", Commission.Status.HELD),
    "barbara@demo.example": ("pat.partner@partners.example", Commission.Status.REVERSED),
    "margaret@demo.example": ("sam.suspended@partners.example", Commission.Status.HELD),
    "katherine@demo.example": ("sam.suspended@partners.example", None),  # trial: no invoice yet
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


def _suspend(affiliates: dict[str, Affiliate]) -> None:
    """Suspended last: until then Sam earned like anyone (a suspended affiliate earns nothing)."""
    staff = User.objects.filter(email=DEMO_ADMIN_EMAIL).first()
    for email, _name, _slug, status, _codes in AFFILIATES:
        affiliate = affiliates[email]
        if status == "suspended" and affiliate.status == Affiliate.Status.APPROVED:
            affiliate_suspend(affiliate=affiliate, actor=staff, note="demo: traffic quality")


def _commissions_of(emails: list[str]) -> QuerySet[Commission]:
    return Commission.objects.filter(referral__user__email__in=emails)


def _referrals(affiliates: dict[str, Affiliate]) -> None:
    """Attribute the demo customers through the attribution service: each referral catches up
    on the invoices already paid, so commissions are accrued (HELD, with their ledger
    postings) by the commission service, exactly as for a late webhook."""
    now = timezone.now()
    for customer_email, (affiliate_email, _status) in REFERRALS.items():
        customer = djstripe_models.Customer.objects.filter(subscriber__email=customer_email).first()
        link = affiliates[affiliate_email].links.order_by("pk").first()
        if customer is None or link is None:
            continue
        referral_attribute(
            stripe_customer_id=customer.id,
            user=customer.subscriber,
            referral_code=link.code,
            at=now - timedelta(days=60),
        )


def _age_past_hold(emails: list[str]) -> None:
    """Demo only: Stripe's invoices were paid today, so the hold has not ended; move the end
    of the hold into the past (as if paid 45 days ago) and let the approval service run."""
    _commissions_of(emails).filter(status=Commission.Status.HELD).update(
        available_at=timezone.now() - timedelta(days=1)
    )
    commissions_approve_due()


def _statuses(affiliates: dict[str, Affiliate]) -> None:
    """Bring the demo commissions into every status through the services."""
    wanted: dict[str, list[str]] = {}
    for customer_email, (_affiliate, status) in REFERRALS.items():
        if status is not None:
            wanted.setdefault(status, []).append(customer_email)

    # PAID: approved, then paid by a payout batch (PayPal CSV) with its ledger posting.
    pat = affiliates["pat.partner@partners.example"]
    PayeeProfile.objects.get_or_create(
        payee_type=Account.PayeeType.AFFILIATE,
        payee_id=pat.pk,
        defaults={"method": PayeeProfile.Method.PAYPAL, "paypal_email": "pat@paypal.demo.example"},
    )
    _age_past_hold(wanted[Commission.Status.PAID])
    if not Payout.objects.filter(payee_type=Account.PayeeType.AFFILIATE, payee_id=pat.pk).exists():
        payout_batch_run(payee_type=Account.PayeeType.AFFILIATE, as_of=timezone.localdate())

    # APPROVED: past the hold, not paid yet.
    _age_past_hold(wanted[Commission.Status.APPROVED])

    # REVERSED: the customer was refunded in full; the clawback and the revenue reversal are
    # what the charge.refunded webhook does (both idempotent per refund id).
    for commission in _commissions_of(wanted[Commission.Status.REVERSED]):
        charge_id = _invoice_charge_id(commission.stripe_invoice_id)
        if not charge_id:
            continue
        stripe.Refund.create(
            charge=charge_id,
            reason="requested_by_customer",
            api_key=stripe_api_key(),
            idempotency_key=f"demo:refund:{charge_id}",
        )
        response = stripe.Charge.retrieve(charge_id, api_key=stripe_api_key()).last_response
        if response is None:
            continue
        charge = cast(dict[str, Any], response.data)  # raw JSON, as webhooks carry it
        charge_refund_record(charge=charge, occurred_at=timezone.now())
        commission_refunds_record(charge=charge, occurred_at=timezone.now())


def _invoice_charge_id(invoice_id: str) -> str | None:
    """The charge that paid the invoice: its paid invoice payment's payment intent's."""
    payments = stripe.InvoicePayment.list(invoice=invoice_id, api_key=stripe_api_key())
    for payment in payments.auto_paging_iter():
        pi_id = stripe_id(payment.payment.payment_intent) if payment.status == "paid" else ""
        if pi_id:
            intent = stripe.PaymentIntent.retrieve(pi_id, api_key=stripe_api_key())
            return str(intent.latest_charge) if intent.latest_charge else None
    return None


@transaction.atomic
def seed(*, out: Callable[[str], None]) -> None:
    programs = _programs()
    affiliates = _affiliates(programs)
    _clicks(affiliates)
    _referrals(affiliates)
    _statuses(affiliates)
    _suspend(affiliates)
    out(
        f"  affiliates: {len(programs)} programs, {len(affiliates)} affiliates, "
        f"{Click.objects.filter(link__affiliate__in=affiliates.values()).count()} clicks, "
        f"{Commission.objects.filter(affiliate__in=affiliates.values()).count()} commissions "
        f"(portal login pat.partner@partners.example / the demo password)"
    )
