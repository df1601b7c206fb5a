"""The reconcile loop: read the stores, decide, start migrations, report status.

One pass is :meth:`Reconciler.reconcile_once`: everything it reads comes from the watch stores and the score
cache (no API reads), the decisions are those of the pure :func:`couchestor.tiering.decide.decide`, and the only
writes are
the StoragePolicy status patches that would change something visible, Events for decisions that changed, and
the migrations handed to the runner. A steady cluster therefore costs no API writes per pass.

While :meth:`Reconciler.run` runs, a pass is incremental: the keys each store reports changed are handed to a
:class:`~couchestor.tiering.views.ViewIndex`, which rebuilds only the views they touch, and the
:class:`~couchestor.tiering.incremental.IncrementalPlanner` re-judges only what changed; the decisions logged and
published are the ones whose label changed. At least every ``full_pass_every`` seconds (and whenever passes
run without :meth:`Reconciler.run`, as in tests) a pass rebuilds every view and re-judges everything: the
floor that makes the result never depend on a missed change.

TierMigrations (when the store of them is given, as the operator always does): the pass does not start the
plan's migrations itself. It creates a TierMigration for every planned move that has none, then
:func:`couchestor.tiering.operations.operate` judges every unstarted one (approval, cancellation, the decision
still holding) and admits the ready ones (pause, windows, global, policy, node and pool limits, FIFO per
policy); the pass starts exactly those, writes the status of the others, adds or drops the finalizer, and
deletes finished ones beyond their policy's history limit. Policies are compiled with their approvals,
windows, blackouts and pause enforced; without the store they are refused, as nothing would enforce them.

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

from couchestor import logs
from couchestor.durations import format_time
from couchestor.endpoints import Feed, Health
from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import AlreadyExists, KubeError, NotFound
from couchestor.kube.events import EventRecorder
from couchestor.kube.objects import Ignored, ObjectKey
from couchestor.kube.store import Store, Subscription
from couchestor.metrics import OperatorMetrics, overdue_migrations, scored_volumes, tier_fill
from couchestor.migration.runner import MigrationRunner, release_finalizer
from couchestor.tiering.admission import Hold
from couchestor.tiering.incremental import IncrementalPlanner
from couchestor.tiering.operations import (
    RunningMove,
    held_plan,
    new_objects,
    operate,
    shown_changes,
    window_holds,
)
from couchestor.tiering.plan import Action, DecideOptions, Decision, Plan, PlannedMigration
from couchestor.tiering.policy import PolicyProblem, PolicyRules, Tier, compile_policy
from couchestor.tiering.scores import ScoreCache
from couchestor.tiering.status import MetricsState, status_patch
from couchestor.tiering.tiermigration import FINALIZER
from couchestor.tiering.views import ViewIndex
from k8s_schemas.annotations import TIER_LABEL
from k8s_schemas.core import PersistentVolume, PersistentVolumeClaim
from k8s_schemas.mayastor import DiskPool, MayastorVolume
from k8s_schemas.replication import VolumeGroupReplication
from k8s_schemas.storage_policy import StoragePolicy
from k8s_schemas.tier_migration import TierMigration, TierMigrationStatus

log = logging.getLogger("couchestor.tiering.reconcile")

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
    #: The TierMigrations (the operator always watches them; without them, moves start unrecorded and
    #: policies asking for approvals, windows or a pause are refused).
    tier_migrations: Store[TierMigration] | None = None

    def all(self) -> tuple[Store[Any], ...]:
        optional = (self.volume_groups, self.tier_migrations)
        return (
            self.policies,
            self.pvs,
            self.pvcs,
            self.volumes,
            self.pools,
            *(s for s in optional if s is not None),
        )

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
    paused: bool = False  # operator-wide (couchestor run --paused): no new move starts
    decide: DecideOptions = field(default_factory=DecideOptions)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: Longest time between two full passes (every view rebuilt, every volume re-judged).
    full_pass_every: float = 600.0


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
        self.full_passes = 0
        self._views = ViewIndex(stores.pvs, stores.pvcs, stores.volumes, stores.pools)
        self._planner = IncrementalPlanner()
        # Keys changed since the last pass, per store (only while run() follows the stores).
        self._changed: dict[str, set[ObjectKey]] = {"pvs": set(), "pvcs": set(), "volumes": set()}
        self._pools_changed = False
        self._following = False
        self._last_full = -float("inf")
        # PV name -> the tier its label should say (from the one decision with a current tier: a volume two
        # policies select is a conflict, decided without one); PVs whose label to check.
        self._wanted_labels: dict[str, str] = {}
        self._labels_to_check: set[str] = set()
        self._labels_changed = trio.Event()
        self._wake = trio.Event()
        #: When each migration was first seen in flight (for the overdue gauge; a resumed one counts from
        #: this operator's start).
        self._migrating_since: dict[str, datetime] = {}
        #: TierMigrations created and not yet seen in the store (with the monotonic time of creation), and the
        #: status last written on each unstarted one, so a pass never acts on the watch lagging its own writes.
        self._created: dict[str, tuple[float, TierMigration]] = {}
        self._tm_written: dict[str, TierMigrationStatus] = {}
        #: The outside-window holds of the last pass, by policy (a decision's label changes when they do).
        self._holds: Mapping[str, Hold] = {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reconcile until cancelled. Starts after every store has synced and migration recovery is done."""
        self.health.gate("reconciler", "waiting for the watch streams to sync")
        for store in self.stores.all():
            await store.wait_synced()
        await self.runner.recovered.wait()
        self.health.gate("reconciler", None)
        self.health.expect("reconciler", max_silence=self.options.resync * 4 + 60)
        task_status.started()
        # Subscribed before the first pass, so no change between its reads and the next pass is missed.
        watched: dict[str, Store[Any]] = {
            "pvs": self.stores.pvs,
            "pvcs": self.stores.pvcs,
            "volumes": self.stores.volumes,
            "pools": self.stores.pools,
        }
        subscriptions = [(name, store.subscribe(initial=False)) for name, store in watched.items()]
        others: list[Store[Any]] = [s for s in self.stores.all() if all(s is not w for w in watched.values())]
        subscriptions += [("", store.subscribe(initial=False)) for store in others]
        self._following = True
        self._last_full = -float("inf")
        async with trio.open_nursery() as nursery:
            for name, subscription in subscriptions:
                nursery.start_soon(self._follow, name, subscription)
            nursery.start_soon(self._follow_scores)
            nursery.start_soon(self._label_pvs)
            while True:
                await self.reconcile_once()
                await trio.sleep(pause_after(self.last_decide_cpu_seconds))
                # client-go's resync jitter: up to 10 % later, so many operators do not beat in step.
                with trio.move_on_after(self.options.resync * (1 + 0.1 * random.random())):
                    await self._wake.wait()
                self._wake = trio.Event()

    async def _follow(self, name: str, subscription: Subscription) -> None:
        # Any change wakes the pass, so changes are taken in batches: one checkpoint per wake-up, not per change.
        try:
            async for batch in subscription.batches():
                if name == "pools":
                    self._pools_changed = True
                elif name:
                    self._changed[name].update(change.key for change in batch)
                self._wake.set()
        finally:
            self._following = False
            subscription.close()

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
            check, self._labels_to_check = self._labels_to_check, set()
            for pv in sorted(check):
                tier = self._wanted_labels.get(pv)
                if tier is None:
                    continue
                obj = self.stores.pvs.get(pv)
                # A volume migrating, or whose migration ended after the plan was made, has a stale wanted tier.
                if obj is None:
                    continue
                if pv in self.runner.in_flight or pv in self.runner.recent:
                    self._labels_to_check.add(pv)  # checked again once its migration is recorded
                    continue
                labels = {} if obj.metadata.labels is UNSET else obj.metadata.labels
                if labels.get(TIER_LABEL) == tier:
                    continue
                patch = {"metadata": {"labels": {TIER_LABEL: tier}}}
                try:
                    with trio.fail_after(30):
                        await self.client.merge_patch(resources.PERSISTENT_VOLUME, pv, patch, type=Ignored)
                    self.metrics.api_writes.labels(kind="PersistentVolume").inc()
                except NotFound:
                    pass
                except (KubeError, trio.TooSlowError) as exc:
                    log.warning("Cannot label PV %s with its tier: %s", pv, exc)

    def wake(self) -> None:
        self._wake.set()

    def request_full_pass(self) -> None:
        """Make the next pass a full one (every view rebuilt, every volume re-judged)."""
        self._last_full = -float("inf")

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
        # Decisions as shown (log, metric, live feed, last_plan): a move held outside its policy's
        # window says so; the TierMigrations are made from the plan itself and wait there.
        holds = window_holds(rules, now, paused=self.options.paused)
        shown = held_plan(plan, holds)
        self.last_plan = shown
        # The synchronous part is the pass's own cost; the awaits below let other tasks run (and use CPU).
        self.last_decide_cpu_seconds = time.process_time() - started
        self._report_decisions(plan, holds)
        by_name = {r.name: r for r in rules if isinstance(r, PolicyRules)}
        next_windows: dict[str, datetime] = {}
        if self.stores.tier_migrations is None:
            batches: dict[str, list[PlannedMigration]] = {}
            for migration in plan.migrations:
                batches.setdefault(migration.group or f"single:{migration.volume}", []).append(migration)
            for batch in batches.values():
                self.runner.start(batch, by_name[batch[0].policy])
        else:
            next_windows = await self._operate(plan, rules, by_name, now)
        await self._write_statuses(shown, rules, now, next_windows)
        self._export(shown, rules)
        return shown

    def plan(self, now: datetime) -> tuple[list[PolicyRules | PolicyProblem], Plan]:
        """Compile the policies and decide, from the stores and the score cache (no I/O): incrementally while
        :meth:`run` follows the stores, in full otherwise and at least every ``full_pass_every`` seconds."""
        rules = [self._rules(p) for p in self.stores.policies.list()]
        active = [r for r in rules if isinstance(r, PolicyRules) and r.enabled]
        self.scores.want(
            {r.window_seconds for r in active}, {r.idle.period_seconds for r in active if r.idle is not None}
        )
        changed, self._changed = self._changed, {"pvs": set(), "pvcs": set(), "volumes": set()}
        pools_changed, self._pools_changed = self._pools_changed, False
        full = not self._following or time.monotonic() - self._last_full >= self.options.full_pass_every
        changed_views: set[str] | None = None
        if full:
            self._views.rebuild()
            self._last_full = time.monotonic()
            self.full_passes += 1
        else:
            changed_views = self._views.update(
                changed["pvs"], changed["pvcs"], changed["volumes"], pools=pools_changed
            )
        views = self._views.views
        self._forget_recent(
            volumes_annotated={pv: v.last_migration for pv in self.runner.recent if (v := views.get(pv))}
        )
        plan = self._planner.plan(
            rules,
            views,
            self._views.pools,
            self.scores.snapshots,
            in_flight=set(self.runner.in_flight),
            recent_migrations=self.runner.recent,
            now=now,
            options=self.options.decide,
            groups=self.stores.replication_groups(),
            changed=changed_views,
            handle_names=self._views.names_with_handle,
            moving=self._moving(),
        )
        if full:
            self._labels_to_check.update(self._wanted_labels)
            self._labels_changed.set()
        self.last_plan = plan
        return rules, plan

    def _moving(self) -> dict[str, tuple[Tier, Tier]]:
        """The running migrations' tiers by PV name, for tier pressure."""
        out = {}
        for pv, m in self.runner.in_flight.items():
            source, target = Tier.parse(m.from_tier), Tier.parse(m.to_tier)
            if source is not None and target is not None:
                out[pv] = (source, target)
        return out

    def _rules(self, obj: StoragePolicy) -> PolicyRules | PolicyProblem:
        compiled = compile_policy(obj, operations_enforced=self.stores.tier_migrations is not None)
        if self.options.dry_run and isinstance(compiled, PolicyRules):
            return replace(compiled, dry_run=True)
        return compiled

    def _forget_recent(self, volumes_annotated: Mapping[str, datetime | None]) -> None:
        """Drop in-memory finish times once the PV annotation says as much (or the PV is gone)."""
        for pv, finished in list(self.runner.recent.items()):
            seen = volumes_annotated.get(pv, finished)
            if pv not in volumes_annotated or (seen is not None and seen >= finished.replace(microsecond=0)):
                del self.runner.recent[pv]
                self._labels_changed.set()

    def _report_decisions(self, plan: Plan, holds: Mapping[str, Hold]) -> None:
        """Count, publish and log the decisions whose label changed since the last pass (as shown under the
        pass's outside-window ``holds``); keep the tier each PV should be labelled with."""
        changes = shown_changes(self._planner.changes, plan, self._holds, holds)
        self._holds = holds
        wanted = self._wanted_labels
        for gone in self._planner.removed:
            if gone.current_tier is not None:
                wanted.pop(gone.volume, None)
        # Losses first, then gains: one policy's decision may lose the tier another's gains in the same pass.
        for before, decision in changes:
            if decision.current_tier is None and before is not None and before.current_tier is not None:
                wanted.pop(decision.volume, None)
        for _, decision in changes:
            if decision.current_tier is not None:
                tier = decision.current_tier.value
                if wanted.get(decision.volume) != tier:
                    wanted[decision.volume] = tier
                    self._labels_to_check.add(decision.volume)
        for before, decision in changes:
            label = decision.label
            if before is not None and before.label == label:
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
            about = logs.fields(
                volume=decision.volume,
                policy=decision.policy,
                decision=label,
                score=decision.score,
                tier=decision.current_tier,
                target_tier=decision.target_tier,
                target_pool=decision.target_pool,
            )
            if decision.score is not None:
                log.info("Volume %s heat score: %.1f", decision.volume, decision.score, extra=about)
            log.info(
                "Volume %s policy %s: %s (%s)",
                decision.volume,
                decision.policy,
                label,
                decision.detail,
                extra=about,
            )
            # Moves get their Events from the runner once the intent is written; dry runs get one here.
            if decision.action is Action.SKIP and decision.reason == "dry-run":
                self._dry_run_event(decision)
            elif decision.action is Action.SKIP and decision.reason == "pin-invalid":
                self._invalid_pin_event(decision)
        if self._labels_to_check:
            self._labels_changed.set()

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

    def _invalid_pin_event(self, decision: Decision) -> None:
        """A Warning on the PV and on its claim, where the owner of the annotation looks
        (``kubectl describe pvc``)."""
        message = f"Not tiered: {decision.detail}"
        targets: list[tuple[resources.Resource, dict[str, Any]]] = [
            (resources.PERSISTENT_VOLUME, {"metadata": {"name": decision.volume}})
        ]
        pv = self.stores.pvs.get(decision.volume)
        ref = None if pv is None else pv.spec.claim_ref
        if ref is not None and ref is not UNSET and ref.name is not UNSET and ref.namespace is not UNSET:
            meta = {"name": ref.name, "namespace": ref.namespace}
            if ref.uid is not UNSET:
                meta["uid"] = ref.uid
            targets.append((resources.PERSISTENT_VOLUME_CLAIM, {"metadata": meta}))
        for resource, obj in targets:
            self.events.emit(resource, obj, type="Warning", reason="InvalidPin", message=message)

    def _tier_migrations(self) -> list[TierMigration]:
        """The stored TierMigrations and those this reconciler created that the watch has not shown yet."""
        store = self.stores.tier_migrations
        assert store is not None
        moment = time.monotonic()
        for name, (at, _) in list(self._created.items()):
            if store.get(name) is not None or moment - at > 60:
                del self._created[name]
        listed = store.list()
        return [*listed, *(tm for _, tm in self._created.values())]

    async def _operate(
        self,
        plan: Plan,
        rules: list[PolicyRules | PolicyProblem],
        by_name: Mapping[str, PolicyRules],
        now: datetime,
    ) -> dict[str, datetime]:
        """Create, judge, admit, start and record TierMigrations (see the module doc); returns each policy's
        next window, for policies whose moves wait outside one."""
        running = {
            pv: RunningMove(
                pv, m.policy, m.source_pools, m.target_pool, m.request, stuck=pv in self.runner.stuck
            )
            for pv, m in self.runner.in_flight.items()
        }
        for body in new_objects(plan, self._tier_migrations(), running, rules, now):
            await self._create_tier_migration(body)
        migrations = self._tier_migrations()
        names = {tm.metadata.name for tm in migrations}
        self._tm_written = {n: s for n, s in self._tm_written.items() if n in names}
        ops = operate(
            rules,
            plan,
            self._views.views,
            {p.name: p for p in self._views.pools},
            migrations,
            running,
            global_limit=self.runner.options.max_concurrent,
            now=now,
            paused=self.options.paused,
            fixed_topology=self.options.decide.fixed_topology,
            written=self._tm_written,
        )
        batches: dict[str, list[tuple[str, PlannedMigration]]] = {}
        for start in ops.starts:
            m = start.migration
            batches.setdefault(m.group or f"single:{m.volume}", []).append((start.request, m))
        for batch in batches.values():
            policy = by_name.get(batch[0][1].policy)
            if policy is not None:
                self.runner.start([m for _, m in batch], policy, {m.volume: name for name, m in batch})
        for name, (patch, new) in ops.statuses.items():
            if await self._tm_write(name, "status", patch):
                self._tm_written[name] = new
        for name in ops.adopt:
            await self._adopt(name)
        for name in ops.release:
            self._tm_written.pop(name, None)
            await release_finalizer(self.client, name, self.metrics)
        for name in ops.delete:
            await self._tm_write(name, "delete", None)
        return dict(ops.next_windows)

    async def _create_tier_migration(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        try:
            with trio.fail_after(30):
                created = await self.client.create(resources.TIER_MIGRATION, body, type=TierMigration)
            self.metrics.api_writes.labels(kind="TierMigration").inc()
            self._created[name] = (time.monotonic(), created)
            log.info(
                "Created TierMigration %s: %s to %s",
                name,
                body["spec"]["volume"],
                body["spec"]["targetTier"],
                extra=logs.fields(volume=body["spec"]["volume"], policy=body["spec"]["policy"]),
            )
        except AlreadyExists:
            pass  # made in the same second by an earlier pass: the watch brings it
        except (KubeError, trio.TooSlowError) as exc:
            self.metrics.reconcile_errors.inc()
            log.warning("Cannot create TierMigration %s: %s", name, exc)

    async def _tm_write(self, name: str, what: str, patch: dict[str, Any] | None) -> bool:
        """Patch the status of (``what="status"``) or delete TierMigration ``name``; False when it failed."""
        try:
            with trio.fail_after(30):
                if what == "status":
                    assert patch is not None
                    await self.client.patch_status(resources.TIER_MIGRATION, name, patch, type=dict)
                else:
                    await self.client.delete(resources.TIER_MIGRATION, name)
            self.metrics.api_writes.labels(kind="TierMigration").inc()
            return True
        except NotFound:
            return False
        except (KubeError, trio.TooSlowError) as exc:
            self.metrics.reconcile_errors.inc()
            log.warning(
                "Cannot %s TierMigration %s: %s", "update the status of" if patch else what, name, exc
            )
            return False

    async def _adopt(self, name: str) -> None:
        """Add the finalizer to a user's TierMigration, so its deletion cancels the move safely."""
        store = self.stores.tier_migrations
        tm = None if store is None else store.get(name)
        if tm is None:
            return
        finalizers = [*(tm.metadata.finalizers or ()), FINALIZER]
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": tm.metadata.resource_version}}
        try:
            with trio.fail_after(30):
                await self.client.merge_patch(resources.TIER_MIGRATION, name, patch, type=dict)
            self.metrics.api_writes.labels(kind="TierMigration").inc()
        except NotFound:
            pass
        except (KubeError, trio.TooSlowError) as exc:  # a conflict included: the next pass tries again
            log.warning("Cannot add the finalizer to TierMigration %s: %s", name, exc)

    async def _write_statuses(
        self,
        plan: Plan,
        rules: list[PolicyRules | PolicyProblem],
        now: datetime,
        next_windows: Mapping[str, datetime] | None = None,
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
                # Only the Mayastor 2.x backend steers placement, and knows how once it first placed a replica.
                steering=getattr(self.runner.backend, "steering", None),
                next_window=(format_time(w) if (w := (next_windows or {}).get(policy_plan.policy)) else None),
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

    def _export(self, plan: Plan, rules: list[PolicyRules | PolicyProblem]) -> None:
        now = self.options.clock()
        for policy_plan in plan.policies:
            for tier, count in policy_plan.tier_counts.items():
                self.metrics.volumes.labels(policy=policy_plan.policy, tier=tier.value).set(count)
        # Rebuilt whole each pass so a deleted policy's or tier's series disappear (no await in between).
        self.metrics.volumes_scored.clear()
        for policy_name, count in scored_volumes(d for p in plan.policies for d in p.decisions).items():
            self.metrics.volumes_scored.labels(policy=policy_name).set(count)
        self.metrics.tier_capacity.clear()
        self.metrics.tier_used.clear()
        for (policy_name, tier_name), (capacity, used) in tier_fill(rules, self.stores.pools.list()).items():
            self.metrics.tier_capacity.labels(policy=policy_name, tier=tier_name).set(capacity)
            self.metrics.tier_used.labels(policy=policy_name, tier=tier_name).set(used)
        in_flight = self.runner.in_flight
        self._migrating_since = {pv: self._migrating_since.get(pv, now) for pv in in_flight}
        self.metrics.migrations_overdue.set(
            overdue_migrations(
                self._migrating_since,
                {pv: m.policy for pv, m in in_flight.items()},
                {r.name: r.migration_timeout_seconds for r in rules if isinstance(r, PolicyRules)},
                now,
            )
        )
        ages = [(now - s.fetched_at).total_seconds() for s in self.scores.snapshots.values()]
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
