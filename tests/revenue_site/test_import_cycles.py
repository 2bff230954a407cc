"""No two application modules import each other, directly (imports inside functions count).

A module-level pair fails at import time in one order only, and a function-level import that
closes a pair hides the same knot: both are reported. Imports are read with ``ast``, so the
check sees every module whether or not anything imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = (
    "accounts",
    "affiliates",
    "analytics",
    "content",
    "ledger",
    "marketplace",
    "revenue_site",
    "subscriptions",
)


def _modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules among ``modules`` that ``name`` imports (``from a import b`` is ``a.b`` when
    that is a module, else ``a``)."""
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: climb from this module's package
                package = here[: len(here) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                targets.append(child if child in modules else base)
    found = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def mutual_imports(root: Path, packages: tuple[str, ...]) -> list[tuple[str, str]]:
    """Pairs of modules under ``packages`` that import each other, sorted."""
    modules = _modules(root, packages)
    graph = {name: _imported(name, path, modules) for name, path in modules.items()}
    return sorted(
        {(min(a, b), max(a, b)) for a, imported in graph.items() for b in imported if a in graph[b]}
    )


def test_no_two_application_modules_import_each_other():
    assert mutual_imports(ROOT, APPS) == []


def test_the_check_finds_pairs_through_function_level_and_relative_imports(tmp_path):
    (tmp_path / "app" / "services").mkdir(parents=True)
    files = {
        "app/__init__.py": "",
        "app/tasks.py": "from app.services import inbox\n",
        "app/services/__init__.py": "",
        "app/services/inbox.py": "def enqueue():\n    from app import tasks\n",
        "app/services/billing.py": "from . import refunds\nimport app.models\n",
        "app/services/refunds.py": "from .billing import charge\n",
        "app/models.py": "from django.db import models\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)

    assert mutual_imports(tmp_path, ("app",)) == [
        ("app.services.billing", "app.services.refunds"),
        ("app.services.inbox", "app.tasks"),
    ]
