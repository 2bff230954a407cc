"""The webhook inbox: every Stripe event we accepted, stored raw before any processing."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from djstripe import models as djm


class WebhookEvent(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    stripe_event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=128)
    livemode = models.BooleanField(default=False)
    stripe_created = models.DateTimeField(help_text="The event's `created` time at Stripe.")
    object_id = models.CharField(max_length=255, blank=True, help_text="data.object.id")
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        # Every event writes this row three times (insert, claim, done), and each write of a
        # changed status updates every index: only the indexes something reads. Plain B-trees,
        # declared here rather than with unique=/db_index= on the CharFields, which would add
        # a second varchar_pattern_ops index each for LIKE queries nothing makes. Status alone
        # is the leading column of the retry sweep's index.
        constraints = [
            models.UniqueConstraint(fields=["stripe_event_id"], name="webhookevent_stripe_id_uniq")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["type"], name="webhookevent_type_idx"),
            models.Index(fields=["object_id"], name="webhookevent_object_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.stripe_event_id} {self.type} ({self.status})"


class MirrorEvent(djm.Event):
    """dj-stripe's ``Event`` (the mirror's copy of a Stripe event) as the inbox writes it.

    A proxy: same table, same rows, same signals (dj-stripe sends them with
    ``sender=Event``). It exists to drop what dj-stripe's ``Event.process`` repeats on every
    event and the inbox already guarantees; see
    ``subscriptions.services.inbox.webhook_event_process``:

    - the owner account of events without an ``account`` (not Connect) is the account of the
      API key, which never changes: it is resolved once per process and API key instead of
      through a savepoint and two SELECTs per event (``Account.get_or_retrieve_for_api_key``);
    - ``store()`` inserts the row without dj-stripe's two existence SELECTs: the inbox's claim
      already makes one worker process an event at once, and a row that exists anyway (an
      event processed by dj-stripe's own view) is caught by the primary key.
    """

    # api_key -> the dj-stripe Account it belongs to (see _find_owner_account).
    _owner_accounts: ClassVar[dict[str, djm.Account]] = {}

    class Meta:
        proxy = True

    @classmethod
    def owner_cache_clear(cls) -> None:
        """Forget resolved owner accounts (after an Account row was deleted or replaced)."""
        cls._owner_accounts.clear()

    @classmethod
    def _find_owner_account(
        cls, data: Any, api_key: str | None = None, livemode: bool | None = None
    ) -> djm.Account | None:
        # Overrides dj-stripe's StripeModel._find_owner_account (2.11) for this model only.
        if not api_key or (isinstance(data, dict) and data.get("account")):
            return super()._find_owner_account(data, api_key=api_key, livemode=livemode)
        account = cls._owner_accounts.get(api_key)
        if account is None:
            account = super()._find_owner_account(data, api_key=api_key, livemode=livemode)
            if account is not None:
                cls._owner_accounts[api_key] = account
        return account

    @classmethod
    def store(cls, data: dict[str, Any], *, api_key: str) -> MirrorEvent:
        """Build the Event row from the raw event and INSERT it (no SELECT first).

        Raises IntegrityError when a row with this id exists (the caller's transaction is
        then unusable; see the inbox). Signals are not sent: call
        ``invoke_webhook_handlers()`` on the result.
        """
        event = cls(**cls._stripe_object_to_record(data, api_key=api_key))
        event._attach_objects_hook(cls, data, api_key=api_key)
        event.save(force_insert=True)
        return event
