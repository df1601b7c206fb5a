"""The shipped alert rules, with the real promtool: they load, their unit tests (alerts_test.yaml) pass, every
alert has a case that fires it and one that must not, and each has a `for`, a severity, a summary and a runbook
section in docs/operations.md. The PrometheusRule carries the same groups as the plain rule file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.prometheus import require_binary

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "manifests" / "prometheus" / "couchestor.rules.yaml"
PROMETHEUS_RULE = ROOT / "manifests" / "operator" / "monitoring" / "prometheusrule.yaml"
UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")
OPERATIONS = ROOT / "docs" / "operations.md"


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_rules_load_and_the_prometheus_rule_carries_the_same_groups():
    checked = _promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in checked.stdout
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


def test_promtool_unit_tests_pass():
    result = _promtool("test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_has_for_severity_summary_and_a_runbook_section():
    prose = re.sub(r"^```.*?^```", "", OPERATIONS.read_text(), flags=re.M | re.S)
    headings = {_anchor(h) for h in re.findall(r"^#+ (.+)$", prose, re.M)}
    names = [a["alert"] for a in _alerts()]
    assert len(names) == len(set(names))
    assert {
        "CouchestorNoLeader",
        "CouchestorHeatScoresUnavailable",
        "CouchestorMigrationsFailing",
        "CouchestorMigrationStuck",
        "CouchestorWatchRestartLoop",
        "CouchestorTierPoolsFilling",
        "CouchestorEventsDropped",
    } <= set(names)
    for alert in _alerts():
        name = alert["alert"]
        assert re.fullmatch(r"\d+[smh]", alert.get("for", "")), name
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert alert["annotations"]["summary"], name
        assert alert["annotations"]["description"], name
        page, anchor = alert["annotations"]["runbook_url"].split("#")
        assert page == "docs/operations.md", name
        assert anchor == name.lower(), name
        assert anchor in headings, f"{name}: no section #{anchor} in {page}"


def test_every_alert_has_a_firing_case_and_a_quiet_case():
    cases: dict[str, set[bool]] = {}
    for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            cases.setdefault(check["alertname"], set()).add(bool(check.get("exp_alerts")))
    assert cases == {a["alert"]: {True, False} for a in _alerts()}


def _run_with(alerts_expr: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The unit tests against a copy of the rules whose named alerts have the given expressions."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") in alerts_expr:
                rule["expr"] = alerts_expr[rule["alert"]]
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(yaml.safe_dump(rules))
    # Text, not a YAML round trip: series values such as 0x10 (promtool's "0, 10 times") would become numbers.
    original = "  - ../../manifests/prometheus/couchestor.rules.yaml\n"
    text = UNIT_TESTS.read_text()
    assert original in text
    tests_path = tmp_path / "tests.yaml"
    tests_path.write_text(text.replace(original, f"  - {rules_path}\n"))
    return _promtool("test", "rules", str(tests_path))


@pytest.mark.parametrize("name", [a["alert"] for a in _alerts()])
def test_the_unit_tests_catch_an_alert_that_always_or_never_fires(name, tmp_path):
    """Each alert's cases can fail: an expression that always fires breaks its quiet case, one that never fires
    its firing case."""
    for expr, broken in (("vector(1)", "exp:[],got:[0:"), ("vector(1) > 2", "got:[]")):
        result = _run_with({name: expr}, tmp_path)
        out = result.stdout + result.stderr  # promtool reports failures on stderr
        assert result.returncode != 0, f"{name} with expr {expr!r} still passes"
        assert f"alertname: {name}" in out, out
        assert broken in re.sub(r"\s", "", out), out
