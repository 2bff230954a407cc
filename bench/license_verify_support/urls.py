"""The production URLs plus ``GET /bench/plain-json``: a constant JSON answer, no database."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from revenue_site.urls import urlpatterns as site_urlpatterns

BODY = {
    "status": "valid",
    "code": "VALID",
    "content": {"id": 1, "title": "Bench item"},
    "holder": "b***@example.com",
    "limits_remaining": {"downloads": 100},
    "expires_at": None,
}


def plain_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(BODY)


urlpatterns = [*site_urlpatterns, path("bench/plain-json", plain_json)]
