"""``POST /stripe/webhook/<uuid>/``: Stripe's deliveries, acknowledged once stored.

Routed before dj-stripe's own view (same path). It parses the request and calls
``subscriptions.services.inbox.webhook_event_receive``; processing happens in a Celery task,
queued once the row is stored (``tasks.webhook_event_process_on_commit``).
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from revenue_site.errors import error_body
from subscriptions.services import inbox
from subscriptions.tasks import webhook_event_process_on_commit


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


@method_decorator(csrf_exempt, name="dispatch")
class StripeWebhookView(View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, uuid: uuid.UUID) -> JsonResponse:
        try:
            event, inserted = inbox.webhook_event_receive(
                endpoint_uuid=uuid,
                payload=request.body,
                signature_header=request.headers.get("Stripe-Signature"),
                enqueue=webhook_event_process_on_commit,
            )
        except inbox.WebhookEndpointUnknownError:
            return _error(404, "not_found", "Unknown webhook endpoint.")
        except inbox.WebhookRejectedError as exc:
            return _error(400, "invalid_webhook", str(exc))
        return JsonResponse(
            {"received": True, "id": event.stripe_event_id, "duplicate": not inserted}
        )


stripe_webhook = StripeWebhookView.as_view()
