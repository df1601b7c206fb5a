"""The operator's Prometheus metrics, on a registry owned by one operator instance (no global state).

The three names the seeds document are kept (``storage_operator_reconcile_total``,
``storage_operator_migrations_total{status}``, ``storage_operator_active_migrations``); the rest are what an
operator on call needs to tell a stuck operator from an idle one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

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
            f"{_PREFIX}_leader", "1 while this instance holds the leader Lease.", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
