import pytest
from django.contrib.admin.sites import site
from django.urls import reverse

from ledger.models import Account, Entry, Transaction
from tests.ledger.factories import AccountFactory, PayeeAccountFactory, PostedTransactionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def postings():
    accounts = [AccountFactory(), PayeeAccountFactory(), PayeeAccountFactory()]
    txns = [
        PostedTransactionFactory(debit=accounts[i % 3], credit=accounts[(i + 1) % 3], amount=i + 1)
        for i in range(30)
    ]
    return txns


@pytest.mark.parametrize(
    ("model", "query"),
    [
        (Account, ""),
        (Account, "?type__exact=liability&q=payable"),
        (Transaction, ""),
        (Transaction, "?is_reversal=no&q=test-posting-1"),
        (Entry, ""),
        (Entry, "?account__type__exact=asset&q=usd"),
        (Entry, "?posted_at__year=2020"),
    ],
)
def test_changelists_render_with_bounded_queries(
    admin_client, postings, model, query, django_assert_max_num_queries
):
    url = reverse(f"admin:ledger_{model._meta.model_name}_changelist") + query
    with django_assert_max_num_queries(12):
        response = admin_client.get(url)
    assert response.status_code == 200


def test_transaction_change_view_is_read_only_with_entries_inline(
    admin_client, postings, django_assert_max_num_queries
):
    txn = postings[0]
    with django_assert_max_num_queries(15):
        response = admin_client.get(reverse("admin:ledger_transaction_change", args=[txn.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="_save"' not in content
    assert txn.idempotency_key in content
    assert "Dr" in content and "Cr" in content


@pytest.mark.parametrize("model", [Account, Transaction, Entry])
def test_nothing_can_be_added_changed_or_deleted(admin_client, admin_user, rf, postings, model):
    request = rf.get("/")
    request.user = admin_user
    model_admin = site._registry[model]
    obj = model.objects.first()
    assert model_admin.has_view_permission(request, obj)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, obj)
    assert not model_admin.has_delete_permission(request, obj)
    name = model._meta.model_name
    assert admin_client.get(reverse(f"admin:ledger_{name}_add")).status_code == 403
    delete_url = reverse(f"admin:ledger_{name}_delete", args=[obj.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    change_url = reverse(f"admin:ledger_{name}_change", args=[obj.pk])
    assert admin_client.get(change_url).status_code == 200  # viewable, read-only
    assert admin_client.post(change_url, {"name": "edited", "memo": "edited"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


def test_changelist_has_no_bulk_delete_action(admin_client, postings):
    response = admin_client.get(reverse("admin:ledger_entry_changelist"))
    assert b"delete_selected" not in response.content
