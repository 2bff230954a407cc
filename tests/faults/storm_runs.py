"""The final-state summary of the webhook storm test, and its in-order run (run A).

``storm_summary`` is what money and metrics depend on, by natural keys; ``storm_comparable``
turns it into JSON-safe sorted lists, so a summary made in another process compares equal.

``python -m tests.faults.storm_runs EVENTS_FILE ENDPOINT_UUID`` (the settings from the
environment: the database copy, the fake Stripe, no REDIS_URL so Celery runs eagerly) delivers
the events of EVENTS_FILE (a JSON list) once each, in order, through the webhook view, and
prints the summary as JSON: the in-order reference of the PostgreSQL storm.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from typing import Any

COMMISSION_PK = re.compile(r"(commission[:-])(\d+)")


def storm_summary() -> dict[str, Any]:
    """The final state that money and metrics depend on, independent of row ids and of when
    (wall clock) a row was written."""
    from affiliates.models import Commission, Referral
    from analytics.models import MRRMovement
    from content.models import License
    from ledger.models import Entry
    from marketplace.models import Order
    from subscriptions.models import SubscriptionState

    commission_keys = {
        str(
            c.pk
        ): f"{c.referral.stripe_customer_id}/{c.stripe_invoice_id}/{c.stripe_payment_intent_id}"
        for c in Commission.objects.select_related("referral")
    }

    def natural(key: str) -> str:  # commission row ids in posting keys differ between runs
        return COMMISSION_PK.sub(lambda m: m[1] + commission_keys.get(m[2], m[2]), key)

    entries = Counter(
        (
            e.transaction.source,
            natural(e.transaction.idempotency_key),
            e.account.code,
            e.amount,
            e.currency,
        )
        for e in Entry.objects.select_related("transaction", "account")
    )
    movements = Counter(
        (m.stripe_customer_id, m.stripe_subscription_id, m.kind, m.old_mrr, m.new_mrr, m.currency)
        for m in MRRMovement.objects.all()
    )
    states = sorted(
        SubscriptionState.objects.values_list("stripe_subscription_id", "status", "mrr", "as_of")
    )
    referrals = sorted(
        Referral.objects.values_list("stripe_customer_id", "affiliate__user__email", "source")
    )
    commissions = sorted(
        (
            c.referral.stripe_customer_id,
            c.stripe_invoice_id,
            c.stripe_payment_intent_id,
            c.base_amount,
            c.amount,
            c.currency,
            c.status,
            c.reversed_amount,
        )
        for c in Commission.objects.select_related("referral")
    )
    licenses = sorted(
        License.objects.values_list(
            "pk", "status", "suspended_by", "stripe_payment_intent_id", "amount"
        )
    )
    orders = sorted(
        Order.objects.values_list(
            "pk",
            "state",
            "stripe_payment_intent_id",
            "stripe_charge_id",
            "refunded_amount",
            "disputed_amount",
            "stripe_dispute_status",
        )
    )
    return {
        "entries": entries,
        "movements": movements,
        "subscription_states": states,
        "referrals": referrals,
        "commissions": commissions,
        "licenses": licenses,
        "orders": orders,
    }


def storm_diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    lines = []
    for name in a:
        if a[name] == b[name]:
            continue
        if isinstance(a[name], Counter):
            lines.append(f"{name}: only in order {sorted((a[name] - b[name]).items())}")
            lines.append(f"{name}: only shuffled {sorted((b[name] - a[name]).items())}")
        else:
            lines.append(f"{name}: only in order {sorted(set(a[name]) - set(b[name]))}")
            lines.append(f"{name}: only shuffled {sorted(set(b[name]) - set(a[name]))}")
    return "\n".join(lines)


def storm_comparable(summary: dict[str, Any]) -> dict[str, list[Any]]:
    """The summary as sorted JSON-safe lists (Counters as [key, count] pairs)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, int | str) or value is None:
            return value
        return str(value)

    out: dict[str, list[Any]] = {}
    for name, value in summary.items():
        rows = value.items() if isinstance(value, Counter) else value
        out[name] = sorted((plain(row) for row in rows), key=json.dumps)
    return out


def storm_diff_comparable(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> str:
    lines = []
    for name in a:
        if a[name] != b[name]:
            left = {json.dumps(r) for r in a[name]}
            right = {json.dumps(r) for r in b[name]}
            lines.append(f"{name}: only in order {sorted(left - right)}")
            lines.append(f"{name}: only shuffled {sorted(right - left)}")
    return "\n".join(lines)


def _in_order_main(events_file: str, endpoint_uuid: str) -> None:
    from django.test import Client
    from djstripe.models import WebhookEndpoint

    from tests.stripe_harness import sign_webhook_payload, webhook_path

    endpoint = WebhookEndpoint.objects.get(djstripe_uuid=endpoint_uuid)
    with open(events_file) as handle:
        events = json.load(handle)
    client = Client()
    for event in events:
        body = json.dumps(event).encode()
        response = client.post(
            webhook_path(endpoint),
            data=body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=sign_webhook_payload(body, endpoint.secret),
        )
        if response.status_code != 200:
            raise SystemExit(f"{event['id']}: {response.status_code} {response.content!r}")
    json.dump(storm_comparable(storm_summary()), sys.stdout)


if __name__ == "__main__":
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()
    _in_order_main(sys.argv[1], sys.argv[2])
