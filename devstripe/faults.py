"""Injected failures, for tests of what our code does when Stripe fails half way.

``POST /_config/faults`` with ``method``, ``path`` (a request path, or a prefix ending in
``*``), optional ``status`` (default 500), ``count`` (how many matching requests fail, default
1) and ``when``:

- ``before``: the request is not run; Stripe answers ``status`` (an outage, a 500 before any
  write);
- ``after``: the request is run (objects created, events queued) and the answer is replaced
  by ``status``, as when Stripe fails, or the connection drops, after committing a write.

The fault sits inside the idempotency layer, so like Stripe's own 500s the failed answer is
saved under the request's ``Idempotency-Key`` and replayed to a retry with the same key.
``DELETE /_config/faults`` (and ``DELETE /_config/data``) forgets the faults that are left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from localstripe import server as ls_server


@dataclass
class Fault:
    method: str
    path: str
    status: int
    remaining: int
    when: str

    def matches(self, request: web.Request) -> bool:
        if self.remaining <= 0 or request.method != self.method:
            return False
        if self.path.endswith("*"):
            return request.path.startswith(self.path[:-1])
        return request.path == self.path


faults: list[Fault] = []


def _answer(status: int) -> web.Response:
    kind = "api_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"type": kind, "message": "An unknown error occurred (injected fault)"}}
    return ls_server.json_response(body, status=status)


@web.middleware
async def injected_faults(request: web.Request, handler: Any) -> web.StreamResponse:
    fault = next((f for f in faults if f.matches(request)), None)
    if fault is None:
        return await handler(request)
    fault.remaining -= 1
    if fault.when == "after":
        await handler(request)
    return _answer(fault.status)


async def config_faults(request: web.Request) -> web.Response:
    form = await request.post()
    when = str(form.get("when", "before"))
    if when not in ("before", "after") or not form.get("method") or not form.get("path"):
        return ls_server.json_response({"error": "method, path and when=before|after"}, 400)
    faults.append(
        Fault(
            method=str(form["method"]).upper(),
            path=str(form["path"]),
            status=int(str(form.get("status", 500))),
            remaining=int(str(form.get("count", 1))),
            when=when,
        )
    )
    return web.Response()


async def clear_faults(request: web.Request) -> web.Response:
    faults.clear()
    return web.Response()
