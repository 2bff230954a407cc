"""Providers of the services marketplace: becoming one, getting paid, staff suspension.

A provider is a payee of the shared payout engine (payee type ``provider``, ``payee_id`` = the
provider's pk). How they are paid lives in ``ledger.payees``: a Stripe Connect Express account
onboarded through an account link (``account.updated`` tells us when it is enabled), or bank
details for the CSV payouts. Until that is complete (``PayeeProfile.onboarding_complete``) a
provider may draft listings but not submit or publish them (``marketplace.listings``).
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import User
from ledger.models import Account, PayeeProfile
from ledger.payees import (
    payee_bank_details_set,
    payee_connect_account_ensure,
    payee_connect_account_refresh,
    payee_onboarding_link_create,
)
from marketplace.models import Provider

PAYEE_TYPE = Account.PayeeType.PROVIDER.value


class ProviderError(Exception):
    """A provider request that conflicts with the current state (answered 409)."""

    def __init__(self, message: str, *, code: str = "conflict"):
        super().__init__(message)
        self.message = message
        self.code = code


class ProviderSuspended(ProviderError):
    def __init__(self) -> None:
        super().__init__(
            "This provider account is suspended; contact support.", code="provider_suspended"
        )


class OnboardingIncomplete(ProviderError):
    """The provider cannot be paid yet, so cannot submit or publish listings."""

    def __init__(self) -> None:
        super().__init__(
            "Complete payout onboarding first (Stripe Connect, or bank details for "
            "bank transfers) before submitting or publishing a listing.",
            code="onboarding_incomplete",
        )


def provider_payee_profile(*, provider: Provider) -> PayeeProfile | None:
    """How the provider is paid (None: nothing set up yet)."""
    return PayeeProfile.objects.filter(payee_type=PAYEE_TYPE, payee_id=provider.pk).first()


def provider_onboarding_complete(*, provider: Provider) -> bool:
    profile = provider_payee_profile(provider=provider)
    return profile is not None and profile.onboarding_complete


def provider_can_sell_check(*, provider: Provider) -> None:
    """Raise ``ProviderSuspended`` or ``OnboardingIncomplete`` unless the provider may put
    listings on sale."""
    if not provider.is_active:
        raise ProviderSuspended()
    if not provider_onboarding_complete(provider=provider):
        raise OnboardingIncomplete()


def provider_create(*, user: User, display_name: str) -> Provider:
    """Make ``user`` a provider. Raises ``ProviderError`` (409) when they already are one."""
    display_name = " ".join(display_name.split())
    try:
        with transaction.atomic():
            return Provider.objects.create(user=user, display_name=display_name)
    except IntegrityError as exc:
        raise ProviderError("This account is already a provider.", code="already_provider") from exc


@transaction.atomic
def provider_update(*, provider: Provider, display_name: str | None = None) -> Provider:
    if display_name is not None:
        provider.display_name = " ".join(display_name.split())
        provider.save(update_fields=["display_name", "updated_at"])
    return provider


def provider_connect_onboarding_start(
    *,
    provider: Provider,
    return_url: str,
    refresh_url: str,
    country: str = "US",
    request_key: str | None = None,
) -> dict[str, Any]:
    """A Stripe-hosted onboarding link for the provider's Express account (created on the
    first call): ``{"url", "expires_at"}``. Switches the provider's payouts to Connect.

    Raises ``ProviderSuspended``; Stripe's refusals and outages as ``ledger.payees`` does.
    """
    if not provider.is_active:
        raise ProviderSuspended()
    profile = payee_connect_account_ensure(
        payee_type=PAYEE_TYPE,
        payee_id=provider.pk,
        email=provider.user.email,
        display_name=provider.display_name,
        country=country,
    )
    return payee_onboarding_link_create(
        profile=profile, return_url=return_url, refresh_url=refresh_url, request_key=request_key
    )


def provider_connect_refresh(*, provider: Provider) -> PayeeProfile | None:
    """Read the provider's connected account from Stripe now (back from onboarding before the
    ``account.updated`` webhook, or staff checking)."""
    profile = provider_payee_profile(provider=provider)
    if profile is None:
        return None
    return payee_connect_account_refresh(profile=profile)


def provider_bank_details_set(
    *, provider: Provider, account_name: str, iban: str, bic: str = ""
) -> PayeeProfile:
    """Pay the provider by bank transfer (CSV payouts) instead of Stripe Connect.
    Raises ``ProviderSuspended``, or ``ValidationError`` naming the field."""
    if not provider.is_active:
        raise ProviderSuspended()
    return payee_bank_details_set(
        payee_type=PAYEE_TYPE, payee_id=provider.pk, account_name=account_name, iban=iban, bic=bic
    )


@transaction.atomic
def provider_suspend(*, provider: Provider) -> Provider:
    """Suspend a provider: their listings leave the catalog at once (the catalog shows active
    providers only) and they cannot submit or publish. Their listings keep their status, so
    reinstating puts them back as they were."""
    provider = Provider.objects.select_for_update().get(pk=provider.pk)
    if provider.status != Provider.Status.SUSPENDED:
        provider.status = Provider.Status.SUSPENDED
        provider.save(update_fields=["status", "updated_at"])
    return provider


@transaction.atomic
def provider_reinstate(*, provider: Provider) -> Provider:
    provider = Provider.objects.select_for_update().get(pk=provider.pk)
    if provider.status != Provider.Status.ACTIVE:
        provider.status = Provider.Status.ACTIVE
        provider.save(update_fields=["status", "updated_at"])
    return provider
