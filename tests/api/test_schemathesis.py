"""The API keeps the promises of its OpenAPI schema (issue 14, section 3).

schemathesis reads /api/schema/ from the WSGI app, generates requests for every operation,
valid ones and invalid ones, and sends them as each kind of caller: anonymous, a signed-in
customer (a token; every operation), an affiliate, a creator, a provider and a staff member
(Finance) on their own parts of the API, and an API key (`Authorization: Bearer rk_…`) on the
usage endpoints. Each answer must be no server error, a status the schema documents for the
operation, the documented content type and body shape; a request the schema forbids must be
refused (4xx) and a request the schema allows must not be refused as invalid (400/422), but
for the few fields in CONTEXT_DEPENDENT_FIELDS.
Stripe calls go to the fake (`stripe_fake`).

Stateful: the schema's OpenAPI links (revenue_site.schema.openapi_links: each create links to
the operations on what it created) drive schemathesis' state machine as each role that creates
something, so the ids it uses are real: create a listing, then read, update, submit or delete
that listing. The same checks hold at every step, and some linked steps must succeed (2xx).

The number of examples per operation is small, and the same every run, so the file runs in a
few minutes and never flakes; SCHEMATHESIS_MAX_EXAMPLES=50 SCHEMATHESIS_RANDOM=1 searches harder.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.staff_groups import FINANCE
from tests.accounts.factories import StaffUserFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=False)]

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "4"))

# Fields whose value the schema cannot fully say. A schema-valid request may be refused with 400
# naming only these fields; a 400 naming any other field fails the test.
CONTEXT_DEPENDENT_FIELDS = {
    # ids of objects that must exist: Stripe Prices, PaymentMethods, coupons, referral codes,
    # marketplace categories; a Stripe Price id only on a recurring licence type
    "price",
    "stripe_price_id",
    "payment_method",
    "coupon",
    "referral_code",
    "category",
    # URLs that must point back at this site or an allowed origin (the request's host decides)
    "success_url",
    "cancel_url",
    "return_url",
    "refresh_url",
    # a checksum (IBAN), Stripe's list of supported countries, an e-mail not yet registered, an
    # expiry in the future (the clock)
    "iban",
    "bic",
    "country",
    # a landing path on our site (no "//", scheme, backslash, control or encoded slash)
    "landing_path",
    "email",
    "expires_at",
    # rules across fields that OpenAPI 3.0 cannot state: `end` on or after `start` (either may
    # be named; the analytics' cohorts span at most 60 months),
    # `price_max` at least `price_min`, the payout method's own details, a licence type's
    # pricing rules (content.models.LicenseType.clean: the amount above 0 unless priced per
    # use, a per-use rate for per-use pricing and for overage, overage only over a limit, no
    # term on a recurring licence, which kinds take which pricing; `limits` is a free object)
    "end",
    "start",
    "amount",
    "per_use_unit_amount",
    "term_days",
    "pricing",
    "overage",
    "limits",
    # the analytics' currency may be left out only when exactly one currency has data
    "currency",
    # co-creator shares: creators that exist, percentages that total exactly 100
    "shares",
    "price_max",
    "paypal_email",
    "stripe_account_id",
    "bank_account_name",
    "bank_iban",
    "bank_bic",
    # a usage event (refused by index, `events[3].metric`): the metric must be a meter staff
    # defined, the timestamp inside the open period (35 days back, 5 minutes ahead: the clock),
    # the quantity at most 6 decimal places (generated JSON numbers are binary floats, which
    # `multipleOf` cannot state exactly)
    "metric",
    "timestamp",
    "quantity",
    # a listing's packages taken together: one per tier, all in one currency (JSON Schema
    # cannot say "unique by tier" or "one currency across items"); refused as a list of
    # messages. A refusal of one package's own field comes by index and still fails the check.
    PACKAGES_TOGETHER := "packages (taken together)",
}


def _refused_fields(response: Any) -> set[str]:
    """The fields a 400 (or the usage API's 422) names, an event's index dropped."""
    fields = response.json().get("error", {}).get("fields", {})
    names = set()
    for name, errors in fields.items():
        if name == "packages" and isinstance(errors, list):
            names.add(PACKAGES_TOGETHER)
        else:
            names.add(re.sub(r"^events\[\d+\]\.", "", name))
    return names


def positive_data_accepted_unless_context_refuses(
    ctx: Any, response: Any, case: Any
) -> bool | None:
    """schemathesis' positive_data_acceptance, except for a 400 naming only
    CONTEXT_DEPENDENT_FIELDS (an unknown id or a foreign redirect URL)."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if response.status_code in (400, 422):
            refused = _refused_fields(response)
            if refused and refused <= CONTEXT_DEPENDENT_FIELDS:
                return None
        raise


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_accepted_unless_context_refuses,
]


