"""What invoice, refund and dispute events post to the ledger.

Each service takes the Stripe object as the event carries it (a dict, already synced into
dj-stripe's mirror by the time a receiver calls us) and the event's ``created`` time, and is
idempotent on the Stripe ids involved: postings go through ``ledger_post`` /
``ledger_reverse_in_order`` with keys derived from Stripe ids (``stripe:invoice.paid:<in_…>``,
``stripe:refund:<re_…>``, ``stripe:dispute:<dp_…>``, ``stripe:dispute.won:<dp_…>``), so a
redelivered or reprocessed event has one effect.

Accounting (minor units, the invoice's currency):

- invoice paid: Dr ``asset.stripe_clearing`` ``amount_paid`` / Cr ``revenue.subscriptions``
  ``amount_paid - tax`` / Cr ``liability.sales_tax_payable`` ``tax`` (the tax line only when
  there is tax). An invoice we created for another stream names its revenue account in
  ``metadata.revenue_account`` (``revenue.api_usage`` for usage invoices), or its
  subscription does (``revenue.content`` for recurring content licences), instead; the
  content app then moves the creators' shares on to them (``content.billing``). Tax is
  what the invoice reports (``stripe_payloads.invoice_tax``; inclusive and exclusive alike,
  as both are inside ``amount_paid``), capped at ``amount_paid``.
  Invoices booked before tax went to the ledger keep their two-line posting.
- refund / dispute: the charge's invoice is found through its payment intent's invoice
  payment (``subscriptions.services.invoice_payments``; charges name no invoice at our API
  version); a partial reversal of that invoice posting (``ledger_reverse(amount=…)``),
  which spreads the amount over the posting's lines pro rata to what each has left (largest
  remainder), so revenue and tax are reversed in proportion and the parts add up to the
  refunded amount exactly.
- dispute won (``charge.dispute.funds_reinstated``, or ``charge.dispute.closed`` with status
  ``won``, whichever comes first): a posting with the dispute reversal's lines negated (Dr
  clearing / Cr revenue / Cr tax payable for the disputed amount), so every balance is back to
  where it was before the dispute. A later refund of that charge reverses what is left of the
  invoice posting first, then of this one.
- dispute lost (``charge.dispute.closed``, ``lost``): nothing more here; the reversal booked
  when the dispute opened stands.
- Stripe's fees (processing fees on charges, dispute fees and their return when won) are
  booked by ``subscriptions.services.stripe_fees`` from the balance transactions, not here
  (Dr ``expense.stripe_fees`` / ``expense.disputes``, Cr clearing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import stripe
from django.db import transaction
from djstripe import models as djm

from ledger.chart import SystemAccount
from ledger.models import Transaction
from ledger.services import Line, ledger_post, ledger_reverse_in_order, system_account
from revenue_site.money import apply_rate
from revenue_site.stripe_payloads import (
    dispute_is_inquiry,
    invoice_paid_at,
    invoice_tax,
    stripe_id,
    stripe_time,
)
from revenue_site.stripe_setup import stripe_api_key
from subscriptions.services.dunning import dunning_cases_recover
from subscriptions.services.invoice_payments import (
    charge_refund_list,
    invoice_id_for_charge,
    invoice_id_for_payment_intent,
)

logger = logging.getLogger(__name__)

INVOICE_PAID_SOURCE = "subscriptions.invoice_paid"
REFUND_SOURCE = "subscriptions.refund"
DISPUTE_SOURCE = "subscriptions.dispute"
DISPUTE_WON_SOURCE = "subscriptions.dispute_won"


class EffectNotReadyError(RuntimeError):
    """An event depends on one not processed yet (a refund before its invoice was paid).

    Raised so the event is retried later; nothing was written.
    """


# Revenue accounts an invoice may name in ``metadata.revenue_account`` (our own invoices for
# other streams), or its subscription in its own metadata (a recurring content licence's);
# anything else books as subscription revenue.
INVOICE_REVENUE_ACCOUNTS = frozenset(
    {
        SystemAccount.REVENUE_SUBSCRIPTIONS,
        SystemAccount.REVENUE_API_USAGE,
        SystemAccount.REVENUE_CONTENT,
    }
)


def _subscription_metadata(invoice: Mapping[str, Any]) -> Mapping[str, Any]:
    """The subscription's metadata as the invoice carries it (``parent.subscription_details``)."""
    parent = invoice.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, Mapping) else None
    metadata = details.get("metadata") if isinstance(details, Mapping) else None
    return metadata if isinstance(metadata, Mapping) else {}


