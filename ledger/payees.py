"""How a payee gets paid: Stripe Connect Express onboarding, or bank details for CSV payouts.

Generic over payee types (``Account.PayeeType``): the marketplace's providers use it first;
affiliates and creators may. A payee's ``PayeeProfile`` says how they are paid and whether that
is ready (``PayeeProfile.onboarding_complete``: on Connect, payouts enabled on the connected
account; by bank, the holder's name and IBAN filled in).

Connect Express:

1. :func:`payee_connect_account_ensure` creates the payee's Express account once (the profile
   row is claimed, locked, and the create's idempotency key is its pk, as
   ``billing_customer_ensure`` does for customers);
2. :func:`payee_onboarding_link_create` asks Stripe for an account link to its hosted
   onboarding (single-use, short-lived: a new one per request);
3. Stripe tells us the outcome with ``account.updated`` (``ledger.receivers``), which
   :func:`payee_connect_account_sync` applies to every profile on that account, unless a
   newer state is already there (events may arrive out of order: the event's ``created`` is
   compared with ``stripe_account_synced_at``; two states within one second cannot be told
   apart, the later processed wins); :func:`payee_connect_account_refresh` reads the account
   from Stripe instead (a payee back from onboarding, staff checking).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ledger.models import PayeeProfile
from ledger.payee_profiles import BIC_RE, iban_is_valid
from revenue_site.stripe_errors import BillingInputError, stripe_errors
from revenue_site.stripe_setup import stripe_api_key

logger = logging.getLogger(__name__)

_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")


class PayeeOnboardingError(Exception):
    """The payee cannot do this yet (e.g. an onboarding link without a Connect account)."""

    def __init__(self, message: str, *, code: str = "onboarding_required"):
        super().__init__(message)
        self.message = message
        self.code = code


def _profile_lock(*, payee_type: str, payee_id: int) -> PayeeProfile:
    """The payee's profile, created if missing (the unique constraint decides), then locked.

    Call it outside the transaction that uses the row (then lock again inside), as
    ``payee_connect_account_ensure`` does: the created row must outlive a failed Stripe call,
    because its pk is the idempotency key of the retry."""
    PayeeProfile.objects.get_or_create(payee_type=payee_type, payee_id=payee_id)
    return PayeeProfile.objects.select_for_update().get(payee_type=payee_type, payee_id=payee_id)


def _account_flags(account: Any) -> dict[str, bool]:
    return {
        "stripe_charges_enabled": bool(account.get("charges_enabled")),
        "stripe_payouts_enabled": bool(account.get("payouts_enabled")),
        "stripe_details_submitted": bool(account.get("details_submitted")),
    }


def _read_time() -> datetime:
    """``stripe_account_synced_at`` for a state read from the API now: whole seconds, as
    event times are, so an event Stripe creates later in this same second still applies."""
    return timezone.now().replace(microsecond=0)


@stripe_errors(param_fields={"country": "country", "email": "email"})
def payee_connect_account_ensure(
    *,
    payee_type: str,
    payee_id: int,
    email: str,
    display_name: str,
    country: str = "US",
) -> PayeeProfile:
    """The payee's profile on Stripe Connect with an Express account, created exactly once.

    A profile that already names a connected account keeps it (switching its method back to
    Connect); otherwise ``stripe.Account.create(type="express")`` runs under the locked
    profile with the idempotency key ``payee-<pk>-connect-account``, so a retry after a crash
    gets the same account back. The account starts restricted: onboarding (an account link)
    enables it. Raises ``BillingInputError`` when Stripe refuses the input (country, email),
    ``StripeUnavailable`` when it cannot answer.
    """
    country = country.strip().upper()
    if not _COUNTRY_RE.match(country):
        raise BillingInputError("A two-letter ISO country code, e.g. US.", field="country")
    # Claimed first, in its own transaction: a Stripe failure below rolls back only what
    # follows, so the retry finds the same row and replays the same idempotency key.
    PayeeProfile.objects.get_or_create(payee_type=payee_type, payee_id=payee_id)
    with transaction.atomic():
        profile = _profile_lock(payee_type=payee_type, payee_id=payee_id)
        fields = ["method", "updated_at"]
        if not profile.stripe_account_id:
            account = stripe.Account.create(
                type="express",
                country=country,
                email=email,
                business_profile={"name": display_name[:100]} if display_name else {},
                capabilities={"transfers": {"requested": True}},
                metadata={"payee_type": payee_type, "payee_id": str(payee_id)},
                api_key=stripe_api_key(),
                idempotency_key=f"payee-{profile.pk}-connect-account",
            )
            profile.stripe_account_id = account["id"]
            for name, value in _account_flags(account).items():
                setattr(profile, name, value)
            profile.stripe_account_synced_at = _read_time()
            fields += [
                "stripe_account_id",
                "stripe_account_synced_at",
                *_account_flags(account),
            ]
        profile.method = PayeeProfile.Method.STRIPE_CONNECT
        profile.save(update_fields=fields)
    return profile


def _digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@stripe_errors(param_fields={"return_url": "return_url", "refresh_url": "refresh_url"})
def payee_onboarding_link_create(
    *,
    profile: PayeeProfile,
    return_url: str,
    refresh_url: str,
    request_key: str | None = None,
) -> dict[str, Any]:
    """A Stripe-hosted onboarding link for the profile's Express account:
    ``{"url", "expires_at"}`` (an aware datetime).

    Links are single-use and expire within minutes, so each request gets a new one; the
    idempotency key covers only retries of this one request (``request_key``, e.g. the
    client's ``Idempotency-Key``, else a fresh uuid). Raises ``PayeeOnboardingError`` when the
    profile has no connected account yet.
    """
    if not profile.stripe_account_id:
        raise PayeeOnboardingError("Start Stripe Connect onboarding first: no connected account.")
    account = profile.stripe_account_id
    digest = _digest(account, refresh_url, return_url, request_key or uuid.uuid4().hex)
    link = stripe.AccountLink.create(
        account=account,
        refresh_url=refresh_url,
        return_url=return_url,
        type="account_onboarding",
        api_key=stripe_api_key(),
        idempotency_key=f"payee-{profile.pk}-account-link-{digest}",
    )
    return {"url": link["url"], "expires_at": datetime.fromtimestamp(link["expires_at"], tz=UTC)}


@transaction.atomic
def payee_connect_account_sync(
    *, account: Mapping[str, Any], as_of: datetime
) -> list[PayeeProfile]:
    """Apply a connected account's state (``charges_enabled``, ``payouts_enabled``,
    ``details_submitted``) as of ``as_of`` to every profile paid through it.

    A profile already synced from a newer state is left alone (an older ``account.updated``
    delivered late); the same second applies. Returns the profiles it changed. Profiles are
    locked in pk order, so two events for one account apply one after the other.
    """
    account_id = account.get("id")
    if not account_id:
        return []
    flags = _account_flags(account)
    changed = []
    for profile in (
        PayeeProfile.objects.select_for_update().filter(stripe_account_id=account_id).order_by("pk")
    ):
        synced = profile.stripe_account_synced_at
        if synced is not None and as_of < synced:
            logger.info(
                "account %s: state of %s is older than %s, skipped", account_id, as_of, synced
            )
            continue
        for name, value in flags.items():
            setattr(profile, name, value)
        profile.stripe_account_synced_at = as_of
        profile.save(update_fields=[*flags, "stripe_account_synced_at", "updated_at"])
        changed.append(profile)
    return changed


@stripe_errors()
def payee_connect_account_refresh(*, profile: PayeeProfile) -> PayeeProfile:
    """Read the profile's connected account from Stripe now and apply its state (for a payee
    back from onboarding before the webhook, or staff checking). No account: unchanged."""
    if not profile.stripe_account_id:
        return profile
    as_of = _read_time()
    account = stripe.Account.retrieve(profile.stripe_account_id, api_key=stripe_api_key())
    payee_connect_account_sync(account=account.to_dict(), as_of=as_of)
    profile.refresh_from_db()
    return profile


@transaction.atomic
def payee_bank_details_set(
    *,
    payee_type: str,
    payee_id: int,
    account_name: str,
    iban: str,
    bic: str = "",
) -> PayeeProfile:
    """Pay the payee by bank transfer (the payout batch's CSV export) to this account.

    Normalises the IBAN and BIC (no spaces, upper case) and checks them (the IBAN's mod-97
    check; a BIC of 8 or 11 characters, optional). Switches the method to bank transfer; a
    connected account stays recorded (switching back keeps it). Raises ``ValidationError``
    naming the argument at fault (``account_name``, ``iban``, ``bic``).
    """
    name = " ".join(account_name.split())
    iban = re.sub(r"\s+", "", iban).upper()
    bic = re.sub(r"\s+", "", bic).upper()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["account_name"] = ["Enter the account holder's name."]
    elif len(name) > 200:
        errors["account_name"] = ["At most 200 characters."]
    if not iban_is_valid(iban):
        errors["iban"] = ["Enter a valid IBAN."]
    if bic and not BIC_RE.match(bic):
        errors["bic"] = ["Enter a valid BIC (8 or 11 characters)."]
    if errors:
        raise ValidationError(errors)
    profile = _profile_lock(payee_type=payee_type, payee_id=payee_id)
    profile.method = PayeeProfile.Method.BANK_CSV
    profile.bank_account_name = name
    profile.bank_iban = iban
    profile.bank_bic = bic
    profile.save(
        update_fields=["method", "bank_account_name", "bank_iban", "bank_bic", "updated_at"]
    )
    return profile
