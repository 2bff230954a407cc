"""Admin building blocks shared by every app's staff console."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

# Below this many rows an exact count is cheap and the estimate may be stale.
_ESTIMATE_ABOVE = 100_000


class EstimatedCountPaginator(Paginator):
    """Exact count when filtered or small; PostgreSQL's reltuples estimate for a huge table."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.where:
            connection = connections[queryset.db]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                        [queryset.model._meta.db_table],
                    )
                    row = cursor.fetchone()
                if row and row[0] > _ESTIMATE_ABOVE:
                    return int(row[0])
        return super().count


class ReadOnlyAdminMixin:
    """Viewable with the view permission; add, change and delete are refused to everyone.

    For append-only records (ledger) and mirrors of another system (Stripe): corrections go
    through services, never through edits.
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    pass


def register_read_only(site: admin.AdminSite, model: type[Model]) -> None:
    """Make the admin another package registered for `model` read-only: re-registered as a
    subclass of its own class behind ReadOnlyAdminMixin, so it keeps its columns, filters and
    search (dj-stripe's mirror admins, see ``admin_site``)."""
    model_admin = site.get_model_admin(model)
    if isinstance(model_admin, ReadOnlyAdminMixin):
        return
    admin_class = type(model_admin)
    read_only = type(
        f"ReadOnly{admin_class.__name__}",
        (ReadOnlyAdminMixin, admin_class),
        {"__module__": __name__, "__doc__": admin_class.__doc__},
    )
    site.unregister(model)
    site.register(model, read_only)


def audited_models() -> list[type[Model]]:
    """The models of ``settings.AUDITLOG_INCLUDE_TRACKING_MODELS`` (names or dicts)."""
    models = []
    for spec in getattr(settings, "AUDITLOG_INCLUDE_TRACKING_MODELS", ()):
        label = spec["model"] if isinstance(spec, dict) else spec
        models.append(apps.get_model(label))
    return models


def attach_audit_history(site: admin.AdminSite) -> None:
    """Give each audited model's admin django-auditlog's history page ("Audit log" on the
    change form: who changed what, when, before -> after): re-registered as a subclass of its
    own class behind AuditlogHistoryAdminMixin, as ``register_read_only`` does."""
    from auditlog.mixins import AuditlogHistoryAdminMixin

    for model in audited_models():
        if not site.is_registered(model):
            continue
        model_admin = site.get_model_admin(model)
        if isinstance(model_admin, AuditlogHistoryAdminMixin):
            continue
        admin_class = type(model_admin)
        audited = type(
            f"Audited{admin_class.__name__}",
            (AuditlogHistoryAdminMixin, admin_class),
            {"__module__": __name__, "__doc__": admin_class.__doc__},
        )
        site.unregister(model)
        site.register(model, audited)
