"""The payout engine shared by affiliates, creators and providers.

``payout_batch_run`` pays each payee of one type their *payable* balance as of the end of a
day (UTC): the current credit balance of their ledger payable account (so every earlier payout
and clawback counts, whenever it was posted: a batch for an earlier day can never pay the same
money again), minus what their app says is not payable as of that day (``withheld``: for
affiliates the net of commissions not approved by then, including any accrued later), when
that is at least the payee's minimum. A payee whose balance is negative (a clawback after a payout)
or below the minimum is not paid; the balance carries over and the next batch nets it —
the engine pays balances, not commission rows.

A batch is unique per (payee type, as_of), so re-running resumes it:

1. ``DRAFT``: the batch and its PENDING Payout rows are created in one transaction (payees
   without a payout method are left out and keep their balance). A payee paid through Stripe
   Connect whose onboarding is not complete (``PayeeProfile.onboarding_complete``: the
   connected account has payouts enabled) gets a SKIPPED payout with the reason in
   ``skip_reason``: nothing is transferred, the balance stays for the next batch (Stripe
   refuses a transfer to an account without an active ``transfers`` capability);
2. ``APPROVED`` by staff (admin action) or by ``payout_batch_run(execute=True)``;
3. ``EXECUTING``: each PENDING (or FAILED, retried) payout runs in its own transaction, locked:
   - a Connect payee whose onboarding is not complete (again: an ``account.updated`` may have
     restricted the account since the draft) is SKIPPED, never transferred to;
   - Stripe Connect: ``stripe.Transfer.create(..., idempotency_key=f"payout-<pk>:<acct>")``;
     a crash after Stripe answered but before our commit replays the same transfer, and a
     payout retried after a refusal (unknown account, fixed profile) gets a new key because the
     destination changed. Before asking, the batch's transfers to the account are listed and
     one made for this payout by an earlier attempt is taken (Stripe replays a 500 it kept
     under the key for 24 hours, then forgets the key). Booked Dr payee payable / Cr
     ``asset.stripe_clearing`` (the transfer leaves our Stripe balance at once);
   - PayPal / bank: the payout is PAID when the batch's CSV export is produced, i.e. when it is
     executed (finance uploads the file); booked Dr payee payable / Cr
     ``liability.payouts_in_transit`` until the bank or PayPal settles it;
   - the posting's key is ``payout:<pk>`` (source ``ledger.payout``);
   - Stripe refusals (an invalid request, e.g. an unknown account) mark the payout FAILED with
     Stripe's message; Stripe unavailable (connection error, 5xx, rate limit, our key refused)
     raises ``StripeUnavailable`` (``revenue_site.stripe_errors``) and leaves it PENDING for
     the next run;
4. ``COMPLETED`` when every payout is PAID or SKIPPED, ``FAILED`` ("completed with failures")
   otherwise;
   re-running a FAILED batch retries its failed payouts.

Apps plug in from their ``AppConfig.ready()`` with
``payee_type_register(payee_type, PayeeHooks(...))``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import stripe
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from ledger.chart import SystemAccount
from ledger.models import PayeeProfile, Payout, PayoutBatch
from ledger.selectors import payee_balance_list
from ledger.services import Line, account_for_payee, ledger_post, system_account
from revenue_site.money import from_minor
from revenue_site.stripe_errors import StripeUnavailable, stripe_failure
from revenue_site.stripe_setup import stripe_api_key

logger = logging.getLogger(__name__)

PAYOUT_SOURCE = "ledger.payout"
CSV_METHODS = (PayeeProfile.Method.PAYPAL, PayeeProfile.Method.BANK_CSV)


@dataclass(frozen=True)
class PayeeHooks:
    """How one payee type plugs into the engine.

    ``withheld(payee_ids=, as_of=)`` → {(payee_id, currency): minor units in the payable that
    are not payable yet}; ``minimum(payee_id)`` → the smallest payout; ``on_paid(payout=,
    as_of=)`` is called in the payout's transaction when it is PAID (e.g. mark rows paid).
    """

    withheld: Callable[..., dict[tuple[int, str], int]] | None = None
    minimum: Callable[[int], int] | None = None
    on_paid: Callable[..., Any] | None = None


_PAYEE_TYPES: dict[str, PayeeHooks] = {}


def payee_type_register(payee_type: str, hooks: PayeeHooks) -> None:
    _PAYEE_TYPES[payee_type] = hooks


def _hooks(payee_type: str) -> PayeeHooks:
    return _PAYEE_TYPES.get(payee_type, PayeeHooks())


class PayoutError(RuntimeError):
    """A batch is not in a state that allows the requested step."""


def batch_cutoff(batch: PayoutBatch) -> datetime:
    """The end of the batch's ``as_of`` day (UTC): balances up to it are paid."""
    return datetime.combine(batch.as_of, time.max, tzinfo=UTC)


