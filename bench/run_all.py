"""``make bench``: every benchmark script, one after the other, on PostgreSQL + Redis; then one
table (figure, same-run baseline, ratio, target, pass/fail) on stdout and in
``docs/benchmarks.md`` with the machine, the date and the commit, followed by the tables some
scripts add (``report.table``: e.g. the soak's latencies per endpoint).

Each script reports its figures through ``bench.common.report.record``; a script that fails
is listed as failed and the others still run; ``BENCH_ONLY=a.py,b.py`` runs a subset. Exit
status: 1 if a script failed (a figure missing its target is reported, not an error: the
table is the evidence).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS_FIRST = ("usage_ingest.py",)  # the longest data build first, while the machine is fresh
OUT = ROOT / "docs" / "benchmarks.md"


def _scripts() -> list[Path]:
    found = sorted(
        p for p in (ROOT / "bench").glob("*.py") if p.name not in ("run_all.py", "__init__.py")
    )
    only = {n.strip() for n in os.environ.get("BENCH_ONLY", "").split(",") if n.strip()}
    if only:  # BENCH_ONLY=clicks.py,webhooks.py: a subset
        found = [p for p in found if p.name in only or p.stem in only]
    return sorted(found, key=lambda p: (p.name not in SCRIPTS_FIRST, p.name))


def _sh(command: list[str]) -> str:
    try:
        return subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=20
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _first(path: str, prefix: str) -> str:
    """The value of the first ``prefix…: value`` line of a /proc file, or ""."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _machine() -> list[str]:
    cpu = _first("/proc/cpuinfo", "model name") or platform.processor() or "unknown"
    mem_kb = int((_first("/proc/meminfo", "MemTotal") or "0 kB").split()[0])
    load = os.getloadavg()
    postgres = _sh(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SHOW server_version"])
    redis_info = _sh(["redis-cli", "-h", "127.0.0.1", "INFO", "server"])
    redis = (
        redis_info.split("redis_version:")[1].split()[0]
        if "redis_version:" in redis_info
        else "unknown"
    )
    return [
        f"- CPU: {os.cpu_count()} cores, {cpu}",
        f"- Memory: {mem_kb / 1024 / 1024:.1f} GiB",
        f"- OS: {platform.platform()}; Python {platform.python_version()}",
        f"- PostgreSQL {postgres or 'unknown'}, Redis {redis}",
        f"- Load average when the run started: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
    ]


def _row(figure: dict) -> str:
    baseline = f"{figure['baseline']:.4g} {figure['unit']}" if figure["baseline"] else "—"
    ratio = f"{figure['ratio']:.2f}" if figure["ratio"] is not None else "—"
    return (
        f"| {figure['script']} | {figure['name']} | {figure['value']:.4g} {figure['unit']} | "
        f"{baseline} | {ratio} | {figure['target']} | {'pass' if figure['passed'] else 'FAIL'} |"
    )


def _table(reported: dict) -> list[str]:
    """A script's table (``report.table``) in Markdown, under a heading naming the script."""
    cells = [[str(c).replace("|", "\\|") for c in row] for row in reported["rows"]]
    return [
        f"### {reported['script']}: {reported['title']}",
        "",
        "| " + " | ".join(reported["columns"]) + " |",
        "|" + "---|" * len(reported["columns"]),
        *["| " + " | ".join(row) + " |" for row in cells],
    ]


def main() -> int:
    machine = _machine()
    started = datetime.now(UTC)
    commit = _sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
    figures: list[dict] = []
    failed: list[str] = []
    durations: dict[str, float] = {}
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as results:
        path = results.name
    for script in _scripts():
        print(f"== {script.relative_to(ROOT)}", flush=True)
        began = time.perf_counter()
        env = {**os.environ, "BENCH_RESULTS": path}
        code = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, check=False)
        durations[script.name] = time.perf_counter() - began
        if code.returncode != 0:
            failed.append(script.name)
    with open(path, encoding="utf-8") as lines:
        reported = [json.loads(line) for line in lines if line.strip()]
    os.unlink(path)
    figures = [f for f in reported if f.get("kind", "figure") == "figure"]
    tables = [_table(t) for t in reported if t.get("kind") == "table"]

    header = [
        "| script | figure | value | baseline (same run) | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    table = header + [_row(f) for f in figures]
    print("\n" + "\n".join(table))
    for lines_of_table in tables:
        print("\n" + "\n".join(lines_of_table))
    for name in failed:
        print(f"FAILED: {name} (see its output above)")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(
        "\n".join(
            [
                "# Benchmarks",
                "",
                f"Written by `make bench` (`bench/run_all.py`) on {started:%Y-%m-%d %H:%M} UTC at "
                f"commit `{commit}`. Each figure is measured against a baseline in the same run "
                "where the issue states its target as a ratio; absolute targets are absolute. "
                "Figures depend on the machine and its load: compare ratios within one run.",
                "",
                "## Machine",
                "",
                *machine,
                "",
                "## Figures",
                "",
                *table,
                "",
                *[line for lines_of_table in tables for line in [*lines_of_table, ""]],
                "## Scripts",
                "",
                *[
                    f"- `bench/{name}`: {seconds:.0f} s"
                    + (" — **failed**" if name in failed else "")
                    for name, seconds in durations.items()
                ],
                "",
            ]
        ),
        encoding="utf-8",
    )
    print(f"\nwritten: {OUT.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
