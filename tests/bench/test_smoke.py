"""The benchmarks still run (smoke size); their figures are never asserted."""

import json

from tests.bench.__main__ import main


def test_bench_smoke_writes_results(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert main(["--smoke", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    decode = data["results"]["decode"]
    assert decode["objects"] == 200
    names = [f["name"] for f in decode["figures"]]
    assert names[:2] == ["msgspec typed Structs", "json.loads"]
    assert all(f["seconds"] > 0 and f["peak_mib"] >= 0 for f in decode["figures"])
    assert "Decode a 200-PV list" in capsys.readouterr().out
