"""Audit the pinned tree (constraints.txt) with pip-audit; fail on any known vulnerability.

pip-audit asks PyPI's JSON API (or OSV) about each pin. Where neither answers (a registry
mirror without the JSON API, no internet), every pin comes back skipped: that is reported
loudly as "not audited", not as a pass, and does not fail the build; one answered
vulnerability does. Usage: python .ci/pip_audit.py <pip-audit JSON report>
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        report = json.load(handle)
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    vulnerable = [d for d in deps if d.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            pin = f"{dep['name']}=={dep.get('version', '?')}"
            print(f"VULNERABLE {pin}: {vuln['id']} (fixed in {fixes})")
    audited = len(deps) - len(skipped)
    print(
        f"pip-audit: {len(deps)} pins, {audited} audited, {len(skipped)} not audited, "
        f"{sum(len(d['vulns']) for d in vulnerable)} known vulnerabilities"
    )
    if deps and not audited:
        print(
            "WARNING: the vulnerability service did not answer for any pin "
            f"({skipped[0]['skip_reason']}); the tree was NOT audited on this machine"
        )
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
