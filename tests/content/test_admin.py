import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from content import payouts
from content.models import ContentItem, Creator, License
from content.services import content_shares_set
from ledger.models import PayeeProfile
from ledger.payouts import payout_batch_run
from tests.accounts.factories import UserFactory
from tests.content.factories import (
    ContentItemFactory,
    CreatorFactory,
    LicenseFactory,
    LicenseTypeFactory,
)
from tests.content.sales import refund, sell

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_fake")]


@pytest.fixture
def catalog():
    creators = CreatorFactory.create_batch(4)
    for creator in creators * 4:
        item = ContentItemFactory(owner=creator, kind="video")
        license_type = LicenseTypeFactory(item=item)
        LicenseFactory(license_type=license_type)
    return creators


@pytest.mark.parametrize(
    ("model", "query"),
    [
        ("creator", ""),
        ("creator", "?status__exact=active&q=example.com"),
        ("contentitem", ""),
        ("contentitem", "?status__exact=published&kind__exact=video&q=Item"),
        ("contentitem", "?q=user"),
        ("license", ""),
        ("license", "?status__exact=active&q=lk_"),
    ],
)
def test_changelists_render_with_bounded_queries(
    admin_client, catalog, model, query, django_assert_max_num_queries
):
    url = reverse(f"admin:content_{model}_changelist") + query
    with django_assert_max_num_queries(12):
        response = admin_client.get(url)
    assert response.status_code == 200


def test_search_finds_an_item_by_creator_email_and_a_licence_by_key_prefix(admin_client, catalog):
    item = ContentItem.objects.select_related("owner__user").first()
    page = admin_client.get(
        reverse("admin:content_contentitem_changelist"), {"q": item.owner.user.email}
    )
    assert page.context["cl"].result_count == 4
    license = item.licenses.first()
    page = admin_client.get(reverse("admin:content_license_changelist"), {"q": license.key_prefix})
    assert [row.pk for row in page.context["cl"].result_list] == [license.pk]
    # A pasted whole key finds its licence by the prefix.
    page = admin_client.get(
        reverse("admin:content_license_changelist"), {"q": f"{license.key_prefix}_secretpart"}
    )
    assert [row.pk for row in page.context["cl"].result_list] == [license.pk]


def test_the_item_page_shows_licence_types_and_the_licence_page_no_hash(admin_client, catalog):
    item = ContentItem.objects.first()
    page = admin_client.get(reverse("admin:content_contentitem_change", args=[item.pk]))
    assert page.status_code == 200
    license = item.licenses.first()
    page = admin_client.get(reverse("admin:content_license_change", args=[license.pk]))
    assert page.status_code == 200
    assert license.key_prefix in page.content.decode()
    assert license.key_hash not in page.content.decode()
    assert admin_client.get(reverse("admin:content_license_add")).status_code == 403


