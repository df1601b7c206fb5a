"""What `--log-format json` shows of a volume's story: decision lines carry volume, policy and decision; each
migration logs one line per phase change (not per poll), every line with volume, policy and the migration's
id, so a log system can follow one volume or one migration."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from couchestor.logs import JsonFormatter
from tests.operator.harness import policy_body

pytestmark = pytest.mark.prometheus


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name.startswith("couchestor")]


async def test_json_logs_tell_each_volumes_story(env, caplog):
    caplog.set_level(logging.INFO, logger="couchestor")
    env.slow_rebuilds(100 * 2**20)  # 10 GiB at 100 MiB/s: about 100 simulated seconds, many polls
    await env.apply_policy(policy_body())
    operator = await env.start_operator()

    async def done() -> bool:
        text = operator.metrics.render().decode()
        return 'storage_operator_migrations_total{status="success"} 2.0' in text

    await env.eventually(done, timeout=120, what="both migrations finished")
    lines = _lines(caplog)

    decisions = [line for line in lines if "decision" in line]
    assert {(d["volume"], d["policy"], d["decision"]) for d in decisions} >= {
        ("pvc-heavy", "tiering", "hot"),
        ("pvc-idle", "tiering", "cold"),
        ("pvc-middle", "tiering", "stay"),
    }
    heavy = [line for line in lines if line.get("volume") == "pvc-heavy"]
    assert any("heat score" in line["msg"] for line in heavy)

    migration_lines = [line for line in lines if "migration" in line]
    ids = {line["migration"] for line in migration_lines}
    assert len(ids) == 2, ids  # one id per migration, on every line of it
    for migration in ids:
        story = [line for line in migration_lines if line["migration"] == migration]
        volume = story[0]["volume"]
        assert migration.startswith(f"{volume}@")
        assert {(line["volume"], line["policy"]) for line in story} == {(volume, "tiering")}
        phases = [line["phase"] for line in story if "phase" in line]  # retry warnings carry no phase
        assert phases[0] == "started"
        assert phases[-1] == "success"
        assert "new replica syncing" in phases
        # One line per phase change: no phase is logged twice, however often the runner polled.
        assert len(phases) == len(set(phases)), phases
