"""The aiohttp application: localstripe's handlers and middlewares plus our routes."""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

from aiohttp import web
from localstripe import resources as ls
from localstripe import server as ls_server
from localstripe.errors import UserError

from . import (  # noqa: F401
    balance,
    connect,
    disputes,
    errors,
    faults,
    idempotency,
    install,
    payouts,
    resources,
    tax,
    test_clocks,
    webhooks,
)

logger = logging.getLogger("devstripe")


def _current(func: Any) -> Any:
    """localstripe captured bound classmethods at import; serve the patched attribute."""
    owner = getattr(func, "__self__", None)
    if inspect.isclass(owner):
        return getattr(owner, func.__name__)
    return func


async def config_webhook(request: web.Request) -> web.Response:
    """``POST /_config/webhooks/<id>`` with ``url``, ``secret``, optional ``events[]`` and
    ``connect`` (``true``: a Connect endpoint, for connected accounts' events)."""
    data = await ls_server.get_post_data(request) or {}
    url, secret, events = data.get("url"), data.get("secret"), data.get("events")
    connect = data.get("connect", "false")
    if not isinstance(url, str) or not url.startswith("http") or not secret:
        raise UserError(400, "Bad request")
    if events is not None and not isinstance(events, list):
        raise UserError(400, "Bad request")
    if connect not in ("true", "false"):
        raise UserError(400, "connect: true or false")
    webhooks.register(request.match_info["id"], url, secret, events, connect=connect == "true")
    return web.Response()


async def delete_webhook(request: web.Request) -> web.Response:
    if not webhooks.unregister(request.match_info["id"]):
        raise UserError(404, "Not Found")
    return web.Response()


async def delete_all_webhooks(request: web.Request) -> web.Response:
    """``DELETE /_config/webhooks``: forget every endpoint (test isolation)."""
    webhooks.endpoints.clear()
    return web.Response()


async def list_deliveries(request: web.Request) -> web.Response:
    """``GET /_config/deliveries``: the webhook deliveries attempted so far, oldest first."""
    return ls_server.json_response({"data": list(webhooks.deliveries)})


async def flush_store(request: web.Request) -> web.Response:
    """``DELETE /_config/data``: forget every object, queued event and delivery record."""
    ls.store.clear()
    webhooks.drop_pending()
    idempotency.forget_all()
    faults.faults.clear()
    ls.store.dump_to_disk()
    return web.Response()


async def health(request: web.Request) -> web.Response:
    return ls_server.json_response({"status": "ok", "service": "devstripe"})