def test_unpublish_asks_for_a_reason_then_moderates_and_logs(admin_client):
    item = ContentItemFactory()
    url = reverse("admin:content_contentitem_changelist")
    form = admin_client.post(url, {"action": "unpublish", "_selected_action": [item.pk]})
    assert form.status_code == 200
    assert b"reason" in form.content
    item.refresh_from_db()
    assert item.status == ContentItem.Status.PUBLISHED

    response = admin_client.post(
        url,
        {"action": "unpublish", "_selected_action": [item.pk], "apply": "1", "reason": "Spam"},
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == ContentItem.Status.DRAFT
    assert item.moderation_note == "Spam"
    assert LogEntry.objects.filter(object_id=str(item.pk), change_message__contains="Spam")


def test_archive_and_republish(admin_client):
    item = ContentItemFactory()
    url = reverse("admin:content_contentitem_changelist")
    admin_client.post(
        url,
        {"action": "archive", "_selected_action": [item.pk], "apply": "1", "reason": "Stolen"},
    )
    item.refresh_from_db()
    assert item.status == ContentItem.Status.ARCHIVED
    admin_client.post(url, {"action": "republish", "_selected_action": [item.pk]})
    item.refresh_from_db()
    assert item.status == ContentItem.Status.PUBLISHED
    assert item.moderation_note == ""


def test_republish_refuses_a_suspended_creators_item(admin_client):
    item = ContentItemFactory(
        status=ContentItem.Status.DRAFT, published_at=None, owner__status="suspended"
    )
    admin_client.post(
        reverse("admin:content_contentitem_changelist"),
        {"action": "republish", "_selected_action": [item.pk]},
    )
    item.refresh_from_db()
    assert item.status == ContentItem.Status.DRAFT


def test_staff_create_a_creator_with_a_payee_profile(admin_client):
    user = UserFactory(password=None)
    response = admin_client.post(
        reverse("admin:content_creator_add"),
        {"user": user.pk, "display_name": "Staff made", "platform_fee_percent": "12.50",
         "status": "active"},
    )  # fmt: skip
    assert response.status_code == 302, response.content
    creator = Creator.objects.get(user=user)
    assert str(creator.platform_fee_percent) == "12.50"
    assert PayeeProfile.objects.filter(payee_type="creator", payee_id=creator.pk).exists()


# --- creators: payout onboarding, the earnings statement -----------------------------------


@pytest.mark.parametrize("query", ["?payout_method=none", "?payout_method=bank_csv", "?o=5"])
def test_the_creator_changelist_shows_and_filters_by_payout_method(
    admin_client, catalog, query, django_assert_max_num_queries
):
    paid_by_bank = catalog[0]
    payouts.creator_payout_settings_update(
        creator=paid_by_bank,
        method="bank_csv",
        bank_account_name="A",
        bank_iban="DE89370400440532013000",
        bank_bic="COBADEFFXXX",
    )
    with django_assert_max_num_queries(12):
        page = admin_client.get(reverse("admin:content_creator_changelist") + query)
    assert page.status_code == 200
    rows = list(page.context["cl"].result_list)
    if query == "?payout_method=bank_csv":
        assert [c.pk for c in rows] == [paid_by_bank.pk]
        assert "Bank transfer (CSV)" in page.content.decode()
    elif query == "?payout_method=none":
        assert paid_by_bank.pk not in {c.pk for c in rows} and len(rows) == 3


def test_the_creator_page_links_their_payout_profile(admin_client):
    creator = CreatorFactory()
    page = admin_client.get(reverse("admin:content_creator_change", args=[creator.pk]))
    assert page.status_code == 200 and "None yet." in page.content.decode()
    payouts.creator_payout_settings_update(
        creator=creator, method="paypal", paypal_email="c@paypal.example"
    )
    page = admin_client.get(reverse("admin:content_creator_change", args=[creator.pk]))
    profile = PayeeProfile.objects.get(payee_type="creator", payee_id=creator.pk)
    assert reverse("admin:ledger_payeeprofile_change", args=[profile.pk]) in page.content.decode()


def test_the_earnings_statement_is_a_csv_that_adds_up(admin_client, settings):
    settings.CONTENT_PAYOUT_HOLD_DAYS = 14
    settings.CONTENT_PAYOUT_MINIMUM = 1000
    a = CreatorFactory(display_name="Ann", platform_fee_percent=Decimal("20.00"))
    b = CreatorFactory(display_name="Bo", platform_fee_percent=Decimal("20.00"))
    payouts.creator_payout_settings_update(
        creator=a, method="paypal", paypal_email="ann@paypal.example"
    )
    solo = LicenseTypeFactory(item=ContentItemFactory(owner=a, title="Solo"), amount=10_000)
    shared_item = ContentItemFactory(owner=a, title="Shared")
    content_shares_set(item=shared_item, shares=[(a, Decimal(50)), (b, Decimal(50))])
    shared = LicenseTypeFactory(item=shared_item, amount=5000)
    sell(solo, at=datetime(2026, 1, 20, tzinfo=UTC))  # before the period: opening balance
    march = sell(solo, at=datetime(2026, 3, 2, tzinfo=UTC))
    sell(shared, at=datetime(2026, 3, 3, tzinfo=UTC))
    refund(march, at=datetime(2026, 4, 10, tzinfo=UTC), amount=5000)
    payout_batch_run(payee_type="creator", as_of=date(2026, 4, 30))  # pays Ann 14,000

    url = reverse("admin:content_creator_changelist")
    selected = {"action": "earnings_statement", "_selected_action": [a.pk, b.pk]}
    form = admin_client.post(url, selected)
    assert form.status_code == 200 and b"Download CSV" in form.content
    bad = admin_client.post(
        url, {**selected, "apply": "1", "start": "2026-04-30", "end": "2026-02-01"}
    )
    assert bad.status_code == 200 and b"On or after" in bad.content

    today = timezone.now().date()  # the payout is booked when it is made
    response = admin_client.post(
        url, {**selected, "apply": "1", "start": "2026-02-01", "end": today.isoformat()}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert (
        f"creator-earnings-2026-02-01-{today.isoformat()}.csv" in (response["Content-Disposition"])
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    ann = [
        (r["line"], r["period"], r["content"], r["sales"], r["reversals"], r["amount"])
        for r in rows
        if r["creator"] == "Ann"
    ]
    assert ann == [
        ("opening_balance", "2026-02-01", "", "", "", "80.00"),
        ("earnings", "2026-03", "Solo", "80.00", "0.00", "80.00"),
        ("earnings", "2026-03", "Shared", "20.00", "0.00", "20.00"),
        ("earnings", "2026-04", "Solo", "0.00", "-40.00", "-40.00"),
        ("payout", today.isoformat(), "", "", "", "-140.00"),
        ("closing_balance", today.isoformat(), "", "", "", "0.00"),
    ]
    lines = {r["line"] for r in rows}
    assert lines == {"opening_balance", "earnings", "payout", "closing_balance"}
    for name in ("Ann", "Bo"):
        mine = [r for r in rows if r["creator"] == name]
        opening = Decimal(mine[0]["amount"])
        closing = Decimal(mine[-1]["amount"])
        moved = sum(Decimal(r["amount"]) for r in mine[1:-1])
        assert opening + moved == closing, name
    bo = [(r["line"], r["content"], r["amount"]) for r in rows if r["creator"] == "Bo"]
    assert bo == [
        ("opening_balance", "", "0.00"),
        ("earnings", "Shared", "20.00"),
        ("closing_balance", "", "20.00"),
    ]


# --- licences: revoke, a partial prefix ----------------------------------------------------


def test_revoke_is_for_good_and_logged(admin_client):
    active = LicenseFactory()
    pending = LicenseFactory(status="pending")
    url = reverse("admin:content_license_changelist")
    admin_client.post(url, {"action": "revoke", "_selected_action": [active.pk, pending.pk]})
    active.refresh_from_db()
    pending.refresh_from_db()
    assert (active.status, pending.status) == ("revoked", "pending")
    assert LogEntry.objects.filter(object_id=str(active.pk), change_message__contains="revoke")
    admin_client.post(url, {"action": "reinstate", "_selected_action": [active.pk]})
    active.refresh_from_db()
    assert active.status == "revoked"


def test_a_licence_is_found_by_the_start_of_its_prefix(admin_client, catalog):
    license = License.objects.first()
    start = license.key_prefix[:9]
    page = admin_client.get(reverse("admin:content_license_changelist"), {"q": start})
    found = [row.pk for row in page.context["cl"].result_list]
    assert license.pk in found
    assert all(row.key_prefix.startswith(start) for row in page.context["cl"].result_list)