def invoice_revenue_account(invoice: Mapping[str, Any]) -> SystemAccount:
    metadata = invoice.get("metadata")
    named = metadata.get("revenue_account") if isinstance(metadata, Mapping) else None
    if not named:
        named = _subscription_metadata(invoice).get("revenue_account")
    if named in INVOICE_REVENUE_ACCOUNTS:
        return SystemAccount(named)
    return SystemAccount.REVENUE_SUBSCRIPTIONS


def invoice_paid_key(invoice_id: str) -> str:
    return f"stripe:invoice.paid:{invoice_id}"


def dispute_key(dispute_id: str) -> str:
    return f"stripe:dispute:{dispute_id}"


def dispute_won_key(dispute_id: str) -> str:
    return f"stripe:dispute.won:{dispute_id}"


# --- invoice paid -------------------------------------------------------------------------
@transaction.atomic
def invoice_paid_record(*, invoice: Mapping[str, Any], occurred_at: datetime) -> Transaction | None:
    """Book a paid invoice's revenue and tax and mark its dunning case recovered.

    Posts Dr stripe clearing ``amount_paid`` / Cr revenue (``invoice_revenue_account``)
    ``amount_paid - tax`` /
    Cr sales tax payable ``tax``, once per invoice (key ``stripe:invoice.paid:<invoice id>``);
    returns the posting, or None when nothing was paid (trial and 100 %-off invoices). An open
    dunning case for the invoice becomes RECOVERED at ``occurred_at``.
    """
    invoice_id = stripe_id(invoice.get("id"))
    dunning_cases_recover(invoice_id=invoice_id, at=occurred_at)

    paid = int(invoice.get("amount_paid") or 0)
    if paid <= 0:
        return None
    # Not the deduplication (ledger_post's unique key is): an invoice booked before tax went
    # to the ledger has other lines, which ledger_post would refuse as a conflicting replay.
    booked = Transaction.objects.filter(
        source=INVOICE_PAID_SOURCE, idempotency_key=invoice_paid_key(invoice_id)
    ).first()
    if booked is not None:
        return booked
    tax = min(invoice_tax(invoice), paid)
    currency = str(invoice["currency"]).lower()
    lines = [Line.debit(system_account(SystemAccount.STRIPE_CLEARING), paid, currency)]
    if paid > tax:
        revenue = system_account(invoice_revenue_account(invoice))
        lines.append(Line.credit(revenue, paid - tax, currency))
    if tax > 0:
        lines.append(Line.credit(system_account(SystemAccount.SALES_TAX_PAYABLE), tax, currency))
    return ledger_post(
        idempotency_key=invoice_paid_key(invoice_id),
        source=INVOICE_PAID_SOURCE,
        lines=lines,
        memo=f"Invoice {invoice_id} paid by {stripe_id(invoice.get('customer'))}",
        posted_at=occurred_at,
    )


def _invoice_posting(invoice_id: str, *, occurred_at: datetime) -> Transaction:
    """The invoice's revenue posting; booked from the mirror if its event is still on the way.

    An invoice not mirrored yet is fetched and mirrored first (dj-stripe used to do that when
    it synced a charge naming its invoice; charges name none at our API version).
    """
    posting = Transaction.objects.filter(
        source=INVOICE_PAID_SOURCE, idempotency_key=invoice_paid_key(invoice_id)
    ).first()
    if posting is not None:
        return posting
    mirrored = djm.Invoice.objects.filter(id=invoice_id).values_list("stripe_data", flat=True)
    data = mirrored.first()
    if data is None:
        api_key = stripe_api_key()
        invoice = djm.Invoice.sync_from_stripe_data(
            stripe.Invoice.retrieve(invoice_id, api_key=api_key), api_key=api_key
        )
        data = invoice.stripe_data
    if data and data.get("status") == "paid":
        paid_at = invoice_paid_at(data) or occurred_at
        posting = invoice_paid_record(invoice=data, occurred_at=paid_at)
        if posting is not None:
            return posting
    raise EffectNotReadyError(f"invoice {invoice_id} has no revenue posting yet")


