"""Part of `make test` (through validate-deploy.sh): checks deploy/monitoring with promtool.

1. ward-alerts.yaml: `promtool check rules`, then `promtool test rules` on its unit tests.
2. ward-dashboard.json: every panel query is PromQL that promtool parses (Grafana's
   $__rate_interval and the $job/$instance variables replaced by what they stand for), every
   panel uses the dashboard's datasource variable, and panel ids are unique.
Which metric names exist is checked against the real binaries by tests/tests/monitoring.rs.
"""

import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
MON = ROOT / "deploy" / "monitoring"


def run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


def main() -> None:
    run("promtool", "check", "rules", str(MON / "ward-alerts.yaml"))
    run("promtool", "test", "rules", str(MON / "ward-alerts.test.yaml"))

    dash = json.loads((MON / "ward-dashboard.json").read_text())
    ids, rules = set(), []
    for p in panels(dash["panels"]):
        if p["id"] in ids:
            sys.exit(f"ward-dashboard.json: panel id {p['id']} used twice")
        ids.add(p["id"])
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            sys.exit(f"ward-dashboard.json: panel {p['title']!r} does not use $datasource")
        if not p.get("targets"):
            sys.exit(f"ward-dashboard.json: panel {p['title']!r} has no query")
        for t in p["targets"]:
            expr = (
                t["expr"]
                .replace("$__rate_interval", "5m")
                .replace("$job", ".*")
                .replace("$instance", ".*")
            )
            rules.append({"record": f"panel_{p['id']}_{t['refId']}", "expr": expr})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    try:
        run("promtool", "check", "rules", f.name)
    finally:
        pathlib.Path(f.name).unlink()
    print(
        f"monitoring: alert rules checked and unit-tested; dashboard: {len(rules)} queries parse"
    )


if __name__ == "__main__":
    main()
