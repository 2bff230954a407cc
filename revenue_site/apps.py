from django.apps import AppConfig


class RevenueSiteConfig(AppConfig):
    """Project-wide pieces: management commands, admin branding, templates."""

    name = "revenue_site"
    verbose_name = "Revenue Agent System"

    def ready(self) -> None:
        from django.contrib import admin

        admin.site.site_header = "Revenue Agent System"
        admin.site.site_title = "Revenue Agent System staff console"
        admin.site.index_title = "Staff console"
