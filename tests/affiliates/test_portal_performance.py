from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.accounts.factories import StaffUserFactory, UserFactory
from tests.affiliates.factories import (
    AffiliateFactory,
    ClickFactory,
    CommissionFactory,
    ProgramFactory,
    ReferralFactory,
    ReferralLinkFactory,
)

pytestmark = pytest.mark.django_db

URL = "/admin/affiliates/performance/"


def test_requires_staff(client):
    assert client.get(URL).status_code == 302
    client.force_login(UserFactory())
    assert client.get(URL).status_code == 302


def test_funnel_per_program_in_range(client, django_assert_max_num_queries):
    now = timezone.now()
    a = AffiliateFactory(program=ProgramFactory(name="Alpha"))
    b = AffiliateFactory(program=ProgramFactory(name="Beta"))
    ClickFactory.create_batch(4, link=ReferralLinkFactory(affiliate=a))
    ClickFactory(link=ReferralLinkFactory(affiliate=a), clicked_at=now - timedelta(days=100))
    ref = ReferralFactory(affiliate=a)
    ReferralFactory(affiliate=a)
    CommissionFactory(referral=ref, base_amount=10000, amount=2000, reversed_amount=500)
    CommissionFactory(referral=ref, base_amount=5000, amount=1000, currency="eur")
    CommissionFactory(
        referral=ReferralFactory(affiliate=b),
        base_amount=999,
        paid_at_invoice=now - timedelta(days=100),
    )
    client.force_login(StaffUserFactory())
    with django_assert_max_num_queries(12):
        response = client.get(URL)
    assert response.status_code == 200
    rows = {r["perf"].program.name: r for r in response.context["rows"]}
    alpha = rows["Alpha"]["perf"]
    assert (alpha.clicks, alpha.referrals, alpha.conversions) == (4, 2, 1)
    assert alpha.revenue == {"usd": 10000, "eur": 5000}
    assert alpha.commissions == {"usd": 1500, "eur": 1000}
    beta = rows["Beta"]["perf"]
    assert (beta.clicks, beta.referrals, beta.conversions, beta.revenue) == (0, 1, 0, {})
    assert "$100.00" in response.content.decode()

    old = (now - timedelta(days=100)).date()
    response = client.get(URL, {"date_from": old.isoformat(), "date_to": old.isoformat()})
    rows = {r["perf"].program.name: r["perf"] for r in response.context["rows"]}
    assert rows["Alpha"].clicks == 1
    assert rows["Beta"].revenue == {"usd": 999}


def test_bad_range_shows_error(client):
    client.force_login(StaffUserFactory())
    response = client.get(URL, {"date_from": "2026-02-01", "date_to": "2026-01-01"})
    assert response.status_code == 200
    assert response.context["rows"] == []
    assert "after the end date" in response.content.decode()
