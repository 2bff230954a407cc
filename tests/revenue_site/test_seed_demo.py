"""seed_demo against the fake Stripe: the demo catalog and customers, synced back, idempotent."""

import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.models import User
from affiliates.models import Affiliate, Click, Commission, Program, Referral, ReferralLink
from analytics.selectors import revenue_by_currency
from ledger.models import Payout, Transaction
from ledger.selectors import trial_balance
from marketplace import demo, usage_store
from marketplace.models import (
    ApiKey,
    ApiPlan,
    Meter,
    UsageChargeLine,
    UsagePeriodClose,
    month_bounds,
)
from tests.marketplace.helpers import api_calls as api_calls_meter


def _counts():
    return {
        "users": User.objects.count(),
        "products": djstripe_models.Product.objects.count(),
        "prices": djstripe_models.Price.objects.count(),
        "customers": djstripe_models.Customer.objects.count(),
        "subscriptions": djstripe_models.Subscription.objects.count(),
        "invoices": djstripe_models.Invoice.objects.count(),
        "programs": Program.objects.count(),
        "affiliates": Affiliate.objects.count(),
        "links": ReferralLink.objects.count(),
        "clicks": Click.objects.count(),
        "referrals": Referral.objects.count(),
        "commissions": Commission.objects.count(),
        "payouts": Payout.objects.count(),
        "api_keys": ApiKey.objects.count(),
        "api_plans": ApiPlan.objects.count(),
        "meters": Meter.objects.count(),
        "usage_closes": UsagePeriodClose.objects.count(),
        "usage_invoice_items": UsageChargeLine.objects.exclude(stripe_invoice_item_id="").count(),
    }


def _assert_api_billing(first):
    """Meters, the default plan, three API customers with a key each and three weeks of usage
    (rollups equal to a recount); last month's periods closed iff the weeks reach into it."""
    assert (first["meters"], first["api_plans"], first["api_keys"]) == (4, 1, 3)
    assert ApiPlan.objects.get(is_default=True).code == "payg"
    devon = User.objects.get(email="devon@api.demo.example")
    assert ApiKey.objects.filter(user=devon).count() == 1
    for user in User.objects.filter(api_keys__isnull=False):
        stored = usage_store.events_for_customer(customer_id=user.pk)
        assert len(stored) > 21 * 24
        totals = usage_store.rollup_totals(customer_id=user.pk)
        calls = api_calls_meter()
        assert totals[calls.pk]["sum"] == sum(e.quantity for e in stored if e.meter_id == calls.pk)
    three_weeks_ago = timezone.now() - timedelta(days=demo.DAYS)
    spans_last_month = month_bounds(three_weeks_ago)[0] < month_bounds(timezone.now())[0]
    assert (first["usage_closes"] == 3) is spans_last_month
    if spans_last_month:
        assert first["usage_invoice_items"] > 0
        assert set(UsagePeriodClose.objects.values_list("status", flat=True)) <= {
            "finalized",
            "paid",
            "nothing_to_bill",
        }


def test_seed_demo_builds_the_demo_business_once(stripe_fake):
    call_command("seed_demo", stdout=io.StringIO())
    first = _counts()
    call_command("seed_demo", stdout=io.StringIO())

    assert _counts() == first
    assert first["products"] == 3
    assert first["prices"] == 4
    assert first["customers"] == 10  # 8 subscribers, Devon (API only), a per-use licensee
    assert first["subscriptions"] == 8
    assert first["invoices"] >= 6  # the trial has none yet; the canceled one was paid first
    statuses = sorted(s.status for s in djstripe_models.Subscription.objects.all())
    assert statuses == ["active"] * 5 + ["canceled", "past_due", "trialing"]
    past_due = djstripe_models.Subscription.objects.get(stripe_data__status="past_due")
    assert past_due.customer.subscriber.email == "linus@demo.example"
    # The invoice names its subscription under parent at our API version (not dj-stripe's FK).
    invoice = djstripe_models.Invoice.objects.get(
        stripe_data__parent__subscription_details__subscription=past_due.id
    )
    assert invoice.status == "open"
    assert User.objects.get(email="admin@example.com").is_superuser
    assert Group.objects.get(name="Finance").user_set.filter(email="finance@example.com").exists()
    tiered = djstripe_models.Price.objects.get(lookup_key="demo_team_seats_monthly")
    assert tiered.billing_scheme == "tiered"
    assert [t["up_to"] for t in tiered.tiers] == [5, 20, None]
    # 1900 + 19000/12 + (5x1500 + 3x1200) + 3x1500 + 1900 (past due counts) in usd;
    # (60x7000 + 50000)/12 in eur. The trial and the canceled subscription count nothing.
    figures = {r.currency: (r.mrr, r.active_customers) for r in revenue_by_currency()}
    assert figures == {"usd": (20_983, 5), "eur": (39_167, 1)}
    # affiliates: two programs, one affiliate per status, commissions in every status, a paid
    # batch
    _assert_api_billing(first)
    assert first["programs"] == 2
    assert sorted(Affiliate.objects.values_list("status", flat=True)) == [
        "approved",
        "pending",
        "suspended",
    ]
    assert first["clicks"] > 0
    assert set(Commission.objects.values_list("status", flat=True)) == {
        "held",
        "approved",
        "paid",
        "reversed",
    }
    assert Payout.objects.filter(status="paid", batch__status="completed").exists()
    # Every demo money movement is in the ledger: commissions, the payout, the refund.
    assert set(trial_balance().values()) <= {0}
    for payout in Payout.objects.filter(status="paid"):
        assert Transaction.objects.filter(idempotency_key=f"payout:{payout.pk}").exists()
    for commission in Commission.objects.all():
        assert Transaction.objects.filter(
            idempotency_key=f"affiliate-commission:{commission.pk}"
        ).exists()


@pytest.mark.django_db
def test_seed_demo_refuses_live_mode_and_real_stripe_without_consent(settings):
    settings.STRIPE_LIVE_MODE = True
    with pytest.raises(CommandError, match="live mode"):
        call_command("seed_demo")
    settings.STRIPE_LIVE_MODE = False
    if hasattr(settings, "STRIPE_API_HOST"):
        del settings.STRIPE_API_HOST
    with pytest.raises(CommandError, match="--allow-real-stripe"):
        call_command("seed_demo")
