"""The figures a benchmark reports, for ``make bench``'s table (``bench/run_all.py``).

A script calls ``record`` once per figure it measured; the call prints one ``RESULT`` line and,
under ``run_all.py`` (which sets ``BENCH_RESULTS``), appends the figure as a JSON line to that
file. A figure is judged either against its same-run baseline (``target_ratio``: value ÷
baseline) or, where the issue names an absolute target, against that (``target_value``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    script: str
    name: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    target: str
    passed: bool


def record(
    *,
    script: str,
    name: str,
    value: float,
    unit: str,
    baseline: float | None = None,
    target_ratio: float | None = None,
    target_value: float | None = None,
    higher_is_better: bool = True,
) -> Figure:
    """Report one figure. Exactly one of ``target_ratio`` (needs ``baseline``) and
    ``target_value`` says what passes; ``higher_is_better`` which side of it."""
    if (target_ratio is None) == (target_value is None):
        raise ValueError("give exactly one of target_ratio and target_value")
    ratio = value / baseline if baseline else None
    sign = ">=" if higher_is_better else "<="
    if target_ratio is not None:
        if ratio is None:
            raise ValueError("a ratio target needs a non-zero baseline")
        measured, threshold, target = ratio, target_ratio, f"{sign} {target_ratio:g}x baseline"
    else:
        assert target_value is not None
        measured, threshold, target = value, target_value, f"{sign} {target_value:g} {unit}"
    passed = measured >= threshold if higher_is_better else measured <= threshold
    figure = Figure(script, name, value, unit, baseline, ratio, target, passed)
    shown_ratio = f"  ratio={ratio:.2f}" if ratio is not None else ""
    shown_baseline = f"  baseline={baseline:.4g} {unit}" if baseline is not None else ""
    print(
        f"RESULT {name}: {value:.4g} {unit}{shown_baseline}{shown_ratio}  target {target}  "
        f"{'PASS' if passed else 'FAIL'}",
        flush=True,
    )
    path = os.environ.get("BENCH_RESULTS")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(figure)) + "\n")
    return figure


def table(*, script: str, title: str, columns: list[str], rows: list[list[object]]) -> None:
    """Report a table of figures without targets (e.g. the soak's latencies per endpoint):
    printed here, and under ``run_all.py`` written to docs/benchmarks.md below the figures."""
    print(f"TABLE {script}: {title} ({len(rows)} rows)", flush=True)
    path = os.environ.get("BENCH_RESULTS")
    if path:
        line = {"kind": "table", "script": script, "title": title, "columns": columns}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({**line, "rows": [[str(c) for c in r] for r in rows]}) + "\n")
