"""The demo's story as plain data: the cluster, each volume's load before and after the change, the policy.

Two NVMe pools (``tier: hot``) and two SATA pools (``tier: cold``), one volume per row of :data:`VOLUMES`. When
the policy is applied, the busy volumes sitting on SATA are promoted and the idle ones on NVMe demoted; volumes
between the watermarks stay where they are (the gap is the hysteresis). Once that has settled, the load of the
volumes with a ``later_iops`` changes (a reporting job starts, a batch job ends) and they move too.

Everything here is pure; :func:`expected_tier` is what the story checks the cluster against.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from couchestor.sim.populate import GI, ClusterSpec, PoolSpec, VolumeSpec
from couchestor.sim.workload import Kind, Pattern

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

_UUIDS = uuid.UUID("6c1d5a38-9f0e-4a55-b2c4-1e0d7f3a9b21")


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
    DemoVolume("web-assets", "shop", "hot", 2600, 10, role="static assets"),
    DemoVolume("ml-datasets", "analytics", "cold", 1800, 30, role="training data"),
    DemoVolume("metrics-history", "platform", "cold", 260, 20, role="metrics archive"),
    DemoVolume("archive", "platform", "cold", 15, 30, role="cold archive"),
    # The change mid-demo: month-end reporting starts, a batch job finishes.
    DemoVolume("month-end-reports", "analytics", "cold", 180, 10, later_iops=15000, role="reporting job"),
    DemoVolume("batch-scratch", "analytics", "hot", 1200, 10, later_iops=0, role="batch scratch space"),
)


def expected_tier(volume: DemoVolume, *, changed: bool) -> str:
    """The tier the policy puts ``volume`` on, before or after the change of load (two tiers, hysteresis)."""
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


def cluster_spec(volumes: tuple[DemoVolume, ...] = VOLUMES) -> ClusterSpec:
    """Two NVMe and two SATA pools on their own nodes, and the volumes, one replica each."""
    pools = (
        PoolSpec("pool-nvme-1", "node-1", "hot", 400 * GI),
        PoolSpec("pool-nvme-2", "node-2", "hot", 400 * GI),
        PoolSpec("pool-sata-1", "node-3", "cold", 1000 * GI),
        PoolSpec("pool-sata-2", "node-4", "cold", 1000 * GI),
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
        )
        for v in volumes
    )
    return ClusterSpec(pools, specs, storage_class=STORAGE_CLASS, mayastor_namespace=MAYASTOR_NAMESPACE)


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
            "nvmePoolSelector": {"matchLabels": {"tier": "hot"}},
            "sataPoolSelector": {"matchLabels": {"tier": "cold"}},
            "enabled": True,
        },
    }


__all__ = [
    "HIGH_IOPS",
    "LOW_IOPS",
    "MAX_CONCURRENT_MIGRATIONS",
    "POLICY_NAME",
    "VOLUMES",
    "DemoVolume",
    "cluster_spec",
    "expected_tier",
    "moves",
    "pattern",
    "policy_body",
]
