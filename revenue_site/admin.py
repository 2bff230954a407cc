"""Admin building blocks shared by every app's staff console."""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

# Below this many rows an exact count is cheap and the estimate may be stale.
_ESTIMATE_ABOVE = 100_000
# A filtered changelist counts at most this many rows exactly (a COUNT over a LIMIT subquery);
# past it, the planner's estimate of the filtered query.
_EXACT_UP_TO = 10_000


def table_row_estimate(connection: Any, table: str) -> int:
    """PostgreSQL's estimate of a table's rows (``pg_class.reltuples``, kept by ANALYZE and
    autovacuum): for a partitioned table the sum over its partitions. -1 when unknown."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN c.relkind = 'p' THEN (SELECT sum(p.reltuples) FROM pg_inherits i"
            " JOIN pg_class p ON p.oid = i.inhrelid WHERE i.inhparent = c.oid"
            " AND p.reltuples >= 0) ELSE c.reltuples END FROM pg_class c"
            " WHERE c.oid = %s::regclass",
            [table],
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else -1


def query_row_estimate(queryset: QuerySet[Any]) -> int:
    """The PostgreSQL planner's estimate of the rows `queryset` returns (EXPLAIN, not run)."""
    connection = connections[queryset.db]
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """A changelist paginator that never counts a huge table's rows (admins of big tables set it
    with ``show_full_result_count = False``, so Django does not count them either).

    On PostgreSQL: unfiltered, the table's row estimate (``pg_class.reltuples``; a partitioned
    table's partitions summed) when it is over 100,000 rows, else an exact count; filtered (a
    list filter, a search, or a selector's own WHERE), an exact count of at most 10,000 rows
    (``COUNT(*)`` over a ``LIMIT`` subquery), past which the planner's estimate of the filtered
    query. Elsewhere (SQLite), the exact count. The page links are only as exact as the count:
    the last pages of a huge table may be a few rows off, which the admin tolerates (an empty
    last page renders as such)."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return super().count
        if not queryset.query.where:
            estimate = table_row_estimate(connection, queryset.model._meta.db_table)
            if estimate > _ESTIMATE_ABOVE:
                return estimate
            return super().count
        bounded = queryset.order_by()[: _EXACT_UP_TO + 1].count()
        if bounded <= _EXACT_UP_TO:
            return bounded
        return max(bounded, query_row_estimate(queryset))


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


class LargeMirrorAdminMixin:
    """For another package's admin of a table that may hold millions of rows (dj-stripe's
    mirror): the changelist never counts the table (EstimatedCountPaginator, no full count),
    joins the rows its columns print (`list_select_related`, computed by `register_read_only`),
    and searches Stripe ids by case-sensitive equality (``id__exact``: the unique index), not
    ``UPPER(id) LIKE '%…%'`` (nor ``=id``'s ``UPPER(id) = UPPER(…)``), which read every row."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # dj-stripe's get_queryset already calls select_related(), after which Django's
        # changelist ignores list_select_related: so it is applied here.
        queryset: QuerySet[Any] = super().get_queryset(request)  # type: ignore[misc]
        related = getattr(self, "list_select_related", ())
        if isinstance(related, (list, tuple)) and related:
            queryset = queryset.select_related(*related)
        return queryset

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        fields = super().get_search_fields(request)  # type: ignore[misc]
        exact = ["id__exact" if name in ("id", "=id") else name for name in fields]
        return list(dict.fromkeys(exact))


def _list_select_related(model: type[Model], admin_class: type[Any]) -> tuple[str, ...]:
    """The forward foreign keys among the admin's columns (dj-stripe's admins add
    ``djstripe_owner_account``), and for a related model with a ``subscriber`` (dj-stripe's
    Customer, whose ``__str__`` prints it) that one too: one query for the page, not one per row
    and column."""
    names = ["djstripe_owner_account", *getattr(admin_class, "list_display", ())]
    related: list[str] = []
    for name in names:
        if not isinstance(name, str):
            continue
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if not (field.many_to_one or field.one_to_one) or field.auto_created:
            continue
        related.append(name)
        target = field.related_model
        if isinstance(target, type) and any(
            f.name == "subscriber" and (f.many_to_one or f.one_to_one)
            for f in target._meta.get_fields()
        ):
            related.append(f"{name}__subscriber")
    return tuple(dict.fromkeys(related))


def register_read_only(site: admin.AdminSite, model: type[Model]) -> None:
    """Make the admin another package registered for `model` read-only: re-registered as a
    subclass of its own class behind ReadOnlyAdminMixin, so it keeps its columns, filters and
    search (dj-stripe's mirror admins, see ``admin_site``), and behind LargeMirrorAdminMixin
    (no table count, related rows joined, exact id search)."""
    model_admin = site.get_model_admin(model)
    if isinstance(model_admin, ReadOnlyAdminMixin):
        return
    admin_class = type(model_admin)
    attrs: dict[str, Any] = {"__module__": __name__, "__doc__": admin_class.__doc__}
    related = _list_select_related(model, admin_class)
    if related:
        attrs["list_select_related"] = related
    read_only = type(
        f"ReadOnly{admin_class.__name__}",
        (ReadOnlyAdminMixin, LargeMirrorAdminMixin, admin_class),
        attrs,
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
