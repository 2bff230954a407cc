"""The audit trail (django-auditlog): staff changes to money-affecting records are logged with
who, when and before -> after, in the same transaction as the change, readable in the console
from the record ("Audit log"), bank details masked, passwords never recorded."""

from __future__ import annotations

from decimal import Decimal

import pytest
from auditlog.models import LogEntry
from django.db import transaction
from django.urls import reverse

from affiliates.models import Program
from ledger.models import PayeeProfile
from revenue_site.admin import audited_models
from tests.accounts.factories import SuperuserFactory, UserFactory
from tests.affiliates.factories import ProgramFactory
from tests.affiliates.test_admin_programs import program_post
from tests.content.factories import LicenseFactory

pytestmark = pytest.mark.django_db


def entries_for(obj) -> list[LogEntry]:
    return list(LogEntry.objects.get_for_object(obj).order_by("timestamp", "pk"))


def test_a_staff_edit_in_the_console_is_logged_with_actor_and_before_after(client):
    staff = SuperuserFactory()
    client.force_login(staff)
    program = ProgramFactory(slug="main", commission_rate="20")
    url = reverse("admin:affiliates_program_change", args=[program.pk])

    response = client.post(url, program_post(commission_rate="25"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    (change,) = [e for e in entries_for(program) if e.action == LogEntry.Action.UPDATE]
    assert change.actor == staff
    assert [Decimal(v) for v in change.changes_dict["commission_rate"]] == [20, 25]
    # The record's change form links to its audit log, which shows the change.
    assert (
        reverse("admin:affiliates_program_auditlog", args=[program.pk])
        in client.get(url).content.decode()
    )
    page = client.get(reverse("admin:affiliates_program_auditlog", args=[program.pk]))
    assert page.status_code == 200
    assert "commission" in page.content.decode().lower()


def test_the_entry_is_written_in_the_changes_transaction():
    program = ProgramFactory()
    before = len(entries_for(program))
    with pytest.raises(RuntimeError), transaction.atomic():
        program.hold_days = 99
        program.save()
        raise RuntimeError("rolled back")
    assert len(entries_for(program)) == before
    assert Program.objects.get(pk=program.pk).hold_days != 99


def test_a_service_change_made_by_staff_is_logged_with_the_status_before_and_after(client):
    staff = SuperuserFactory()
    client.force_login(staff)
    license = LicenseFactory(status="active")
    response = client.post(
        reverse("admin:content_license_changelist"),
        {"action": "suspend", "_selected_action": [license.pk]},
    )
    assert response.status_code == 302
    (change,) = [e for e in entries_for(license) if e.action == LogEntry.Action.UPDATE]
    assert change.actor == staff
    assert change.changes_dict["status"] == ["active", "suspended"]


def test_bank_details_are_masked_and_passwords_never_recorded():
    profile = PayeeProfile.objects.create(
        payee_type="affiliate",
        payee_id=1,
        method="bank_csv",
        bank_account_name="Ada Lovelace",
        bank_iban="DE89370400440532013000",
    )
    (created,) = entries_for(profile)
    assert "DE89370400440532013000" not in str(created.changes)
    assert "Ada Lovelace" not in str(created.changes)
    user = UserFactory()
    user.set_password("a-new-secret-pass-123")
    user.save()
    assert all("password" not in e.changes_dict for e in entries_for(user))
    assert "a-new-secret" not in str([e.changes for e in entries_for(user)])


def test_every_audited_model_has_its_audit_log_page_in_the_console():
    from django.contrib import admin

    missing = [
        m._meta.label
        for m in audited_models()
        if admin.site.is_registered(m)
        and f"{m._meta.app_label}_{m._meta.model_name}_auditlog"
        not in {u.name for u in admin.site.get_model_admin(m).get_urls()}
    ]
    assert missing == []
    assert len(audited_models()) >= 20
