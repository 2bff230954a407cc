"""The deploy files hold the contracts Docker, compose, Render and Heroku-style hosts rely on.

There is no Docker engine in CI or on dev machines, so these tests check what can be checked
without one: the YAML/JSON parses, the services and health checks exist, and the Dockerfile,
Procfile and render.yaml agree on the commands, the port and /health (DESIGN.md §4, §5).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

GUNICORN = "gunicorn revenue_site.wsgi --bind 0.0.0.0:$PORT --workers 2 --timeout 120"
WORKER = "celery -A revenue_site worker -l info"
BEAT = "celery -A revenue_site beat -l info"
MIGRATE = "python manage.py migrate --noinput"
APP_SERVICES = ("web", "worker", "beat")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _words(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def _dockerfile_cmd() -> str:
    """The CMD as the shell runs it (shell form), without the `exec` that makes it PID 1."""
    cmds = [arguments for keyword, arguments in _dockerfile_instructions() if keyword == "CMD"]
    assert cmds, "Dockerfile has no CMD"
    command = cmds[-1]
    if command.startswith("["):
        words = json.loads(command)
        assert words[:2] == ["sh", "-c"], "an exec-form CMD would not expand $PORT"
        command = words[2]
    return command.removeprefix("exec ").strip()


def _procfile() -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


# --- Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_python_311_slim_with_production_deps_only():
    instructions = _dockerfile_instructions()
    args = dict(
        arguments.split("=", 1)
        for keyword, arguments in instructions
        if keyword == "ARG" and "=" in arguments
    )
    stages = [arguments for keyword, arguments in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "builder and runtime stages expected"
    runtime_image = stages[-1].split()[0]
    runtime_image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], runtime_image)
    assert runtime_image == "python:3.11-slim"

    assert not [a for _, a in instructions if "requirements-dev" in a]
    runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
    assert "pip wheel" in runs and "-r requirements.txt" in runs
    assert "--no-index" in runs, "the runtime installs only the builder's wheels"


def test_dockerfile_runs_as_a_non_root_user():
    instructions = _dockerfile_instructions()
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users, "Dockerfile has no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    keywords = [keyword for keyword, _ in instructions]
    last_user = len(keywords) - 1 - keywords[::-1].index("USER")
    assert last_user < keywords.index("CMD")


def test_dockerfile_healthcheck_hits_health_with_python():
    checks = [
        arguments for keyword, arguments in _dockerfile_instructions() if keyword == "HEALTHCHECK"
    ]
    assert len(checks) == 1
    check = checks[0]
    assert " CMD " in f" {check} "
    assert re.search(r"/health(?![\w/])", check)
    assert "python" in check and "urllib" in check
    assert "curl" not in check


def test_dockerfile_exposes_port_8000_and_runs_gunicorn_on_port():
    instructions = _dockerfile_instructions()
    assert ("EXPOSE", "8000") in instructions
    envs = " ".join(arguments for keyword, arguments in instructions if keyword == "ENV")
    assert re.search(r"(^|\s)PORT=8000(\s|$)", envs)
    assert _dockerfile_cmd() == GUNICORN + " --access-logfile -"


def test_dockerfile_collects_static_with_a_build_only_secret_key():
    instructions = _dockerfile_instructions()
    collect = [a for k, a in instructions if k == "RUN" and "collectstatic" in a]
    assert len(collect) == 1
    assert "DJANGO_SECRET_KEY=" in collect[0]
    for keyword, arguments in instructions:
        if keyword in {"ENV", "ARG"}:
            assert "DJANGO_SECRET_KEY" not in arguments, "the build key must not be baked in"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env", "*.sqlite3", "staticfiles"} <= ignored


def test_dev_and_test_tools_stay_out_of_the_image_and_the_application():
    """The fake Stripe, tests and benchmarks are not shipped, and no shipped code imports them."""
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"devstripe", "tests", "bench"} <= ignored
    packages = [d for d in ROOT.iterdir() if (d / "__init__.py").exists() and d.name not in ignored]
    assert {"revenue_site", "subscriptions", "ledger"} <= {d.name for d in packages}
    shipped = [p for d in packages for p in d.rglob("*.py")]
    importers = [
        str(p.relative_to(ROOT))
        for p in shipped
        if re.search(r"^\s*(from|import)\s+devstripe\b", p.read_text(), re.MULTILINE)
    ]
    assert importers == []


# --- Procfile --------------------------------------------------------------------------------


def test_procfile_matches_the_dockerfile_and_runs_release_migrations():
    procfile = _procfile()
    assert procfile["web"] == _dockerfile_cmd()
    assert procfile["release"] == MIGRATE
    assert procfile["worker"] == WORKER
    assert procfile["beat"] == BEAT


# --- docker-compose.yml ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _yaml(ROOT / "docker-compose.yml")


def test_compose_has_every_service(compose):
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "prometheus", "grafana"} <= set(services)
    assert _words(services["worker"]["command"])[:6] == _words(WORKER)
    assert _words(services["beat"]["command"])[:6] == _words(BEAT)
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"


@pytest.mark.parametrize("name", ["web", "worker", "postgres", "redis", "prometheus", "grafana"])
def test_compose_healthchecks(compose, name):
    healthcheck = compose["services"][name].get("healthcheck")
    assert healthcheck, f"{name} has no healthcheck"
    assert not healthcheck.get("disable")
    assert healthcheck["test"][0] in {"CMD", "CMD-SHELL"}


def test_compose_web_healthcheck_hits_health(compose):
    assert re.search(
        r"/health(?![\w/])", " ".join(compose["services"]["web"]["healthcheck"]["test"])
    )


def test_compose_postgres_keeps_its_data_in_a_volume(compose):
    volumes = compose["services"]["postgres"]["volumes"]
    named = [v.split(":")[0] for v in volumes if v.endswith(":/var/lib/postgresql/data")]
    assert named and named[0] in compose["volumes"]


def test_compose_migrates_before_the_app_starts(compose):
    services = compose["services"]
    migrations = [
        name
        for name, service in services.items()
        if _words(service.get("command", "")) == _words(MIGRATE)
    ]
    assert migrations, "no service runs the migrations"
    for name in APP_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on[migrations[0]]["condition"] == "service_completed_successfully"
    for name in ("web", "worker"):
        depends_on = services[name]["depends_on"]
        assert depends_on["postgres"]["condition"] == "service_healthy"
        assert depends_on["redis"]["condition"] == "service_healthy"


def test_compose_dependencies_wait_for_health_of_services_that_have_one(compose):
    services = compose["services"]
    for service in services.values():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services
            if spec["condition"] == "service_healthy":
                healthcheck = services[dependency].get("healthcheck")
                assert healthcheck and not healthcheck.get("disable"), dependency


@pytest.mark.parametrize("name", [*APP_SERVICES, "migrate"])
def test_compose_app_environment(compose, name):
    environment = compose["services"][name]["environment"]
    assert environment["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?")
    assert environment["DATABASE_URL"].startswith("postgres://")
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"].startswith("redis://redis:6379")
    assert environment["DJANGO_SECURE_SSL_REDIRECT"] == "0"
    assert environment["STRIPE_SECRET_KEY"].startswith("${STRIPE_SECRET_KEY")
    allowed = environment["DJANGO_ALLOWED_HOSTS"]
    # Prometheus scrapes http://web:8000, so `web` must pass host validation.
    assert "web" in re.split(r"[,:\-}]", allowed)


def test_compose_mounts_the_monitoring_config(compose):
    services = compose["services"]
    prometheus_mounts = services["prometheus"]["volumes"]
    assert (
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus_mounts
    )
    grafana_mounts = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana_mounts


# --- Prometheus and Grafana ------------------------------------------------------------------


def test_prometheus_scrapes_web_metrics():
    config = _yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = [
        job
        for job in config["scrape_configs"]
        if any("web:8000" in c["targets"] for c in job.get("static_configs", []))
    ]
    assert len(jobs) == 1
    assert jobs[0].get("metrics_path", "/metrics") == "/metrics"


def test_grafana_datasource_is_the_compose_prometheus():
    config = _yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    (datasource,) = config["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["isDefault"] is True


def test_grafana_dashboards_are_provisioned_from_the_mounted_folder(compose):
    provisioning = DEPLOY / "grafana" / "provisioning" / "dashboards"
    providers = [p for f in provisioning.glob("*.yml") for p in _yaml(f)["providers"]]
    assert providers
    mounts = {
        volume.split(":")[1]: volume.split(":")[0]
        for volume in compose["services"]["grafana"]["volumes"]
    }
    datasource = _yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    datasource_uid = datasource["datasources"][0]["uid"]
    for provider in providers:
        folder = ROOT / mounts[provider["options"]["path"]]
        dashboards = list(folder.glob("*.json"))
        assert dashboards
        for path in dashboards:
            dashboard = json.loads(path.read_text())
            exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
            assert any("revenue_mrr" in e for e in exprs)
            uids = {p["datasource"]["uid"] for p in dashboard["panels"]}
            assert uids == {datasource_uid}


# --- render.yaml -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def render() -> dict[str, Any]:
    return _yaml(ROOT / "render.yaml")


def _render_env(render: dict[str, Any], service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    groups = {group["name"]: group["envVars"] for group in render.get("envVarGroups", [])}
    variables: dict[str, dict[str, Any]] = {}
    for entry in service.get("envVars", []):
        if "fromGroup" in entry:
            variables.update({v["key"]: v for v in groups[entry["fromGroup"]]})
        else:
            variables[entry["key"]] = entry
    return variables


def _render_command(service: dict[str, Any]) -> str:
    if service.get("runtime") == "docker" and "dockerCommand" not in service:
        return _dockerfile_cmd()
    return service.get("dockerCommand") or service["startCommand"]


def test_render_web_service(render):
    (web,) = [s for s in render["services"] if s["type"] == "web"]
    assert web["healthCheckPath"] == "/health"
    assert web["preDeployCommand"] == MIGRATE
    assert _render_command(web) == _procfile()["web"]


def test_render_runs_one_celery_worker_and_beat(render):
    commands = [_render_command(s) for s in render["services"] if s["type"] == "worker"]
    assert any(_words(c)[:6] == _words(WORKER) for c in commands)
    beats = [c for c in commands if "beat" in _words(c) or "-B" in _words(c)]
    assert len(beats) == 1


def test_render_wires_database_redis_and_secrets(render):
    databases = {db["name"] for db in render["databases"]}
    keyvalues = {s["name"] for s in render["services"] if s["type"] in {"keyvalue", "redis"}}
    app_services = [s for s in render["services"] if s["type"] in {"web", "worker"}]
    assert len(app_services) >= 2
    for service in app_services:
        env = _render_env(render, service)
        assert env["DATABASE_URL"]["fromDatabase"]["name"] in databases
        assert env["DATABASE_URL"]["fromDatabase"]["property"] == "connectionString"
        assert env["REDIS_URL"]["fromService"]["name"] in keyvalues
        assert env["REDIS_URL"]["fromService"]["property"] == "connectionString"
        assert env["DJANGO_SECRET_KEY"] == {"key": "DJANGO_SECRET_KEY", "generateValue": True}
        assert env["STRIPE_SECRET_KEY"] == {"key": "STRIPE_SECRET_KEY", "sync": False}
        assert "DJANGO_ALLOWED_HOSTS" in env


# --- Docs ------------------------------------------------------------------------------------


def test_every_environment_variable_settings_reads_is_documented():
    settings_source = (ROOT / "revenue_site" / "settings.py").read_text()
    read = set(re.findall(r"""env(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]+)["']""", settings_source))
    read |= set(
        re.findall(r"""os\.environ(?:\.get)?[\(\[]\s*["']([A-Z][A-Z0-9_]+)["']""", settings_source)
    )
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "STRIPE_SECRET_KEY"} <= read
    documented = (ROOT / "DEPLOYMENT.md").read_text()
    missing = sorted(name for name in read if f"`{name}`" not in documented)
    assert not missing, f"DEPLOYMENT.md does not document {missing}"
