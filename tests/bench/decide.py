"""CPU time of one full decision pass (:func:`couchestor.tiering.decide.decide`) at growing volume counts.

Inputs are built once per size, outside the timing: 3 policies selecting disjoint thirds of the volumes by a
PVC label, 12 pools (6 hot, 6 cold) with room, one Synced replica per volume, and a healthy 1h score snapshot
in which about a fifth of the volumes want to move (so scheduling, pool choice and the concurrency limit are
exercised, not only the ``stay`` path). The figure is the best ``time.process_time`` of several rounds, each
round timing every size in turn.
"""

from __future__ import annotations

import gc
import random
import time
from datetime import UTC, datetime
from typing import Any

from couchestor.tiering.decide import decide
from couchestor.tiering.heat import HeatScore, ScoreSnapshot
from couchestor.tiering.plan import DecideOptions
from couchestor.tiering.policy import PolicyRules, compile_policy
from couchestor.tiering.views import PoolView, ReplicaView, VolumeView
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.storage_policy import StoragePolicy
from tests.bench.timing import growth_vs_linear

NOW = datetime(2026, 2, 1, 12, tzinfo=UTC)
GIB = 2**30
WINDOW = 3600
TEAMS = ("a", "b", "c")


def _policies() -> list[PolicyRules]:
    out = []
    for team in TEAMS:
        spec = {
            "highWatermarkIOPS": 5000,
            "lowWatermarkIOPS": 500,
            "maxConcurrentMigrations": 4,
            "nvmePoolSelector": {"matchLabels": {"tier": "hot"}},
            "sataPoolSelector": {"matchLabels": {"tier": "cold"}},
            "volumeSelector": {"matchLabels": {"team": team}},
        }
        rules = compile_policy(
            StoragePolicy(metadata=ObjectMeta(name=f"team-{team}", generation=1), spec=spec)
        )
        assert isinstance(rules, PolicyRules), rules
        out.append(rules)
    return out


def _inputs(n: int, seed: int = 1) -> tuple[list[VolumeView], list[PoolView], dict[int, ScoreSnapshot]]:
    rng = random.Random(seed)
    pools = [
        PoolView(f"{tier}-{i}", f"node-{i}", {"tier": tier}, "Online", 10_000 * GIB)
        for tier in ("hot", "cold")
        for i in range(6)
    ]
    volumes = []
    heat = {}
    for i in range(n):
        tier = "hot" if i % 2 else "cold"
        pool = f"{tier}-{i % 6}"
        name = f"pvc-{i:08d}"
        volumes.append(
            VolumeView(
                name=name,
                volume_id=f"{i:08d}-0000-4000-8000-000000000000",
                storage_class="mayastor",
                pvc_labels={"team": TEAMS[i % 3], "app": f"app-{i % 50}"},
                size_bytes=10 * GIB,
                num_replicas=1,
                replicas=(ReplicaView(pool, f"node-{i % 6}", "Online", "Synced"),),
                backend_name=f"{i:08d}-0000-4000-8000-000000000000",
            )
        )
        # ~10 % above the high watermark, ~50 % below the low one, the rest in between.
        roll = rng.random()
        iops = rng.uniform(5001, 20000) if roll < 0.1 else rng.uniform(0, 499) if roll < 0.6 else 2000.0
        heat[name] = HeatScore(name, iops, None, None, None, 1.0, 240, WINDOW, NOW, "openebs_volume_iops")
    return volumes, pools, {WINDOW: ScoreSnapshot(WINDOW, True, NOW, heat)}


def run(sizes: tuple[int, ...], repeat: int = 5) -> dict[str, Any]:
    policies = _policies()
    inputs = {n: _inputs(n) for n in sizes}
    best = dict.fromkeys(sizes, float("inf"))
    plans = {}
    # Rounds over every size, so that whatever else the machine does in a stretch of time weighs on every
    # size alike; a small size runs several passes per round, for a time the clock can tell.
    for _ in range(repeat):
        for n in sizes:
            volumes, pools, scores = inputs[n]
            passes = max(1, 20_000 // n)
            gc.collect()
            start = time.process_time()
            for _ in range(passes):
                plans[n] = decide(policies, volumes, pools, scores, set(), {}, NOW, DecideOptions())
            best[n] = min(best[n], (time.process_time() - start) / passes)
    rows = []
    for n in sizes:
        plan = plans[n]
        rows.append(
            {
                "volumes": n,
                "policies": len(policies),
                "decisions": sum(len(p.decisions) for p in plan.policies),
                "migrations_planned": len(plan.migrations),
                "cpu_seconds": round(best[n], 4),
                "us_per_volume": round(best[n] / n * 1e6, 2),
            }
        )
    return {"rows": rows, "growth": growth_vs_linear(rows, "us_per_volume")}


def report(result: dict[str, Any]) -> str:
    lines = ["Decision pass: decide() CPU time, 3 policies, 12 pools, prebuilt views (best of several)"]
    lines.append(f"  {'volumes':>8} {'decisions':>10} {'planned':>8} {'cpu':>10} {'per volume':>11}")
    for r in result["rows"]:
        lines.append(
            f"  {r['volumes']:>8,} {r['decisions']:>10,} {r['migrations_planned']:>8}"
            f" {r['cpu_seconds'] * 1000:8.1f}ms {r['us_per_volume']:9.1f}us"
        )
    if result["growth"] is not None:
        lines.append(f"  CPU grows {result['growth']:.2f}x as fast as the volume count (1.00 = linear)")
    return "\n".join(lines)
