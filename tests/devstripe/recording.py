"""What the fake Stripe sends, as the real ``stripe`` client receives it (for conformance)."""

from __future__ import annotations

import json
from typing import Any

import stripe


class RecordingClient(stripe.RequestsClient):
    """The stripe client's own HTTP client, keeping every JSON body it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[tuple[str, str, int, Any]] = []

    def request(self, method: str, url: str, headers: Any, post_data: Any = None) -> Any:
        content, status, response_headers = super().request(method, url, headers, post_data)
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        self.bodies.append((method.upper(), url, status, body))
        return content, status, response_headers


def all_events() -> list[dict[str, Any]]:
    """Every event the fake holds, as raw JSON, in the order it lists them (all pages)."""
    events: list[dict[str, Any]] = []
    page = stripe.Event.list(limit=100)
    while True:
        events.extend(page.last_response.data["data"])
        if not page.has_more:
            return events
        page = stripe.Event.list(limit=100, starting_after=events[-1]["id"])
