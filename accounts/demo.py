"""Demo staff accounts: a superuser and one user per staff group."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import Group

from accounts.models import User
from revenue_site.demo import DEMO_ADMIN_EMAIL, DEMO_PASSWORD

ORDER = 10

STAFF = [
    ("finance@example.com", "Fiona Finance", "Finance"),
    ("support@example.com", "Sam Support", "Support"),
    ("affiliates@example.com", "Alex Affiliates", "Affiliate manager"),
    ("readonly@example.com", "Riley Readonly", "Read-only"),
]


def seed(*, out: Callable[[str], None]) -> None:
    admin, created = User.objects.get_or_create(
        email=DEMO_ADMIN_EMAIL,
        defaults={"name": "Demo Admin", "is_staff": True, "is_superuser": True},
    )
    if created:
        admin.set_password(DEMO_PASSWORD)
        admin.save(update_fields=["password"])
    for email, name, group_name in STAFF:
        user, created = User.objects.get_or_create(
            email=email, defaults={"name": name, "is_staff": True}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        group = Group.objects.filter(name=group_name).first()
        if group is not None:
            user.groups.add(group)
    out(f"  staff: {DEMO_ADMIN_EMAIL} and {len(STAFF)} group members")
