"""Staff groups and their model permissions, declared once and kept in sync.

`STAFF_GROUP_PERMISSIONS` maps a group to (app_label, codename pattern) rules matched with
fnmatch. `sync_staff_group_permissions()` creates the groups and *adds* every matching
permission that exists; it runs from the accounts data migration and after every `migrate`
(post_migrate), so permissions of apps that land later (affiliates, content, marketplace…)
attach automatically. It never removes a permission an administrator granted by hand, except
the credential-bearing ones in EXCLUDED_PERMISSIONS, which no staff group may hold.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from django.apps import apps as global_apps

FINANCE = "Finance"
SUPPORT = "Support"
AFFILIATE_MANAGER = "Affiliate manager"
READ_ONLY = "Read-only"

# Apps whose rows are customer-facing: what Support answers questions about.
_CUSTOMER_FACING_APPS = ("subscriptions", "affiliates", "content", "marketplace")

STAFF_GROUP_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    READ_ONLY: [("*", "view_*")],
    FINANCE: [
        ("*", "view_*"),
        # Ledger and payouts: create adjustments, run and approve payout batches.
        ("ledger", "*"),
        ("affiliates", "*commission*"),
        ("affiliates", "*payout*"),
        ("content", "*payout*"),
        ("content", "*revenuesplit*"),
        ("marketplace", "*invoice*"),
        ("marketplace", "*payout*"),
        ("analytics", "*"),
    ],
    SUPPORT: [
        ("*", "view_*"),
        ("accounts", "change_user"),
        ("accounts", "change_outgoingemail"),  # resend a message that did not go out
        *[(app, "change_*") for app in _CUSTOMER_FACING_APPS],
    ],
    AFFILIATE_MANAGER: [
        ("accounts", "view_user"),
        ("affiliates", "*"),
    ],
}


# Never granted by a rule, whatever it matches: rows that hold credentials (API tokens,
# session data, Stripe keys and webhook secrets) are for superusers only.
EXCLUDED_PERMISSIONS: list[tuple[str, str]] = [
    ("authtoken", "*"),
    ("sessions", "*"),
    ("djstripe", "*_apikey"),
    ("djstripe", "*_webhookendpoint"),
    # The audit trail is append-only: staff read it, nobody edits or deletes it.
    ("auditlog", "add_*"),
    ("auditlog", "change_*"),
    ("auditlog", "delete_*"),
]


def _matches(rules: list[tuple[str, str]], app_label: str, codename: str) -> bool:
    return any(
        fnmatchcase(app_label, app_pattern) and fnmatchcase(codename, code_pattern)
        for app_pattern, code_pattern in rules
    )


def sync_staff_group_permissions(apps: Any = global_apps, using: str = "default") -> None:
    """Create the staff groups and add the permissions their rules match.

    `apps` is the migration state's registry inside a migration, the real one otherwise.
    Idempotent; only adds, except that EXCLUDED_PERMISSIONS are removed.
    """
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permissions = list(
        Permission.objects.using(using).values_list("pk", "content_type__app_label", "codename")
    )
    excluded = [
        pk
        for pk, app_label, codename in permissions
        if _matches(EXCLUDED_PERMISSIONS, app_label, codename)
    ]
    for group_name, rules in STAFF_GROUP_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=group_name)
        group.permissions.add(
            *(
                pk
                for pk, app_label, codename in permissions
                if _matches(rules, app_label, codename)
                and not _matches(EXCLUDED_PERMISSIONS, app_label, codename)
            )
        )
        # Exclusions are enforced, even against a grant made by hand.
        group.permissions.remove(*excluded)


def sync_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """post_migrate receiver. `migrate` (and `flush`) send post_migrate once per app, and
    each app's permissions are created by auth's receiver on that app's signal, so the sync
    waits for the last app with models, when every permission exists."""
    with_models = [c for c in global_apps.get_app_configs() if c.models_module is not None]
    if with_models and sender is with_models[-1]:
        sync_staff_group_permissions(using=using)
