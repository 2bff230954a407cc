"""Mail never breaks anything: an SMTP server that is down during a sign-up, an approval or a
payout leaves the request or batch successful and its rows committed; the message is retried
and delivered once, when the server answers (a real local SMTP server, aiosmtpd)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.urls import reverse
from django.utils import timezone

from accounts.mail import MAX_ATTEMPTS, backoff, email_deliver
from accounts.models import OutgoingEmail
from accounts.services import email_queue, email_retry_now
from accounts.tasks import emails_retry_due
from affiliates.models import Affiliate, Commission, Referral
from affiliates.services.commissions import commission_accrue, commissions_approve_due
from ledger.models import PayeeProfile, PayoutBatch
from ledger.payouts import payout_batch_run
from tests.accounts.factories import UserFactory
from tests.affiliates.factories import AffiliateFactory, ProgramFactory

Status = OutgoingEmail.Status


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


class SmtpServer:
    """SMTP on a port that refuses connections until ``start()``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = _Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def recipients(self) -> list[list[str]]:
        return [list(message.rcpt_tos) for message in self.inbox.messages]


@pytest.fixture
def smtp(settings: Any) -> Iterator[SmtpServer]:
    server = SmtpServer(_free_port())
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    try:
        yield server
    finally:
        server.stop()


def _time_passes() -> None:
    """Make every queued message due (the sweep runs on the clock; tests do not wait)."""
    OutgoingEmail.objects.filter(status=Status.QUEUED).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def _deliver_when_the_server_answers(smtp: SmtpServer) -> None:
    smtp.start()
    _time_passes()
    emails_retry_due()


@pytest.mark.django_db(transaction=True)
def test_portal_signup_with_smtp_down_succeeds_and_mails_later(client, smtp, celery_eager):
    program = ProgramFactory(name="Partners")
    response = client.post(
        reverse("portal:signup"),
        {
            "name": "Ann",
            "email": "ann@example.com",
            "password": "a-long-unusual-passphrase-9",
            "program": program.pk,
        },
    )

    assert response.status_code == 302
    assert Affiliate.objects.get(user__email="ann@example.com").status == "pending"
    [email] = OutgoingEmail.objects.all()
    assert (email.status, email.attempts, email.purpose) == (Status.QUEUED, 1, "affiliate.applied")
    assert "ConnectionRefusedError" in email.last_error
    assert email.next_attempt_at > timezone.now()

    emails_retry_due()  # not due yet: nothing is tried
    email.refresh_from_db()
    assert email.attempts == 1

    _deliver_when_the_server_answers(smtp)
    email.refresh_from_db()
    assert (email.status, email.attempts) == (Status.SENT, 2)
    assert smtp.recipients() == [["ann@example.com"]]
    emails_retry_due()
    assert len(smtp.inbox.messages) == 1  # delivered once


@pytest.mark.django_db(transaction=True)
def test_staff_approval_with_smtp_down_succeeds_and_mails_later(client, smtp, celery_eager):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    affiliate = AffiliateFactory(status="pending")

    response = client.post(
        reverse("admin:affiliates_affiliate_changelist"),
        {"action": "approve", "_selected_action": [affiliate.pk]},
    )

    assert response.status_code == 302
    affiliate.refresh_from_db()
    assert affiliate.status == "approved"
    assert affiliate.links.count() == 1
    email = OutgoingEmail.objects.get(purpose="affiliate.approved")
    assert (email.status, email.attempts) == (Status.QUEUED, 1)

    _deliver_when_the_server_answers(smtp)
    email.refresh_from_db()
    assert email.status == Status.SENT
    assert smtp.recipients() == [[affiliate.user.email]]


@pytest.mark.django_db(transaction=True)
def test_password_reset_with_smtp_down_answers_as_usual(client, smtp, celery_eager):
    affiliate = AffiliateFactory()
    response = client.post(reverse("portal:password-reset"), {"email": affiliate.user.email})
    assert response.status_code == 302
    email = OutgoingEmail.objects.get(purpose="password_reset")
    assert email.status == Status.QUEUED

    _deliver_when_the_server_answers(smtp)
    assert smtp.recipients() == [[affiliate.user.email]]
    assert b"/portal/reset/" in smtp.inbox.messages[0].content


