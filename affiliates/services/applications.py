"""Affiliate applications and links: apply, staff decisions, referral link creation.

Status transitions (staff decisions) are validated here; anything else raises
``IllegalTransition``. Every decision records who and when and emails the affiliate through
the mail outbox (``accounts.services.email_queue``): sent after commit, retried when the
mail server is down, never failing the decision.
"""

from __future__ import annotations

import re
import secrets

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import email_queue
from affiliates.models import Affiliate, Program, ReferralLink
from ledger.models import Account, PayeeProfile
from ledger.payee_profiles import payee_profile_set

Status = Affiliate.Status

# Which statuses a staff decision may start from.
_ALLOWED_FROM: dict[str, frozenset[str]] = {
    Status.APPROVED: frozenset({Status.PENDING, Status.REJECTED, Status.SUSPENDED}),
    Status.REJECTED: frozenset({Status.PENDING}),
    Status.SUSPENDED: frozenset({Status.APPROVED}),
}

_CODE_ATTEMPTS = 5


class IllegalTransition(Exception):
    """A staff decision that the affiliate's current status does not allow."""

    def __init__(self, *, affiliate: Affiliate, target: str) -> None:
        self.affiliate = affiliate
        self.target = target
        super().__init__(
            f"Affiliate {affiliate.pk} is {affiliate.status}; it cannot become {target}."
        )


def _email_affiliate(*, affiliate: Affiliate, subject: str, body: str, purpose: str) -> None:
    email_queue(to=[affiliate.user.email], subject=subject, body=body, purpose=purpose)


@transaction.atomic
def affiliate_apply(
    *, user: User, program: Program, website: str = "", promotion_plan: str = ""
) -> Affiliate:
    """Create a PENDING affiliate application for ``user`` in ``program``.

    One affiliate per user (the OneToOne): a second application returns the existing row
    unchanged. Raises ValidationError if the program is not active.
    """
    if not program.is_active:
        raise ValidationError({"program": ["This program is not accepting applications."]})
    try:
        with transaction.atomic():
            affiliate = Affiliate.objects.create(
                user=user,
                program=program,
                website=website.strip(),
                promotion_plan=promotion_plan.strip(),
            )
    except IntegrityError:
        return Affiliate.objects.select_related("program", "user").get(user=user)
    _email_affiliate(
        affiliate=affiliate,
        purpose="affiliate.applied",
        subject=f"Your application to {program.name} was received",
        body=(
            f"Thank you for applying to the {program.name} affiliate program. "
            "We will email you once staff have reviewed your application."
        ),
    )
    return affiliate


def _decide(*, affiliate: Affiliate, target: str, actor: User | None, note: str) -> Affiliate:
    locked = Affiliate.objects.select_for_update().select_related("user", "program")
    affiliate_row = locked.get(pk=affiliate.pk)
    if affiliate_row.status not in _ALLOWED_FROM[target]:
        raise IllegalTransition(affiliate=affiliate_row, target=target)
    affiliate_row.status = target
    affiliate_row.decided_at = timezone.now()
    affiliate_row.decided_by = actor
    if note:
        affiliate_row.staff_note = note
    affiliate_row.save(update_fields=["status", "decided_at", "decided_by", "staff_note"])
    # Keep the caller's instance in step with the database.
    for field in ("status", "decided_at", "decided_by_id", "staff_note"):
        setattr(affiliate, field, getattr(affiliate_row, field))
    return affiliate_row


@transaction.atomic
def affiliate_approve(*, affiliate: Affiliate, actor: User | None, note: str = "") -> Affiliate:
    """Approve a pending (or previously rejected/suspended) affiliate.

    Creates a first referral link when the affiliate has none, and emails them.
    Raises IllegalTransition when already approved.
    """
    row = _decide(affiliate=affiliate, target=Status.APPROVED, actor=actor, note=note)
    link = row.links.order_by("pk").first()
    if link is None:
        link = referral_link_create(affiliate=row)
    _email_affiliate(
        affiliate=row,
        purpose="affiliate.approved",
        subject=f"Welcome to the {row.program.name} affiliate program",
        body=(
            "Your affiliate application was approved. "
            f"Your first referral link code is {link.code}. "
            "Log in to the affiliate portal to see your links and earnings."
        ),
    )
    return row


