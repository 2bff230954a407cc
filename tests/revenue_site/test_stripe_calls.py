"""Every call our application makes to Stripe names its API key.

Nothing sets ``stripe.api_key`` globally in the application (keys come from dj-stripe's
settings, ``revenue_site.stripe_setup.stripe_api_key``); the test harness does set it, for the
tests' own calls, so a call that forgets its key passes every test and fails on a real
server (``make run`` caught one). This reads the code instead.
"""

from __future__ import annotations

import ast

from tests.revenue_site.test_import_cycles import APPS, ROOT  # the application packages

# Local computations that never reach Stripe's servers.
OFFLINE = {"WebhookSignature"}


def _stripe_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        chain, value = [], node.func
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        chain.reverse()
        if isinstance(value, ast.Name) and value.id == "stripe" and len(chain) >= 2:
            resource = next((part for part in chain if part[:1].isupper()), None)
            if resource and resource not in OFFLINE:
                yield node, "stripe." + ".".join(chain)


def test_every_stripe_call_in_the_application_passes_api_key():
    missing = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node, name in _stripe_calls(ast.parse(path.read_text())):
                if "api_key" not in {keyword.arg for keyword in node.keywords}:
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert missing == []
