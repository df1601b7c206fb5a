"""The operator's Prometheus metrics, on a registry owned by one operator instance (no global state).

The three names the seeds document are kept (``storage_operator_reconcile_total``,
``storage_operator_migrations_total{status}``, ``storage_operator_active_migrations``); the rest are what an
operator on call needs to tell a stuck operator from an idle one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from couchestor.tiering.plan import Action, Decision
from couchestor.tiering.policy import PolicyProblem, PolicyRules
from k8s_schemas.mayastor import DiskPool

_PREFIX = "storage_operator"


class OperatorMetrics:
    """All metrics of one operator; ``render()`` gives the text exposition for ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reconcile_total = Counter(f"{_PREFIX}_reconcile", "Reconcile passes completed.", registry=r)
        self.reconcile_errors = Counter(
            f"{_PREFIX}_reconcile_errors", "Reconcile passes that failed.", registry=r
        )
        self.reconcile_duration = Histogram(
            f"{_PREFIX}_reconcile_duration_seconds",
            "Wall time of one reconcile pass.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.migrations_total = Counter(
            f"{_PREFIX}_migrations", "Migrations finished, by outcome.", ["status"], registry=r
        )
        self.active_migrations = Gauge(f"{_PREFIX}_active_migrations", "Migrations in progress.", registry=r)
        self.stuck_migrations = Gauge(
            f"{_PREFIX}_stuck_migrations",
            "Rollbacks past their deadline, still waiting for the volume (their concurrency slot given back).",
            registry=r,
        )
        self.migration_duration = Histogram(
            f"{_PREFIX}_migration_duration_seconds",
            "Wall time of finished migrations.",
            buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
            registry=r,
        )
        self.rebuild_progress = Gauge(
            f"{_PREFIX}_migration_rebuild_progress_percent",
            "Rebuild progress of the new replica of each in-flight migration.",
            ["volume"],
            registry=r,
        )
        self.decisions = Counter(
            f"{_PREFIX}_decisions",
            "Per-volume decisions, by policy and action.",
            ["policy", "action"],
            registry=r,
        )
        self.volumes = Gauge(
            f"{_PREFIX}_volumes",
            "Volumes watched by each policy, by current tier.",
            ["policy", "tier"],
            registry=r,
        )
        self.watch_restarts = Counter(
            f"{_PREFIX}_watch_restarts",
            "Watch streams restarted, by kind and reason.",
            ["kind", "reason"],
            registry=r,
        )
        self.query_duration = Histogram(
            f"{_PREFIX}_prometheus_query_duration_seconds",
            "Prometheus query latency.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.query_errors = Counter(
            f"{_PREFIX}_prometheus_query_errors",
            "Prometheus queries that failed, by reason.",
            ["reason"],
            registry=r,
        )
        self.score_cache_age = Gauge(
            f"{_PREFIX}_score_cache_age_seconds",
            "Age of the heat scores the last decisions used.",
            registry=r,
        )
        self.metrics_healthy = Gauge(
            f"{_PREFIX}_metrics_healthy", "1 when the last Prometheus refresh succeeded, else 0.", registry=r
        )
        self.heat_scores = Histogram(
            f"{_PREFIX}_heat_score_iops",
            "Distribution of volume heat scores (average IOPS) at the last refresh.",
            buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 50000),
            registry=r,
        )
        self.api_writes = Counter(
            f"{_PREFIX}_api_writes",
            "Writes sent to the Kubernetes API, by kind of object.",
            ["kind"],
            registry=r,
        )
        self.events_not_recorded = Counter(
            f"{_PREFIX}_events_not_recorded",
            "Kubernetes Events not written, by reason: throttled (too many about one object), dropped (the"
            " queue of Events to write was full), failed (refused, or no answer in time).",
            ["reason"],
            registry=r,
        )
        self.is_leader = Gauge(
            f"{_PREFIX}_leader",
            "1 while this instance leads (holds the leader Lease, or runs without leader election).",
            registry=r,
        )
        self.volumes_scored = Gauge(
            f"{_PREFIX}_volumes_scored",
            "Volumes of each policy decided from a heat score (not skipped for missing, partial or unavailable"
            " metrics); over storage_operator_volumes, the score coverage.",
            ["policy"],
            registry=r,
        )
        self.tier_capacity = Gauge(
            f"{_PREFIX}_tier_capacity_bytes",
            "Capacity of the DiskPools each policy's tier selector matches (pools reporting capacity).",
            ["policy", "tier"],
            registry=r,
        )
        self.tier_used = Gauge(
            f"{_PREFIX}_tier_used_bytes",
            "Bytes used on the DiskPools each policy's tier selector matches (pools reporting capacity).",
            ["policy", "tier"],
            registry=r,
        )
        self.migrations_overdue = Gauge(
            f"{_PREFIX}_migrations_overdue",
            "Migrations seen in flight for longer than their policy's migrationTimeout (they should have"
            " finished or rolled back).",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def scored_volumes(decisions: Iterable[Decision]) -> dict[str, int]:
    """Per policy, the volumes decided from a heat score: moves, stays, and skips taken after the thresholds
    (cooldown, dry-run, no-capacity ...: they carry a target tier). Skips for missing or partial metrics, and
    those decided before the metrics were looked at (conflicts, degraded replicas ...), do not count."""
    out: dict[str, int] = {}
    for d in decisions:
        scored = d.action is not Action.SKIP or d.target_tier is not None
        out[d.policy] = out.get(d.policy, 0) + int(scored)
    return out


def tier_fill(
    rules: Iterable[PolicyRules | PolicyProblem], pools: Iterable[DiskPool]
) -> dict[tuple[str, str], tuple[int, int]]:
    """(policy, tier) -> (capacity, used) bytes over the pools the tier's selector matches. Pools that report
    no capacity or usage yet are left out; a tier with none of its pools reporting is absent."""
    reporting = [
        (p.topology_labels, p.capacity_bytes, p.used_bytes)
        for p in pools
        if p.capacity_bytes is not None and p.used_bytes is not None
    ]
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for policy in rules:
        if not isinstance(policy, PolicyRules):
            continue
        for labels, capacity, used in reporting:
            tiers = policy.tiers_matching(labels)
            if len(tiers) != 1:
                continue  # an ambiguous pool belongs to no tier (decisions call it tier-unknown)
            key = (policy.name, next(iter(tiers)).value)
            total = out.get(key, (0, 0))
            out[key] = (total[0] + (capacity or 0), total[1] + (used or 0))
    return out


def overdue_migrations(
    since: Mapping[str, datetime], policy_of: Mapping[str, str], timeouts: Mapping[str, int], now: datetime
) -> int:
    """How many in-flight migrations (PV -> first seen in flight, PV -> policy) have run longer than their
    policy's timeout; a migration of a policy no longer known counts from no timeout and is not overdue."""
    return sum(
        1
        for pv, started in since.items()
        if policy_of.get(pv) in timeouts and (now - started).total_seconds() > timeouts[policy_of[pv]]
    )
