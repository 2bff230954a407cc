"""No secrets in logs (issue 14, section 3).

End-to-end flows run with every logger at DEBUG (stripe-python's client logging included) and
every record captured twice: raw, as the logging call made it, and as the console handler of
settings.LOGGING writes it (its filters, then the text and the JSON formatter). The flows:
sign-up and sign-in (API token, portal, a failed staff login), an affiliate click, a
subscription through the API and its Stripe events delivered to the webhook inbox signed with
the endpoint's secret, API key creation and usage ingestion with `Authorization: Bearer <key>`,
a licence purchase and its verification with the key in the query string (also on a mistyped
path, which Django logs as a 404 with the request), Stripe calls with the secret key, and a
card number sent to Stripe.

What must never be written: DJANGO_SECRET_KEY, STRIPE_SECRET_KEY, the webhook signing secret,
a full API key or licence key (the visible prefix may be), a password, an API token, a session
id, a card number. Our own code must not even log them raw; what other libraries log (stripe's
request details, Django's request objects) must come out of the handler redacted.

gunicorn's access log (`GET /…/verify?key=…` in its request line) goes through the same filter,
installed by gunicorn.conf.py: tested by running gunicorn as the Procfile does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.config
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import stripe
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from content.services import LICENSE_KEY_PREFIX_LENGTH
from revenue_site.log_redaction import REDACTED, redact
from tests.accounts.factories import DEFAULT_PASSWORD, StaffUserFactory
from tests.affiliates.factories import AffiliateFactory, ReferralLinkFactory
from tests.content.factories import ContentItemFactory, LicenseTypeFactory
from tests.marketplace.helpers import event
from tests.stripe_harness import SignedInbox
from tests.subscriptions.api_helpers import catalog  # noqa: F401 (fixture)

# Loggers of our own code: their records must hold no secret even before the filter.
OUR_LOGGERS = (
    "accounts",
    "affiliates",
    "analytics",
    "content",
    "ledger",
    "marketplace",
    "revenue_site",
    "subscriptions",
    "revenue",
)
CARD = "4242424242424242"


# --- the filter on its own ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        (
            "GET /api/v1/content/licenses/verify?key=lk_1a2b3c4d_Zx9-AbCdEfGhIj HTTP/1.1",
            "Zx9-AbCdEfGhIj",
            "/api/v1/content/licenses/verify?key=",
        ),
        (
            "Authorization: Bearer rk_live_0123456789abcdef_S3cr3t-S3cr3t_x",
            "S3cr3t-S3cr3t_x",
            "rk_live_0123456789abcdef_",
        ),
        ("licence lk_00ff00ff_Q1w2E3r4T5y6 used", "Q1w2E3r4T5y6", "lk_00ff00ff_"),
        ("api key rk_test_0123456789abcdef (prefix only)", "", "rk_test_0123456789abcdef"),
        ("Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "9944b0919", "Token "),
        ("key sk_live_51HqLyjWDarjtT1zdp7dc0123 sent", "51HqLyjWDarjtT1zdp7dc", "sk_live_"),
        ("rk_live_51HqLyjWDarjtT1zdp7dc01234567", "51HqLyjWDarjtT1zdp7dc", "rk_live_"),
        ("secret whsec_abc123DEF456ghi789", "abc123DEF456", "whsec_"),
        ("card[number]=4242424242424242&card[cvc]=123", CARD, "card[number]="),
        ("pan 4242 4242 4242 4242 seen", "4242 4242 4242 4242", "pan "),
        ("order 1234567890123 amount 4242424242424241", "", "4242424242424241"),
        ('{"email": "a@b.example", "password": "hunter2hunter2"}', "hunter2", '"email"'),
        ("username=a@b.example&password=hunter2hunter2", "hunter2", "username=a@b.example"),
        ("Cookie: sessionid=abcdef0123456789; csrftoken=xyz987", "abcdef0123456789", "Cookie"),
        ("<WSGIRequest: GET '/v?key=lk_abcd1234_secretsecret'>", "secretsecret", "/v?key="),
    ],
)
def test_redact(text, secret, kept):
    out = redact(text)
    if secret:
        assert secret not in out
        assert REDACTED in out
    else:
        assert out == text
    assert kept in out


def test_the_configured_secrets_are_redacted_whatever_they_look_like():
    text = f"boot with {settings.SECRET_KEY} and {settings.STRIPE_SECRET_KEY}"
    out = redact(text)
    assert settings.SECRET_KEY not in out
    assert settings.STRIPE_SECRET_KEY not in out


# --- capturing ---------------------------------------------------------------------------------


def _console_handler_parts() -> tuple[list[logging.Filter], dict[str, logging.Formatter]]:
    """The console handler's filters and both formatters, built from settings.LOGGING as
    dictConfig builds them."""
    config = json.loads(json.dumps(settings.LOGGING))
    configurator = logging.config.DictConfigurator(config)
    filters = [
        configurator.configure_filter(config["filters"][name])
        for name in config["handlers"]["console"]["filters"]
    ]
    formatters = {
        name: configurator.configure_formatter(config["formatters"][name])
        for name in ("text", "json")
    }
    return filters, formatters


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _raw_text(record: logging.LogRecord) -> str:
    """Everything a record holds as the logging call made it: message, args, extras,
    exception."""
    parts = [str(record.msg), repr(record.args)]
    with contextlib.suppress(Exception):
        parts.append(record.getMessage())
    parts += [repr(v) for k, v in record.__dict__.items() if k not in _STANDARD]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


@dataclass
class Captured:
    raw: list[tuple[str, str]] = field(default_factory=list)  # (logger, raw text)
    written: list[str] = field(default_factory=list)  # what the handler writes

    def leaks(self, secrets: dict[str, str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for what, secret in secrets.items():
            lines = [line for line in self.written if secret in line]
            lines += [f"raw {name}: {text}" for name, text in self.raw if secret in text]
            if lines:
                found[what] = [line[:300] for line in lines[:3]]
        return found


class _CaptureHandler(logging.Handler):
    def __init__(self, captured: Captured) -> None:
        super().__init__(level=logging.DEBUG)
        self.captured = captured
        self.console_filters, self.formatters = _console_handler_parts()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("factory"):
            return  # factory_boy's own debug lines (a test tool, never in the app)
        if record.name.split(".")[0] in OUR_LOGGERS:
            self.captured.raw.append((record.name, _raw_text(record)))
        copy = logging.makeLogRecord(dict(record.__dict__))
        for console_filter in self.console_filters:
            console_filter.filter(copy)
        for formatter in self.formatters.values():
            self.captured.written.append(formatter.format(copy))


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Every logger at DEBUG; the capture sees each record first, before any other handler's
    filter could change it."""
    found = Captured()
    handler = _CaptureHandler(found)
    loggers = [logging.getLogger()] + [
        logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
    ]
    levels = {lg: lg.level for lg in loggers}
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    not_propagating = [lg for lg in loggers if not lg.propagate]
    for lg in [logging.getLogger(), *not_propagating]:
        lg.handlers.insert(0, handler)
    try:
        yield found
    finally:
        for lg in [logging.getLogger(), *not_propagating]:
            lg.removeHandler(handler)
        for lg, level in levels.items():
            lg.setLevel(level)


