"""Webhook delivery for the fake Stripe: in order, one at a time, signed as Stripe signs.

As in Stripe, an account endpoint gets the platform's own events and a Connect endpoint
(``connect``) the events of connected accounts (those whose ``account`` names one, such as
``account.updated`` when a connected account's onboarding changes), each only the types it
enabled (``None`` or ``*``: all).

localstripe fires each event from its own task after a one-second sleep, so events can
arrive out of order and the signature's ``t=`` is the event's creation time. Here one
worker drains a FIFO queue and signs with the time of sending:
``Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<payload>")>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import aiohttp

logger = logging.getLogger("devstripe")

# Gives the API response that triggered an event time to reach the client first.
DELIVERY_DELAY_SECONDS = 0.05


@dataclass
class Endpoint:
    url: str
    secret: str
    events: list[str] | None
    connect: bool = False


endpoints: dict[str, Endpoint] = {}
deliveries: deque[dict[str, Any]] = deque(maxlen=1000)
_queue: asyncio.Queue[Any] | None = None
_worker: asyncio.Task[None] | None = None
# Bumped by a flush, so an event the worker already holds is dropped too.
_generation = 0


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def register(
    endpoint_id: str, url: str, secret: str, events: list[str] | None, *, connect: bool = False
) -> None:
    endpoints[endpoint_id] = Endpoint(url=url, secret=secret, events=events, connect=connect)


def unregister(endpoint_id: str) -> bool:
    return endpoints.pop(endpoint_id, None) is not None


def schedule(event: Any) -> None:
    """Queue an event for delivery (replaces localstripe's ``schedule_webhook``)."""
    global _queue, _worker
    if _queue is None:
        _queue = asyncio.Queue()
    if _worker is None or _worker.done():
        _worker = asyncio.ensure_future(_deliver_forever())
    _queue.put_nowait((_generation, event))


def drop_pending() -> None:
    """Forget queued events and the delivery log (the store was flushed)."""
    global _generation
    _generation += 1
    if _queue is not None:
        while not _queue.empty():
            _queue.get_nowait()
    deliveries.clear()


async def _deliver_forever() -> None:
    if _queue is None:
        return
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        while True:
            generation, event = await _queue.get()
            await asyncio.sleep(DELIVERY_DELAY_SECONDS)
            if generation != _generation:
                continue
            try:
                await _deliver(session, event)
            except Exception:  # a bad endpoint must not stop deliveries to the others
                logger.exception("webhook delivery of %s failed", event.id)


async def _deliver(session: aiohttp.ClientSession, event: Any) -> None:
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode()
    from_connected_account = bool(getattr(event, "account", None))
    for endpoint_id, endpoint in list(endpoints.items()):
        if endpoint.connect != from_connected_account:
            continue
        if endpoint.events is not None and not (
            "*" in endpoint.events or event.type in endpoint.events
        ):
            continue
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature_header(payload, endpoint.secret, int(time.time())),
        }
        record = {"event": event.id, "type": event.type, "endpoint": endpoint_id}
        try:
            async with session.post(endpoint.url, data=payload, headers=headers) as response:
                record["status"] = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            record["status"] = None
            record["error"] = str(exc)
        deliveries.append(record)
        logger.info("webhook %s %s -> %s: %s", event.type, event.id, endpoint.url, record["status"])
