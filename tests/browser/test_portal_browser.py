"""The affiliate portal in a real browser: sign up, staff approval, log in, dashboard, links,
CSV export, a phone-sized dashboard screenshot, and another affiliate's commission → 404."""

from __future__ import annotations

from pathlib import Path

import pytest

from accounts.models import User
from affiliates.models import Affiliate, ReferralLink
from affiliates.services.applications import affiliate_approve
from tests.affiliates.factories import (
    AffiliateFactory,
    CommissionFactory,
    ProgramFactory,
    ReferralFactory,
)
from tests.browser.conftest import ARTIFACTS

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-Passw0rd-for-portal!"


def _log_in(page, base, email):
    page.goto(f"{base}/portal/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_affiliate_signs_up_is_approved_and_uses_the_portal(live_server, page, browser):
    program = ProgramFactory(name="Partners")
    base = live_server.url

    page.goto(f"{base}/portal/signup/")
    page.fill("input[name=name]", "Ann Affiliate")
    page.fill("input[name=email]", "ann@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.select_option("select[name=program]", str(program.pk))
    page.fill("input[name=website]", "https://ann.example")
    page.fill("textarea[name=promotion_plan]", "A weekly newsletter")
    page.click("button[type=submit]")
    page.wait_for_selector("text=pending review")

    affiliate = Affiliate.objects.get(user__email="ann@example.com")
    staff = User.objects.create_superuser(email="boss@example.com", password=PASSWORD)
    affiliate_approve(affiliate=affiliate, actor=staff)

    # log out, log back in
    page.click("header button[type=submit]")
    page.wait_for_selector("input[name=username]")
    _log_in(page, base, "ann@example.com")
    page.wait_for_selector("#stat-clicks")
    assert page.inner_text("#stat-clicks") == "0"
    assert page.locator("svg rect.bar-clicks").count() == 90

    page.click("nav >> text=Links")
    page.fill("input[name=campaign]", "spring-sale")
    page.fill("input[name=landing_path]", "/pricing")
    page.click("form.card button[type=submit]")
    page.wait_for_selector("text=spring-sale")
    link = ReferralLink.objects.get(affiliate=affiliate, campaign="spring-sale")
    assert page.locator(f"code.link-url:has-text('/r/{link.code}')").count() == 1
    assert page.locator("#links tbody tr").count() == 2  # the first link from approval too

    CommissionFactory(
        referral=ReferralFactory(affiliate=affiliate), stripe_invoice_id="in_browser", amount=1234
    )
    page.click("nav >> text=Commissions")
    page.wait_for_selector("text=in_browser")
    with page.expect_download() as download_info:
        page.click("#csv-export")
    download = download_info.value
    content = Path(download.path()).read_text(encoding="utf-8")
    assert "in_browser" in content
    assert content.splitlines()[0].startswith("id,invoice,paid_at,status")

    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    try:
        mobile = phone.new_page()
        _log_in(mobile, base, "ann@example.com")
        mobile.wait_for_selector("#stat-clicks")
        # Nothing overflows the phone's width.
        assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        mobile.screenshot(path=str(ARTIFACTS / "portal_dashboard_phone.png"), full_page=True)
    finally:
        phone.close()


def test_affiliate_gets_404_on_another_affiliates_commission(live_server, page):
    a = AffiliateFactory(user__email="a@example.com", user__password=PASSWORD)
    b = AffiliateFactory()
    theirs = CommissionFactory(referral=ReferralFactory(affiliate=b))
    mine = CommissionFactory(referral=ReferralFactory(affiliate=a))
    _log_in(page, live_server.url, "a@example.com")
    page.wait_for_selector("#stat-clicks")
    ok = page.goto(f"{live_server.url}/portal/commissions/{mine.pk}/")
    assert ok.status == 200
    missing = page.goto(f"{live_server.url}/portal/commissions/{theirs.pk}/")
    assert missing.status == 404
