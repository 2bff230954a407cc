"""Public affiliate link: ``GET /r/<code>`` (DESIGN §5).

Parses the request and calls the tracking service; an unknown or disabled code, or a program
without a safe landing URL, is the plain 404 page.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.views.decorators.http import require_safe

from accounts.security import client_ip
from affiliates.services import tracking


@require_safe
def referral_redirect(request: HttpRequest, code: str) -> HttpResponse:
    target = tracking.redirect_target(code=code)
    if target is None:
        raise Http404("Unknown referral link.")
    now = timezone.now()
    click_uid = tracking.click_record(
        link=target.link,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        referrer=request.META.get("HTTP_REFERER", ""),
        at=now,
    )
    response = HttpResponseRedirect(target.location)
    response.set_cookie(
        settings.AFFILIATE_REFERRAL_COOKIE,
        tracking.referral_cookie_value(click_uid=click_uid, code=target.link.code, at=now),
        max_age=target.cookie_max_age,
        httponly=True,
        samesite="Lax",
        secure=not settings.DEBUG,
    )
    # Personal (a cookie per click): never stored by a shared cache, never replayed.
    response["Cache-Control"] = "private, no-store"
    return response