# --- the flows ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_throttle_left() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
@pytest.mark.usefixtures("celery_eager")
def test_end_to_end_flows_write_no_secret(
    captured,
    stripe_fake,
    catalog,  # noqa: F811
    settings,
    django_capture_on_commit_callbacks,
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    secrets: dict[str, str] = {
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "STRIPE_SECRET_KEY": settings.STRIPE_SECRET_KEY,
        "card number": CARD,
        "factory password": DEFAULT_PASSWORD,
    }

    # Sign-up and sign-in: API sign-up and token, a wrong password, the portal, the console.
    password = "Sign-up pass 7f3a9c"
    wrong_password = "Wrong pass 0b1d2e"
    secrets |= {"sign-up password": password, "wrong password": wrong_password}
    api = APIClient()
    signup = api.post(
        "/api/v1/accounts/signup",
        {"email": "newbie@example.com", "password": password},
        format="json",
    )
    assert signup.status_code == 201, signup.content
    secrets["sign-up token"] = signup.json()["token"]
    assert (
        api.post(
            "/api/v1/auth/token",
            {"email": "newbie@example.com", "password": wrong_password},
            format="json",
        ).status_code
        == 401
    )
    token = api.post(
        "/api/v1/auth/token", {"email": "newbie@example.com", "password": password}, format="json"
    )
    assert token.status_code == 200, token.content
    secrets["API token"] = token.json()["token"]

    affiliate: Any = AffiliateFactory(status="approved")
    ReferralLinkFactory(affiliate=affiliate, code="logs")
    portal = Client()
    login = portal.post(
        "/portal/login/", {"username": affiliate.user.email, "password": DEFAULT_PASSWORD}
    )
    assert login.status_code == 302
    secrets["portal session id"] = portal.cookies[settings.SESSION_COOKIE_NAME].value
    staff: Any = StaffUserFactory()
    console = Client()
    console.post("/admin/login/", {"username": staff.email, "password": wrong_password})
    console.post("/admin/login/", {"username": staff.email, "password": DEFAULT_PASSWORD})
    secrets["console session id"] = console.cookies[settings.SESSION_COOKIE_NAME].value

    # An affiliate click, then a subscription through the API with its cookie; Stripe's
    # events to the webhook inbox, signed with the endpoint's secret.
    inbox = SignedInbox(APIClient(), django_capture_on_commit_callbacks)
    secrets["webhook signing secret"] = inbox.endpoint.secret
    inbox.new()  # earlier events (the catalog's) are not this flow's
    visitor = APIClient()
    assert visitor.get("/r/logs").status_code == 302
    visitor.credentials(HTTP_AUTHORIZATION=f"Token {secrets['API token']}")
    subscribed = visitor.post(
        "/api/v1/subscriptions/",
        {"price": catalog["basic"].stripe_price_id, "payment_method": "pm_card_visa"},
        format="json",
    )
    assert subscribed.status_code == 201, subscribed.content
    assert inbox.deliver_new()

    # A card number sent to Stripe (stripe-python logs its requests' parameters at DEBUG).
    stripe.PaymentMethod.create(
        type="card",
        card={"number": CARD, "exp_month": 12, "exp_year": 2035, "cvc": "314"},
    )

    # API keys: created (shown once), used for usage ingestion and the summary, a wrong one.
    created = visitor.post("/api/v1/api-keys/", {"name": "logs"}, format="json")
    assert created.status_code == 201, created.content
    api_key = created.json()["key"]
    prefix = created.json()["prefix"]
    secrets["API key"] = api_key
    secrets["API key secret part"] = api_key[len(prefix) + 1 :]
    metered = APIClient()
    metered.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    ingested = metered.post(
        "/api/v1/usage/events",
        {"events": [event("e1", 3)]},
        format="json",
    )
    assert ingested.status_code == 202, ingested.content
    assert metered.get("/api/v1/usage/summary", {"metric": "api_calls"}).status_code == 200
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION=f"Bearer {prefix}_notTheSecretAtAll0000")
    assert forged.get("/api/v1/usage/summary").status_code == 401

    # A licence: bought with a card, verified with its key in the query string (and on a
    # mistyped path: Django logs the 404 with the request, whose text is the whole URL).
    license_type: Any = LicenseTypeFactory(item=ContentItemFactory(), amount=1500)
    bought = visitor.post(
        f"/api/v1/content/{license_type.item.pk}/licenses/",
        {"license_type": license_type.pk, "payment_method": "pm_card_visa"},
        format="json",
    )
    assert bought.status_code == 201, bought.content
    license_key = bought.json()["key"]
    secrets["licence key"] = license_key
    # The secret is everything after the fixed-length prefix and its "_"; token_urlsafe can
    # itself hold "_", so splitting at the last "_" could leave a 1-character "secret".
    secrets["licence key secret part"] = license_key[LICENSE_KEY_PREFIX_LENGTH + 1 :]
    assert len(secrets["licence key secret part"]) >= 30
    anyone = APIClient()
    verified = anyone.get("/api/v1/content/licenses/verify", {"key": license_key})
    assert verified.json()["status"] == "valid", verified.content
    assert anyone.get("/api/v1/content/licenses/verify/", {"key": license_key}).status_code == 404

    # The capture saw the flows (not a vacuous pass): Django's 404 with its request, the
    # failed staff login, stripe-python's request log, our webhook inbox.
    written = "\n".join(captured.written)
    assert "Not Found: /api/v1/content/licenses/verify/" in written
    assert "/v1/payment_methods" in written
    assert any(name.startswith("accounts.security") for name, _ in captured.raw)
    assert captured.leaks(secrets) == {}


