"""The benchmarks still run (smoke sizes); their figures are never asserted, only their shape."""

import json

import pytest

from tests.bench.__main__ import BENCHES, main
from tests.bench.operator_curve import _cause, report


@pytest.mark.slow
@pytest.mark.prometheus
def test_bench_smoke_runs_every_benchmark_and_writes_results(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert main(["--smoke", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["mode"] == "smoke"
    assert set(data["results"]) == set(BENCHES)
    results = data["results"]

    assert results["decode"]["objects"] == 200
    names = [f["name"] for f in results["decode"]["figures"]]
    assert names[:2] == ["msgspec typed Structs", "json.loads"]
    assert all(f["seconds"] > 0 and f["peak_mib"] >= 0 for f in results["decode"]["figures"])

    sync = results["sync"]
    assert sync["objects"] == 200
    assert [f["name"] for f in sync["figures"]][:2] == [
        "raw pages, undecoded (floor)",
        "couchestor Reflector + Store",
    ]
    assert all(f["seconds"] > 0 and f["retained_mib"] >= 0 for f in sync["figures"])
    resident = sync["resident"]
    assert resident["objects"] == 50
    assert resident["figures"][0]["name"] == "couchestor Reflector + Store"
    assert all(f["rss_mib"] > 0 for f in resident["figures"])
    assert resident["scaling"]["to_objects"] == 200

    assert results["watch"]["events"] == 500
    assert results["watch"]["reflector_events_per_s"] > 0

    heat = results["heat"]
    assert heat["batched_query"]["requests"] == 1  # every volume's score in one query
    assert heat["batched"]["requests"] == 2  # the operator's refresh: the score query and a coverage query
    assert len(heat["batched"]["runs"]) == 2
    assert heat["per_volume"]["requests"] == 50

    assert [r["volumes"] for r in results["decide"]["rows"]] == [100, 300]
    assert all(r["decisions"] == r["volumes"] for r in results["decide"]["rows"])
    assert results["decide"]["growth"] > 0

    incremental = results["incremental"]["rows"]
    assert [r["volumes"] for r in incremental] == [100, 300]
    assert all(r["first_pass_cpu_seconds"] > 0 and r["every_score_cpu_seconds"] > 0 for r in incremental)
    assert results["incremental"]["growth"] > 0

    operator = results["operator"]
    # The queries per refresh do not grow with the volumes: as many as the policy's window and periods need.
    assert operator["queries_per_refresh"] == operator["expected_queries_per_refresh"]

    scaling = results["scaling"]
    assert scaling["failed"] == []
    assert [p["volumes"] for p in scaling["points"]] == [50, 150]
    assert all(p["decisions"] == p["volumes"] and p["rss_mib"] > 0 for p in scaling["points"])
    assert all(p["reconcile_cpu_mean_ms"] > 0 for p in scaling["points"])

    compared = [row["compared"] for row in data["summary"]]
    assert "heat: per-volume queries / one batched query, wall" in compared
    assert "watch: reflector path / bare decode rate" in compared

    printed = capsys.readouterr().out
    for title in (
        "Decode a 200-PV list",
        "Initial sync",
        "Watch throughput",
        "Heat-score refresh",
        "Decision pass",
        "Incremental decisions",
        "Scaling curve",
    ):
        assert title in printed


STDERR_OF_A_STAGE_TIMEOUT = """\
  + Exception Group Traceback (most recent call last):
  |   File "tests/bench/operator_curve.py", line 66, in _measure_operator
  | ExceptionGroup: Exceptions from Trio nursery (1 sub-exception)
  +-+---------------- 1 ----------------
    | Traceback (most recent call last):
    |   File "tests/bench/operator_scale.py", line 129, in steady_operator
    | tests.bench.operator_scale.NotSteady: not every replica placed and synced within 900 s (12 volumes still degraded)
    +------------------------------------
"""


def test_a_failed_scaling_point_is_reported_by_the_stage_that_timed_out():
    cause = _cause(STDERR_OF_A_STAGE_TIMEOUT)
    assert cause == "not every replica placed and synced within 900 s (12 volumes still degraded)"
    assert _cause("Traceback (most recent call last):\nValueError: bad\n") == "ValueError: bad"
    text = report({"points": [], "failed": [{"volumes": 50_000, "error": cause}], "passes": 3})
    assert "50,000 FAILED: not every replica placed" in text
    assert "no slope" in text
