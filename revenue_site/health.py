"""GET /health: the contract of DESIGN.md §5, used by Docker, Render and CI."""

from __future__ import annotations

import hmac
import logging
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView

logger = logging.getLogger(__name__)


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_cache() -> str:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return the value it was given")
    cache.delete(key)
    return "ok"


def _check_broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "eager"
    from revenue_site.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


CHECKS = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception:  # any failure of a dependency is a reported state, not a 500
            logger.exception("health check %s failed", name)
            results[name] = "error"
    if results["database"] != "ok":
        status, code = "error", 503
    elif any(value == "error" for value in results.values()):
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    body = {
        "status": status,
        "service": settings.SERVICE_NAME,
        "timestamp": timezone.now().isoformat(),
        "checks": results,
    }
    return JsonResponse(body, status=code)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text; behind `Authorization: Bearer <METRICS_TOKEN>` when that is set."""
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            response = HttpResponse("metrics need a bearer token\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return ExportToDjangoView(request)


class HealthCheckMiddleware:
    """Answer /health before host validation.

    Container and platform probes call the app by IP or `localhost`, which production
    ALLOWED_HOSTS rightly does not list; the probe must still get the real answer.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if request.path == "/health" and request.method == "GET":
            return health(request)
        return self.get_response(request)
