"""`make run`: the whole system on embedded defaults, one Ctrl-C to stop it.

Starts the local fake Stripe, migrates the SQLite database, serves Django on 127.0.0.1:8000,
registers a webhook endpoint with the fake Stripe (so it pushes signed events to us), seeds demo
data and prints the staff login. Celery runs eagerly in-process (no REDIS_URL). Development only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def _wait_for(url: str, *, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own loopback URL)
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s")


def _manage(*args: str, env: dict[str, str], capture: bool = False) -> str:
    result = subprocess.run(  # noqa: S603 (fixed argv, our own manage.py)
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        check=True,
        stdout=subprocess.PIPE if capture else None,
        text=True,
    )
    return result.stdout or ""


def main() -> None:
    port = os.environ.get("PORT", "8000")
    stripe_port = os.environ.get("DEVSTRIPE_PORT", "8420")
    env = dict(os.environ)
    env.setdefault("DJANGO_DEBUG", "1")
    env.setdefault("STRIPE_API_HOST", f"http://{HOST}:{stripe_port}")
    env.setdefault("DEVSTRIPE_STATE_FILE", str(BASE_DIR / ".run" / "devstripe.pickle"))
    env["PYTHONUNBUFFERED"] = "1"
    (BASE_DIR / ".run").mkdir(exist_ok=True)
    state_file = Path(env["DEVSTRIPE_STATE_FILE"])
    if "DATABASE_URL" not in env and not (BASE_DIR / "db.sqlite3").exists():
        # A new database starts a new fake Stripe: ids and idempotency keys of an old fake
        # would point at customers and subscriptions the new database never saw.
        state_file.unlink(missing_ok=True)

    children: list[subprocess.Popen[bytes]] = []

    def stop(*_: object) -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        fake = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "devstripe",
                "--host",
                HOST,
                "--port",
                stripe_port,
                "--state-file",
                env["DEVSTRIPE_STATE_FILE"],
            ],
            cwd=BASE_DIR,
            env=env,
        )
        children.append(fake)
        _wait_for(f"{env['STRIPE_API_HOST']}/v1/account", timeout=30, process=fake)
        print(f"fake Stripe on {env['STRIPE_API_HOST']}", flush=True)

        _manage("migrate", "--noinput", env=env)
        server = subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", "runserver", f"{HOST}:{port}", "--noreload"],
            cwd=BASE_DIR,
            env=env,
        )
        children.append(server)
        _wait_for(f"http://{HOST}:{port}/health", timeout=60, process=server)

        bootstrap = _manage(
            "stripe_bootstrap",
            "--webhook-url",
            f"http://{HOST}:{port}/stripe/webhook/",
            env=env,
            capture=True,
        )
        webhook = json.loads(bootstrap.strip().splitlines()[-1])
        print(f"webhooks from the fake Stripe go to {webhook['webhook_url']}", flush=True)
        _manage("seed_demo", env=env)

        from revenue_site.demo import DEMO_ADMIN_EMAIL, DEMO_PASSWORD

        print(
            "\n"
            f"  Revenue Agent System is running on http://{HOST}:{port}/\n"
            f"  Staff console: http://{HOST}:{port}/admin/\n"
            f"  Login: {DEMO_ADMIN_EMAIL} / {DEMO_PASSWORD}\n"
            f"  Affiliate portal: http://{HOST}:{port}/portal/  "
            f"(pat.partner@partners.example / {DEMO_PASSWORD}; try /r/demo-pat)\n"
            f"  API docs: http://{HOST}:{port}/api/docs/   Health: http://{HOST}:{port}/health\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        raise SystemExit("a child process exited; stopping")
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()


if __name__ == "__main__":
    main()
