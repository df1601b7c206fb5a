"""The demo's story as plain data: the cluster, each volume's load before and after the change, the policy.

Two NVMe pools (``tier: hot``) and two SATA pools (``tier: cold``). The featured volumes (:data:`VOLUMES`)
carry the story and have readable names; :func:`population` adds a reproducible crowd of background volumes
around them. When the policy is applied, the busy volumes sitting on SATA are promoted and the idle ones on
NVMe demoted; volumes between the watermarks stay where they are (the gap is the hysteresis). Once that has
settled, the load of the volumes with a ``later_iops`` changes (a reporting job starts, a batch job ends, some
background volumes heat up or cool down) and those that cross a watermark move too. One volume's claim is
pinned to NVMe (``storage.billyronks.io/pin: hot``): its heat would leave it on SATA; the pin moves it, and
keeps it there.

Most background volumes are already where they belong or between the watermarks, and the number that move is
capped (:data:`MAX_BACKGROUND_MOVES`), so a few hundred volumes tell the story in about the time 14 do.
Every load is far enough from the watermarks that noise cannot flip a decision.

Everything here is pure; :func:`expected_tier` is what the story checks the cluster against.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from typing import Any

from couchestor.sim.populate import GI, ClusterSpec, PoolSpec, VolumeSpec
from couchestor.sim.workload import Kind, Pattern
from k8s_schemas.annotations import PIN

POLICY_NAME = "demo-tiering"
HIGH_IOPS = 5000
LOW_IOPS = 500
#: Short enough that a change of load shows in the heat score within seconds.
SAMPLING_WINDOW_SECONDS = 20
MAX_CONCURRENT_MIGRATIONS = 3
STORAGE_CLASS = "mayastor"
MAYASTOR_NAMESPACE = "mayastor"
#: Simulated time runs this much faster for the Mayastor simulator: a 20 GiB rebuild at 200 MiB/s takes
#: 102 simulated seconds, under two seconds of the demo.
TIME_SCALE = 60.0

#: Volumes in the demo by default (``--volumes``), and the most it accepts.
DEFAULT_VOLUMES = 300
MAX_VOLUMES = 1000
#: At most this many background volumes move in the first act, and in the second: the story's length
#: depends on the number of migrations, not on the number of volumes.
MAX_BACKGROUND_MOVES = (16, 8)

_UUIDS = uuid.UUID("6c1d5a38-9f0e-4a55-b2c4-1e0d7f3a9b21")
#: The background volumes' apps: (name prefix, namespace, role).
_APPS = (
    ("web", "shop", "web content"),
    ("api", "shop", "API state"),
    ("cache", "shop", "cache"),
    ("queue", "platform", "message queue"),
    ("logs", "platform", "log store"),
    ("etl", "analytics", "ETL staging"),
    ("ml", "analytics", "feature store"),
    ("index", "search", "search shard"),
)


@dataclass(frozen=True, slots=True)
class DemoVolume:
    """One volume of the story: where it starts, its load, and its load after the change (if it changes)."""

    name: str  # the PVC's name; the PV is ``pvc-<name>``
    namespace: str
    tier: str
    iops: float
    size_gib: int = 10
    later_iops: float | None = None
    role: str = ""  # what the volume stands for, shown in the live view
    #: One of the story's named volumes (always shown), or one of the background crowd.
    featured: bool = True
    #: The tier its claim is pinned to (the PVC annotation ``storage.billyronks.io/pin``), if any.
    pin: str | None = None

    @property
    def pv(self) -> str:
        return f"pvc-{self.name}"

    @property
    def uuid(self) -> str:
        """The volume UUID (the MayastorVolume's name), stable across runs."""
        return str(uuid.uuid5(_UUIDS, self.name))


VOLUMES: tuple[DemoVolume, ...] = (
    # Busy volumes left on SATA: promoted when the policy is applied.
    DemoVolume("orders-db", "shop", "cold", 9200, 20, role="OLTP database"),
    DemoVolume("checkout-cache", "shop", "cold", 7100, 10, role="Redis cache"),
    DemoVolume("search-index", "search", "cold", 6300, 20, role="search index"),
    # Idle volumes taking NVMe space: demoted.
    DemoVolume("audit-logs", "platform", "hot", 120, 20, role="audit log"),
    DemoVolume("nightly-backups", "platform", "hot", 0, 30, role="backup target"),
    DemoVolume("old-reports", "analytics", "hot", 40, 10, role="last year's reports"),
    # Already where they belong, or between the watermarks: they stay.
    DemoVolume("payments-db", "shop", "hot", 11500, 20, role="OLTP database"),
    DemoVolume("sessions", "shop", "hot", 8200, 10, role="session store"),
    DemoVolume("web-assets", "shop", "hot", 2600, 10, role="static assets via CDN"),
    DemoVolume("ml-datasets", "analytics", "cold", 1800, 30, role="training data"),
    # Quiet, so its heat keeps it on SATA, but the quarterly review is about to read it: pinned to NVMe.
    DemoVolume("metrics-history", "platform", "cold", 260, 20, role="metrics archive", pin="hot"),
    DemoVolume("archive", "platform", "cold", 15, 30, role="cold archive"),
    # The change mid-demo: month-end reporting starts, a batch job finishes.
    DemoVolume("month-end-reports", "analytics", "cold", 180, 10, later_iops=15000, role="reporting job"),
    DemoVolume("batch-scratch", "analytics", "hot", 1200, 10, later_iops=0, role="batch scratch space"),
)


def expected_tier(volume: DemoVolume, *, changed: bool) -> str:
    """The tier the policy puts ``volume`` on, before or after the change of load (two tiers, hysteresis; a
    pin wins)."""
    if volume.pin is not None:
        return volume.pin
    iops = volume.later_iops if changed and volume.later_iops is not None else volume.iops
    before = volume.tier if not changed else expected_tier(volume, changed=False)
    if iops > HIGH_IOPS:
        return "hot"
    if iops < LOW_IOPS:
        return "cold"
    return before


def moves(volumes: tuple[DemoVolume, ...], *, changed: bool) -> list[DemoVolume]:
    """The volumes that move in one act of the story: when the policy is applied, or after the change."""
    if not changed:
        return [v for v in volumes if expected_tier(v, changed=False) != v.tier]
    return [v for v in volumes if expected_tier(v, changed=True) != expected_tier(v, changed=False)]


def pattern(iops: float) -> Pattern:
    """A steady load of ``iops`` with a little noise; no I/O at all for 0."""
    if iops <= 0:
        return Pattern(Kind.IDLE, base=0.0)
    return Pattern(Kind.CONSTANT, base=iops, noise=0.05)


def population(total: int = DEFAULT_VOLUMES) -> tuple[DemoVolume, ...]:
    """The featured volumes followed by ``total - len(VOLUMES)`` background volumes, the same on every run.

    Raises :class:`ValueError` when ``total`` is below ``len(VOLUMES)`` or above :data:`MAX_VOLUMES`.
    """
    if not len(VOLUMES) <= total <= MAX_VOLUMES:
        raise ValueError(f"the demo needs between {len(VOLUMES)} and {MAX_VOLUMES} volumes, not {total}")
    count = total - len(VOLUMES)
    rng = random.Random(20240)
    first = min(count // 24, MAX_BACKGROUND_MOVES[0])
    second = min(count // 48, MAX_BACKGROUND_MOVES[1])
    wavering = min(count // 30, 10)
    # (starting tier, IOPS range, later IOPS range or None, sizes in GiB) per background volume.
    kinds: list[tuple[str, tuple[float, float], tuple[float, float] | None, tuple[int, ...]]] = []
    for i in range(first):  # the first act's movers: busy on SATA, idle on NVMe
        kinds.append(
            ("cold", (5800, 12000), None, (5, 10)) if i % 2 == 0 else ("hot", (0, 400), None, (5, 10))
        )
    for i in range(second):  # the second act's movers: heating up on SATA, cooling down on NVMe
        if i % 2 == 0:
            kinds.append(("cold", (20, 400), (12000, 16000), (5, 10)))
        else:
            kinds.append(("hot", (800, 1400), (0, 60), (5, 10)))
    for i in range(wavering):  # loads that change but stay between the watermarks: nothing moves
        if i % 2 == 0:
            kinds.append(("hot", (2500, 4000), (700, 1200), (10, 20)))
        else:
            kinds.append(("cold", (700, 1200), (3000, 4300), (10, 20)))
    settled = (
        ("hot", (5800, 14000), None, (10, 20, 50)),
        ("hot", (700, 4300), None, (10, 20)),
        ("cold", (700, 4300), None, (10, 20, 50)),
        ("cold", (0, 420), None, (10, 20, 50, 100)),
        ("cold", (0, 420), None, (20, 50)),
    )
    kinds += [settled[i % len(settled)] for i in range(count - len(kinds))]
    rng.shuffle(kinds)
    volumes = []
    for n, (tier, iops, later, sizes) in enumerate(kinds, start=1):
        prefix, namespace, role = _APPS[rng.randrange(len(_APPS))]
        volumes.append(
            DemoVolume(
                f"{prefix}-{n:03d}",
                namespace,
                tier,
                _load(rng, iops),
                rng.choice(sizes),
                later_iops=_load(rng, later) if later is not None else None,
                role=role,
                featured=False,
            )
        )
    return VOLUMES + tuple(volumes)


def _load(rng: random.Random, bounds: tuple[float, float]) -> float:
    """Whole IOPS within ``bounds``; for a near-idle range, half the volumes go fully idle (no I/O at all)."""
    low, high = bounds
    return 0.0 if high <= 60 and rng.random() < 0.5 else float(round(rng.uniform(low, high)))


def cluster_spec(volumes: tuple[DemoVolume, ...] = VOLUMES) -> ClusterSpec:
    """Two NVMe and two SATA pools on their own nodes, and the volumes, one replica each.

    Each tier's pools hold what that tier holds at the busiest point of the story (before, between and after
    the acts, plus the migrations that may run at once), with room to spare.
    """
    hot, cold = _pool_capacity(volumes, "hot"), _pool_capacity(volumes, "cold")
    pools = (
        PoolSpec("pool-nvme-1", "node-1", "hot", hot),
        PoolSpec("pool-nvme-2", "node-2", "hot", hot),
        PoolSpec("pool-sata-1", "node-3", "cold", cold),
        PoolSpec("pool-sata-2", "node-4", "cold", cold),
    )
    specs = tuple(
        VolumeSpec(
            pv=v.pv,
            uuid=v.uuid,
            namespace=v.namespace,
            pvc=v.name,
            size=v.size_gib * GI,
            tier=v.tier,
            labels={"app": v.name},
            annotations={PIN: v.pin} if v.pin else {},
        )
        for v in volumes
    )
    return ClusterSpec(pools, specs, storage_class=STORAGE_CLASS, mayastor_namespace=MAYASTOR_NAMESPACE)


#: Smallest pools, in GiB, whatever the volumes (the 14 featured volumes use a fraction of them).
_MIN_POOL_GIB = {"hot": 400, "cold": 1000}


def _pool_capacity(volumes: tuple[DemoVolume, ...], tier: str, pools: int = 2) -> int:
    """Bytes per pool of ``tier``: its busiest moment over ``pools`` pools, plus the largest volume on each
    (uneven placement) and the concurrent migrations' new replicas, half again, in whole 100 GiB."""
    stages = (
        [v.tier for v in volumes],
        [expected_tier(v, changed=False) for v in volumes],
        [expected_tier(v, changed=True) for v in volumes],
    )
    busiest = max(
        sum(v.size_gib for v, t in zip(volumes, stage, strict=True) if t == tier) for stage in stages
    )
    largest = max((v.size_gib for v in volumes), default=0)
    need = (busiest / pools + largest * (1 + MAX_CONCURRENT_MIGRATIONS)) * 1.5
    return max(_MIN_POOL_GIB[tier], math.ceil(need / 100) * 100) * GI


def policy_body() -> dict[str, Any]:
    """The StoragePolicy the demo applies: seed 000's cache thresholds, a short window, no flapping back."""
    return {
        "apiVersion": "storage.billyronks.io/v1",
        "kind": "StoragePolicy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "storageClassName": STORAGE_CLASS,
            "highWatermarkIOPS": HIGH_IOPS,
            "lowWatermarkIOPS": LOW_IOPS,
            "samplingWindow": f"{SAMPLING_WINDOW_SECONDS}s",
            "cooldownPeriod": "10m",
            "migrationTimeout": "2m",
            "maxConcurrentMigrations": MAX_CONCURRENT_MIGRATIONS,
            # Every move waits as a TierMigration until approved; the demo approves each, visibly.
            "approval": "Manual",
            # Two pools per tier: let the policy's moves share them, or they would go two at a time.
            "maxRebuildsPerNode": MAX_CONCURRENT_MIGRATIONS,
            "maxRebuildsPerPool": MAX_CONCURRENT_MIGRATIONS,
            "nvmePoolSelector": {"matchLabels": {"tier": "hot"}},
            "sataPoolSelector": {"matchLabels": {"tier": "cold"}},
            "enabled": True,
        },
    }


__all__ = [
    "DEFAULT_VOLUMES",
    "HIGH_IOPS",
    "LOW_IOPS",
    "MAX_CONCURRENT_MIGRATIONS",
    "MAX_VOLUMES",
    "POLICY_NAME",
    "VOLUMES",
    "DemoVolume",
    "cluster_spec",
    "expected_tier",
    "moves",
    "pattern",
    "policy_body",
    "population",
]
