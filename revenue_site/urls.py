from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from affiliates.portal.staff_views import program_performance
from content.api_licensing import LicenseVerifyView, license_verify_view
from revenue_site.health import health, metrics
from revenue_site.schema import documented_by
from subscriptions.webhooks import stripe_webhook

urlpatterns = [
    path("health", health, name="health"),
    path("", include("affiliates.urls")),  # /r/<code>: the hot path, resolved early
    # Called on every use of every licence: resolved before the API's includes.
    path(
        "api/v1/content/licenses/verify",
        documented_by(LicenseVerifyView, license_verify_view),
        name="content-license-verify",
    ),
    path("metrics", metrics, name="prometheus-django-metrics"),
    path(
        "admin/affiliates/performance/",
        program_performance,
        name="affiliates-program-performance",
    ),
    path("admin/", admin.site.urls),
    # Our webhook inbox answers the public path before dj-stripe's synchronous view.
    path("stripe/webhook/<uuid:uuid>/", stripe_webhook, name="stripe-webhook"),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file of its own: no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("accounts.urls")),
    path("api/v1/", include("subscriptions.urls")),
    path("api/v1/affiliate/", include("affiliates.api_urls")),
    path("api/v1/", include("marketplace.urls")),
    path("api/v1/", include("content.urls")),
    path("api/v1/", include("analytics.urls")),
    path("portal/", include("affiliates.portal.urls")),
]

handler400 = "revenue_site.errors.bad_request"
handler403 = "revenue_site.errors.permission_denied"
handler404 = "revenue_site.errors.page_not_found"
handler500 = "revenue_site.errors.server_error"
