"""Stripe Connect, enough for our payouts: the platform account, connected accounts, transfers.

- ``GET /v1/account`` (and ``GET /v1/accounts/<platform id>``) is the platform account behind
  every key: a US ``standard`` account that controls itself, with its bank accounts
  (``payouts.py``) as ``external_accounts`` (a connected account has none). dj-stripe needs
  it to own the synced rows.
- ``POST /v1/accounts`` creates a connected account (``acct_…``; ``type`` express, custom or
  standard, optional ``country``, ``email``, ``business_type``, ``business_profile[name|url]``,
  ``default_currency``, ``capabilities``, ``metadata``), not onboarded yet, as Stripe creates
  one from so little: charges and payouts disabled, details not submitted, the onboarding
  fields ``currently_due`` (``disabled_reason`` ``requirements.past_due``), the requested
  capabilities (``transfers`` always) ``inactive``. The platform controls an Express or Custom
  account, a Standard one controls itself. ``GET /v1/accounts/<id>`` and ``GET /v1/accounts``
  (newest first) read them back. Only connected accounts are transfer destinations.
- ``POST /v1/account_links`` (``account``, ``type`` ``account_onboarding`` or
  ``account_update``, optional ``refresh_url``, ``return_url``, ``collect`` or
  ``collection_options``) answers an ``account_link`` (``created``, ``expires_at`` five minutes
  later, ``url``; no id, as Stripe's has none). The ``url`` is the fake's own stand-in for
  Stripe's hosted onboarding, ``/_config/connect/onboarding/<token>``: a page whose button
  completes onboarding and redirects to ``return_url``; like Stripe's, a link is single-use
  and an expired or used one redirects to ``refresh_url``. ``account_update`` links are
  refused for accounts with a Stripe-hosted dashboard (Express, Standard), as Stripe does.
- Completing onboarding (the hosted page, or ``POST /_config/accounts/<id>/onboard`` for tests
  and scripts, with optional ``details_submitted``, ``charges_enabled``, ``payouts_enabled``:
  ``true`` by default, ``false`` to make an account restricted again) sets those flags, clears
  the requirements when everything is enabled (and puts them back when not) and emits
  ``account.updated`` with ``previous_attributes`` and the event's ``account`` set to the
  connected account, as Stripe sends Connect events. Nothing changed: no event.
- ``POST /v1/transfers`` (``amount`` > 0, ``currency``, ``destination``; optional
  ``description``, ``metadata``, ``transfer_group``, ``source_transaction``: a charge in the
  same currency, else 400 ``No such charge``) moves money from the platform balance to
  a connected account: a balance transaction (``transfer``, ``-amount``, fee 0, available at
  once) and ``transfer.created``. An unknown destination is refused like Stripe does (400 ``No
  such destination``), and so is a destination whose ``transfers`` capability is not
  ``active`` (onboarding not complete, or restricted again): 400
  ``insufficient_capabilities_for_transfer``, "Your destination account needs to have at
  least one of the following capabilities enabled: transfers, crypto_transfers,
  legacy_payments", as Stripe answers (no ``param``). With an ``Idempotency-Key`` a replay
  returns the first transfer
  (``idempotency.py``). ``GET /v1/transfers[/<id>]`` (filters ``destination``,
  ``transfer_group``; newest first) read them back.
- ``POST /v1/transfers/<id>/reversals`` (optional ``amount``, default what is left;
  ``description``, ``metadata``) takes money back: a ``transfer_reversal`` (``trr_…``) with its
  balance transaction (``transfer_refund``, ``+amount``), the transfer's ``amount_reversed``
  and ``reversed`` updated, ``transfer.reversed``; ``GET /v1/transfers/<id>/reversals`` lists
  them (newest first), as does the transfer's ``reversals``.

Not emulated: the platform balance (transfers never fail for insufficient funds),
``crypto_transfers`` and ``legacy_payments`` (no account has them), collecting the onboarding
fields themselves, account updates (``POST /v1/accounts/<id>``) and deletion, ``account.*``
events other than ``account.updated``, updating transfers.
"""

from __future__ import annotations

import html
import re
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from localstripe import server as ls_server
from localstripe.errors import UserError
from localstripe.resources import Event, List, StripeObject, random_id, store, try_convert_to_int

from . import balance, webhooks
from .errors import resource_missing, stripe_error
from .resources.base import ACCOUNT_ID, emit, now

