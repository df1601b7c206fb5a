"""The reconcile loop: read the stores, decide, start migrations, report status.

One pass is :meth:`Reconciler.reconcile_once`: everything it reads comes from the watch stores and the score
cache (no API reads), the decisions are the pure :func:`couchestor.decisions.decide`, and the only writes are
the StoragePolicy status patches that would change something visible, Events for decisions that changed, and
the migrations handed to the runner. A steady cluster therefore costs no API writes per pass.

:meth:`Reconciler.run` repeats passes when a store changes or the score cache refreshes (changes arriving
together are coalesced into one pass) and at least every ``resync`` seconds (jittered), never in a busy loop.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import trio
from msgspec import UNSET

from couchestor.decisions import (
    Action,
    DecideOptions,
    Decision,
    Plan,
    PlannedMigration,
    build_pool_views,
    build_volume_views,
    decide,
)
from couchestor.endpoints import Feed, Health
from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import KubeError, NotFound
from couchestor.kube.events import EventRecorder
from couchestor.kube.store import Store
from couchestor.metrics import OperatorMetrics
from couchestor.migration.runner import MigrationRunner
from couchestor.policy import PolicyProblem, PolicyRules, compile_policy
from couchestor.scores import ScoreCache
from couchestor.status import MetricsState, status_patch
from k8s_schemas.annotations import TIER_LABEL
from k8s_schemas.core import PersistentVolume, PersistentVolumeClaim
from k8s_schemas.mayastor import DiskPool, MayastorVolume
from k8s_schemas.replication import VolumeGroupReplication
from k8s_schemas.storage_policy import StoragePolicy

log = logging.getLogger("couchestor.reconciler")

#: Shortest gap between two passes: a burst of watch events makes one pass, not hundreds.
MIN_INTERVAL = 0.2
#: The gap after a pass is at least this many times the pass's own CPU time, so a cluster whose objects
#: change all the time holds the reconciler to about a fifth of a core (a pass over 50,000 volumes takes
#: seconds; back to back, they would take a whole core).
PAUSE_PER_PASS_CPU = 4.0


def pause_after(pass_cpu_seconds: float) -> float:
    """Seconds to wait before the next pass may start, after a pass that used ``pass_cpu_seconds``."""
    return max(MIN_INTERVAL, PAUSE_PER_PASS_CPU * pass_cpu_seconds)


@dataclass(frozen=True, slots=True)
class Stores:
    """The watched objects the decisions are made from."""

    policies: Store[StoragePolicy]
    pvs: Store[PersistentVolume]
    pvcs: Store[PersistentVolumeClaim]
    volumes: Store[MayastorVolume]
    pools: Store[DiskPool]
    #: Watched only with --enable-replication: a group's volumes are tiered together.
    volume_groups: Store[VolumeGroupReplication] | None = None

    def all(self) -> tuple[Store[Any], ...]:
        core = (self.policies, self.pvs, self.pvcs, self.volumes, self.pools)
        return core if self.volume_groups is None else (*core, self.volume_groups)

    def replication_groups(self) -> dict[str, str]:
        """PV name -> ``vgr:<namespace>/<name>`` for the volumes of every VolumeGroupReplication."""
        if self.volume_groups is None:
            return {}
        out: dict[str, str] = {}
        for vgr in self.volume_groups.list():
            status = vgr.status
            if status is UNSET or status.persistent_volume_claims_ref_list is UNSET:
                continue
            namespace = str(vgr.metadata.namespace)
            for ref in status.persistent_volume_claims_ref_list:
                pvc = self.pvcs.get(ref.name, namespace)
                if pvc is not None and pvc.spec.volume_name is not UNSET:
                    out[pvc.spec.volume_name] = f"vgr:{namespace}/{vgr.metadata.name}"
        return out


@dataclass(frozen=True, slots=True)
class ReconcilerOptions:
    resync: float = 30.0
    dry_run: bool = False  # operator-wide: every policy behaves as dryRun
    decide: DecideOptions = field(default_factory=DecideOptions)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


class Reconciler:
    def __init__(
        self,
        client: KubeClient,
        stores: Stores,
        scores: ScoreCache,
        runner: MigrationRunner,
        *,
        events: EventRecorder,
        metrics: OperatorMetrics,
        health: Health,
        options: ReconcilerOptions,
        feed: Feed | None = None,
    ) -> None:
        self.client = client
        self.stores = stores
        self.scores = scores
        self.runner = runner
        self.events = events
        self.metrics = metrics
        self.health = health
        self.options = options
        self.feed = feed
        self.passes = 0
        self.last_cpu_seconds = 0.0
        self.last_decide_cpu_seconds = 0.0
        self.last_plan: Plan | None = None
        self._last_labels: dict[tuple[str, str], str] = {}
        self._wanted_labels: dict[str, str] = {}
        self._labels_changed = trio.Event()
        self._wake = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reconcile until cancelled. Starts after every store has synced and migration recovery is done."""
        self.health.gate("reconciler", "waiting for the watch streams to sync")
        for store in self.stores.all():
            await store.wait_synced()
        await self.runner.recovered.wait()
        self.health.gate("reconciler", None)
        self.health.expect("reconciler", max_silence=self.options.resync * 4 + 60)
        task_status.started()
        async with trio.open_nursery() as nursery:
            for store in self.stores.all():
                nursery.start_soon(self._follow, store)
            nursery.start_soon(self._follow_scores)
            nursery.start_soon(self._label_pvs)
            while True:
                await self.reconcile_once()
                await trio.sleep(pause_after(self.last_decide_cpu_seconds))
                # client-go's resync jitter: up to 10 % later, so many operators do not beat in step.
                with trio.move_on_after(self.options.resync * (1 + 0.1 * random.random())):
                    await self._wake.wait()
                self._wake = trio.Event()

    async def _follow(self, store: Store[Any]) -> None:
        # Any change wakes the pass, so changes are taken in batches: one checkpoint per wake-up, not per change.
        async for _ in store.subscribe(initial=False).batches():
            self._wake.set()

    async def _follow_scores(self) -> None:
        while True:
            await self.scores.wait_refreshed()
            self._wake.set()

    async def _label_pvs(self) -> None:
        """Keep the PV label ``storage.billyronks.io/tier`` equal to each volume's current tier.

        Runs beside the passes so that labelling thousands of PVs at first start (paced by the client's rate
        limit) never delays a decision; afterwards only PVs whose tier changed are written.
        """
        while True:
            await self._labels_changed.wait()
            self._labels_changed = trio.Event()
            for pv, tier in list(self._wanted_labels.items()):
                obj = self.stores.pvs.get(pv)
                # A volume migrating, or whose migration ended after the plan was made, has a stale wanted tier.
                if obj is None or pv in self.runner.in_flight or pv in self.runner.recent:
                    continue
                labels = {} if obj.metadata.labels is UNSET else obj.metadata.labels
                if labels.get(TIER_LABEL) == tier:
                    continue
                patch = {"metadata": {"labels": {TIER_LABEL: tier}}}
                try:
                    with trio.fail_after(30):
                        await self.client.merge_patch(resources.PERSISTENT_VOLUME, pv, patch, type=dict)
                    self.metrics.api_writes.labels(kind="PersistentVolume").inc()
                except NotFound:
                    pass
                except (KubeError, trio.TooSlowError) as exc:
                    log.warning("Cannot label PV %s with its tier: %s", pv, exc)

    def wake(self) -> None:
        self._wake.set()

    async def reconcile_once(self) -> Plan:
        """One pass; errors writing status are logged and retried on the next pass, never raised."""
        started_cpu = time.process_time()
        with self.metrics.reconcile_duration.time():
            plan = await self._pass()
        self.metrics.reconcile_total.inc()
        self.passes += 1
        self.health.beat("reconciler")
        self.last_cpu_seconds = time.process_time() - started_cpu
        return plan

    async def _pass(self) -> Plan:
        now = self.options.clock()
        started = time.process_time()
        rules, plan = self.plan(now)
        # The synchronous part is the pass's own cost; the awaits below let other tasks run (and use CPU).
        self.last_decide_cpu_seconds = time.process_time() - started
        self._report_decisions(plan)
        by_name = {r.name: r for r in rules if isinstance(r, PolicyRules)}
        batches: dict[str, list[PlannedMigration]] = {}
        for migration in plan.migrations:
            batches.setdefault(migration.group or f"single:{migration.volume}", []).append(migration)
        for batch in batches.values():
            self.runner.start(batch, by_name[batch[0].policy])
        await self._write_statuses(plan, rules, now)
        self._export(plan)
        return plan

    def plan(self, now: datetime) -> tuple[list[PolicyRules | PolicyProblem], Plan]:
        """Compile the policies and decide, from the stores and the score cache (no I/O)."""
        rules = [self._rules(p) for p in self.stores.policies.list()]
        self.scores.want({r.window_seconds for r in rules if isinstance(r, PolicyRules) and r.enabled})
        volumes = build_volume_views(
            self.stores.pvs.list(), self.stores.pvcs.list(), self.stores.volumes.list()
        )
        pools = build_pool_views(self.stores.pools.list())
        self._forget_recent(volumes_annotated={v.name: v.last_migration for v in volumes})
        plan = decide(
            rules,
            volumes,
            pools,
            self.scores.snapshots,
            in_flight=set(self.runner.in_flight),
            recent_migrations=self.runner.recent,
            now=now,
            options=self.options.decide,
            groups=self.stores.replication_groups(),
        )
        self.last_plan = plan
        return rules, plan

    def _rules(self, obj: StoragePolicy) -> PolicyRules | PolicyProblem:
        compiled = compile_policy(obj)
        if self.options.dry_run and isinstance(compiled, PolicyRules):
            return replace(compiled, dry_run=True)
        return compiled

    def _forget_recent(self, volumes_annotated: Mapping[str, datetime | None]) -> None:
        """Drop in-memory finish times once the PV annotation says as much (or the PV is gone)."""
        for pv, finished in list(self.runner.recent.items()):
            seen = volumes_annotated.get(pv, finished)
            if pv not in volumes_annotated or (seen is not None and seen >= finished.replace(microsecond=0)):
                del self.runner.recent[pv]

    def _report_decisions(self, plan: Plan) -> None:
        labels: dict[tuple[str, str], str] = {}
        wanted = {d.volume: d.current_tier.value for d in plan.decisions if d.current_tier is not None}
        if wanted != self._wanted_labels:
            self._wanted_labels = wanted
            self._labels_changed.set()
        for decision in plan.decisions:
            key = (decision.policy, decision.volume)
            label = decision.label
            labels[key] = label
            if self._last_labels.get(key) == label:
                continue
            self.metrics.decisions.labels(policy=decision.policy, action=label).inc()
            if self.feed is not None:
                self.feed.publish(
                    {
                        "type": "decision",
                        "volume": decision.volume,
                        "policy": decision.policy,
                        "decision": label,
                        "score": decision.score,
                        "tier": decision.current_tier,
                        "target_tier": decision.target_tier,
                        "target_pool": decision.target_pool,
                        "detail": decision.detail,
                    }
                )
            if decision.score is not None:
                log.info("Volume %s heat score: %.1f", decision.volume, decision.score)
            log.info("Volume %s policy %s: %s (%s)", decision.volume, decision.policy, label, decision.detail)
            # Moves get their Events from the runner once the intent is written; dry runs get one here.
            if decision.action is Action.SKIP and decision.reason == "dry-run":
                self._dry_run_event(decision)
        self._last_labels = labels

    def _dry_run_event(self, decision: Decision) -> None:
        message = (
            f"Dry run: would move {decision.volume} from {decision.current_tier} to {decision.target_tier}"
            f"{f' (pool {decision.target_pool})' if decision.target_pool else ''}: {decision.detail}"
        )
        for resource, name in (
            (resources.PERSISTENT_VOLUME, decision.volume),
            (resources.STORAGE_POLICY, decision.policy),
        ):
            self.events.emit(
                resource,
                {"metadata": {"name": name}},
                type="Normal",
                reason="DryRunMigration",
                message=message,
            )

    async def _write_statuses(
        self, plan: Plan, rules: list[PolicyRules | PolicyProblem], now: datetime
    ) -> None:
        windows = {r.name: r.window_seconds for r in rules if isinstance(r, PolicyRules)}
        for policy_plan in plan.policies:
            obj = self.stores.policies.get(policy_plan.policy)
            if obj is None:
                continue
            snapshot = self.scores.snapshots.get(windows.get(policy_plan.policy, -1))
            if snapshot is None:
                metrics = MetricsState(available=None if self.scores.healthy is None else self.scores.healthy)
            else:
                metrics = MetricsState(available=snapshot.healthy, error=snapshot.error)
            patch = status_patch(
                policy_plan,
                None if obj.status is UNSET else obj.status,
                metrics=metrics,
                active=self.runner.active_for(policy_plan.policy),
                now=now,
                stuck=self.runner.stuck_for(policy_plan.policy),
            )
            if patch is None:
                continue
            try:
                with trio.fail_after(30):
                    await self.client.patch_status(
                        resources.STORAGE_POLICY, policy_plan.policy, patch, type=dict
                    )
                self.metrics.api_writes.labels(kind="StoragePolicy").inc()
            except NotFound:
                pass  # deleted meanwhile
            except (KubeError, trio.TooSlowError) as exc:
                self.metrics.reconcile_errors.inc()
                log.warning("Cannot update the status of StoragePolicy %s: %s", policy_plan.policy, exc)

    def _export(self, plan: Plan) -> None:
        for policy_plan in plan.policies:
            for tier, count in policy_plan.tier_counts.items():
                self.metrics.volumes.labels(policy=policy_plan.policy, tier=tier.value).set(count)
        ages = [(self.options.clock() - s.fetched_at).total_seconds() for s in self.scores.snapshots.values()]
        if ages:
            self.metrics.score_cache_age.set(max(ages))
        if self.feed is not None:
            self.feed.publish(
                {
                    "type": "reconcile",
                    "policies": {
                        p.policy: {
                            "phase": p.phase,
                            "watched": p.watched,
                            **{t.value: c for t, c in p.tier_counts.items()},
                            "active": self.runner.active_for(p.policy),
                        }
                        for p in plan.policies
                    },
                },
                retain_as="reconcile",
            )


__all__ = ["Reconciler", "ReconcilerOptions", "Stores"]