def connect_not_ready(profile: PayeeProfile, method: str | None = None) -> str:
    """Why a payee paid through Stripe Connect (``method``, by default the profile's) cannot
    be transferred to now: "" when they can, or are paid another way."""
    if (method or profile.method) != PayeeProfile.Method.STRIPE_CONNECT:
        return ""
    if profile.stripe_account_id and profile.stripe_payouts_enabled:
        return ""
    account = profile.stripe_account_id or "no connected account"
    return (
        f"Stripe Connect onboarding is not complete ({account}: payouts not enabled); "
        "the balance is left for the next batch."
    )


def _minimum_for(payee_type: str, payee_id: int, minimum: Callable[[int], int] | int | None) -> int:
    if minimum is None:
        hook = _hooks(payee_type).minimum
        return hook(payee_id) if hook else 1
    return minimum(payee_id) if callable(minimum) else int(minimum)


@transaction.atomic
def _batch_create(
    *, payee_type: str, as_of: date, actor: User | None, minimum: Callable[[int], int] | int | None
) -> PayoutBatch:
    try:
        with transaction.atomic():
            batch = PayoutBatch.objects.create(payee_type=payee_type, as_of=as_of, created_by=actor)
    except IntegrityError:
        return PayoutBatch.objects.get(payee_type=payee_type, as_of=as_of)
    cutoff = batch_cutoff(batch)
    balances = payee_balance_list(payee_type=payee_type)
    ids = sorted({b.payee_id for b in balances})
    hook = _hooks(payee_type).withheld
    withheld = hook(payee_ids=ids, as_of=cutoff) if hook else {}
    profiles = {
        p.payee_id: p for p in PayeeProfile.objects.filter(payee_type=payee_type, payee_id__in=ids)
    }
    payouts = []
    for balance in balances:
        amount = balance.amount - withheld.get((balance.payee_id, balance.currency), 0)
        profile = profiles.get(balance.payee_id)
        if amount <= 0 or amount < _minimum_for(payee_type, balance.payee_id, minimum):
            continue
        if profile is None or not profile.method:
            logger.info(
                "%s %s has %s %s but no payout method",
                payee_type,
                balance.payee_id,
                amount,
                balance.currency,
            )
            continue
        skip_reason = connect_not_ready(profile)
        payouts.append(
            Payout(
                batch=batch,
                payee_type=payee_type,
                payee_id=balance.payee_id,
                amount=amount,
                currency=balance.currency,
                method=profile.method,
                status=Payout.Status.SKIPPED if skip_reason else Payout.Status.PENDING,
                skip_reason=skip_reason,
            )
        )
    Payout.objects.bulk_create(payouts)
    return batch


@transaction.atomic
def payout_batch_approve(*, batch: PayoutBatch, actor: User | None = None) -> PayoutBatch:
    """DRAFT → APPROVED (a no-op once approved or later). Returns the batch."""
    batch = PayoutBatch.objects.select_for_update().get(pk=batch.pk)
    if batch.status == PayoutBatch.Status.DRAFT:
        batch.status = PayoutBatch.Status.APPROVED
        batch.approved_at = timezone.now()
        batch.save(update_fields=["status", "approved_at"])
    return batch


def _destination(payout: Payout) -> PayeeProfile:
    return PayeeProfile.objects.get(payee_type=payout.payee_type, payee_id=payout.payee_id)


def _transfer_group(payout: Payout) -> str:
    return f"payout-batch-{payout.batch_id}"


def _transfer_made(payout: Payout, destination: str) -> Any:
    """The transfer an earlier attempt made for ``payout`` to ``destination``, if any.

    Stripe keeps a failed answer (a 500 after the transfer was made) under the idempotency key
    and replays it for 24 hours, then forgets the key: asking again under the same key can
    neither learn that the transfer exists nor, a day later, avoid making a second one. So
    the batch's transfers to the destination are looked at first (one list call per Connect
    payout executed)."""
    found = stripe.Transfer.list(
        transfer_group=_transfer_group(payout),
        destination=destination,
        limit=100,
        api_key=stripe_api_key(),
    )
    for transfer in found.auto_paging_iter():
        metadata = transfer.to_dict().get("metadata") or {}
        if metadata.get("payout") == str(payout.pk):
            return transfer
    return None


