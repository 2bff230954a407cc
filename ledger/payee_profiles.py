"""How a payee (affiliate, creator, provider) is paid: their ``PayeeProfile`` in the payout
engine, set by the payee (portal, API) or by staff. One definition of what a valid payout
method is, shared by every payee type."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from ledger.models import Account, PayeeProfile

_STRIPE_ACCOUNT_RE = re.compile(r"^acct_[A-Za-z0-9]{6,250}$")
BIC_RE = re.compile(r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")
_IBAN_RE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")


def iban_is_valid(iban: str) -> bool:
    """The IBAN's shape and its ISO 13616 check digits (mod 97 == 1)."""
    if not _IBAN_RE.match(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


@transaction.atomic
def payee_profile_set(
    *,
    payee_type: str,
    payee_id: int,
    method: str,
    stripe_account_id: str = "",
    paypal_email: str = "",
    bank_account_name: str = "",
    bank_iban: str = "",
    bank_bic: str = "",
) -> PayeeProfile:
    """Create or update the payee's PayeeProfile (how the payout engine pays them).

    Only the fields of the chosen method are kept; the others are cleared so a stale PayPal
    address cannot be used after switching to Connect. Raises ValidationError naming the field
    (``method``, ``stripe_account_id``, ``paypal_email``, ``bank_account_name``, ``bank_iban``,
    ``bank_bic``).
    """
    payee_type = Account.PayeeType(payee_type).value
    method = method.strip()
    if method not in PayeeProfile.Method.values:
        raise ValidationError({"method": ["Choose a payout method."]})
    values: dict[str, str] = {
        "stripe_account_id": "",
        "paypal_email": "",
        "bank_account_name": "",
        "bank_iban": "",
        "bank_bic": "",
    }
    errors: dict[str, list[str]] = {}
    if method == PayeeProfile.Method.STRIPE_CONNECT:
        account = stripe_account_id.strip()
        if not _STRIPE_ACCOUNT_RE.match(account):
            errors["stripe_account_id"] = ['Enter a Stripe Connect account id ("acct_…").']
        values["stripe_account_id"] = account
    elif method == PayeeProfile.Method.PAYPAL:
        email = paypal_email.strip().lower()
        try:
            validate_email(email)
        except ValidationError:
            errors["paypal_email"] = ["Enter the email address of your PayPal account."]
        values["paypal_email"] = email
    else:
        name = bank_account_name.strip()
        iban = re.sub(r"\s+", "", bank_iban).upper()
        bic = re.sub(r"\s+", "", bank_bic).upper()
        if not name:
            errors["bank_account_name"] = ["Enter the account holder's name."]
        if not iban_is_valid(iban):
            errors["bank_iban"] = ["Enter a valid IBAN."]
        if not BIC_RE.match(bic):
            errors["bank_bic"] = ["Enter a valid BIC (8 or 11 characters)."]
        values.update(bank_account_name=name[:200], bank_iban=iban, bank_bic=bic)
    if errors:
        raise ValidationError(errors)
    profile, _ = PayeeProfile.objects.update_or_create(
        payee_type=payee_type, payee_id=payee_id, defaults={"method": method, **values}
    )
    return profile
