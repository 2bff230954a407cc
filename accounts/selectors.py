"""Account reads; the admin and the API get their querysets here."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User


def user_list_for_admin() -> QuerySet[User]:
    """Users for the staff changelist; groups are only shown on the change page."""
    return User.objects.all()


def user_get(*, user_id: int) -> User | None:
    return User.objects.filter(pk=user_id).first()