_CURRENCY = re.compile(r"^[a-z]{3}$")
_ACCOUNT_TYPES = ("express", "custom", "standard")
_CREATE_PARAMS = {
    "type",
    "country",
    "email",
    "business_type",
    "business_profile",
    "default_currency",
    "capabilities",
    "metadata",
}
_BUSINESS_TYPES = ("company", "government_entity", "individual", "non_profit")
# Stripe's default settlement currency by country (the countries the fake is asked for).
_CURRENCY_BY_COUNTRY = {"US": "usd", "GB": "gbp", "CA": "cad", "AU": "aud", "CH": "chf"}
_EURO_COUNTRIES = {"AT", "BE", "DE", "ES", "FI", "FR", "IE", "IT", "LU", "NL", "PT"}


def _unknown(params: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise UserError(400, f"Received unknown parameter: {unknown[0]}")


# What Stripe asks of a new Express account of a company or an individual before it can take
# charges and receive payouts (the fields its hosted onboarding collects).
_ONBOARDING_FIELDS = [
    "business_profile.mcc",
    "business_profile.url",
    "business_type",
    "external_account",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]
# Seconds an account link can be used for (Stripe: "a few minutes").
ACCOUNT_LINK_TTL_SECONDS = 300
_LINK_TYPES = ("account_onboarding", "account_update")
_COLLECT = ("currently_due", "eventually_due")


def _requirements(onboarded: bool = True) -> dict[str, Any]:
    """Nothing due once onboarded; before that, the onboarding fields are past due."""
    due = [] if onboarded else list(_ONBOARDING_FIELDS)
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": due,
        "disabled_reason": None if onboarded else "requirements.past_due",
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due),
        "pending_verification": [],
    }


def _business_profile(name: str | None = None, url: str | None = None) -> dict[str, Any]:
    return {
        "annual_revenue": None,
        "estimated_worker_count": None,
        "mcc": None,
        "minority_owned_business_designation": None,
        "name": name,
        "product_description": None,
        "support_address": None,
        "support_email": None,
        "support_phone": None,
        "support_url": None,
        "url": url,
    }


def _settings(display_name: str | None, country: str) -> dict[str, Any]:
    return {
        "bacs_debit_payments": {"display_name": None, "service_user_number": None},
        "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
        "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
        "card_payments": {
            "decline_on": {"avs_failure": False, "cvc_failure": False},
            "statement_descriptor_prefix": None,
            "statement_descriptor_prefix_kana": None,
            "statement_descriptor_prefix_kanji": None,
        },
        "dashboard": {"display_name": display_name, "timezone": "Etc/UTC"},
        "invoices": {"default_account_tax_ids": None, "hosted_payment_method_save": "offer"},
        "payments": {
            "statement_descriptor": None,
            "statement_descriptor_kana": None,
            "statement_descriptor_kanji": None,
            "statement_descriptor_prefix_kana": None,
            "statement_descriptor_prefix_kanji": None,
        },
        "payouts": {
            "debit_negative_balances": True,
            "schedule": {"delay_days": 2 if country == "US" else 7, "interval": "daily"},
            "statement_descriptor": None,
        },
        "sepa_debit_payments": {},
    }


