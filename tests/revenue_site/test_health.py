"""GET /health contract (DESIGN.md §5), against real dependencies and unreachable ones."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A throwaway Django process whose dependencies point at a closed port: no patching of our code.
_PROBE = """
import json, os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "revenue_site.settings")
django.setup()
from django.test import Client
response = Client().get("/health", HTTP_HOST="10.1.2.3")
print(json.dumps({"code": response.status_code, "body": response.json()}))
"""


def _health_in_subprocess(**overrides):
    env = {**os.environ, "DJANGO_DEBUG": "1", "DJANGO_LOG_LEVEL": "CRITICAL", **overrides}
    env.pop("DATABASE_URL", None) if "DATABASE_URL" not in overrides else None
    env.pop("REDIS_URL", None) if "REDIS_URL" not in overrides else None
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_health_reports_every_check(client, settings):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["service"] == "revenue-agent-system"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"] == "ok"
    expected_broker = "eager" if settings.CELERY_TASK_ALWAYS_EAGER else "ok"
    assert body["checks"]["broker"] == expected_broker
    assert "T" in body["timestamp"] and body["timestamp"].endswith("+00:00")
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_health_answers_platform_probes_that_use_an_unlisted_host(client):
    response = client.get("/health", HTTP_HOST="10.0.0.7:8000")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert client.get("/admin/login/", HTTP_HOST="10.0.0.7:8000").status_code == 400


def test_unreachable_database_gives_503_error():
    result = _health_in_subprocess(DATABASE_URL="postgres://postgres@127.0.0.1:1/nowhere")
    assert result["code"] == 503
    assert result["body"]["status"] == "error"
    assert result["body"]["checks"]["database"] == "error"


def test_unreachable_cache_and_broker_give_200_degraded(tmp_path):
    result = _health_in_subprocess(
        DATABASE_URL=f"sqlite:///{tmp_path / 'probe.sqlite3'}", REDIS_URL="redis://127.0.0.1:1/0"
    )
    assert result["code"] == 200
    assert result["body"]["status"] == "degraded"
    assert result["body"]["checks"] == {"database": "ok", "cache": "error", "broker": "error"}
