"""A one-time licence payment that needs the buyer's 3-D Secure step: the purchase answers the
PaymentIntent's client secret for Stripe.js, the licence stays pending until Stripe confirms,
and a payment left unfinished is canceled and its licence released by the beat task. Stripe is
the fake (its 3-D Secure test card and authentication step), events signed as Stripe signs
them."""

from __future__ import annotations

from datetime import timedelta

import pytest
import stripe
from django.conf import settings as django_settings

from content.acquire import pending_licenses_release
from content.licensing import license_verify
from content.models import License, LicenseType
from content.purchases import SALE_SOURCE
from content.tasks import pending_licenses_release as release_task
from ledger.models import Transaction
from tests.accounts.factories import UserFactory
from tests.content.factories import LicenseFactory, LicenseTypeFactory
from tests.content.test_purchases import buy_url, client_for
from tests.stripe_harness import SignedInbox, three_d_secure_card

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]


@pytest.fixture
def inbox(client, django_capture_on_commit_callbacks):
    return SignedInbox(client, django_capture_on_commit_callbacks)


def purchase(item, lt, card: str) -> dict:
    response = client_for(UserFactory(password=None)).post(
        buy_url(item), {"license_type": lt.pk, "payment_method": card}, "json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def later(license_pk: int, minutes: int):
    return License.objects.get(pk=license_pk).created_at + timedelta(minutes=minutes)


def test_a_3d_secure_purchase_answers_the_client_secret_and_activates_once_authenticated(
    stripe_fake, inbox
):
    lt = LicenseTypeFactory(amount=2500)
    body = purchase(lt.item, lt, three_d_secure_card())

    assert body["status"] == "pending"
    license = License.objects.get(pk=body["id"])
    intent = stripe.PaymentIntent.retrieve(license.stripe_payment_intent_id)
    assert body["payment"] == {
        "payment_intent": intent.id,
        "status": "requires_action",
        "client_secret": intent.client_secret,
    }
    assert license_verify(key=body["key"]).status == "unknown"  # not usable before it is paid
    inbox.deliver_new()

    stripe_fake.authenticate(intent.id, client_secret=body["payment"]["client_secret"])
    events = inbox.deliver_new()

    assert "payment_intent.succeeded" in {e["type"] for e in events}
    license.refresh_from_db()
    assert license.status == License.Status.ACTIVE
    assert license_verify(key=body["key"]).status == "valid"
    assert Transaction.objects.filter(source=SALE_SOURCE).count() == 1


def test_a_purchase_charged_at_once_has_no_payment_step(stripe_fake):
    lt = LicenseTypeFactory(amount=2500)
    body = purchase(lt.item, lt, "pm_card_visa")
    assert body["status"] == "active"
    assert body["payment"] is None


def test_an_unfinished_payment_is_canceled_and_the_exclusive_item_released(stripe_fake, inbox):
    exclusive = LicenseTypeFactory(kind=LicenseType.Kind.EXCLUSIVE, amount=50000)
    item = exclusive.item
    body = purchase(item, exclusive, three_d_secure_card())
    pk, ttl = body["id"], django_settings.CONTENT_PENDING_PAYMENT_MINUTES
    inbox.deliver_new()
    second = {"license_type": exclusive.pk, "payment_method": "pm_card_visa"}
    assert (
        client_for(UserFactory(password=None)).post(buy_url(item), second, "json").status_code
        == 409
    )

    assert pending_licenses_release(now=later(pk, ttl - 1)) == 0  # still time to finish
    assert License.objects.filter(pk=pk, status=License.Status.PENDING).exists()

    after = later(pk, ttl + 1)
    assert pending_licenses_release(now=after) == 1
    assert not License.objects.filter(pk=pk).exists()
    intent = stripe.PaymentIntent.retrieve(body["payment"]["payment_intent"])
    assert (intent.status, intent.cancellation_reason) == ("canceled", "abandoned")
    events = inbox.deliver_new()  # payment_intent.canceled: nothing left to drop, no error
    assert "payment_intent.canceled" in {e["type"] for e in events}
    assert pending_licenses_release(now=after) == 0  # nothing left

    taken = client_for(UserFactory(password=None)).post(buy_url(item), second, "json")
    assert taken.status_code == 201 and taken.json()["status"] == "active"
    assert Transaction.objects.filter(source=SALE_SOURCE).count() == 1


def test_a_payment_completed_whose_event_never_came_is_activated_not_canceled(stripe_fake, inbox):
    lt = LicenseTypeFactory(amount=999)
    body = purchase(lt.item, lt, three_d_secure_card())
    inbox.deliver_new()
    stripe_fake.authenticate(
        body["payment"]["payment_intent"], client_secret=body["payment"]["client_secret"]
    )
    late = inbox.new()  # the success event is held back (an outage at our end)

    ttl = django_settings.CONTENT_PENDING_PAYMENT_MINUTES
    assert pending_licenses_release(now=later(body["id"], ttl + 1)) == 1

    license = License.objects.get(pk=body["id"])
    assert license.status == License.Status.ACTIVE
    assert stripe.PaymentIntent.retrieve(license.stripe_payment_intent_id).status == "succeeded"
    inbox.deliver(late)  # arrives at last: booked once
    assert Transaction.objects.filter(source=SALE_SOURCE).count() == 1
    assert not stripe.Refund.list(payment_intent=license.stripe_payment_intent_id).data


def test_stripe_unavailable_leaves_the_licence_for_the_next_run(stripe_fake, inbox):
    lt = LicenseTypeFactory(amount=999)
    body = purchase(lt.item, lt, three_d_secure_card())
    inbox.deliver_new()
    intent_id = body["payment"]["payment_intent"]
    after = later(body["id"], django_settings.CONTENT_PENDING_PAYMENT_MINUTES + 1)

    stripe_fake.fail_next("POST", f"/v1/payment_intents/{intent_id}/cancel", status=503, count=10)
    assert pending_licenses_release(now=after) == 0
    assert License.objects.filter(pk=body["id"], status=License.Status.PENDING).exists()

    stripe_fake.clear_faults()
    assert pending_licenses_release(now=after + timedelta(minutes=10)) == 1  # the next run
    assert not License.objects.filter(pk=body["id"]).exists()


def test_a_licence_whose_payment_was_never_created_is_dropped_after_the_wait(stripe_fake):
    ttl = django_settings.CONTENT_PENDING_PAYMENT_MINUTES
    orphan = LicenseFactory(status=License.Status.PENDING, issued_at=None)
    young = LicenseFactory(status=License.Status.PENDING, issued_at=None)
    License.objects.filter(pk=orphan.pk).update(
        created_at=young.created_at - timedelta(minutes=ttl + 5)
    )

    assert release_task.delay().get() == 1
    assert list(License.objects.values_list("pk", flat=True)) == [young.pk]


def test_the_release_runs_on_the_beat_schedule():
    entry = django_settings.CELERY_BEAT_SCHEDULE["content-pending-licenses-release"]
    assert entry["task"] == release_task.name
