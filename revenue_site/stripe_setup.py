"""This site's Stripe account: the API key our calls use, and dj-stripe's own rows for it.

Every service that calls Stripe passes :func:`stripe_api_key` (dj-stripe's default key for the
object's mode). The rest sets up dj-stripe's rows: API key, account, webhook.

dj-stripe 2.11 reads the secret key from its ``APIKey`` rows and each webhook's signing
secret from its ``WebhookEndpoint`` row; the webhook route is
``/stripe/webhook/<WebhookEndpoint.djstripe_uuid>/``. ``manage.py stripe_bootstrap`` calls
:func:`stripe_webhook_endpoint_ensure` for the platform's endpoint and
:func:`stripe_connect_webhook_endpoint_ensure` for the Connect endpoint: Stripe sends a
connected account's events (a provider's or creator's ``account.updated``, their payouts) only
to an endpoint created with ``connect=true``.
"""

from __future__ import annotations

import json
import secrets
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, cast

import stripe
from django.conf import settings
from django.db import transaction
from djstripe.models import APIKey, WebhookEndpoint
from djstripe.models.api import get_api_key_details_by_prefix
from djstripe.settings import djstripe_settings

ALL_EVENTS = ["*"]
# The connected accounts' events we act on: their onboarding state (ledger.receivers), and
# their payouts, which the platform's payout receivers recognise as not ours by the event's
# ``account``. Transfers are the platform's own events, on the platform endpoint.
CONNECT_EVENTS = ["account.updated", "payout.failed", "payout.paid"]
# Namespace of the webhook endpoint uuids derived from the site's webhook base URL.
_ENDPOINT_NAMESPACE = uuid.UUID("5d1c3f0e-8b7a-4e38-9d0b-6f1e2a7c9b41")


class StripeSetupError(Exception):
    """Stripe or the fake refused a setup call; the message says which and why."""


@dataclass(frozen=True)
class WebhookSetup:
    endpoint: WebhookEndpoint
    webhook_url: str
    secret: str
    created: bool


def stripe_client_configure(*, timeout: float, max_network_retries: int) -> None:
    """How every ``stripe`` call of this process waits and retries (``STRIPE_TIMEOUT_SECONDS``,
    ``STRIPE_MAX_NETWORK_RETRIES``; called from ``RevenueSiteConfig.ready``).

    stripe-python retries a connection error, a timeout, a 409 and a 5xx itself, with
    exponential backoff and the same ``Idempotency-Key`` on each attempt (ours, or the one it
    generates for a POST without one), so a write whose answer was lost is replayed by Stripe,
    not made twice. What still fails after the retries leaves as ``StripeUnavailable``
    (``revenue_site.stripe_errors``): a 503 for a request, a later attempt for a task.
    """
    stripe.max_network_retries = max_network_retries
    stripe.default_http_client = stripe.new_default_http_client(
        timeout=timeout, verify_ssl_certs=stripe.verify_ssl_certs, proxy=stripe.proxy
    )


def stripe_api_key(livemode: bool | None = None) -> str:
    """The secret key to call Stripe with: dj-stripe's default key for ``livemode``.

    None (mode unknown, or our own calls) is ``STRIPE_SECRET_KEY``; a live or test object's
    mode picks that mode's key when one is configured (dj-stripe's ``get_default_api_key``).
    """
    return str(djstripe_settings.get_default_api_key(livemode))


def stripe_api_key_sync(*, secret_key: str) -> APIKey:
    """Create (or find) dj-stripe's ``APIKey`` for ``secret_key`` and link its ``Account``.

    The account comes from ``GET /v1/account`` (Stripe, or the fake). Raises
    ``djstripe.exceptions.InvalidStripeAPIKey`` for a malformed key and
    ``stripe.StripeError`` when Stripe refuses the key.
    """
    key_type, livemode = get_api_key_details_by_prefix(secret_key)
    with transaction.atomic():
        api_key, _ = APIKey.objects.get_or_create(
            secret=secret_key,
            defaults={"type": key_type, "livemode": livemode, "name": "stripe_bootstrap"},
        )
        if api_key.djstripe_owner_account_id is None:
            api_key.refresh_account()
            api_key.refresh_from_db()
    return api_key


def _webhook_base(base_url: str) -> str:
    """``http://h/stripe/webhook/`` from either the site URL or the webhook base URL."""
    parts = urllib.parse.urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StripeSetupError(f"not an http(s) URL: {base_url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/stripe/webhook"):
        path += "/stripe/webhook"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path + "/", "", ""))


def _register_with_fake(api_host: str, endpoint: WebhookEndpoint, *, connect: bool) -> None:
    form = [("url", endpoint.url), ("secret", endpoint.secret)]
    form += [("connect", "true" if connect else "false")]
    form += [("events[]", event) for event in endpoint.enabled_events if event != "*"]
    body = urllib.parse.urlencode(form).encode()
    url = f"{api_host.rstrip('/')}/_config/webhooks/{endpoint.id}"
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - the configured fake
            pass
    except OSError as exc:
        raise StripeSetupError(f"could not register the webhook with {api_host}: {exc}") from exc