@transaction.atomic
def payout_execute(*, payout: Payout) -> Payout:
    """Pay one PENDING or FAILED payout (see the module docstring); PAID and SKIPPED ones are
    returned as is."""
    payout = Payout.objects.select_for_update().select_related("batch").get(pk=payout.pk)
    if payout.status in (Payout.Status.PAID, Payout.Status.SKIPPED):
        return payout
    profile = _destination(payout)
    now = timezone.now()
    skip_reason = connect_not_ready(profile, payout.method)
    if skip_reason:
        payout.status = Payout.Status.SKIPPED
        payout.skip_reason = skip_reason
        payout.save(update_fields=["status", "skip_reason"])
        return payout
    if payout.method == PayeeProfile.Method.STRIPE_CONNECT:
        destination = profile.stripe_account_id
        try:
            transfer = _transfer_made(payout, destination)
            if transfer is None:
                transfer = stripe.Transfer.create(
                    amount=payout.amount,
                    currency=payout.currency,
                    destination=destination,
                    description=f"Payout {payout.pk} ({payout.batch})",
                    metadata={"payout": str(payout.pk), "batch": str(payout.batch_id)},
                    transfer_group=_transfer_group(payout),
                    api_key=stripe_api_key(),
                    idempotency_key=f"{payout.idempotency_key}:{destination}",
                )
        except stripe.StripeError as exc:
            failure = stripe_failure(exc, param_fields={"destination": "stripe_account_id"})
            if isinstance(failure, StripeUnavailable):
                raise failure from exc  # not a refusal: stays PENDING, the retry replays the key
            payout.status = Payout.Status.FAILED
            payout.failure_message = failure.message[:2000]
            payout.save(update_fields=["status", "failure_message"])
            return payout
        payout.stripe_transfer_id = transfer.id
        payout.external_reference = destination
        credit = system_account(SystemAccount.STRIPE_CLEARING)
    else:
        payout.external_reference = f"csv:batch-{payout.batch_id}"
        credit = system_account(SystemAccount.PAYOUTS_IN_TRANSIT)
    ledger_post(
        idempotency_key=f"payout:{payout.pk}",
        source=PAYOUT_SOURCE,
        lines=[
            Line.debit(
                account_for_payee(payee_type=payout.payee_type, payee_id=payout.payee_id),
                payout.amount,
                payout.currency,
            ),
            Line.credit(credit, payout.amount, payout.currency),
        ],
        memo=f"Payout {payout.pk} to {payout.payee_type} {payout.payee_id} ({payout.method})",
        posted_at=now,
    )
    payout.status = Payout.Status.PAID
    payout.paid_at = now
    payout.failure_message = ""
    payout.save()
    hook = _hooks(payout.payee_type).on_paid
    if hook is not None:
        hook(payout=payout, as_of=batch_cutoff(payout.batch))
    return payout


def payout_batch_execute(*, batch: PayoutBatch) -> PayoutBatch:
    """Run an APPROVED (or interrupted EXECUTING, or FAILED) batch to COMPLETED / FAILED.

    Each payout commits on its own, so a crash mid-way leaves the paid ones PAID and the rest
    PENDING; running again resumes. Raises PayoutError for a DRAFT batch (approve it first).
    """
    with transaction.atomic():
        batch = PayoutBatch.objects.select_for_update().get(pk=batch.pk)
        if batch.status == PayoutBatch.Status.DRAFT:
            raise PayoutError(f"batch {batch.pk} is not approved")
        if batch.status == PayoutBatch.Status.COMPLETED:
            return batch
        batch.status = PayoutBatch.Status.EXECUTING
        batch.save(update_fields=["status"])
    done = (Payout.Status.PAID, Payout.Status.SKIPPED)
    todo = batch.payouts.exclude(status__in=done).order_by("pk")
    for payout in list(todo):
        payout_execute(payout=payout)
    with transaction.atomic():
        batch = PayoutBatch.objects.select_for_update().get(pk=batch.pk)
        unpaid = batch.payouts.exclude(status__in=done).exists()
        batch.status = PayoutBatch.Status.FAILED if unpaid else PayoutBatch.Status.COMPLETED
        batch.completed_at = timezone.now()
        batch.save(update_fields=["status", "completed_at"])
    return batch


def payout_batch_run(
    *,
    payee_type: str,
    as_of: date,
    actor: User | None = None,
    minimum: Callable[[int], int] | int | None = None,
    execute: bool = True,
) -> PayoutBatch:
    """Create (or resume) the batch for (payee_type, as_of); approve and execute it if asked.

    ``minimum`` defaults to the payee type's registered minimum. With ``execute=False`` the
    batch stays as it is (a new one is DRAFT) for staff to review, approve and execute.
    """
    batch = _batch_create(payee_type=payee_type, as_of=as_of, actor=actor, minimum=minimum)
    if not execute:
        return batch
    batch = payout_batch_approve(batch=batch, actor=actor)
    return payout_batch_execute(batch=batch)


def payout_batch_export_csv(*, batch: PayoutBatch) -> str:
    """The batch's PayPal / bank payouts as a PayPal mass-payout CSV.

    One row per payout: recipient (PayPal email, or the IBAN for bank payouts), amount in major
    units (``from_minor``), currency (upper case), note (the payout reference). No header row,
    as PayPal's upload expects.
    """
    payouts = list(batch.payouts.filter(method__in=CSV_METHODS).order_by("pk"))
    profiles = {
        p.payee_id: p
        for p in PayeeProfile.objects.filter(
            payee_type=batch.payee_type, payee_id__in=[p.payee_id for p in payouts]
        )
    }
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for payout in payouts:
        profile = profiles.get(payout.payee_id)
        if profile is None:
            continue
        recipient = (
            profile.paypal_email
            if payout.method == PayeeProfile.Method.PAYPAL
            else profile.bank_iban
        )
        writer.writerow(
            [
                recipient,
                str(from_minor(payout.amount, payout.currency)),
                payout.currency.upper(),
                f"{payout.idempotency_key} {batch.payee_type} payout as of {batch.as_of}",
            ]
        )
    return out.getvalue()