@pytest.mark.django_db
def test_a_request_logged_by_django_is_written_without_its_query_string_secrets(captured):
    """django.request passes the request object as `extra`; the JSON formatter writes its
    text, the full URL: GET …/verify?key=… (a 429 or a 404 on the licence endpoint)."""
    key = "lk_0011aabb_ThisIsTheSecretPart42"
    response = Client().get("/api/v1/content/licenses/verify/", {"key": key})
    assert response.status_code == 404
    written = [line for line in captured.written if "licenses/verify" in line]
    assert written
    assert any('"request"' in line for line in written)  # the JSON line carries the request
    assert not [line for line in written if "ThisIsTheSecretPart42" in line]


def test_an_exception_text_is_redacted(captured):
    try:
        raise ValueError(f"Stripe refused key {settings.STRIPE_SECRET_KEY} for card {CARD}")
    except ValueError:
        logging.getLogger("tests.secrets").exception("payment failed")
    written = [line for line in captured.written if "payment failed" in line]
    assert len(written) == 2  # text and JSON
    for line in written:
        assert "ValueError" in line
        assert settings.STRIPE_SECRET_KEY not in line
        assert CARD not in line


# --- gunicorn's access log ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_gunicorn_access_log_redacts_the_licence_key(tmp_path: Path):
    """gunicorn as the Procfile and the Dockerfile run it (`--access-logfile -`), from the
    project root, where it reads gunicorn.conf.py."""
    root = Path(settings.BASE_DIR)
    port = _free_port()
    key = "lk_99887766_GunicornMustNotLogThis"
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)
    log = tmp_path / "gunicorn.log"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                str(gunicorn),
                "revenue_site.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--access-logfile",
                "-",
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}/api/v1/content/licenses/verify?key={key}&x=1"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except urllib.error.HTTPError:
                break  # any answer: the request line is logged
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.3)
        time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    text = log.read_text()
    access = [line for line in text.splitlines() if "GET /api/v1/content/licenses/verify" in line]
    assert access, text[-2000:]
    assert "GunicornMustNotLogThis" not in text
    assert re.search(r"verify\?key=\[redacted\]&x=1", access[0]), access[0]