def _reinstatements(posting: Transaction) -> list[Transaction]:
    """Postings that booked back disputes on ``posting`` which the merchant won, oldest first."""
    disputes = posting.reversals.filter(source=DISPUTE_SOURCE).values_list(
        "idempotency_key", flat=True
    )
    keys = [dispute_won_key(key.removeprefix(dispute_key(""))) for key in disputes]
    if not keys:
        return []
    return list(
        Transaction.objects.filter(source=DISPUTE_WON_SOURCE, idempotency_key__in=keys).order_by(
            "pk"
        )
    )


def _reverse_part(
    *,
    posting: Transaction,
    amount: int,
    charged: int,
    source: str,
    key: str,
    memo: str,
    occurred_at: datetime,
) -> Transaction | None:
    """Reverse the share of ``posting`` that ``amount`` (of ``charged``, tax included) was.

    What is left of the invoice posting goes first, then what is left of the postings of won
    disputes on it (a refund after a won dispute); the first part carries ``key``, further
    parts ``<key>:<reinstatement key>``. Returns the first part.
    """
    existing = Transaction.objects.filter(source=source, idempotency_key=key).first()
    if existing is not None:
        return existing
    gross = sum(e for e in posting.entries.filter(amount__gt=0).values_list("amount", flat=True))
    share = amount if gross == charged else apply_rate(amount, Decimal(gross) / Decimal(charged))
    first, _ = ledger_reverse_in_order(
        transactions=[posting, *_reinstatements(posting)],
        amount=share,
        idempotency_key=key,
        source=source,
        memo=memo,
        posted_at=occurred_at,
    )
    if first is None:
        logger.warning("%s: nothing left of %s to reverse", key, posting)
    return first


# --- refunds and disputes -----------------------------------------------------------------
@transaction.atomic
def charge_refund_record(*, charge: Mapping[str, Any], occurred_at: datetime) -> list[Transaction]:
    """Reverse the invoice posting for each refund of ``charge`` not reversed yet.

    Each Stripe refund is posted once (key ``stripe:refund:<refund id>``), pro rata over the
    invoice posting. When the event does not list the refunds (API versions since 2022 leave
    ``refunds`` out unless expanded) they are listed from Stripe. Charges outside invoices are not
    subscription revenue: nothing to do. The invoice is the one the charge's payment intent
    paid (the invoice payment index; one Stripe lookup when it is not known yet). Raises
    EffectNotReadyError when the invoice's payment has not been booked and cannot be from
    the mirror yet.
    """
    if not charge.get("amount_refunded"):
        return []
    invoice_id = invoice_id_for_charge(charge=charge)
    if not invoice_id:
        return []
    posting = _invoice_posting(invoice_id, occurred_at=occurred_at)
    charge_id = stripe_id(charge.get("id"))
    charged = int(charge.get("amount") or 0)
    parts = [
        (f"stripe:refund:{r['id']}", int(r["amount"])) for r in charge_refund_list(charge=charge)
    ]
    done = []
    for key, amount in parts:
        reversal = _reverse_part(
            posting=posting,
            amount=amount,
            charged=charged,
            source=REFUND_SOURCE,
            key=key,
            memo=f"Refund on charge {charge_id} (invoice {invoice_id})",
            occurred_at=occurred_at,
        )
        if reversal is not None:
            done.append(reversal)
    return done


