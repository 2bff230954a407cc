"""Demo data registry for `manage.py seed_demo`.

Each app that has demo data ships `<app>/demo.py` (and, for an app with several areas,
`<app>/demo_<area>.py`, e.g. `marketplace/demo_providers.py`) with `ORDER: int` and
`seed(*, out: Callable[[str], None]) -> None`. Seeders run by ORDER and must be idempotent:
running the command twice leaves the same data. Later apps join by adding their own module;
nothing here changes.
"""

from __future__ import annotations

import importlib
import os
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from django.apps import AppConfig, apps
from django.conf import settings

# The demo staff login that `make run` prints. Development only: seed_demo refuses live mode.
DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_PASSWORD = os.environ.get("DEMO_ADMIN_PASSWORD", "revenue-demo-2026")


def _demo_module_names(config: AppConfig) -> list[str]:
    names = [f"{config.name}.demo"]
    names += sorted(f"{config.name}.{path.stem}" for path in Path(config.path).glob("demo_*.py"))
    return names


def demo_modules() -> list[ModuleType]:
    modules = []
    for config in apps.get_app_configs():
        for name in _demo_module_names(config):
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise
                continue
            if callable(getattr(module, "seed", None)):
                modules.append(module)
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def seed_all(*, out: Callable[[str], None]) -> list[str]:
    """Run every app's seeder in order; returns the module names that ran."""
    ran = []
    for module in demo_modules():
        out(f"seeding {module.__name__}")
        module.seed(out=out)
        ran.append(module.__name__)
    return ran


def demo_connect_onboard(account_id: str) -> bool:
    """Complete a connected account's onboarding on the local fake Stripe, as pressing the
    button on its hosted page does (it emits ``account.updated``); Stripe transfers only to an
    onboarded account. Against a real Stripe test account there is no such shortcut: False."""
    host = getattr(settings, "STRIPE_API_HOST", "")
    if not host:
        return False
    url = f"{host.rstrip('/')}/_config/accounts/{urllib.parse.quote(account_id)}/onboard"
    request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - the configured fake
        return True
