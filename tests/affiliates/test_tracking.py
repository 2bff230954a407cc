"""GET /r/<code>: redirect, referral cookie, click recorded (sync and Redis-buffered)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from affiliates.models import Affiliate, Click, Program, ReferralLink
from affiliates.services import tracking
from affiliates.tasks.tracking import clicks_flush
from tests.affiliates.factories import ProgramFactory, ReferralLinkFactory

pytestmark = pytest.mark.django_db

ALLOWED = {"www.example.com", "example.com"}


def _host(location: str) -> str | None:
    return urlsplit(location).hostname


@pytest.fixture
def sync_clicks(settings):
    settings.REDIS_URL = ""


def test_redirect_sets_cookie_and_records_click(client, sync_clicks):
    link = ReferralLinkFactory(code="spring", campaign="spring-sale", sub_id="blog")
    response = client.get(
        "/r/spring",
        HTTP_USER_AGENT="Mozilla/5.0 " + "x" * 1000,
        HTTP_REFERER="https://blog.example.net/post",
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert (location.scheme, location.hostname, location.path) == (
        "https",
        "www.example.com",
        "/welcome",
    )
    params = parse_qs(location.query)
    assert params["utm_campaign"] == ["spring-sale"]
    assert params["sub_id"] == ["blog"]
    assert params["ref"] == ["spring"]

    click = Click.objects.get()
    assert click.link == link
    assert len(click.user_agent) == 400
    assert click.referrer == "https://blog.example.net/post"
    assert "203.0.113.9" not in click.ip_hash
    assert click.ip_hash == tracking.ip_hash("203.0.113.9")

    cookie = response.cookies[settings.AFFILIATE_REFERRAL_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["max-age"] == 30 * 86400
    parsed = tracking.referral_cookie_parse(cookie.value)
    assert parsed is not None
    assert (parsed.click_uid, parsed.code) == (click.click_uid, "spring")


def test_cookie_is_secure_when_not_debug(client, sync_clicks, settings):
    settings.DEBUG = False
    ReferralLinkFactory(code="sec")
    response = client.get("/r/sec")
    assert response.cookies[settings.AFFILIATE_REFERRAL_COOKIE]["secure"] is True


def test_landing_path_on_landing_host(client, sync_clicks):
    ReferralLinkFactory(code="pricing", landing_path="/pricing?plan=pro")
    location = urlsplit(client.get("/r/pricing")["Location"])
    assert (location.hostname, location.path) == ("www.example.com", "/pricing")
    assert parse_qs(location.query)["plan"] == ["pro"]


def test_absolute_landing_path_on_another_allowed_host(client, sync_clicks):
    ReferralLinkFactory(code="apex", landing_path="https://example.com/signup")
    location = urlsplit(client.get("/r/apex")["Location"])
    assert (location.hostname, location.path) == ("example.com", "/signup")


def test_http_landing_url_keeps_http(client, sync_clicks):
    program = ProgramFactory(landing_url="http://www.example.com/")
    ReferralLinkFactory(code="plain", affiliate__program=program)
    assert client.get("/r/plain")["Location"].startswith("http://www.example.com/")


@pytest.mark.parametrize(
    "setup",
    [
        "unknown",
        "inactive_link",
        "pending_affiliate",
        "suspended_affiliate",
        "inactive_program",
        "landing_host_not_allowed",
    ],
)
def test_unknown_or_disabled_is_404(client, sync_clicks, setup):
    if setup == "inactive_link":
        ReferralLinkFactory(code="c", is_active=False)
    elif setup == "pending_affiliate":
        ReferralLinkFactory(code="c", affiliate__status=Affiliate.Status.PENDING)
    elif setup == "suspended_affiliate":
        ReferralLinkFactory(code="c", affiliate__status=Affiliate.Status.SUSPENDED)
    elif setup == "inactive_program":
        ReferralLinkFactory(code="c", affiliate__program__is_active=False)
    elif setup == "landing_host_not_allowed":
        program = ProgramFactory(landing_url="https://evil.example/", allowed_hosts=["x.com"])
        ReferralLinkFactory(code="c", affiliate__program=program)
    response = client.get("/r/c")
    assert response.status_code == 404
    assert "Location" not in response
    assert settings.AFFILIATE_REFERRAL_COOKIE not in response.cookies
    assert Click.objects.count() == 0


OPEN_REDIRECT_PATHS = [
    "//evil.example",
    "//evil.example/path",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "https:evil.example",
    "https://evil.example/",
    "HTTPS://evil.example/",
    "http://www.example.com@evil.example/",
    "https://www.example.com.evil.example/",
    "%2F%2Fevil.example",
    "/%2F/evil.example",
    "%5C%5Cevil.example",
    "/%5Cevil.example",
    "/%252F%252Fevil.example",
    "/%2e%2e//evil.example",
    "/..//evil.example",
    "@evil.example",
    "/@evil.example",
    "javascript:alert(1)",
    "/javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/\tevil.example",
    "/\r\nLocation: https://evil.example/",
    "/%0d%0aLocation:%20https://evil.example/",
    "/?next=https://evil.example/&url=//evil.example",
    "/redirect?to=%2F%2Fevil.example",
    "/\u2215\u2215evil.example",  # division slashes
    "/\uff0f\uff0fevil.example",  # fullwidth solidus
    "https://ex\u0430mple.com/",  # Cyrillic a (IDN homograph)
    "https://xn--bcher-kva.example/",
    "https://b\u00fccher.example/",
    "https://evil.example\u3002com/",
    "https://www.example.com:443@evil.example/",
    "https://[::1]/",
    "https://127.0.0.1/",
]


@pytest.mark.parametrize("landing_path", OPEN_REDIRECT_PATHS)
def test_open_redirect_attempts_stay_on_allow_list(client, sync_clicks, landing_path):
    ReferralLinkFactory(code="attack", landing_path=landing_path)
    response = client.get("/r/attack?next=https://evil.example/&url=//evil.example")
    assert response.status_code == 302
    location = response["Location"]
    assert _host(location) in ALLOWED
    assert urlsplit(location).scheme == "https"
    assert "\r" not in location and "\n" not in location


@pytest.mark.parametrize(
    "code", ["..%2F..%2Fevil.example", "%2F%2Fevil.example", "evil.example", "a b"]
)
def test_code_cannot_redirect(client, sync_clicks, code):
    ReferralLinkFactory(code="real")
    assert client.get(f"/r/{code}").status_code == 404


@pytest.mark.parametrize("landing_url", ["https://evil.example/", "javascript:alert(1)", "//x"])
def test_program_landing_url_off_list_is_404(client, sync_clicks, landing_url):
    program = ProgramFactory(landing_url=landing_url)
    ReferralLinkFactory(code="p", affiliate__program=program)
    assert client.get("/r/p").status_code == 404


def _unsaved_link(landing_path: str) -> ReferralLink:
    # Plain constructors: a factory would hash a password per example.
    program = Program(landing_url="https://www.example.com/", allowed_hosts=sorted(ALLOWED))
    return ReferralLink(affiliate=Affiliate(program=program), code="h", landing_path=landing_path)


@hsettings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=60))
def test_landing_url_never_leaves_allow_list(text):
    for landing_path in (text, "/" + text, "https://www.example.com/" + text, "//" + text):
        location = tracking.landing_url_build(link=_unsaved_link(landing_path))
        assert location is not None
        parts = urlsplit(location)
        assert parts.hostname in ALLOWED
        assert parts.scheme == "https"
        assert parts.username is None and parts.port is None
        assert not any(ord(c) < 33 or ord(c) > 126 for c in location)


def test_tampered_cookie_is_rejected():
    from django.utils import timezone

    value = tracking.referral_cookie_value(click_uid="u" * 32, code="c", at=timezone.now())
    assert tracking.referral_cookie_parse(value) is not None
    assert tracking.referral_cookie_parse(value.replace(".c.", ".d.")) is None
    assert tracking.referral_cookie_parse("garbage") is None
    assert tracking.referral_cookie_parse(None) is None


# --- Redis buffering -------------------------------------------------------------------------


@pytest.fixture
def redis_buffer():
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    redis = tracking._redis()
    redis.delete(tracking.CLICK_BUFFER_KEY, tracking.CLICK_PROCESSING_KEY)
    yield redis
    redis.delete(tracking.CLICK_BUFFER_KEY, tracking.CLICK_PROCESSING_KEY)


def test_buffered_click_is_flushed_by_the_task(client, redis_buffer):
    link = ReferralLinkFactory(code="buf")
    for _ in range(5):
        assert client.get("/r/buf").status_code == 302
    assert Click.objects.count() == 0  # the redirect did not write
    assert redis_buffer.llen(tracking.CLICK_BUFFER_KEY) == 5
    assert clicks_flush.apply().get() == 5
    assert Click.objects.filter(link=link).count() == 5
    assert redis_buffer.llen(tracking.CLICK_BUFFER_KEY) == 0
    assert clicks_flush.apply().get() == 0
    assert Click.objects.count() == 5


def test_flush_recovers_a_batch_left_by_a_crash(client, redis_buffer):
    """A crash after the move and before the insert leaves the batch on the processing list."""
    ReferralLinkFactory(code="crash")
    for _ in range(3):
        client.get("/r/crash")
    redis_buffer.register_script(tracking._MOVE_BATCH_LUA)(
        keys=[tracking.CLICK_BUFFER_KEY, tracking.CLICK_PROCESSING_KEY], args=[2]
    )  # the crashed flush moved two clicks and died
    # ...and one of them had even been inserted before the crash
    first = json.loads(redis_buffer.lindex(tracking.CLICK_PROCESSING_KEY, 0))
    tracking._insert_batch([json.dumps(first).encode()])
    assert tracking.click_buffer_flush() == 3
    assert Click.objects.count() == 3
    assert redis_buffer.llen(tracking.CLICK_PROCESSING_KEY) == 0


def test_flush_in_batches(redis_buffer):
    link = ReferralLinkFactory()
    from django.utils import timezone

    for _ in range(25):
        tracking.click_record(
            link=link, ip="10.0.0.1", user_agent="", referrer="", at=timezone.now()
        )
    assert tracking.click_buffer_flush(batch_size=10) == 25
    assert Click.objects.count() == 25


# --- per-process link cache --------------------------------------------------------------------


@pytest.fixture
def link_cache(settings, sync_clicks):
    settings.AFFILIATE_LINK_CACHE_SECONDS = 60
    tracking.redirect_cache_clear()
    yield
    tracking.redirect_cache_clear()


def test_cached_link_skips_the_lookup(client, link_cache, django_assert_num_queries):
    ReferralLinkFactory(code="hot")
    with django_assert_num_queries(2):  # link lookup + click insert
        assert client.get("/r/hot").status_code == 302
    with django_assert_num_queries(1):  # click insert only
        assert client.get("/r/hot").status_code == 302
    assert Click.objects.count() == 2


def test_unknown_code_is_not_cached(client, link_cache):
    assert client.get("/r/later").status_code == 404
    ReferralLinkFactory(code="later")
    assert client.get("/r/later").status_code == 302


def test_attribution_ignores_the_redirect_cache(client, link_cache):
    from django.utils import timezone

    from affiliates.services.attribution import referral_attribute

    link = ReferralLinkFactory(code="stale")
    client.get("/r/stale")
    Affiliate.objects.filter(pk=link.affiliate_id).update(status=Affiliate.Status.SUSPENDED)
    cookie = client.cookies[settings.AFFILIATE_REFERRAL_COOKIE].value
    assert (
        referral_attribute(stripe_customer_id="c", cookie_value=cookie, at=timezone.now()) is None
    )
