"""The production URLs plus ``POST /bench/bare/``: parse the JSON body, insert one row."""

from datetime import UTC, datetime

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from revenue_site.urls import urlpatterns as site_urlpatterns
from subscriptions.models import WebhookEvent


@csrf_exempt
def bare_insert(request: HttpRequest) -> JsonResponse:
    import json

    data = json.loads(request.body)
    WebhookEvent.objects.create(
        stripe_event_id=data["id"],
        type=data["type"],
        stripe_created=datetime.fromtimestamp(data["created"], tz=UTC),
        object_id=data["data"]["object"].get("id", ""),
        payload=data,
    )
    return JsonResponse({"received": True})


urlpatterns = [path("bench/bare/", bare_insert), *site_urlpatterns]
