"""Clicks past their retention become daily counts per link: every click figure (the
dashboard, the daily series, the links list, program performance, the staff console) is the
same before and after, the raw rows are gone, and pruning again changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from affiliates import selectors
from affiliates.models import Click, ClickDaily
from affiliates.services.retention import clicks_prune
from tests.affiliates.factories import AffiliateFactory, ClickFactory, ReferralLinkFactory

pytestmark = pytest.mark.django_db


def figures(affiliate, today):
    stats = selectors.affiliate_stats(affiliate=affiliate, days=400)
    links = {link.code: link.click_count for link in selectors.link_list(affiliate=affiliate)}
    performance = {
        p.program.pk: p.clicks
        for p in selectors.program_performance(date_from=today - timedelta(days=400), date_to=today)
    }
    series = {p.day: p.clicks for p in stats.series if p.clicks}
    return stats.clicks, links, performance, series


def test_old_clicks_are_rolled_up_per_day_and_every_figure_stays(settings, admin_client):
    settings.CLICK_RETENTION_DAYS = 180
    affiliate = AffiliateFactory()
    first, second = (
        ReferralLinkFactory(affiliate=affiliate),
        ReferralLinkFactory(affiliate=affiliate),
    )
    now = timezone.now()
    old_day = (now - timedelta(days=200)).replace(hour=10)
    for minutes in (0, 5, 50):  # three clicks on one old day
        ClickFactory(link=first, clicked_at=old_day + timedelta(minutes=minutes))
    ClickFactory(link=second, clicked_at=old_day - timedelta(days=3))
    ClickFactory(link=first, clicked_at=now - timedelta(days=2))  # recent: kept raw
    before = figures(affiliate, now.date())
    assert before[0] == 5

    assert clicks_prune(now=now, batch_size=2) == 4

    assert Click.objects.count() == 1
    assert sorted(ClickDaily.objects.values_list("link_id", "day", "clicks")) == sorted(
        [
            (first.pk, old_day.astimezone(UTC).date(), 3),
            (second.pk, (old_day - timedelta(days=3)).astimezone(UTC).date(), 1),
        ]
    )
    assert figures(affiliate, now.date()) == before
    assert clicks_prune(now=now) == 0
    # A click flushed late for a pruned day adds to that day's count.
    ClickFactory(link=first, clicked_at=old_day + timedelta(hours=1))
    assert clicks_prune(now=now) == 1
    assert ClickDaily.objects.get(link=first).clicks == 4
    assert figures(affiliate, now.date())[0] == 6
    # The staff console's links list counts them too.
    response = admin_client.get("/admin/affiliates/referrallink/")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('field-click_count">5<') == 1  # the first link: 4 rolled up + 1 raw
    assert page.count('field-click_count">1<') == 1


def test_the_cutoff_is_a_whole_utc_day():
    now = datetime(2026, 6, 15, 13, 0, tzinfo=UTC)
    link = ReferralLinkFactory()
    ClickFactory(link=link, clicked_at=datetime(2025, 12, 17, 23, 59, tzinfo=UTC))
    ClickFactory(link=link, clicked_at=datetime(2025, 12, 17, 0, 1, tzinfo=UTC))
    ClickFactory(link=link, clicked_at=datetime(2025, 12, 16, 23, 59, tzinfo=UTC))
    # 180 days before 2026-06-15 13:00 is 2025-12-17 13:00: days before 2025-12-17 go.
    assert clicks_prune(now=now) == 1
    assert Click.objects.count() == 2
