"""The soak's load (``bench/soak.py`` runs it with ``locust --headless``): who calls what.

Five kinds of client, each a locust user class with a fixed number of users and a steady pace
(tasks per second per user), all against the one gunicorn:

- ``StripeSender``: signed Stripe webhooks (``t=…,v1=HMAC-SHA256(secret, "t.payload")``, as
  Stripe signs them, timestamped when sent), real events of the fake Stripe re-sent under new
  ids; one in twenty a re-delivery of an id already sent (answered as a duplicate).
- ``Visitor``: affiliate link redirects, licence verifications (one key in ten unknown), the
  public content and services catalogues, plans.
- ``ApiClient``: usage batches with an API key (one batch in ten re-sent: all duplicates) and the
  usage summary; a customer's token API (me, subscriptions, invoices, entitlements).
- ``Staff``: logged in through ``/admin/login/``; the dashboard and the changelists.
- ``Affiliate``: logged in through ``/portal/login/``; the portal pages and the affiliate API.

Every request goes as through the TLS proxy of a deployment: ``X-Forwarded-Proto: https`` (the
site is behind ``DJANGO_NUM_PROXIES=1``) and a client address in ``X-Forwarded-For``; the
session's ``Secure`` cookies are sent back over the plain-HTTP hop (see ``expect``).

Data comes from the JSON file named by ``SOAK_DATA`` (written by bench/soak.py). Every
response's endpoint name, status and time go to ``SOAK_OUT`` (JSON) when locust quits, so the
script computes exact percentiles; a response whose status is not the expected one is also a
locust failure (in its CSV).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import os
import random
import re
import secrets
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from locust import HttpUser, constant_throughput, events, task

with open(os.environ["SOAK_DATA"], encoding="utf-8") as _file:
    DATA: dict[str, Any] = json.load(_file)
RUN = os.environ.get("SOAK_RUN", secrets.token_hex(4))  # event and usage ids unique per run
# endpoint name -> status -> response times (ms)
TIMES: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
_counter = itertools.count()
random.seed(14)  # the same choices in the same order per user; gevent interleaves them freely
CSRF_INPUT = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


@events.request.add_listener
def _record(
    request_type: str, name: str, response_time: float, response: Any = None, **_: Any
) -> None:
    status = getattr(response, "status_code", 0) or 0  # 0: no response (connection error)
    TIMES[f"{request_type} {name}"][int(status)].append(response_time)


@events.quitting.add_listener
def _write(**_: Any) -> None:
    out = os.environ.get("SOAK_OUT")
    if out:
        with open(out, "w", encoding="utf-8") as file:
            json.dump({name: dict(by_status) for name, by_status in TIMES.items()}, file)


def sign(payload: bytes, secret: str) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``payload`` now."""
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


class _SoakUser(HttpUser):
    abstract = True

    def on_start(self) -> None:
        self.ip = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        self.client.headers.update(
            {"X-Forwarded-Proto": "https", "X-Forwarded-For": self.ip, "User-Agent": "soak"}
        )

    def expect(
        self, method: str, path: str, name: str, statuses: tuple[int, ...] = (200,), **kwargs: Any
    ) -> Any:
        with self.client.request(
            method, path, name=name, catch_response=True, allow_redirects=False, **kwargs
        ) as response:
            if response.status_code not in statuses:
                response.failure(f"status {response.status_code}, expected {statuses}")
        # The client stands where the TLS-terminating proxy does: the site (DEBUG off) marks its
        # session and CSRF cookies Secure, and they go back over the plain-HTTP hop all the same.
        for cookie in self.client.cookies:
            cookie.secure = False
        return response

    def login(self, path: str, email: str, password: str, field: str) -> None:
        """Log in through a Django login form (CSRF token from the page, Origin checked)."""
        page = self.expect("GET", path, name=f"{path} (login form)")
        match = CSRF_INPUT.search(page.content or b"")
        token = match.group(1).decode() if match else ""
        self.expect(
            "POST",
            path,
            name=f"{path} (log in)",
            statuses=(302,),
            data={field: email, "password": password, "csrfmiddlewaretoken": token},
            headers={"Origin": f"https://{self.client.base_url.split('://', 1)[1]}"},
        )


class StripeSender(_SoakUser):
    fixed_count = DATA["users"]["StripeSender"]
    wait_time = constant_throughput(DATA["pace"]["StripeSender"])

    def on_start(self) -> None:
        super().on_start()
        self.sent: list[str] = []

    @task
    def webhook(self) -> None:
        if self.sent and random.random() < 0.05:
            event_id = random.choice(self.sent)  # Stripe re-delivers: a duplicate
            template = DATA["events"][int(event_id.rsplit("_", 1)[1]) % len(DATA["events"])]
        else:
            n = next(_counter)
            event_id = f"evt_soak_{RUN}_{n}"
            template = DATA["events"][n % len(DATA["events"])]
            self.sent.append(event_id)
        event = copy.deepcopy(template)
        event["id"] = event_id
        body = json.dumps(event).encode()
        self.expect(
            "POST",
            DATA["webhook_path"],
            name="/stripe/webhook/<uuid>/",
            data=body,
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign(body, DATA["webhook_secret"]),
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
        )