@transaction.atomic
def affiliate_reject(*, affiliate: Affiliate, actor: User | None, note: str = "") -> Affiliate:
    """Reject a pending application and email the applicant. Raises IllegalTransition."""
    row = _decide(affiliate=affiliate, target=Status.REJECTED, actor=actor, note=note)
    _email_affiliate(
        affiliate=row,
        purpose="affiliate.rejected",
        subject=f"Your application to {row.program.name}",
        body="We are sorry: your affiliate application was not accepted.",
    )
    return row


@transaction.atomic
def affiliate_suspend(*, affiliate: Affiliate, actor: User | None, note: str = "") -> Affiliate:
    """Suspend an approved affiliate and email them. Raises IllegalTransition.

    Their links stop counting as active in the portal; existing commissions are untouched.
    """
    row = _decide(affiliate=affiliate, target=Status.SUSPENDED, actor=actor, note=note)
    _email_affiliate(
        affiliate=row,
        purpose="affiliate.suspended",
        subject=f"Your {row.program.name} affiliate account was suspended",
        body="Your affiliate account was suspended. Contact us if you think this is a mistake.",
    )
    return row


_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def landing_path_validate(landing_path: str) -> str:
    """Return a clean landing path or raise ValidationError.

    A path must start with "/", and may not start with "//", hold a backslash, a scheme, or
    control characters: it is appended to the program's own landing host, never a URL.
    """
    path = landing_path.strip()
    if not path:
        return ""
    error = ValidationError(
        {"landing_path": ['Enter a path on our site starting with "/", e.g. /pricing.']}
    )
    if (
        not path.startswith("/")
        or path.startswith("//")
        or "\\" in path
        or _SCHEME_RE.match(path)
        or "://" in path
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in path)
        or len(path) > 500
    ):
        raise error
    lowered = path.lower()
    if lowered.startswith("/%2f") or "%5c" in lowered:
        raise error
    return path


def _new_code() -> str:
    # token_urlsafe may yield "-" and "_", both valid in a SlugField; 12 chars ≈ 72 bits.
    return secrets.token_urlsafe(9)


@transaction.atomic
def referral_link_create(
    *, affiliate: Affiliate, campaign: str = "", sub_id: str = "", landing_path: str = ""
) -> ReferralLink:
    """Create a referral link with a random unique code.

    Raises ValidationError for a bad landing path. A code collision (unique constraint) is
    retried with a fresh code a few times.
    """
    path = landing_path_validate(landing_path)
    for attempt in range(_CODE_ATTEMPTS):
        try:
            with transaction.atomic():
                return ReferralLink.objects.create(
                    affiliate=affiliate,
                    code=_new_code(),
                    campaign=campaign.strip()[:100],
                    sub_id=sub_id.strip()[:100],
                    landing_path=path,
                )
        except IntegrityError:
            if attempt == _CODE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@transaction.atomic
def affiliate_payout_settings_update(
    *,
    affiliate: Affiliate,
    method: str,
    stripe_account_id: str = "",
    paypal_email: str = "",
    bank_account_name: str = "",
    bank_iban: str = "",
    bank_bic: str = "",
) -> PayeeProfile:
    """Create or update the affiliate's ledger PayeeProfile (how they are paid); see
    ``ledger.payee_profiles.payee_profile_set``. Raises ValidationError naming the field."""
    return payee_profile_set(
        payee_type=Account.PayeeType.AFFILIATE,
        payee_id=affiliate.pk,
        method=method,
        stripe_account_id=stripe_account_id,
        paypal_email=paypal_email,
        bank_account_name=bank_account_name,
        bank_iban=bank_iban,
        bank_bic=bank_bic,
    )
