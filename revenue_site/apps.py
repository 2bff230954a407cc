from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class StaffConsoleAdminConfig(admin_apps.AdminConfig):
    """Django's admin with our site class as ``admin.site`` (see ``revenue_site.admin_site``)."""

    default = False  # named explicitly in INSTALLED_APPS; RevenueSiteConfig is this module's
    default_site = "revenue_site.admin_site.StaffConsoleSite"

    def ready(self) -> None:
        super().ready()  # autodiscover: every app's admin module, dj-stripe's included
        from django.contrib import admin

        from revenue_site.admin import attach_audit_history
        from revenue_site.admin_site import StaffConsoleSite

        if isinstance(admin.site, StaffConsoleSite):
            admin.site.lock_stripe_mirror()
        attach_audit_history(admin.site)


class RevenueSiteConfig(AppConfig):
    """Project-wide pieces: management commands, templates."""

    name = "revenue_site"
    verbose_name = "Revenue Agent System"

    def ready(self) -> None:
        from django.conf import settings

        from revenue_site.stripe_setup import stripe_client_configure

        stripe_client_configure(
            timeout=settings.STRIPE_TIMEOUT_SECONDS,
            max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
        )
