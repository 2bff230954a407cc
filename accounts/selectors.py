"""Account reads; the admin and the API get their querysets here."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework.request import Request

from accounts.models import User


def user_list_for_admin() -> QuerySet[User]:
    """Users for the staff changelist; groups are only shown on the change page."""
    return User.objects.all()


def user_get(*, user_id: int) -> User | None:
    return User.objects.filter(pk=user_id).first()


def request_user(request: HttpRequest | Request) -> User:
    """The signed-in user of a request to a view that requires one (API views behind
    IsAuthenticated, the staff console), as our User. Raises PermissionDenied for anyone
    else, so a view that lost its permission check fails closed."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionDenied
    return user