def _dispute_invoice_id(dispute: Mapping[str, Any]) -> str:
    """The invoice the disputed payment paid, through its payment intent ("" if none)."""
    charge_id = stripe_id(dispute.get("charge"))
    pi_id = stripe_id(dispute.get("payment_intent"))
    if not pi_id:
        data = djm.Charge.objects.filter(id=charge_id).values_list("stripe_data", flat=True).first()
        if data is None:
            data = stripe.Charge.retrieve(
                charge_id, api_key=stripe_api_key(dispute.get("livemode"))
            ).to_dict()
        pi_id = stripe_id(data.get("payment_intent"))
    return invoice_id_for_payment_intent(
        payment_intent_id=pi_id, charge_id=charge_id, livemode=dispute.get("livemode")
    )


@transaction.atomic
def dispute_record(*, dispute: Mapping[str, Any], occurred_at: datetime) -> Transaction | None:
    """Reverse the disputed amount of the charge's invoice posting (key ``stripe:dispute:<id>``).

    The funds leave Stripe's balance when the dispute opens (``charge.dispute.created``), or
    when an inquiry escalates (``charge.dispute.funds_withdrawn``; the key makes the two one).
    Returns the reversal (the existing one on a replay), or None for inquiries (no funds
    withdrawn), charges outside invoices and when nothing is left to reverse.
    """
    if dispute_is_inquiry(dispute):
        return None
    charge_id = stripe_id(dispute.get("charge"))
    invoice_id = _dispute_invoice_id(dispute)
    if not invoice_id:
        return None
    posting = _invoice_posting(invoice_id, occurred_at=occurred_at)
    charged = sum(e for e in posting.entries.filter(amount__gt=0).values_list("amount", flat=True))
    return _reverse_part(
        posting=posting,
        amount=int(dispute["amount"]),
        charged=charged,
        source=DISPUTE_SOURCE,
        key=dispute_key(dispute["id"]),
        memo=f"Dispute {dispute['id']} on charge {charge_id} (invoice {invoice_id})",
        occurred_at=occurred_at,
    )


@transaction.atomic
def dispute_won_record(*, dispute: Mapping[str, Any], occurred_at: datetime) -> Transaction | None:
    """Book back what a dispute the merchant won had reversed (key ``stripe:dispute.won:<id>``).

    Posts the dispute reversal's lines negated, so clearing, revenue and tax payable are back
    to their balances before the dispute; once per dispute, whichever of
    ``charge.dispute.funds_reinstated`` and ``charge.dispute.closed`` comes first. When the
    dispute's opening was not booked yet (events out of order) it is booked first, at the
    dispute's ``created``. Returns None when the dispute reversed nothing (a charge outside
    invoices, an invoice refunded in full before). Raises EffectNotReadyError like
    ``dispute_record``.
    """
    opened_at = stripe_time(dispute.get("created")) or occurred_at
    reversal = dispute_record(dispute=dispute, occurred_at=opened_at)
    if reversal is None:
        return None
    lines = [
        Line(entry.account, -entry.amount, entry.currency)
        for entry in reversal.entries.select_related("account").order_by("pk")
    ]
    return ledger_post(
        idempotency_key=dispute_won_key(dispute["id"]),
        source=DISPUTE_WON_SOURCE,
        lines=lines,
        memo=f"Dispute {dispute['id']} won: {reversal.memo}"[:500],
        posted_at=occurred_at,
    )


@transaction.atomic
def dispute_closed_record(
    *, dispute: Mapping[str, Any], occurred_at: datetime
) -> Transaction | None:
    """A closed dispute: ``won`` books the reinstatement (``dispute_won_record``).

    ``lost`` needs nothing beyond the reversal booked when it opened (booked here if that
    event has not been processed yet); returns None. Other statuses (``warning_closed``: an
    inquiry) change nothing.
    """
    status = dispute.get("status")
    if status == "won":
        return dispute_won_record(dispute=dispute, occurred_at=occurred_at)
    if status == "lost":
        dispute_record(
            dispute=dispute, occurred_at=stripe_time(dispute.get("created")) or occurred_at
        )
    return None
