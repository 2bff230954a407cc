"""request_user: the signed-in user as our User, refused for anyone else."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied

from accounts.models import User
from accounts.selectors import request_user
from tests.accounts.factories import UserFactory


@pytest.mark.django_db
def test_request_user_is_the_signed_in_user(client):
    user = UserFactory()
    client.force_login(user)
    request = client.get("/admin/").wsgi_request

    found = request_user(request)

    assert isinstance(found, User) and found.pk == user.pk


def test_request_user_refuses_an_anonymous_request(rf):
    request = rf.get("/")
    request.user = AnonymousUser()
    with pytest.raises(PermissionDenied):
        request_user(request)