class Account(StripeObject):
    """A Stripe account: the platform's own (``ACCOUNT_ID``) or a connected one."""

    object = "account"
    _id_prefix = "acct_"

    def __init__(
        self,
        type: Any = "express",
        country: Any = "US",
        email: Any = None,
        business_type: Any = None,
        business_profile: Any = None,
        default_currency: Any = None,
        capabilities: Any = None,
        metadata: Any = None,
        id: str | None = None,
        onboarded: bool = False,
    ) -> None:
        if type not in _ACCOUNT_TYPES:
            raise UserError(400, "Invalid type: must be one of express, custom or standard")
        if not isinstance(country, str) or not re.match(r"^[A-Za-z]{2}$", country):
            raise UserError(400, "Invalid country")
        if email is not None and not isinstance(email, str):
            raise UserError(400, "Invalid string: email")
        if business_type is not None and business_type not in _BUSINESS_TYPES:
            raise UserError(400, "Invalid business_type")
        business_profile = business_profile or {}
        if not isinstance(business_profile, dict):
            raise UserError(400, "Invalid object: business_profile")
        _unknown(business_profile, {"name", "url"})
        if default_currency is not None and (
            not isinstance(default_currency, str) or not _CURRENCY.match(default_currency.lower())
        ):
            raise UserError(400, "Invalid currency: default_currency")
        capabilities = capabilities or {}
        if not isinstance(capabilities, dict) or not all(
            isinstance(v, dict) for v in capabilities.values()
        ):
            raise UserError(400, "Invalid object: capabilities")
        if metadata is not None and not isinstance(metadata, dict):
            raise UserError(400, "Invalid object: metadata")

        # All exceptions must be raised before this point.
        super().__init__(id=id)
        del self.livemode  # an account has none at this API version
        country = country.upper()
        self.business_profile = _business_profile(
            business_profile.get("name"), business_profile.get("url")
        )
        self.business_type = business_type
        requested = {"transfers", *capabilities}
        self.capabilities = dict.fromkeys(sorted(requested), "active" if onboarded else "inactive")
        self.charges_enabled = onboarded
        self.controller = (
            {"is_controller": False, "type": "account"}
            if type == "standard"
            else {
                "fees": {"payer": "application_express" if type == "express" else "application"},
                "is_controller": True,
                "losses": {"payments": "application"},
                "requirement_collection": "stripe" if type == "express" else "application",
                "stripe_dashboard": {"type": "express" if type == "express" else "none"},
                "type": "application",
            }
        )
        self.country = country
        self.default_currency = (default_currency or "").lower() or _CURRENCY_BY_COUNTRY.get(
            country, "eur" if country in _EURO_COUNTRIES else "usd"
        )
        self.details_submitted = onboarded
        self.email = email
        self.future_requirements = _requirements()
        self.metadata = metadata or {}
        self.payouts_enabled = onboarded
        self.requirements = _requirements(onboarded)
        self.settings = _settings(business_profile.get("name"), country)
        self.tos_acceptance: dict[str, Any] = {"date": None, "ip": None, "user_agent": None}
        self.type = type

    def _devstripe_fixup(self, obj: dict[str, Any]) -> None:
        # The platform's bank accounts (payouts.py); connected accounts have none here.
        page = List(f"/v1/accounts/{self.id}/external_accounts")
        if self.id == ACCOUNT_ID:
            page._list = [v for k, v in store.items() if k.startswith("bank_account:")]
        obj["external_accounts"] = page._export()


def platform_account() -> Account:
    """The platform account (re-created after a data flush, as every key still belongs to it)."""
    found = store.get(f"{Account.object}:{ACCOUNT_ID}")
    if found is not None:
        return found
    account = Account(
        type="standard",
        country="US",
        email="devstripe@localhost",
        business_type="company",
        business_profile={"name": "Revenue Agent System (devstripe)"},
        default_currency="usd",
        capabilities={"card_payments": {"requested": True}},
        id=ACCOUNT_ID,
        onboarded=True,
    )
    account.settings["dashboard"]["display_name"] = "devstripe"
    return account


def _create_account(**data: Any) -> Account:
    _unknown(data, _CREATE_PARAMS)
    return Account(**data)


def _retrieve_account(id: str | None = None, **kwargs: Any) -> Account:
    _unknown(kwargs, set())
    if id is None or id == ACCOUNT_ID:
        return platform_account()
    found = store.get(f"{Account.object}:{id}")
    if found is None:
        raise UserError(404, f"No such account: '{id}'")
    return found


def _list_accounts(limit: Any = None, starting_after: Any = None, **kwargs: Any) -> List:
    """``GET /v1/accounts``: the connected accounts (not the platform), newest first."""
    _unknown(kwargs, set())
    li = List("/v1/accounts", limit=limit, starting_after=starting_after)
    li._list = _newest_first(
        v for k, v in store.items() if k.startswith("account:") and v.id != ACCOUNT_ID
    )
    return li


def _newest_first(objects: Any) -> list[Any]:
    # Within one second, the later one first.
    ranked = sorted(enumerate(objects), key=lambda p: (p[1].created, p[0]), reverse=True)
    return [obj for _, obj in ranked]