@web.middleware
async def json_not_found(request: web.Request, handler: Any) -> web.StreamResponse:
    """Stripe answers unknown URLs with a JSON error, which the stripe client can parse."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        raise UserError(
            404, f"Unrecognized request URL ({request.method}: {request.path})"
        ) from None


def _idempotency_error(status: int, message: str) -> web.Response:
    body = {"error": {"type": "idempotency_error", "message": message}}
    return ls_server.json_response(body, status=status)


@web.middleware
async def idempotent_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    """Run a ``POST /v1/...`` with an ``Idempotency-Key`` once; replay its result after.

    See ``idempotency.py``. Sits inside the auth middleware, so the key is scoped to an
    authenticated API key.
    """
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key or not request.path.startswith("/v1/"):
        return await handler(request)
    api_key = ls_server.get_api_key(request) or ""
    scope_key = (api_key + "|" + request.headers.get("Stripe-Account", ""), key)
    body = await request.read()
    fingerprint = idempotency.fingerprint(
        request.method, request.path, request.query_string, body, request.content_type
    )
    if scope_key in idempotency.in_flight:
        return _idempotency_error(
            409,
            "There is currently another in-progress request using this Idempotency-Key "
            "(that probably means you submitted twice, and the other request is still "
            "going through): " + key + ". Please try again later.",
        )
    saved = idempotency.lookup(scope_key)
    if saved is not None:
        if saved.fingerprint != fingerprint:
            return _idempotency_error(
                400,
                "Keys for idempotent requests can only be used with the same parameters "
                "they were first used with. Try using a key other than '" + key + "' if "
                "you meant to execute a different request.",
            )
        return web.Response(
            body=saved.body,
            status=saved.status,
            content_type=saved.content_type,
            headers={"Idempotency-Key": key, "Idempotent-Replayed": "true"},
        )

    idempotency.in_flight.add(scope_key)
    try:
        try:
            response = await handler(request)
        except UserError as exc:
            response = exc.to_response()
        except web.HTTPException:
            raise  # routing (404/405): nothing ran, nothing to keep
        except Exception:
            # Stripe keeps (and replays) its 500s too: a retry must not run it again.
            logger.exception("%s %s failed", request.method, request.path)
            response = ls_server.json_response(
                {"error": {"type": "api_error", "message": "An unknown error occurred"}},
                status=500,
            )
        if isinstance(response, web.Response) and isinstance(response.body, bytes):
            idempotency.save(
                scope_key,
                idempotency.SavedResponse(
                    fingerprint=fingerprint,
                    status=response.status,
                    body=response.body,
                    content_type=response.content_type,
                    saved_at=time.time(),
                ),
            )
            ls.store.dump_to_disk()
        response.headers["Idempotency-Key"] = key
        return response
    finally:
        idempotency.in_flight.discard(scope_key)


def build_app() -> web.Application:
    install()
    errors.warm_up()
    app = web.Application(
        middlewares=[
            ls_server.error_middleware,
            json_not_found,
            ls_server.auth_middleware,
            idempotent_requests,
            faults.injected_faults,
            errors.stripe_errors,
        ]
    )
    app.on_response_prepare.append(ls_server.add_cors_headers)
    router = app.router

    router.add_get("/_config/health", health)
    router.add_post("/_config/webhooks/{id}", config_webhook)
    router.add_delete("/_config/webhooks/{id}", delete_webhook)
    router.add_delete("/_config/webhooks", delete_all_webhooks)
    router.add_get("/_config/deliveries", list_deliveries)
    router.add_delete("/_config/data", flush_store)
    router.add_post("/_config/faults", faults.config_faults)
    router.add_delete("/_config/faults", faults.clear_faults)
    router.add_get("/js.stripe.com/v3/", ls_server.localstripe_js)
    for method, url, handler in connect.config_routes:
        router.add_route(method, url, handler)

    # Specific routes first: `/v1/invoices/{id}/pay` must win over localstripe's; the
    # accounts are Connect's (``connect.py``).
    extra = [*connect.extra_routes, *resources.extra_routes, *test_clocks.extra_routes]
    for method, url, func in extra:
        router.add_route(method, url, ls_server.api_extra(func, url))
    for method, url, func in ls.extra_apis:
        router.add_route(method, url, ls_server.api_extra(_current(func), url))

    crud = (
        ls.BalanceTransaction, ls.Charge, ls.Coupon, ls.Customer, ls.Event, ls.Invoice,
        ls.InvoiceItem, ls.PaymentIntent, ls.PaymentMethod, ls.Payout, ls.Plan, ls.Product,
        ls.Refund, ls.SetupIntent, ls.Source, ls.Subscription, ls.SubscriptionItem,
        ls.TaxRate, ls.Token, *resources.crud_classes, *connect.crud_classes,
    )  # fmt: skip
    for cls in crud:
        base = "/v1/" + cls.object + "s"
        router.add_post(base, ls_server.api_create(cls, base))
        router.add_get(base + "/{id}", ls_server.api_retrieve(cls, base))
        router.add_post(base + "/{id}", ls_server.api_update(cls, base))
        router.add_delete(base + "/{id}", ls_server.api_delete(cls, base))
        router.add_get(base, ls_server.api_list_all(cls, base))
    for cls in disputes.read_only_classes:
        base = "/v1/" + cls.object + "s"
        router.add_get(base + "/{id}", ls_server.api_retrieve(cls, base))
        router.add_get(base, ls_server.api_list_all(cls, base))
    return app
