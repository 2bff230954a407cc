import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from marketplace.models import ApiKey, Meter
from tests.accounts.factories import UserFactory
from tests.marketplace.helpers import SUMMARY, bearer, error_of, key_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def keys():
    users = [UserFactory() for _ in range(5)]
    return [key_for(user, name=f"key {i}") for i, user in enumerate(users * 3)]


@pytest.mark.parametrize(
    ("model", "query"),
    [
        (Meter, ""),
        (Meter, "?aggregation__exact=sum&q=api"),
        (ApiKey, ""),
        (ApiKey, "?revoked_at__isempty=1&q=example.com"),
    ],
)
def test_changelists_render_with_bounded_queries(
    admin_client, keys, model, query, django_assert_max_num_queries
):
    url = reverse(f"admin:marketplace_{model._meta.model_name}_changelist") + query
    with django_assert_max_num_queries(12):
        response = admin_client.get(url)
    assert response.status_code == 200


def test_the_key_page_shows_no_secret_and_keys_cannot_be_added(admin_client, keys):
    api_key = ApiKey.objects.first()
    page = admin_client.get(reverse("admin:marketplace_apikey_change", args=[api_key.pk]))
    assert page.status_code == 200
    content = page.content.decode()
    assert api_key.prefix in content
    assert api_key.secret_hash not in content
    assert not any(key in content for key in keys)
    assert admin_client.get(reverse("admin:marketplace_apikey_add")).status_code == 403


def test_the_revoke_action_revokes_through_the_service_and_logs(admin_client):
    user = UserFactory()
    key = key_for(user)
    api_key = ApiKey.objects.get(user=user)
    response = admin_client.post(
        reverse("admin:marketplace_apikey_changelist"),
        {"action": "revoke", "_selected_action": [api_key.pk]},
    )
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert LogEntry.objects.filter(object_id=str(api_key.pk)).exists()
    error_of(bearer(key).get(SUMMARY, {"metric": "api_calls"}), 401)


def test_the_api_calls_meter_always_exists_and_a_meters_definition_is_fixed(admin_client):
    meter = Meter.objects.get(code="api_calls")
    assert (meter.aggregation, meter.property, meter.filters) == ("sum", "", {})
    page = admin_client.get(reverse("admin:marketplace_meter_change", args=[meter.pk]))
    assert page.status_code == 200
    assert 'name="aggregation"' not in page.content.decode()
    assert 'name="name"' in page.content.decode()
    add = admin_client.post(
        reverse("admin:marketplace_meter_add"),
        {
            "code": "seats",
            "name": "Seats",
            "unit": "seat",
            "aggregation": "unique_count",
            "property": "",
            "filters": "{}",
            "is_active": "on",
        },
    )
    assert add.status_code == 200  # refused: a unique count needs a property
    assert not Meter.objects.filter(code="seats").exists()


@pytest.mark.django_db(transaction=True)
def test_the_api_calls_meter_comes_back_after_a_flush():
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)
    meter = Meter.objects.get(code="api_calls")
    assert (meter.aggregation, meter.unit) == ("sum", "call")