class Transfer(StripeObject):
    object = "transfer"
    _id_prefix = "tr_"

    def __init__(
        self,
        amount: Any = None,
        currency: Any = None,
        destination: Any = None,
        description: Any = None,
        metadata: Any = None,
        transfer_group: Any = None,
        source_transaction: Any = None,
        **kwargs: Any,
    ) -> None:
        _unknown(kwargs, set())
        amount = try_convert_to_int(amount)
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise UserError(400, "Invalid positive integer: amount")
        if not isinstance(currency, str) or not _CURRENCY.match(currency.lower()):
            raise UserError(400, "Invalid currency")
        if (
            not isinstance(destination, str)
            or destination == ACCOUNT_ID
            or store.get("account:" + destination) is None
        ):
            raise UserError(400, f"No such destination: '{destination}'")
        if store.get("account:" + destination).capabilities.get("transfers") != "active":
            raise stripe_error(
                400,
                "Your destination account needs to have at least one of the following "
                "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                code="insufficient_capabilities_for_transfer",
            )
        if description is not None and not isinstance(description, str):
            raise UserError(400, "Invalid string: description")
        if metadata is not None and not isinstance(metadata, dict):
            raise UserError(400, "Invalid object: metadata")
        if transfer_group is not None and not isinstance(transfer_group, str):
            raise UserError(400, "Invalid string: transfer_group")
        if source_transaction is not None:
            charge = (
                store.get("charge:" + source_transaction)
                if isinstance(source_transaction, str)
                else None
            )
            if charge is None:
                raise UserError(400, f"No such charge: '{source_transaction}'")
            if charge.currency != currency.lower():
                raise UserError(
                    400,
                    "The currency of source_transaction's balance transaction "
                    f"({charge.currency}) must be the same as the transfer currency "
                    f"({currency.lower()})",
                )
        super().__init__()
        self.amount = amount
        self.amount_reversed = 0
        self.currency = currency.lower()
        self.description = description
        self.destination = destination
        self.destination_payment = "py_" + random_id(24)
        self.metadata = metadata or {}
        self.reversed = False
        self.source_transaction = source_transaction
        self.source_type = "card"
        self.transfer_group = transfer_group
        self._reversals: list[TransferReversal] = []
        self.balance_transaction = balance.balance_transaction_add(
            source=self.id,
            amount=-amount,
            currency=self.currency,
            type="transfer",
            category="transfer",
            description=description,
        ).id
        emit("transfer.created", self)

    @property
    def reversals(self) -> dict[str, Any]:
        page = List(f"/v1/transfers/{self.id}/reversals")
        page._list = _newest_first(self._reversals)
        return page._export()

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> Transfer:
        raise UserError(405, "Updating transfers is not supported by devstripe")

    @classmethod
    def _api_delete(cls, id: str) -> Any:
        raise UserError(405, "Transfers cannot be deleted")

    @classmethod
    def _api_list_all(
        cls,
        url: str,
        destination: Any = None,
        transfer_group: Any = None,
        limit: Any = None,
        starting_after: Any = None,
        **kwargs: Any,
    ) -> List:
        _unknown(kwargs, set())
        li = super()._api_list_all(url, limit=limit, starting_after=starting_after)
        transfers = li._list
        if destination is not None:
            transfers = [t for t in transfers if t.destination == destination]
        if transfer_group is not None:
            transfers = [t for t in transfers if t.transfer_group == transfer_group]
        li._list = _newest_first(transfers)
        return li


class TransferReversal(StripeObject):
    object = "transfer_reversal"
    _id_prefix = "trr_"

    def __init__(self, transfer: Transfer, amount: int, metadata: dict[str, Any]) -> None:
        super().__init__()
        del self.livemode  # a reversal has none at this API version
        self.amount = amount
        self.currency = transfer.currency
        self.destination_payment_refund = "pyr_" + random_id(24)
        self.metadata = metadata
        self.source_refund = None
        self.transfer = transfer.id
        self.balance_transaction = balance.balance_transaction_add(
            source=self.id,
            amount=amount,
            currency=transfer.currency,
            type="transfer_refund",
            category="transfer_reversal",
            description=None,
        ).id


def _transfer(id: str) -> Transfer:
    found = store.get(f"{Transfer.object}:{id}")
    if found is None:
        raise UserError(404, f"No such transfer: '{id}'")
    return found


def _create_reversal(
    id: str, amount: Any = None, description: Any = None, metadata: Any = None, **kwargs: Any
) -> TransferReversal:
    _unknown(kwargs, set())
    transfer = _transfer(id)
    left = transfer.amount - transfer.amount_reversed
    amount = left if amount is None else try_convert_to_int(amount)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise UserError(400, "Invalid positive integer: amount")
    if amount > left:
        raise UserError(
            400, f"Transfer {id} has already been reversed for {transfer.amount_reversed}"
        )
    if description is not None and not isinstance(description, str):
        raise UserError(400, "Invalid string: description")
    if metadata is not None and not isinstance(metadata, dict):
        raise UserError(400, "Invalid object: metadata")
    reversal = TransferReversal(transfer, amount, metadata or {})
    previous = {"amount_reversed": transfer.amount_reversed, "reversed": transfer.reversed}
    transfer._reversals.append(reversal)
    transfer.amount_reversed += amount
    transfer.reversed = transfer.amount_reversed == transfer.amount
    emit("transfer.reversed", transfer, previous)
    return reversal


