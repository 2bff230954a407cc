"""Demo data registry for `manage.py seed_demo`.

Each app that has demo data ships `<app>/demo.py` (and, for a part of an app built on its own,
`<app>/demo_<part>.py`) with `ORDER: int` and `seed(*, out: Callable[[str], None]) -> None`.
Seeders must be idempotent: running the command twice leaves the same data. Later apps join
by adding their own module; nothing here changes.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from types import ModuleType

from django.apps import apps

# The demo staff login that `make run` prints. Development only: seed_demo refuses live mode.
DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_PASSWORD = os.environ.get("DEMO_ADMIN_PASSWORD", "revenue-demo-2026")


def demo_modules() -> list[ModuleType]:
    modules = []
    for config in apps.get_app_configs():
        try:
            module = importlib.import_module(f"{config.name}.demo")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.demo":
                raise
            continue
        if callable(getattr(module, "seed", None)):
            modules.append(module)
    for config in apps.get_app_configs():
        for info in pkgutil.iter_modules([config.path]):
            if info.name.startswith("demo_"):
                part = importlib.import_module(f"{config.name}.{info.name}")
                if callable(getattr(part, "seed", None)):
                    modules.append(part)
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def seed_all(*, out: Callable[[str], None]) -> list[str]:
    """Run every app's seeder in order; returns the module names that ran."""
    ran = []
    for module in demo_modules():
        out(f"seeding {module.__name__}")
        module.seed(out=out)
        ran.append(module.__name__)
    return ran
