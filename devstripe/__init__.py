"""devstripe: localstripe plus what the pinned Stripe API version needs. Development and tests only.

Start it with ``python -m devstripe --host 127.0.0.1 --port 8420`` and point
the app at it with ``STRIPE_API_HOST=http://127.0.0.1:8420``. Nothing in production code
imports this package.

Beyond Stripe's ``/v1`` API (see ``resources/`` for what is added to localstripe,
``idempotency.py`` for ``Idempotency-Key`` replays, ``disputes.py`` for disputes,
``test_clocks.py`` for Stripe test clocks and renewals):

- ``POST /_config/webhooks/<id>`` (``url``, ``secret``, optional ``events[]``) registers an
  endpoint; events are delivered to it in order, signed as Stripe signs them;
- ``DELETE /_config/webhooks/<id>`` removes it, ``DELETE /_config/webhooks`` removes all
  (endpoints survive a data flush); ``GET /_config/deliveries`` lists the
  deliveries attempted (event id, type, endpoint, HTTP status);
- ``DELETE /_config/data`` forgets every object, queued event and saved idempotent
  response;
- ``POST /_config/faults`` makes the next matching requests fail (before or after they run;
  ``faults.py``), ``DELETE /_config/faults`` forgets them;
- ``POST /_config/accounts/<id>/onboard`` completes (or, with ``payouts_enabled=false`` …,
  undoes) a connected account's onboarding and emits ``account.updated``; account links point
  at ``/_config/connect/onboarding/<token>``, the fake's stand-in for Stripe's hosted
  onboarding (``connect.py``);
- ``GET /_config/health`` answers ``{"status": "ok"}``.

How it extends localstripe: importing a module of this package changes nothing; each module
that changes localstripe's classes does so in its ``install()``, and :func:`install` runs them
once, in the order below, so a later extension wraps what an earlier one installed (the
invoice fix-up of ``tax`` wraps the one of ``resources.invoices``; ``disputes`` and
``errors`` wrap the payment methods' test cards of ``resources.payments``...).
``server.build_app()`` and ``python -m devstripe`` call it.
"""

from __future__ import annotations

from importlib import import_module

# The extensions, in the order they are applied.
EXTENSIONS = (
    "resources.base",  # time (test clocks), events, export and expand
    "resources.catalog",  # products, prices, plans
    "resources.invoices",  # invoices, lines, invoice payments, customer credit
    "resources.customers",  # customers and payment methods as Stripe renders them
    "resources.payments",  # charges, payment intents, payment methods, refunds
    "resources.subscriptions",  # multi-item subscriptions and their items
    "resources.prorations",  # prorations on mid-period changes
    "resources.invoice_items",  # invoice items, manual invoices, finalizing
    "resources",  # the state file
    "disputes",  # the dispute test card and disputes
    "balance",  # balance transactions and the balance
    "errors",  # Stripe's error bodies, test cards and declines
    "payouts",  # payouts and the platform's bank accounts
    "tax",  # tax rates on invoices and lines
    "test_clocks",  # test clocks and customers on them
)

_installed = False


def install() -> None:
    """Apply every extension to localstripe, once, in :data:`EXTENSIONS` order."""
    global _installed
    if _installed:
        return
    for name in EXTENSIONS:
        import_module(f"{__name__}.{name}").install()
    _installed = True
