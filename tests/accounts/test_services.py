import pytest
from django.core.exceptions import ValidationError
from rest_framework.authtoken.models import Token

from accounts import services
from accounts.models import User
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_user_signup_creates_user_with_usable_password_and_token():
    user, token = services.user_signup(
        email=" New.Person@Example.COM ", password=DEFAULT_PASSWORD, name="New Person"
    )
    assert user.email == "new.person@example.com"
    assert user.name == "New Person"
    assert user.check_password(DEFAULT_PASSWORD)
    assert not user.is_staff
    assert token == Token.objects.get(user=user)


def test_user_signup_rejects_weak_password_on_the_password_field():
    with pytest.raises(ValidationError) as excinfo:
        services.user_signup(email="a@example.com", password="12345678", name="")
    assert set(excinfo.value.message_dict) == {"password"}
    assert not User.objects.filter(email="a@example.com").exists()


def test_user_signup_rejects_password_similar_to_email():
    with pytest.raises(ValidationError) as excinfo:
        services.user_signup(email="margaretthatcher@example.com", password="margaretthatcher")
    assert "password" in excinfo.value.message_dict


def test_user_signup_duplicate_email_is_a_field_error_case_insensitively():
    UserFactory(email="taken@example.com")
    with pytest.raises(ValidationError) as excinfo:
        services.user_signup(email="TAKEN@example.com", password=DEFAULT_PASSWORD, name="")
    assert set(excinfo.value.message_dict) == {"email"}
    assert User.objects.filter(email__iexact="taken@example.com").count() == 1


def test_user_signup_relies_on_the_unique_constraint_not_a_prior_read():
    """The duplicate is caught by the database (race-safe), leaving the transaction usable."""
    UserFactory(email="race@example.com")
    with pytest.raises(ValidationError):
        services.user_signup(email="race@example.com", password=DEFAULT_PASSWORD, name="")
    # The surrounding test transaction is still usable after the savepoint rollback.
    assert User.objects.count() == 1


def test_auth_token_obtain_returns_the_same_token_each_time():
    user = UserFactory()
    first = services.auth_token_obtain(request=None, email=user.email, password=DEFAULT_PASSWORD)
    second = services.auth_token_obtain(
        request=None, email=user.email.upper(), password=DEFAULT_PASSWORD
    )
    assert first.key == second.key
    assert first.user == user


@pytest.mark.parametrize("case", ["wrong_password", "unknown_email", "inactive"])
def test_auth_token_obtain_refuses_without_saying_why(case):
    user = UserFactory(is_active=case != "inactive")
    email = "nobody@example.com" if case == "unknown_email" else user.email
    password = "wrong-password-123" if case == "wrong_password" else DEFAULT_PASSWORD
    with pytest.raises(services.InvalidCredentials):
        services.auth_token_obtain(request=None, email=email, password=password)
    assert not Token.objects.exists()
