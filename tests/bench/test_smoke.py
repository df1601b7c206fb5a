"""The benchmarks still run (smoke sizes); their figures are never asserted, only their shape."""

import json

import pytest

from tests.bench.__main__ import BENCHES, main


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

    scaling = results["scaling"]
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
        "Scaling curve",
    ):
        assert title in printed