def _list_reversals(id: str, limit: Any = None, starting_after: Any = None, **kwargs: Any) -> List:
    _unknown(kwargs, set())
    transfer = _transfer(id)
    li = List(f"/v1/transfers/{id}/reversals", limit=limit, starting_after=starting_after)
    li._list = _newest_first(transfer._reversals)
    return li


# --- onboarding: account links and their completion ---------------------------------------


def _connected_account(id: Any, *, param: str = "id") -> Account:
    found = store.get(f"{Account.object}:{id}") if isinstance(id, str) else None
    if found is None or id == ACCOUNT_ID:
        raise resource_missing("account", str(id), param=param)
    return found


def account_onboard(
    account: Account,
    *,
    details_submitted: bool = True,
    charges_enabled: bool = True,
    payouts_enabled: bool = True,
) -> bool:
    """Set the account's onboarding state as Stripe would once its hosted onboarding ends (or
    a later review restricts it); emit ``account.updated`` when anything changed."""
    enabled = details_submitted and charges_enabled and payouts_enabled
    after = {
        "capabilities": dict.fromkeys(account.capabilities, "active" if enabled else "inactive"),
        "charges_enabled": charges_enabled,
        "details_submitted": details_submitted,
        "payouts_enabled": payouts_enabled,
        "requirements": _requirements(enabled),
    }
    previous = {k: getattr(account, k) for k, v in after.items() if getattr(account, k) != v}
    if not previous:
        return False
    for key, value in after.items():
        setattr(account, key, value)
    if details_submitted and account.tos_acceptance.get("date") is None:
        account.tos_acceptance = {"date": now(), "ip": "127.0.0.1", "user_agent": "devstripe"}
    event = Event("account.updated", account)
    event.data["previous_attributes"] = previous
    # Stripe sends a connected account's events to Connect endpoints naming the account.
    event.account = account.id
    webhooks.schedule(event)
    return True


class AccountLink(StripeObject):
    """``account_link``: ``created``, ``expires_at``, ``object``, ``url`` (no id, no livemode).

    Kept in the store under its token (the last part of its url) for the hosted page."""

    object = "account_link"
    _id_prefix = "al_"

    def __init__(
        self,
        account: str,
        type: str,
        refresh_url: str | None,
        return_url: str | None,
        base_url: str,
    ) -> None:
        super().__init__()
        self._token = self.id
        self._account = account
        self._type = type
        self._refresh_url = refresh_url
        self._return_url = return_url
        self._used = False
        del self.id, self.livemode
        self.created = now()
        self.expires_at = self.created + ACCOUNT_LINK_TTL_SECONDS
        self.url = f"{base_url}/_config/connect/onboarding/{self._token}"

    @property
    def _expired(self) -> bool:
        return int(time.time()) >= self.expires_at


