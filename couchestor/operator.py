"""``couchestor run``: the operator's nursery tree.

::

    operator (root nursery)
    ├── HTTP endpoints (/metrics, /healthz, /readyz, /feed)
    └── leader election (optional) ─ while leading:
        ├── one reflector (list + watch + store) per kind: StoragePolicy, PV, PVC, MayastorVolume, DiskPool
        │   (with --backend mayastor-rest, volumes come from a periodic relist of Mayastor's REST API)
        ├── score cache (Prometheus, one query per window and metric per refresh, sent concurrently)
        ├── volume backend (wakes migrations on MayastorVolume changes)
        ├── replication controllers (with --enable-replication)
        ├── migration runner (resumes intents first; one task per migration under CapacityLimiters)
        ├── reconciler (woken by store changes and score refreshes, resync as a floor)
        └── heap freezer (``couchestor run`` only: :func:`freeze_heap` every :data:`REFREEZE_INTERVAL`)

Losing leadership cancels the whole "while leading" subtree; SIGINT/SIGTERM cancel the root. Cancellation
leaves nothing half-written: migrations keep their intent on the volume and the next leader resumes them.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import trio

from couchestor import settings as settings_mod
from couchestor.endpoints import EndpointsApp, Feed, Health, serve_asgi
from couchestor.errors import UserError
from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.config import load_config
from couchestor.kube.events import EventRecorder, Outcome
from couchestor.kube.reflector import Reflector
from couchestor.kube.watcher import WatcherError
from couchestor.leader import LeaderElector, default_identity
from couchestor.logs import configure as configure_logging
from couchestor.mayastor_rest.backend import PV_INDEXERS, RestBackend
from couchestor.mayastor_rest.client import MayastorRestClient
from couchestor.mayastor_rest.mirror import RestVolumeReflector
from couchestor.metrics import OperatorMetrics
from couchestor.migration.backend import VolumeBackend
from couchestor.migration.crd import CrdBackend
from couchestor.migration.runner import MigrationRunner, RunnerOptions
from couchestor.preflight import check_cluster
from couchestor.replication import run_replication
from couchestor.replication.resources import VOLUME_GROUP_REPLICATION
from couchestor.settings import Settings
from couchestor.tiering.heat import metric_source
from couchestor.tiering.plan import DecideOptions
from couchestor.tiering.reconcile import Reconciler, ReconcilerOptions, Stores
from couchestor.tiering.scores import PrometheusClient, ScoreCache
from k8s_schemas.core import PersistentVolume, PersistentVolumeClaim
from k8s_schemas.mayastor import DiskPool, MayastorVolume
from k8s_schemas.replication import VolumeGroupReplication
from k8s_schemas.storage_policy import StoragePolicy
from k8s_schemas.tier_migration import TierMigration

log = logging.getLogger("couchestor")


class RunningBackend(VolumeBackend, Protocol):
    """A volume backend with its own background task (wake-ups, cordon clean-up)."""

    async def run(self) -> None: ...


@dataclass
class Operator:
    """Everything one operator process runs; tests build it directly and poke at its parts."""

    settings: Settings
    client: KubeClient
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    health: Health = field(default_factory=Health)
    feed: Feed = field(default_factory=Feed)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: Keep the watch caches out of the garbage collector's reach (:func:`freeze_heap`, after the initial sync
    #: and every :data:`REFREEZE_INTERVAL`); set by ``couchestor run``, whose process is the operator's alone
    #: (not by tests running many operators in one process).
    freeze_heap_after_sync: bool = False
    endpoint_url: str | None = None
    stores: Stores | None = None
    runner: MigrationRunner | None = None
    reconciler: Reconciler | None = None
    scores: ScoreCache | None = None
    leading: trio.Event = field(default_factory=trio.Event)

    @property
    def identity(self) -> str:
        return self.settings.identity or default_identity()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the endpoints and run the operator (under leader election when enabled) until cancelled."""
        async with trio.open_nursery() as nursery:
            app = EndpointsApp(self.metrics, self.health, self.feed)
            self.endpoint_url = await nursery.start(serve_asgi, app, self.settings.metrics_addr)
            log.info("Serving /metrics, /healthz, /readyz and /feed on %s", self.endpoint_url)
            task_status.started()
            if self.settings.leader_election:
                # A standby is ready: it campaigns and can take over. (Were it unready, a Deployment with a
                # standby replica could never finish a rollout.) Leading adds the watch and Prometheus gates.
                self.health.gate("election", None)
                elector = LeaderElector(
                    self.client,
                    namespace=self.settings.namespace,
                    name=self.settings.lease_name,
                    identity=self.identity,
                    lease_duration=self.settings.lease_duration,
                    renew_deadline=self.settings.renew_deadline,
                    retry_period=self.settings.retry_period,
                    on_change=self._on_leadership,
                )
                await elector.run(self.lead)
            else:
                # Without election this instance is the only one, so it leads (and says so to the alerts).
                self.metrics.is_leader.set(1)
                await self.lead()

    def _on_leadership(self, leading: bool) -> None:
        self.metrics.is_leader.set(1 if leading else 0)
        log.info("%s the leader Lease", "Acquired" if leading else "Lost")

    async def lead(self) -> None:
        """The operator proper; cancelled when leadership is lost."""
        s = self.settings
        ns = s.mayastor_namespace

        def reflector(
            resource: resources.Resource,
            type_: type[Any],
            namespace: str | None,
            indexers: Mapping[str, Callable[[Any], Iterable[str]]] | None = None,
        ) -> Reflector[Any]:
            kind = resource.kind

            def on_error(exc: WatcherError) -> None:
                reason = "gone" if exc.relist else type(exc.cause).__name__
                self.metrics.watch_restarts.labels(kind=kind, reason=reason).inc()
                log.warning("%s", exc)

            return Reflector.for_resource(
                self.client, resource, type_, namespace=namespace, indexers=indexers, on_error=on_error
            )

        async with contextlib.AsyncExitStack() as stack:
            rest: MayastorRestClient | None = None
            # Each source keeps a store: a watch (Kubernetes) or a periodic relist (Mayastor's REST API).
            sources: dict[str, Any] = {
                "StoragePolicy": reflector(resources.STORAGE_POLICY, StoragePolicy, None),
                "PersistentVolume": reflector(
                    resources.PERSISTENT_VOLUME, PersistentVolume, None, PV_INDEXERS
                ),
                "PersistentVolumeClaim": reflector(
                    resources.PERSISTENT_VOLUME_CLAIM, PersistentVolumeClaim, None
                ),
                "DiskPool": reflector(resources.DISK_POOL, DiskPool, ns),
                "TierMigration": reflector(resources.TIER_MIGRATION, TierMigration, None),
            }
            if s.backend == "mayastor-rest":
                try:
                    client = MayastorRestClient(
                        s.mayastor_rest_url, token_file=s.mayastor_rest_token_file, ca_file=s.mayastor_rest_ca
                    )
                except ValueError as exc:
                    raise UserError(str(exc)) from None
                rest = await stack.enter_async_context(client)
                sources["MayastorVolume"] = RestVolumeReflector(rest, ns, interval=s.mayastor_rest_interval)
            else:
                sources["MayastorVolume"] = reflector(resources.MAYASTOR_VOLUME, MayastorVolume, ns)
            if s.enable_replication:
                sources["VolumeGroupReplication"] = reflector(
                    VOLUME_GROUP_REPLICATION, VolumeGroupReplication, None
                )
            self.stores = stores = Stores(
                policies=sources["StoragePolicy"].store,
                pvs=sources["PersistentVolume"].store,
                pvcs=sources["PersistentVolumeClaim"].store,
                volumes=sources["MayastorVolume"].store,
                pools=sources["DiskPool"].store,
                volume_groups=sources["VolumeGroupReplication"].store if s.enable_replication else None,
                tier_migrations=sources["TierMigration"].store,
            )
            source = metric_source(
                s.metric_preset,
                metric=s.metric_name,
                label=s.metric_label,
                selector=s.metric_selector or "",
                scrape_interval_seconds=s.scrape_interval,
            )
            backend = self.make_backend(stores, rest)
            events = EventRecorder(self.client, instance=self.identity, on_outcome=self._count_event)
            self.runner = runner = MigrationRunner(
                backend,
                self.client,
                pools=stores.pools,
                policies=stores.policies,
                events=events,
                metrics=self.metrics,
                feed=self.feed,
                tier_migrations=stores.tier_migrations,
                options=RunnerOptions(
                    identity=self.identity,
                    max_concurrent=s.max_concurrent_migrations,
                    preservation=s.preservation_mode,
                    clock=self.clock,
                ),
            )
            prometheus = await stack.enter_async_context(PrometheusClient(s.prometheus_url))
            nursery = await stack.enter_async_context(trio.open_nursery())
            self.scores = scores = ScoreCache(
                prometheus,
                source,
                ttl=s.score_ttl,
                metrics=self.metrics,
                health=self.health,
                wall_clock=self.clock,
            )
            self.reconciler = reconciler = Reconciler(
                self.client,
                stores,
                scores,
                runner,
                events=events,
                metrics=self.metrics,
                health=self.health,
                feed=self.feed,
                options=ReconcilerOptions(
                    resync=s.resync,
                    dry_run=s.dry_run,
                    paused=s.paused,
                    decide=DecideOptions(min_coverage=s.min_coverage, fixed_topology=rest is not None),
                    clock=self.clock,
                ),
            )
            for kind, r in sources.items():
                self.health.gate(f"watch/{kind}", "not synced yet")
                nursery.start_soon(r.run, name=f"watch {kind}")
                nursery.start_soon(self._gate_on_sync, kind, r.store)
            nursery.start_soon(scores.run, name="score cache")
            nursery.start_soon(events.run, name="events")
            if s.enable_replication:
                await nursery.start(partial(run_replication, self.client, namespace=None), name="replication")
            nursery.start_soon(backend.run, name="backend")
            for r in sources.values():
                await r.store.wait_synced()
            if self.freeze_heap_after_sync:
                freeze_heap()
                nursery.start_soon(_keep_heap_frozen, name="heap freezer")
            log.info(
                "Watching %d policies, %d PVs, %d MayastorVolumes, %d DiskPools",
                len(stores.policies),
                len(stores.pvs),
                len(stores.volumes),
                len(stores.pools),
            )
            await nursery.start(runner.run, name="migrations")
            await nursery.start(reconciler.run, name="reconciler")
            self.leading.set()

    def _count_event(self, outcome: Outcome) -> None:
        if outcome == "written":
            self.metrics.api_writes.labels(kind="Event").inc()
        else:
            self.metrics.events_not_recorded.labels(reason=outcome).inc()

    def make_backend(self, stores: Stores, rest: MayastorRestClient | None) -> RunningBackend:
        """The volume backend migrations go through: Mayastor 2.x's REST API when ``rest`` is given, else the
        MayastorVolume resource (one place to substitute another implementation)."""
        if rest is not None:
            return RestBackend(rest, self.client, stores.pvs)
        return CrdBackend(self.client, self.settings.mayastor_namespace, stores.volumes)

    async def _gate_on_sync(self, kind: str, store: Any) -> None:
        await store.wait_synced()
        self.health.gate(f"watch/{kind}", None)


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run the operator against a Kubernetes cluster",
        description="Run the tiering operator. Every flag can also be set by the environment variable shown.",
    )
    settings_mod.add_arguments(parser)
    parser.set_defaults(func=main)


