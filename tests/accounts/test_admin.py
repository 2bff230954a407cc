import logging

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import override_settings
from django.urls import reverse

from accounts import staff_groups
from accounts.models import User
from tests.accounts.factories import (
    DEFAULT_PASSWORD,
    StaffUserFactory,
    SuperuserFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"


def _perms(group_name):
    return set(
        Group.objects.get(name=group_name).permissions.values_list(
            "content_type__app_label", "codename"
        )
    )


# --- user admin ----------------------------------------------------------------------


def test_user_changelist_query_count_does_not_grow(client, django_assert_max_num_queries):
    client.force_login(SuperuserFactory())
    UserFactory.create_batch(30)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("admin:accounts_user_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count == 31


def test_user_changelist_search_and_filter(client):
    client.force_login(SuperuserFactory())
    UserFactory(email="findme@example.com")
    response = client.get(reverse("admin:accounts_user_changelist"), {"q": "findme"})
    assert response.context["cl"].result_count == 1
    response = client.get(reverse("admin:accounts_user_changelist"), {"is_staff__exact": "1"})
    assert response.context["cl"].result_count == 1


def test_add_user_with_email_login(client):
    client.force_login(SuperuserFactory())
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "Added@Example.com",
            "name": "Added",
            "password1": DEFAULT_PASSWORD,
            "password2": DEFAULT_PASSWORD,
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    user = User.objects.get(email="added@example.com")
    assert user.check_password(DEFAULT_PASSWORD)


def test_add_user_refuses_an_email_taken_in_another_case(client):
    client.force_login(SuperuserFactory())
    UserFactory(email="taken@example.com")
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "TAKEN@example.com",
            "password1": DEFAULT_PASSWORD,
            "password2": DEFAULT_PASSWORD,
        },
    )
    assert response.status_code == 200
    assert "email" in response.context["adminform"].form.errors
    assert User.objects.count() == 2