class Visitor(_SoakUser):
    fixed_count = DATA["users"]["Visitor"]
    wait_time = constant_throughput(DATA["pace"]["Visitor"])

    @task(6)
    def click(self) -> None:
        code = random.choice(DATA["click_codes"])
        self.expect(
            "GET", f"/r/{code}", name="/r/<code>", statuses=(302,),
            headers={"Referer": "https://blog.example/post"},
        )  # fmt: skip

    @task(6)
    def licence_verify(self) -> None:
        if random.random() < 0.9:
            key = random.choice(DATA["licence_keys"])
        else:  # well-formed, never issued
            key = f"lk_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"
        self.expect(
            "GET", "/api/v1/content/licenses/verify", params={"key": key},
            name="/api/v1/content/licenses/verify",
            headers={"X-Forwarded-For": f"10.9.{random.randrange(256)}.{random.randrange(256)}"},
        )  # fmt: skip

    @task(2)
    def catalogue(self) -> None:
        self.expect("GET", "/api/v1/content/", name="/api/v1/content/")

    @task(1)
    def catalogue_item(self) -> None:
        item = random.choice(DATA["content_items"])
        self.expect("GET", f"/api/v1/content/{item}/", name="/api/v1/content/<id>/")

    @task(1)
    def listings(self) -> None:
        self.expect("GET", "/api/v1/marketplace/listings/", name="/api/v1/marketplace/listings/")

    @task(1)
    def plans(self) -> None:
        self.expect("GET", "/api/v1/plans/", name="/api/v1/plans/")


class ApiClient(_SoakUser):
    fixed_count = DATA["users"]["ApiClient"]
    wait_time = constant_throughput(DATA["pace"]["ApiClient"])

    def on_start(self) -> None:
        super().on_start()
        self.batches: list[bytes] = []
        customer = DATA["customer"]
        response = self.expect(
            "POST", "/api/v1/auth/token", name="/api/v1/auth/token",
            json={"email": customer["email"], "password": customer["password"]},
        )  # fmt: skip
        self.token = response.json().get("token", "") if response.status_code == 200 else ""

    @task(4)
    def usage_events(self) -> None:
        if self.batches and random.random() < 0.1:
            body = random.choice(self.batches)  # a client's retry: all duplicates
        else:
            n = next(_counter)
            now = datetime.now(tz=UTC)
            events_ = [
                {
                    "id": f"soak-{RUN}-{n}-{i}",
                    "metric": "api_calls",
                    "quantity": random.randrange(1, 20),
                    "timestamp": (now - timedelta(seconds=random.randrange(600)))
                    .isoformat()
                    .replace("+00:00", "Z"),
                    "properties": {"endpoint": f"/v1/things/{i % 7}"},
                }
                for i in range(DATA["usage_batch"])
            ]
            body = json.dumps({"events": events_}).encode()
            self.batches = [*self.batches[-20:], body]
        self.expect(
            "POST", "/api/v1/usage/events", name="/api/v1/usage/events", statuses=(202,),
            data=body,
            headers={"Authorization": f"Bearer {DATA['api_key']}",
                     "Content-Type": "application/json"},
        )  # fmt: skip

    @task(1)
    def usage_summary(self) -> None:
        now = datetime.now(tz=UTC)
        self.expect(
            "GET", "/api/v1/usage/summary", name="/api/v1/usage/summary",
            params={"metric": "api_calls", "start": (now - timedelta(days=7)).isoformat(),
                    "end": now.isoformat(), "group_by": "day"},
            headers={"Authorization": f"Bearer {DATA['api_key']}"},
        )  # fmt: skip

    @task(3)
    def token_api(self) -> None:
        path = random.choice(DATA["customer_paths"])
        self.expect("GET", path, name=path, headers={"Authorization": f"Token {self.token}"})


class Staff(_SoakUser):
    fixed_count = DATA["users"]["Staff"]
    wait_time = constant_throughput(DATA["pace"]["Staff"])

    def on_start(self) -> None:
        super().on_start()
        staff = DATA["staff"]
        self.login("/admin/login/", staff["email"], staff["password"], field="username")

    @task(1)
    def dashboard(self) -> None:
        self.expect("GET", "/admin/", name="/admin/ (dashboard)")

    @task(4)
    def changelist(self) -> None:
        path = random.choice(DATA["admin_paths"])
        self.expect("GET", path, name=path)


class Affiliate(_SoakUser):
    fixed_count = DATA["users"]["Affiliate"]
    wait_time = constant_throughput(DATA["pace"]["Affiliate"])

    def on_start(self) -> None:
        super().on_start()
        affiliate = DATA["affiliate"]
        self.login("/portal/login/", affiliate["email"], affiliate["password"], field="username")

    @task(3)
    def portal(self) -> None:
        path = random.choice(DATA["portal_paths"])
        self.expect("GET", path, name=path)

    @task(1)
    def affiliate_api(self) -> None:
        path = random.choice(DATA["affiliate_api_paths"])
        self.expect("GET", path, name=path)  # the portal's session authenticates