#: How often objects created since the last freeze (objects replaced by watch updates) are frozen in turn.
REFREEZE_INTERVAL = 600.0


def freeze_heap() -> None:
    """Collect once, then freeze every object that survived (``gc.freeze``).

    The watch caches live as long as the process; without this every full collection walks all of them again
    (0.1-0.15 s each at 50,000 volumes; freezing took about 30 % off a reconcile pass at 5,000 volumes).
    Frozen objects dropped later are still freed by reference counting; only cycles among them would never
    be collected, and the caches hold none.
    """
    gc.collect()
    gc.freeze()
    log.debug("%d objects frozen out of the garbage collector's reach", gc.get_freeze_count())


async def _keep_heap_frozen() -> None:
    """Freeze again every :data:`REFREEZE_INTERVAL` seconds: updates replace cached objects by new ones."""
    while True:
        await trio.sleep(REFREEZE_INTERVAL)
        freeze_heap()


def main(args: argparse.Namespace) -> int:
    settings = settings_mod.resolve(args)
    configure_logging(settings.log_format, settings.log_level)
    config = load_config(settings.kubeconfig, settings.context)
    trio.run(_run_until_signalled, settings, config)
    return 0


async def _run_until_signalled(settings: Settings, config: Any) -> None:
    async with KubeClient(config) as client:
        await check_cluster(client, settings)
        await _serve(settings, client)


async def _serve(settings: Settings, client: KubeClient) -> None:
    async with trio.open_nursery() as nursery:
        operator = Operator(settings, client, freeze_heap_after_sync=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            nursery.start_soon(operator.run)
            async for signum in signals:
                log.info("Received %s: shutting down", signal.Signals(signum).name)
                break
        # Cancellation reaches every task at its next await; nothing shields for long (the HTTP server's
        # graceful close is bounded), so the process exits within seconds.
        nursery.cancel_scope.cancel()


__all__ = ["Operator", "add_parser", "main"]
