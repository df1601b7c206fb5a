"""The Grafana dashboard and the alert rules against a running operator: a real Prometheus scrapes the operator
(on the emulated cluster, moving volumes), every dashboard query is valid PromQL it answers without error, the
core panels have data, and every metric the dashboard and the alerts name is in the operator's exposition."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.operator.harness import policy_body

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "manifests" / "grafana" / "couchestor.json"
RULES = ROOT / "manifests" / "prometheus" / "couchestor.rules.yaml"

#: Panels whose data needs a fault or a migration caught mid-way; every other panel must show data.
NEEDS_AN_INCIDENT = {"Rebuild progress of migrations in flight", "Watch restarts"}

#: Grafana's macros, as this short run can answer them (its range covers the whole run).
MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}

_SUFFIXES = {"counter": ("", "_total"), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of the dashboard, Grafana's macros filled in."""
    out = []
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for macro, value in MACROS.items():
                expr = expr.replace(macro, value)
            assert "$" not in expr, f"{panel['title']}: unresolved variable in {expr}"
            out.append((panel["title"], expr))
    return out


def _metric_names(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in re.findall(r"\bstorage_operator_\w+", expr)}


def _exposed(text: str) -> set[str]:
    """Every series name the exposition can carry: each ``# TYPE`` family (counters are declared with their
    ``_total`` in the text format) with its kind's suffixes (a labelled
    family with no child yet has no sample, but is declared)."""
    names = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.update(family + suffix for suffix in _SUFFIXES.get(kind, ("",)))
    return names


def test_dashboard_is_importable_json():
    dashboard = _dashboard()
    assert dashboard["uid"] == "couchestor"
    assert dashboard["title"] == "CoucheStor"
    assert "id" not in dashboard  # an import must not overwrite another dashboard by database id
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
    titles = {p["title"] for p in dashboard["panels"]}
    assert {
        "Volumes per tier and policy",
        "Heat score distribution (IOPS)",
        "Decisions by action",
        "Migrations by outcome",
        "Migration duration",
        "Rebuild progress of migrations in flight",
        "Heat score age",
        "Score coverage",
        "Watch restarts",
        "API writes",
        "Reconcile duration",
    } <= titles


@pytest.mark.kubectl
def test_dashboard_configmap_is_the_json_for_the_grafana_sidecar():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not on PATH", pytrace=False)
    built = subprocess.run(
        [kubectl, "kustomize", str(DASHBOARD.parent)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    (configmap,) = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["couchestor.json"]) == _dashboard()


async def test_dashboard_queries_and_alert_metrics_against_a_running_operator(env, prometheus_factory):
    await env.apply_policy(policy_body())
    operator = await env.start_operator()
    prometheus = await prometheus_factory([f"{operator.endpoint_url}/metrics"], scrape_interval="1s")

    async def migrated() -> bool:
        text = operator.metrics.render().decode()
        return 'storage_operator_migrations_total{status="success"} 2.0' in text

    await env.eventually(migrated, timeout=90, what="both migrations recorded in the metrics")

    # Every metric named by the dashboard or the alerts is one the operator exposes (a rename fails here).
    async with httpx.AsyncClient(timeout=10) as http:
        exposition = (await http.get(f"{operator.endpoint_url}/metrics")).text
    exposed = _exposed(exposition)
    assert "storage_operator_renamed_away_total" not in exposed  # the check can fail
    rule_exprs = [
        rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]
    for source, exprs in (("dashboard", [q for _, q in _queries()]), ("alert rules", rule_exprs)):
        missing = _metric_names(exprs) - exposed
        assert not missing, f"the {source} name metrics the operator does not expose: {sorted(missing)}"

    # Every query is valid PromQL that Prometheus answers; the core panels have data once it has scraped a while.
    empty: set[str] = set()

    async def answered() -> bool:
        empty.clear()
        with_data: set[str] = set()
        for title, expr in _queries():
            body = await prometheus.query(expr)
            assert body["status"] == "success", f"{title}: {expr}: {body}"
            if body["data"]["result"]:
                with_data.add(title)
        empty.update({title for title, _ in _queries()} - with_data - NEEDS_AN_INCIDENT)
        return not empty

    try:
        await env.eventually(answered, timeout=30, interval=1.0, what="data in every core panel")
    except AssertionError:
        pytest.fail(f"panels without data: {sorted(empty)}\n{prometheus.log_tail()}")