@pytest.mark.django_db(transaction=True)
def test_a_payout_batch_with_smtp_down_pays_and_mails_the_remittance_later(smtp, celery_eager):
    program = ProgramFactory(minimum_payout=100, hold_days=30, duration="lifetime")
    affiliate = AffiliateFactory(program=program)
    PayeeProfile.objects.create(
        payee_type="affiliate", payee_id=affiliate.pk, method="paypal",
        paypal_email="pay@example.com",
    )  # fmt: skip
    paid_at = datetime(2026, 1, 10, 12, tzinfo=UTC)
    referral = Referral.objects.create(
        stripe_customer_id="cus_mailpayout", affiliate=affiliate, source="code",
        referred_at=paid_at,
    )  # fmt: skip
    commission_accrue(
        invoice={
            "id": "in_mailpayout", "customer": referral.stripe_customer_id,
            "amount_paid": 10_000, "currency": "usd",
            "status_transitions": {"paid_at": int(paid_at.timestamp())},
        },
        occurred_at=paid_at,
    )  # fmt: skip
    commissions_approve_due(now=paid_at + timedelta(days=31))

    batch = payout_batch_run(payee_type="affiliate", as_of=date(2026, 2, 28))

    assert batch.status == PayoutBatch.Status.COMPLETED
    payout = batch.payouts.get()
    assert payout.status == "paid"
    assert Commission.objects.get(affiliate=affiliate).status == "paid"
    email = OutgoingEmail.objects.get(purpose="affiliate.payout_paid")
    assert (email.status, email.attempts) == (Status.QUEUED, 1)
    assert "USD" in email.subject

    _deliver_when_the_server_answers(smtp)
    email.refresh_from_db()
    assert email.status == Status.SENT
    assert smtp.recipients() == [[affiliate.user.email]]


@pytest.mark.django_db(transaction=True)
def test_a_message_is_given_up_after_the_last_attempt_and_staff_can_send_it_again(
    smtp, celery_eager
):
    email = email_queue(to=["x@example.com"], subject="Hi", body="Body", purpose="test")
    for _ in range(MAX_ATTEMPTS - 1):
        _time_passes()
        emails_retry_due()
    email.refresh_from_db()
    assert (email.status, email.attempts) == (Status.FAILED, MAX_ATTEMPTS)

    smtp.start()
    email_retry_now(email=email)  # runs at once: tasks are eager without Redis
    email.refresh_from_db()
    assert email.status == Status.SENT
    assert smtp.recipients() == [["x@example.com"]]
    assert email_deliver(email_id=email.pk) == "skipped"  # sent rows are never sent again


def test_backoff_doubles_up_to_two_hours():
    assert [backoff(n) for n in (1, 2, 3, 7)] == [
        timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4), timedelta(minutes=64),
    ]  # fmt: skip
    assert backoff(8) == backoff(30) == timedelta(hours=2)


@pytest.mark.django_db
def test_no_mail_is_queued_for_a_change_that_rolls_back(django_capture_on_commit_callbacks):
    from django.db import transaction

    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        email_queue(to=["x@example.com"], subject="s", body="b", purpose="test")
        raise RuntimeError("the change fails")
    assert not OutgoingEmail.objects.exists()
    assert callbacks == []


@pytest.mark.django_db
def test_the_outbox_admin_hides_sign_in_links_and_lets_support_resend(
    client, django_assert_max_num_queries
):
    from django.contrib.auth.models import Group

    reset = email_queue(
        to=["a@example.com"], subject="Reset", body="https://x/portal/reset/abc/",
        purpose="password_reset",
    )  # fmt: skip
    failed = email_queue(to=["b@example.com"], subject="Hi", body="Plain", purpose="test")
    OutgoingEmail.objects.filter(pk=failed.pk).update(status=Status.FAILED, attempts=MAX_ATTEMPTS)
    for n in range(20):
        email_queue(to=[f"c{n}@example.com"], subject="Bulk", body="b", purpose="test")

    read_only = UserFactory(is_staff=True)
    read_only.groups.add(Group.objects.get(name="Read-only"))
    client.force_login(read_only)
    changelist = reverse("admin:accounts_outgoingemail_changelist")
    with django_assert_max_num_queries(12):
        assert client.get(changelist).status_code == 200
    page = client.get(reverse("admin:accounts_outgoingemail_change", args=[reset.pk]))
    assert page.status_code == 200
    assert b"/portal/reset/abc/" not in page.content
    assert b"hidden" in page.content
    # Read-only staff cannot resend.
    client.post(changelist, {"action": "send_again_now", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert failed.status == Status.FAILED

    support = UserFactory(is_staff=True)
    support.groups.add(Group.objects.get(name="Support"))
    client.force_login(support)
    client.post(changelist, {"action": "send_again_now", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (Status.QUEUED, MAX_ATTEMPTS - 1)
