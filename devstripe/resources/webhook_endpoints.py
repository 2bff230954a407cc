"""``/v1/webhook_endpoints``: Stripe's API for them; deliveries as ``/_config/webhooks``."""

from __future__ import annotations

from typing import Any

from localstripe import resources as ls
from localstripe.errors import UserError
from localstripe.resources import (
    StripeObject,
)

from .. import webhooks
from .base import _require


class WebhookEndpoint(StripeObject):
    """``/v1/webhook_endpoints``: the secret is returned on create only, as in Stripe. With
    ``connect`` true it is a Connect endpoint: it gets connected accounts' events instead of
    the platform's (Stripe's object does not show which it is)."""

    object = "webhook_endpoint"
    _id_prefix = "we_"

    def __init__(
        self,
        url: str | None = None,
        enabled_events: list[str] | None = None,
        api_version: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        connect: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        connect = ls.try_convert_to_bool(connect) if connect is not None else False
        if not isinstance(connect, bool):
            raise UserError(400, "Invalid boolean: connect")
        try:
            _require(isinstance(url, str) and url.startswith(("http://", "https://")))
            _require(isinstance(enabled_events, list) and enabled_events)
            _require(metadata is None or isinstance(metadata, dict))
        except AssertionError:
            raise UserError(400, "Bad request") from None
        super().__init__()
        self.url = url
        self.enabled_events = enabled_events
        self.api_version = api_version
        self.description = description
        self.metadata = metadata or {}
        self.status = "enabled"
        self.application = None
        self._secret = "whsec_" + ls.random_id(32)
        self._connect = connect
        webhooks.register(self.id, str(url), self._secret, enabled_events, connect=connect)

    @classmethod
    def _api_create(cls, **data: Any) -> WebhookEndpoint:
        obj = cls(**data)
        obj._reveal_secret = True
        return obj

    def _devstripe_fixup(self, obj: dict[str, Any]) -> None:
        if getattr(self, "_reveal_secret", False):
            obj["secret"] = self._secret
            self._reveal_secret = False

    @classmethod
    def _api_delete(cls, id: str) -> Any:
        webhooks.unregister(id)
        return super()._api_delete(id)