def _load_schema() -> Any:
    from revenue_site.wsgi import application

    loaded = schemathesis.openapi.from_wsgi("/api/schema/", application)
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        # The caller's credential is ours to choose (anonymous or the customer's token), not a
        # generated Authorization header.
        with_security_parameters=False,
    )
    loaded.config.phases.update(phases=["examples", "fuzzing"])
    return loaded


schema = _load_schema()


@pytest.fixture
def _connections_kept_open() -> Iterator[None]:
    """schemathesis calls the WSGI app directly, and Django closes the database connection at
    the end of each request, which would close it under the test's transaction; Django's own
    test client keeps it open the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


# Each role runs the operations of its own part of the API (the customer runs them all): the
# role's profile exists and owns real objects, so lists and details answer with real rows.
ROLE_PATHS = {
    "anonymous": ("/api/",),
    "customer": ("/api/",),
    "affiliate": ("/api/v1/affiliate/",),
    "creator": ("/api/v1/creator/", "/api/v1/content/"),
    "provider": ("/api/v1/provider/", "/api/v1/marketplace/"),
    "staff": ("/api/v1/analytics/",),
    "api_key": ("/api/v1/usage/",),
}


def _make_role(role: str) -> Any:
    from content.services import creator_create
    from tests.affiliates.factories import AffiliateFactory, ReferralLinkFactory
    from tests.content.factories import ContentItemFactory, LicenseTypeFactory
    from tests.marketplace.factories import ListingFactory, ProviderFactory

    user: Any = StaffUserFactory() if role == "staff" else UserFactory()
    if role == "staff":
        user.groups.add(Group.objects.get(name=FINANCE))
    elif role == "affiliate":
        ReferralLinkFactory(affiliate=AffiliateFactory(user=user))
    elif role == "creator":
        creator = creator_create(user=user, display_name="Schema Creator")
        LicenseTypeFactory(item=ContentItemFactory(owner=creator))
    elif role == "provider":
        ListingFactory(provider=ProviderFactory(user=user))
    return user


@pytest.fixture(params=list(ROLE_PATHS))
def caller_headers(request: pytest.FixtureRequest, _connections_kept_open: None) -> dict[str, str]:
    role = request.param
    if not any(f" {prefix}" in request.node.name for prefix in ROLE_PATHS[role]):
        pytest.skip(f"not the {role}'s part of the API (the customer runs it)")
    request.getfixturevalue("stripe_fake")
    return _headers_for(role)


def _headers_for(role: str) -> dict[str, str]:
    if role == "anonymous":
        return {}
    from rest_framework.authtoken.models import Token

    from marketplace.services import api_key_create

    user = _make_role(role)
    if role == "api_key":
        key = api_key_create(user=user, name="schemathesis").key
        return {"Authorization": f"Bearer {key}"}
    return {"Authorization": f"Token {Token.objects.create(user=user).key}"}


def _rate_limits_clear() -> None:
    """Rate limits count in the cache and, some, in this process's memory."""
    from content.api_licensing import guessing
    from revenue_site.throttling import LocalPerIpRateThrottle

    cache.clear()
    LocalPerIpRateThrottle.counter.clear()
    guessing.blocks.clear()


def _call_and_validate(case: Any, headers: dict[str, str]) -> None:
    # Rate limits count in the cache; start every case with none spent so a 429 never hides
    # the answer under test.
    _rate_limits_clear()
    case.call_and_validate(headers=headers, checks=CHECKS)


HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    # The same cases every run (CI must not flake); SCHEMATHESIS_RANDOM=1 explores new ones.
    derandomize=os.environ.get("SCHEMATHESIS_RANDOM") != "1",
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@HYPOTHESIS
def test_api_keeps_its_schema(case: Any, caller_headers: dict[str, str]) -> None:
    _call_and_validate(case, caller_headers)


