"""The production URLs plus ``GET /bench/plain-redirect/<code>``: a 302 without tracking."""

from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path

from revenue_site.urls import urlpatterns as site_urlpatterns


def plain_redirect(request: HttpRequest, code: str) -> HttpResponseRedirect:
    return HttpResponseRedirect("https://www.example.com/welcome")


# After the site's patterns, like /r/<code>: both resolve through the same list.
urlpatterns = [*site_urlpatterns, path("bench/plain-redirect/<str:code>", plain_redirect)]