def _check_url(value: Any, name: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise stripe_error(400, "Not a valid URL", code="url_invalid", param=name)
    return value


def account_link_create(
    *,
    base_url: str,
    account: Any = None,
    type: Any = None,
    refresh_url: Any = None,
    return_url: Any = None,
    collect: Any = None,
    collection_options: Any = None,
    **kwargs: Any,
) -> AccountLink:
    _unknown(kwargs, set())
    if account is None:
        raise stripe_error(
            400, "Missing required param: account.", code="parameter_missing", param="account"
        )
    if type not in _LINK_TYPES:
        raise stripe_error(
            400,
            "Invalid type: must be one of account_onboarding or account_update",
            code="parameter_invalid_string" if type is not None else "parameter_missing",
            param="type",
        )
    found = _connected_account(account, param="account")
    if type == "account_update" and found.type in ("express", "standard"):
        raise stripe_error(
            400,
            "You cannot create `account_update` type Account Links for accounts with access to "
            "a Stripe-hosted Dashboard.",
            param="type",
        )
    if collect is not None and collection_options is not None:
        raise stripe_error(
            400, "You cannot specify both `collect` and `collection_options`.", param="collect"
        )
    if collect is not None and collect not in _COLLECT:
        raise stripe_error(400, "Invalid collect", code="parameter_invalid_string", param="collect")
    if collection_options is not None:
        if not isinstance(collection_options, dict):
            raise stripe_error(400, "Invalid object", param="collection_options")
        _unknown(collection_options, {"fields", "future_requirements"})
        if collection_options.get("fields", "currently_due") not in _COLLECT:
            raise stripe_error(400, "Invalid fields", param="collection_options[fields]")
        if collection_options.get("future_requirements", "omit") not in ("include", "omit"):
            raise stripe_error(
                400, "Invalid future_requirements", param="collection_options[future_requirements]"
            )
    return AccountLink(
        account=found.id,
        type=type,
        refresh_url=_check_url(refresh_url, "refresh_url"),
        return_url=_check_url(return_url, "return_url"),
        base_url=base_url,
    )


async def create_account_link(request: web.Request) -> web.Response:
    """``POST /v1/account_links`` (the link's url is on this server, so the handler needs the
    request's host, which localstripe's ``api_extra`` does not pass)."""
    data = await ls_server.get_post_data(request) or {}
    if not isinstance(data, dict):
        data = {}
    expand = data.pop("expand", None)
    link = account_link_create(base_url=f"{request.scheme}://{request.host}", **data)
    return ls_server.json_response(link._export(expand=expand))


def _flag(value: Any, name: str) -> bool:
    if value in (None, "", "true", "1", "True"):
        return True
    if value in ("false", "0", "False"):
        return False
    raise UserError(400, f"{name}: true or false")


async def config_onboard(request: web.Request) -> web.Response:
    """``POST /_config/accounts/<id>/onboard``: complete (or undo) a connected account's
    onboarding, as the hosted page does; answers the account."""
    form = await request.post()
    account = _connected_account(request.match_info["id"])
    account_onboard(
        account,
        **{
            name: _flag(form.get(name), name)
            for name in ("details_submitted", "charges_enabled", "payouts_enabled")
        },
    )
    return ls_server.json_response(account._export())


def _link(token: str) -> AccountLink:
    link = store.get(f"{AccountLink.object}:{token}")
    if link is None:
        raise web.HTTPNotFound()
    return link


def _redirect_or_page(url: str | None, text: str) -> web.Response:
    if url:
        raise web.HTTPFound(url)
    return web.Response(
        text=f"<!doctype html><title>devstripe</title><p>{text}</p>", content_type="text/html"
    )


async def onboarding_page(request: web.Request) -> web.Response:
    """The fake's hosted onboarding: one button; an expired or used link goes to refresh_url."""
    link = _link(request.match_info["token"])
    if link._used or link._expired:
        return _redirect_or_page(link._refresh_url, "This link has expired.")
    account = html.escape(link._account)
    page = (
        "<!doctype html><title>devstripe Connect onboarding</title>"
        f"<h1>Onboarding {account}</h1>"
        "<p>devstripe stands in for Stripe's hosted onboarding: nothing is collected.</p>"
        f'<form method="post"><button type="submit">Complete onboarding</button></form>'
    )
    return web.Response(text=page, content_type="text/html")


async def onboarding_complete(request: web.Request) -> web.Response:
    link = _link(request.match_info["token"])
    if link._used or link._expired:
        return _redirect_or_page(link._refresh_url, "This link has expired.")
    link._used = True
    account_onboard(_connected_account(link._account))
    return _redirect_or_page(link._return_url, "Onboarding complete.")


# Routes of their own (server.build_app): the account link needs the request's host, the rest
# are the fake's control endpoints (outside /v1, no API key).
config_routes: list[tuple[str, str, Any]] = [
    ("POST", "/v1/account_links", create_account_link),
    ("POST", "/_config/accounts/{id}/onboard", config_onboard),
    ("GET", "/_config/connect/onboarding/{token}", onboarding_page),
    ("POST", "/_config/connect/onboarding/{token}", onboarding_complete),
]


# Served before the resources package's routes (server.build_app): the accounts are here.
extra_routes: list[tuple[str, str, Any]] = [
    ("GET", "/v1/account", _retrieve_account),
    ("POST", "/v1/accounts", _create_account),
    ("GET", "/v1/accounts", _list_accounts),
    ("GET", "/v1/accounts/{id}", _retrieve_account),
    ("POST", "/v1/transfers/{id}/reversals", _create_reversal),
    ("GET", "/v1/transfers/{id}/reversals", _list_reversals),
]
crud_classes: list[type[StripeObject]] = [Transfer]
