"""Changelists of the big tables (dj-stripe's subscription mirror, our subscription states, the
usage events) never count a whole table on PostgreSQL, and still render their rows.

A big table is simulated by its planner statistics: ``pg_class.reltuples`` set to millions
(inside the test's transaction, rolled back after it), which is what the paginator reads."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from djstripe import models as djm

from accounts.models import User
from analytics.models import MRRSnapshot
from marketplace import usage_store
from marketplace.models import Meter, UsageEvent
from revenue_site.admin import EstimatedCountPaginator
from subscriptions.models import SubscriptionState
from tests.accounts.factories import SuperuserFactory, UserFactory

pytestmark = pytest.mark.django_db

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row estimates are PostgreSQL's"
)


def whole_table_counts(queries: list[dict[str, str]], table: str) -> list[str]:
    """COUNT queries over `table` with neither a WHERE nor a LIMIT: a full count."""
    out = []
    for query in queries:
        sql = query["sql"]
        counts = re.search(r"\bCOUNT\(", sql, re.I) and f'"{table}"' in sql
        if counts and not re.search(r"\bWHERE\b|\bLIMIT\b", sql, re.I):
            out.append(sql)
    return out


def pretend_rows(table: str, rows: int) -> None:
    """The planner statistics of `table` (each partition of a partitioned one) say `rows`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(i.inhrelid::regclass::text) FROM pg_inherits i"
            " WHERE i.inhparent = %s::regclass",
            [table],
        )
        partitions = cursor.fetchone()[0] or []
        targets = partitions or [table]
        for name in targets:
            cursor.execute(
                "UPDATE pg_class SET reltuples = %s WHERE oid = %s::regclass",
                [rows // len(targets), name],
            )


def mirror_subscriptions(n: int) -> list[djm.Subscription]:
    now = timezone.now()
    out = []
    for i in range(n):
        subscriber = UserFactory(email=f"mirror{i}@example.com")
        customer = djm.Customer.objects.create(
            id=f"cus_scale{i}",
            livemode=False,
            created=now,
            email=subscriber.email,
            subscriber=subscriber,
            stripe_data={"id": f"cus_scale{i}", "object": "customer"},
        )
        out.append(
            djm.Subscription.objects.create(
                id=f"sub_scale{i}",
                livemode=False,
                created=now - timedelta(days=i),
                customer=customer,
                stripe_data={"id": f"sub_scale{i}", "object": "subscription", "status": "active"},
            )
        )
    return out


def states(n: int) -> None:
    now = timezone.now()
    SubscriptionState.objects.bulk_create(
        SubscriptionState(
            stripe_subscription_id=f"sub_state{i}",
            stripe_customer_id=f"cus_state{i // 2}",
            status="active" if i % 3 else "canceled",
            currency="usd",
            mrr=1000 * (i % 3),
            as_of=now,
        )
        for i in range(n)
    )


def events(customer: User, n: int, at: datetime) -> None:
    meter = Meter.objects.get(code="api_calls")
    usage_store.events_store(
        customer_id=customer.pk,
        events=[
            usage_store.NewEvent(
                event_id=f"scale-{i}",
                meter=meter,
                quantity=Decimal(1),
                timestamp=at - timedelta(minutes=i),
                properties={},
                counted=True,
                value_micros=1_000_000,
            )
            for i in range(n)
        ],
    )


@on_postgres
@pytest.mark.postgres
def test_the_subscription_mirror_changelist_shows_the_estimate_without_counting(client):
    subs = mirror_subscriptions(3)
    pretend_rows("djstripe_subscription", 1_000_000)
    client.force_login(SuperuserFactory())
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/djstripe/subscription/")
    assert response.status_code == 200
    assert whole_table_counts(queries.captured_queries, "djstripe_subscription") == []
    assert response.context["cl"].result_count == 1_000_000
    page = response.content.decode()
    assert all(sub.id in page for sub in subs)
    assert "mirror0@example.com" in page  # the customer column prints its subscriber


@on_postgres
@pytest.mark.postgres
def test_the_mirror_search_is_an_exact_id_match_counted_under_a_limit(client):
    subs = mirror_subscriptions(2)
    pretend_rows("djstripe_subscription", 1_000_000)
    client.force_login(SuperuserFactory())
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/djstripe/subscription/", {"q": subs[1].id})
    assert response.status_code == 200
    assert [s.id for s in response.context["cl"].result_list] == [subs[1].id]
    assert response.context["cl"].result_count == 1
    statements = [q["sql"] for q in queries.captured_queries]
    assert whole_table_counts(queries.captured_queries, "djstripe_subscription") == []
    assert not any("UPPER(" in sql and "djstripe_subscription" in sql for sql in statements)
    # an upper-case variant is another Stripe id: no match
    response = client.get("/admin/djstripe/subscription/", {"q": subs[1].id.upper()})
    assert response.context["cl"].result_count == 0


def test_the_subscription_mirror_changelist_does_not_query_per_row(
    client, django_assert_max_num_queries
):
    mirror_subscriptions(6)
    client.force_login(SuperuserFactory())
    # session, user, count, page (customers and subscribers joined): not one per row
    with django_assert_max_num_queries(6):
        response = client.get("/admin/djstripe/subscription/")
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 6


@on_postgres
@pytest.mark.postgres
def test_the_subscription_states_changelist_estimates_and_counts_filters_under_a_limit(client):
    states(9)
    pretend_rows("subscriptions_subscriptionstate", 1_000_000)
    client.force_login(SuperuserFactory())
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/subscriptions/subscriptionstate/")
    assert response.status_code == 200
    assert whole_table_counts(queries.captured_queries, "subscriptions_subscriptionstate") == []
    assert response.context["cl"].result_count == 1_000_000
    assert "sub_state8" in response.content.decode()
    # the filters' choices are fixed or come from the snapshots, not a DISTINCT over the table
    assert not [
        q["sql"]
        for q in queries.captured_queries
        if "DISTINCT" in q["sql"] and '"subscriptions_subscriptionstate"' in q["sql"]
    ]

    with CaptureQueriesContext(connection) as queries:
        response = client.get(
            "/admin/subscriptions/subscriptionstate/", {"status__exact": "canceled"}
        )
    assert response.status_code == 200
    assert response.context["cl"].result_count == 3  # exact: under the limit
    assert {s.stripe_subscription_id for s in response.context["cl"].result_list} == {
        "sub_state0",
        "sub_state3",
        "sub_state6",
    }
    assert any("LIMIT 10001" in q["sql"] and "COUNT(" in q["sql"] for q in queries.captured_queries)
    assert whole_table_counts(queries.captured_queries, "subscriptions_subscriptionstate") == []


def test_the_subscription_states_filter_by_currency(client):
    states(3)
    SubscriptionState.objects.filter(stripe_subscription_id="sub_state1").update(currency="eur")
    MRRSnapshot.objects.create(
        date=timezone.now().date(), currency="eur", mrr=0, active_customers=0
    )
    client.force_login(SuperuserFactory())
    response = client.get("/admin/subscriptions/subscriptionstate/", {"currency__exact": "eur"})
    assert response.status_code == 200
    assert [s.stripe_subscription_id for s in response.context["cl"].result_list] == ["sub_state1"]
    choices = [
        c["display"]
        for spec in response.context["cl"].filter_specs
        for c in spec.choices(response.context["cl"])
    ]
    assert "EUR" in choices and "trialing" in choices


@on_postgres
@pytest.mark.postgres
def test_the_usage_events_changelist_sums_the_partitions_estimates_and_filters_by_month(client):
    customer = UserFactory(email="events@example.com")
    now = timezone.now()
    events(customer, 5, now)
    pretend_rows(UsageEvent._meta.db_table, 10_000_000)
    client.force_login(SuperuserFactory())
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/marketplace/usageevent/")
    assert response.status_code == 200
    assert whole_table_counts(queries.captured_queries, UsageEvent._meta.db_table) == []
    assert abs(response.context["cl"].result_count - 10_000_000) < 100  # summed partitions
    page = response.content.decode()
    assert "scale-0" in page and "events@example.com" in page

    month = now.astimezone(UTC).strftime("%Y-%m")
    response = client.get("/admin/marketplace/usageevent/", {"month": month})
    ids = {e.event_id for e in response.context["cl"].result_list}
    in_month = {
        f"scale-{i}"
        for i in range(5)
        if (now - timedelta(minutes=i)).astimezone(UTC).strftime("%Y-%m") == month
    }
    assert ids == in_month
    assert response.context["cl"].result_count == len(in_month)

    # a customer's events, found through the customer (any case), in its index's order
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/marketplace/usageevent/", {"q": "Events@Example.com"})
    assert response.context["cl"].result_count == 5
    listed = [e.event_id for e in response.context["cl"].result_list]
    assert listed == ["scale-4", "scale-3", "scale-2", "scale-1", "scale-0"]
    page_query = queries.captured_queries[-1]["sql"]
    assert f'"customer_id" = {customer.pk}' in page_query
    response = client.get("/admin/marketplace/usageevent/", {"q": "nobody@example.com"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 0


def test_the_paginator_counts_exactly_off_postgresql_or_when_small():
    states(4)
    paginator = EstimatedCountPaginator(SubscriptionState.objects.order_by("pk"), 2)
    assert paginator.count == 4
    assert paginator.num_pages == 2
    filtered = EstimatedCountPaginator(
        SubscriptionState.objects.filter(status="canceled").order_by("pk"), 2
    )
    assert filtered.count == 2
