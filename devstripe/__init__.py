"""devstripe: localstripe plus what dj-stripe 2.11 needs. Development and tests only.

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
- ``GET /_config/health`` answers ``{"status": "ok"}``.
"""
