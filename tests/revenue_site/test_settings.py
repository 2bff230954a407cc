"""Production settings: refuse to start without a secret, pass `check --deploy`."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args, **env_overrides):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "STRIPE_"))
    }
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_secret_key():
    result = _manage("check", DJANGO_DEBUG="0")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_check_deploy_is_clean_with_production_values():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="prod-" + "k3y" * 20,
        DJANGO_ALLOWED_HOSTS="revenue.example.com",
        STRIPE_SECRET_KEY="sk_live_" + "0" * 24,
        STRIPE_LIVE_MODE="1",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_debug_defaults_are_embedded_and_development_only():
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='revenue_site.settings';"
        "django.setup(); from django.conf import settings as s;"
        "print(s.DEBUG, s.CELERY_TASK_ALWAYS_EAGER, s.SECURE_SSL_REDIRECT,"
        " s.DATABASES['default']['ENGINE'], s.STRIPE_SECRET_KEY.startswith('sk_test_'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STRIPE_"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env["DJANGO_DEBUG"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "True",
        "True",
        "False",
        "django_prometheus.db.backends.sqlite3",
        "True",
    ]