def test_change_user_page(client):
    client.force_login(SuperuserFactory())
    user = UserFactory()
    url = reverse("admin:accounts_user_change", args=[user.pk])
    response = client.get(url)
    assert response.status_code == 200
    response = client.post(
        url,
        {
            "email": user.email,
            "name": "Renamed",
            "is_active": "on",
            "date_joined_0": "2025-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    user.refresh_from_db()
    assert user.name == "Renamed"


def test_admin_is_branded(client):
    response = client.get(LOGIN)
    assert b"Revenue Agent System" in response.content
    assert b"Django administration" not in response.content
    assert b"Django site admin" not in response.content


# --- staff groups --------------------------------------------------------------------


def test_staff_groups_exist():
    assert set(staff_groups.STAFF_GROUP_PERMISSIONS) == {
        "Finance",
        "Support",
        "Affiliate manager",
        "Read-only",
    }
    assert set(Group.objects.values_list("name", flat=True)) >= set(
        staff_groups.STAFF_GROUP_PERMISSIONS
    )


def test_read_only_gets_every_view_permission_and_nothing_else():
    perms = _perms("Read-only")
    all_views = {
        (app, codename)
        for app, codename in Permission.objects.filter(codename__startswith="view_").values_list(
            "content_type__app_label", "codename"
        )
        if not staff_groups._matches(staff_groups.EXCLUDED_PERMISSIONS, app, codename)
    }
    assert perms == all_views
    assert ("accounts", "view_user") in perms
    assert ("ledger", "view_account") in perms


@pytest.mark.parametrize("group", list(staff_groups.STAFF_GROUP_PERMISSIONS))
def test_no_group_can_see_credentials(group):
    perms = _perms(group)
    assert not {p for p in perms if p[0] in {"authtoken", "sessions"}}
    assert ("djstripe", "view_apikey") not in perms
    assert ("djstripe", "view_webhookendpoint") not in perms


def test_finance_views_everything_and_writes_the_ledger():
    perms = _perms("Finance")
    assert ("accounts", "view_user") in perms
    assert ("accounts", "change_user") not in perms
    ledger_perms = set(
        Permission.objects.filter(content_type__app_label="ledger").values_list(
            "content_type__app_label", "codename"
        )
    )
    assert ledger_perms <= perms
    assert not {codename for app, codename in perms if app == "auth" and "view_" not in codename}


def test_support_can_change_users_but_not_delete():
    perms = _perms("Support")
    assert ("accounts", "view_user") in perms
    assert ("accounts", "change_user") in perms
    assert ("accounts", "delete_user") not in perms
    assert ("auth", "change_group") not in perms


def test_affiliate_manager_is_limited_to_affiliates():
    perms = _perms("Affiliate manager")
    assert {app for app, _ in perms} <= {"accounts", "affiliates"}
    assert ("accounts", "view_user") in perms


def test_sync_attaches_permissions_of_models_added_later():
    """A permission that appears after the migration (a later app) reaches the groups."""
    from django.contrib.contenttypes.models import ContentType

    ct = ContentType.objects.create(app_label="affiliates", model="newthing")
    for action in ("view", "change", "add"):
        Permission.objects.create(content_type=ct, codename=f"{action}_newthing", name=action)
    staff_groups.sync_staff_group_permissions()
    assert ("affiliates", "view_newthing") in _perms("Read-only")
    assert ("affiliates", "change_newthing") not in _perms("Read-only")
    assert ("affiliates", "add_newthing") in _perms("Affiliate manager")
    assert ("affiliates", "change_newthing") in _perms("Support")
    # Idempotent: running again changes nothing.
    before = _perms("Finance")
    staff_groups.sync_staff_group_permissions()
    assert _perms("Finance") == before


def test_sync_runs_after_migrate():
    """The post_migrate receiver re-syncs: a group emptied by hand is refilled."""
    from django.apps import apps
    from django.db.models.signals import post_migrate

    Group.objects.get(name="Read-only").permissions.clear()
    last = [c for c in apps.get_app_configs() if c.models_module is not None][-1]
    post_migrate.send(sender=last, app_config=last, using="default", verbosity=0, apps=apps)
    assert ("accounts", "view_user") in _perms("Read-only")


def test_read_only_staff_can_view_but_not_change_in_admin(client):
    viewer = StaffUserFactory(groups=["Read-only"])
    target = UserFactory(name="Before")
    client.force_login(viewer)
    change_url = reverse("admin:accounts_user_change", args=[target.pk])

    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 200
    response = client.get(change_url)
    assert response.status_code == 200
    assert not response.context["has_change_permission"]

    response = client.post(change_url, {"email": target.email, "name": "After"})
    assert response.status_code == 403
    target.refresh_from_db()
    assert target.name == "Before"
    assert client.get(reverse("admin:accounts_user_add")).status_code == 403
    assert client.get(reverse("admin:accounts_user_delete", args=[target.pk])).status_code == 403


# --- failed staff logins -------------------------------------------------------------


def _login(client, username, password, ip="10.1.1.1"):
    return client.post(
        LOGIN,
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=ip,
    )


@override_settings(STAFF_LOGIN_MAX_FAILURES=3, STAFF_LOGIN_WINDOW_SECONDS=600)
def test_staff_login_locks_out_after_repeated_failures(client):
    staff = StaffUserFactory(email="ops@example.com")
    for _ in range(3):
        response = _login(client, "ops@example.com", "wrong-password")
        assert response.status_code == 200
        assert "_auth_user_id" not in client.session

    # Locked: even the right password is refused, with a clear message.
    response = _login(client, "OPS@example.com", DEFAULT_PASSWORD)
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert b"Too many failed login attempts" in response.content

    # Another address, or another username, is not locked.
    response = _login(client, "ops@example.com", DEFAULT_PASSWORD, ip="10.2.2.2")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)


@override_settings(STAFF_LOGIN_MAX_FAILURES=2, STAFF_LOGIN_WINDOW_SECONDS=600)
def test_staff_lockout_ends_with_the_window(client):
    from django.core.cache import cache

    StaffUserFactory(email="ops@example.com")
    for _ in range(2):
        _login(client, "ops@example.com", "wrong-password")
    assert b"Too many" in _login(client, "ops@example.com", DEFAULT_PASSWORD).content
    # The window passing is the counter expiring; simulate it by deleting the keys.
    cache.clear()
    assert _login(client, "ops@example.com", DEFAULT_PASSWORD).status_code == 302


@override_settings(STAFF_LOGIN_MAX_FAILURES=3, STAFF_LOGIN_WINDOW_SECONDS=600)
def test_successful_login_resets_the_failure_count(client):
    StaffUserFactory(email="ops@example.com")
    _login(client, "ops@example.com", "wrong-password")
    _login(client, "ops@example.com", "wrong-password")
    assert _login(client, "ops@example.com", DEFAULT_PASSWORD).status_code == 302
    client.logout()
    _login(client, "ops@example.com", "wrong-password")
    _login(client, "ops@example.com", "wrong-password")
    assert _login(client, "ops@example.com", DEFAULT_PASSWORD).status_code == 302


def test_failed_staff_logins_are_logged_without_the_password(client, caplog):
    StaffUserFactory(email="ops@example.com")
    with caplog.at_level(logging.WARNING, logger="accounts.security"):
        _login(client, "ops@example.com", "Hunter2-secret", ip="10.3.3.3")
    records = [r for r in caplog.records if r.name == "accounts.security"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.WARNING
    assert record.ip == "10.3.3.3"
    assert record.username == "ops@example.com"
    assert "ops@example.com" in record.getMessage()
    assert "Hunter2-secret" not in caplog.text


@override_settings(STAFF_LOGIN_MAX_FAILURES=1, STAFF_LOGIN_WINDOW_SECONDS=600)
def test_refused_attempts_during_lockout_are_logged(client, caplog):
    StaffUserFactory(email="ops@example.com")
    _login(client, "ops@example.com", "wrong-password")
    with caplog.at_level(logging.WARNING, logger="accounts.security"):
        _login(client, "ops@example.com", DEFAULT_PASSWORD)
    messages = [r.getMessage() for r in caplog.records if r.name == "accounts.security"]
    assert any("locked out" in m for m in messages)
    assert DEFAULT_PASSWORD not in caplog.text