# --- stateful: follow the links ------------------------------------------------------------------

# Each role that creates something, and the operations its scenarios may use: the creates and
# what their links lead to. (A subscription or an order is created only from a real Stripe
# price or listing package, and a usage batch only for a meter staff defined within the open
# period, which generated data does not name: their links are in the schema, checked by
# test_creates_link_to_what_acts_on_what_they_created, but not walked here.)
STATEFUL_ROLES = {
    "customer": r"^/api/v1/api-keys/",
    "affiliate": r"^/api/v1/affiliate/links",
    "creator": r"^/api/v1/creator/content/",
    "provider": r"^/api/v1/provider/listings/",
}


@functools.cache
def _stateful_schema() -> Any:
    loaded = _load_schema()
    loaded.config.phases.update(phases=["stateful"])
    return loaded


STATEFUL = settings(
    max_examples=int(os.environ.get("SCHEMATHESIS_STATEFUL_EXAMPLES", "5")),
    stateful_step_count=8,
    derandomize=os.environ.get("SCHEMATHESIS_RANDOM") != "1",
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("role", list(STATEFUL_ROLES))
def test_links_lead_to_what_was_created(
    role: str, stripe_fake: Any, _connections_kept_open: None
) -> None:
    headers = _headers_for(role)
    category_id = None
    if role == "provider":
        from tests.marketplace.factories import CategoryFactory

        # A listing needs an existing category: a generated id would almost never name it
        # (and which ids exist depends on the tests run before), so creates name this one.
        category_id = CategoryFactory().pk
    linked_ok: list[str] = []
    base = _stateful_schema().include(path_regex=STATEFUL_ROLES[role]).as_state_machine()

    class Scenario(base):  # type: ignore[misc, valid-type]
        def before_call(self, case: Any) -> None:
            _rate_limits_clear()  # no rate limit spent: a 429 never hides the answer
            body = case.body
            if category_id is not None and isinstance(body, dict):
                category = body.get("category")
                # Only an id the schema allows: a negative case keeps what makes it invalid.
                if type(category) is int and category >= 1:
                    body["category"] = category_id

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def after_call(self, response: Any, case: Any) -> None:
            if os.environ.get("SCHEMATHESIS_TRACE"):
                print(case.method, case.path, case.path_parameters, response.status_code)
            if case.path_parameters and response.status_code < 300:
                linked_ok.append(f"{case.method} {case.path}")

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Scenario.run(settings=STATEFUL)
    # The links led somewhere real: a step on a created object answered 2xx.
    assert linked_ok, f"no linked operation succeeded as {role}"


def test_creates_link_to_what_acts_on_what_they_created() -> None:
    """The schema's links (revenue_site.schema.openapi_links), as a client reads them."""
    raw = schema.raw_schema
    links = {
        (path, method): response.get("links", {})
        for path, operations in raw["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict)
        for status, response in operation.get("responses", {}).items()
        if status in ("201", "202")
    }
    listing = links[("/api/v1/provider/listings/", "post")]
    assert listing["provider_listings_retrieve"]["parameters"] == {
        "listing_id": "$response.body#/id"
    }
    assert {"provider_listings_submit", "provider_listings_delete"} <= set(listing)
    license_type = links[("/api/v1/creator/content/{item_id}/license-types/", "post")]
    assert license_type["creator_license_types_update"]["parameters"] == {
        "item_id": "$request.path.item_id",
        "license_type_id": "$response.body#/id",
    }
    assert links[("/api/v1/subscriptions/", "post")]["v1_subscriptions_retrieve"]["parameters"] == {
        "subscription_id": "$response.body#/id"
    }
    assert links[("/api/v1/marketplace/orders/", "post")]["marketplace_orders_transition"][
        "parameters"
    ] == {"order_id": "$response.body#/id"}
    assert links[("/api/v1/usage/events", "post")]["usage_events_retrieve"]["parameters"] == {
        "event_id": "$request.body#/events/0/id"
    }
    assert links[("/api/v1/api-keys/", "post")]["api_keys_revoke"]["parameters"] == {
        "api_key_id": "$response.body#/id"
    }
    # every link names an operation of the schema
    operation_ids = {
        operation["operationId"]
        for operations in raw["paths"].values()
        for operation in operations.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    named = {link["operationId"] for group in links.values() for link in group.values()}
    assert named <= operation_ids