def stripe_webhook_endpoint_ensure(
    *, base_url: str, secret_key: str | None = None, api_host: str | None = None
) -> WebhookSetup:
    """Make sure one webhook endpoint for ``base_url`` exists here and at Stripe (or the fake).

    ``base_url`` is the site URL (``http://127.0.0.1:8000``) or its webhook base
    (``http://127.0.0.1:8000/stripe/webhook/``); the endpoint URL is that base plus the
    row's ``djstripe_uuid``. Idempotent: the uuid is derived from the base URL and mode, so
    a second run finds the same row and changes nothing (against the fake it re-registers
    the endpoint, since the fake forgets endpoints when it restarts).

    With ``api_host`` (default ``settings.STRIPE_API_HOST``, i.e. a fake Stripe; pass
    ``""`` to use the Stripe API path whatever the settings say) the
    signing secret is generated here and the endpoint registered through
    ``POST /_config/webhooks/<id>``. Against Stripe the endpoint is created with
    ``stripe.WebhookEndpoint.create`` (idempotency key derived from the uuid) and the
    secret Stripe returns is stored. Raises :class:`StripeSetupError` or ``stripe.StripeError``.
    """
    return _endpoint_ensure(
        base_url=base_url, secret_key=secret_key, api_host=api_host, connect=False
    )


def stripe_connect_webhook_endpoint_ensure(
    *, base_url: str, secret_key: str | None = None, api_host: str | None = None
) -> WebhookSetup:
    """The same for the Connect endpoint (``connect=true``, ``CONNECT_EVENTS``): its own
    dj-stripe row, uuid and signing secret at the same webhook base, idempotently."""
    return _endpoint_ensure(
        base_url=base_url, secret_key=secret_key, api_host=api_host, connect=True
    )


def _endpoint_ensure(
    *, base_url: str, secret_key: str | None, api_host: str | None, connect: bool
) -> WebhookSetup:
    secret_key = secret_key or settings.STRIPE_SECRET_KEY
    if api_host is None:
        api_host = getattr(settings, "STRIPE_API_HOST", None) or None
    api_key = stripe_api_key_sync(secret_key=secret_key)
    account = api_key.djstripe_owner_account
    base = _webhook_base(base_url)
    name = f"{base}|livemode={api_key.livemode}" + ("|connect" if connect else "")
    endpoint_uuid = uuid.uuid5(_ENDPOINT_NAMESPACE, name)
    webhook_url = f"{base}{endpoint_uuid}/"
    events = CONNECT_EVENTS if connect else ALL_EVENTS

    endpoint = WebhookEndpoint.objects.filter(djstripe_uuid=endpoint_uuid).first()
    created = endpoint is None
    if api_host:
        if endpoint is None:
            endpoint = WebhookEndpoint.objects.create(
                id="we_dev_" + endpoint_uuid.hex[:24],
                djstripe_uuid=endpoint_uuid,
                djstripe_owner_account=account,
                livemode=api_key.livemode,
                url=webhook_url,
                secret="whsec_" + secrets.token_urlsafe(32),
                enabled_events=events,
                status="enabled",
                api_version=djstripe_settings.STRIPE_API_VERSION,
                stripe_data={"connect": connect} if connect else {},
            )
        _register_with_fake(api_host, endpoint, connect=connect)
    elif endpoint is None:
        data = stripe.WebhookEndpoint.create(
            url=webhook_url,
            enabled_events=cast("list[Any]", events),
            connect=connect,
            api_version=djstripe_settings.STRIPE_API_VERSION,
            metadata={"djstripe_uuid": str(endpoint_uuid)},
            description="Revenue Agent System (stripe_bootstrap)"
            + (": connected accounts" if connect else ""),
            api_key=secret_key,
            idempotency_key=f"stripe-bootstrap-webhook-{endpoint_uuid}",
        )
        if not getattr(data, "secret", None):
            raise StripeSetupError("Stripe returned no signing secret for the new endpoint")
        endpoint = WebhookEndpoint.sync_from_stripe_data(data, api_key=secret_key)
        if endpoint.secret != data.secret:  # sync keeps a secret only from a create
            endpoint.secret = data.secret
            endpoint.save(update_fields=["secret"])
    return WebhookSetup(
        endpoint=endpoint, webhook_url=endpoint.url, secret=endpoint.secret, created=created
    )


def webhook_setup_json(setup: WebhookSetup, connect: WebhookSetup | None = None) -> str:
    """The command's one JSON line: the platform endpoint's URL and secret, and the Connect
    endpoint's (``connect_webhook_url``, ``connect_secret``) when given."""
    data = {"webhook_url": setup.webhook_url, "secret": setup.secret}
    if connect is not None:
        data |= {"connect_webhook_url": connect.webhook_url, "connect_secret": connect.secret}
    return json.dumps(data)
