"""Runs migrations: one task per volume, under a global and a per-policy :class:`trio.CapacityLimiter`.

The runner owns a nursery (:meth:`MigrationRunner.run`). :meth:`MigrationRunner.start` hands it a planned
migration; the task writes the intent on the volume, then loops: re-read the volume, compute the next step with
:func:`couchestor.migration.plan.next_step`, perform it, and wait for the volume to change. Because the next
step is derived from the volume and its intent alone, a cancelled operator leaves nothing half-done that the
next one cannot finish: on start, :meth:`run` first resumes every intent it finds (completing or rolling back)
and only then accepts new migrations.

Cancellation (shutdown, lost leadership) stops the tasks wherever they wait; the intent stays on the volume.

TierMigrations: a move's intent names its TierMigration (``request``). At each step the runner writes the
object's status computed from the intent and the volume it just read
(:func:`~couchestor.tiering.tiermigration.running_status`), and takes ``spec.cancel`` or the object's deletion
as a stop reason beside the policy's (:func:`~couchestor.tiering.tiermigration.stop_reason`), so a cancelled
move is rolled back by the state machine like any deliberate abort. At the end it writes the final status,
clears the intent, then drops the finalizer. These writes are best effort: the object is the move's readable
face, never what the move is decided from.

Every wait is bounded: a forward migration by its ``migrationTimeout`` (then it rolls back), a rollback by as
long again from the moment this operator saw it begin. A rollback past that deadline that still has to wait
(the volume never becomes healthy enough to remove the new replica safely) is reported stuck (log, Event,
metric, policy condition) and gives its concurrency slot back; it keeps following the volume and finishes when
it can.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import msgspec
import trio
from msgspec.structs import replace

from couchestor import logs
from couchestor.durations import format_duration, format_time
from couchestor.endpoints import Feed
from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import Conflict, KubeError, NotFound
from couchestor.kube.events import EventRecorder, EventType
from couchestor.kube.store import Store
from couchestor.labels import includes
from couchestor.metrics import OperatorMetrics
from couchestor.migration import plan
from couchestor.migration.backend import BackendError, IntentConflict, VolumeBackend, VolumeState
from couchestor.migration.intent import Intent
from couchestor.migration.record import Status, history_entry, history_patch, pv_patch
from couchestor.tiering.plan import PlannedMigration
from couchestor.tiering.policy import PolicyRules, compile_policy
from couchestor.tiering.tiermigration import (
    FINALIZER,
    finished_status,
    running_status,
    status_patch,
    stop_reason,
)
from k8s_schemas.mayastor import DiskPool
from k8s_schemas.storage_policy import StoragePolicy
from k8s_schemas.tier_migration import TierMigration, TierMigrationStatus

log = logging.getLogger("couchestor.migration")

T = TypeVar("T")

#: Consecutive retryable backend failures tolerated before a forward migration aborts.
RETRY_LIMIT = 6
#: Longest pause between retries (the first is 0.5 s, doubling, with jitter).
MAX_BACKOFF = 30.0
#: Longest wait for a volume change before the policy and the deadline are checked again.
RECHECK_INTERVAL = 5.0
#: Guarded status writes retried this often on 409 before the history entry is given up (and logged).
STATUS_RETRIES = 8
#: Longest wait for one TierMigration write: a slow API server delays the mirror, never the move for long.
MIRROR_TIMEOUT = 5.0
#: Progress a TierMigration's status shows in steps of at least this many points (the metric has every one).
MIRROR_PROGRESS_STEP = 10


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    identity: str
    max_concurrent: int = 2
    preservation: bool = False
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


@dataclass(slots=True)
class InFlight:
    """One migration as the rest of the operator sees it (status counts, the live feed)."""

    pv: str
    volume: str
    policy: str
    from_tier: str
    to_tier: str
    step: str = "queued"
    progress: int | None = None
    source_pools: tuple[str, ...] = ()
    target_pool: str = ""
    #: Its TierMigration's name ('' for none).
    request: str = ""
    #: The volume's size when known (for the TierMigration's bytes to copy).
    size_bytes: int | None = None


class MigrationRunner:
    def __init__(
        self,
        backend: VolumeBackend,
        client: KubeClient,
        *,
        pools: Store[DiskPool],
        policies: Store[StoragePolicy],
        events: EventRecorder,
        metrics: OperatorMetrics,
        options: RunnerOptions,
        feed: Feed | None = None,
        tier_migrations: Store[TierMigration] | None = None,
    ) -> None:
        self.backend = backend
        self.tier_migrations = tier_migrations
        self.client = client
        self.events = events
        self.pools = pools
        self.policies = policies
        self.metrics = metrics
        self.options = options
        self.feed = feed
        #: Migrations queued or running, by PV name.
        self.in_flight: dict[str, InFlight] = {}
        #: When migrations finished, by PV name, until the reconciler sees the PV annotation.
        self.recent: dict[str, datetime] = {}
        #: Set once every intent found at start has been resumed; no new migration starts before.
        self.recovered = trio.Event()
        self._limiter = trio.CapacityLimiter(max(options.max_concurrent, 1))
        self._policy_limiters: dict[str, trio.CapacityLimiter] = {}
        self._nursery: trio.Nursery | None = None
        self._progress_labels: set[str] = set()
        #: Rollbacks past their deadline, by PV name: why they wait.
        self.stuck: dict[str, str] = {}
        #: The status last written on each TierMigration (the watch may not have delivered it yet).
        self._mirrored: dict[str, TierMigrationStatus] = {}

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Resume the intents found on volumes, then run migrations handed to :meth:`start` until cancelled.

        The backend's view of the volumes must be synced before this is called.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            found = [s.intent for s in self.backend.intents() if s.intent is not None]
            groups: dict[str, list[Intent]] = {}
            for intent in found:
                if intent.pv in self.in_flight:
                    continue
                log.info(
                    "Resuming migration of %s (%s -> %s, %s) found on start",
                    intent.pv,
                    intent.from_tier,
                    intent.to_tier,
                    intent.phase,
                    extra=logs.migration(intent, "resumed"),
                )
                self._track(intent)
                groups.setdefault(intent.group or f"single:{intent.pv}", []).append(intent)
            for members in groups.values():
                barrier = _Barrier.recovered(members) if members[0].group else None
                nursery.start_soon(self._run_batch, members, None, barrier, False)
            self.recovered.set()
            task_status.started()
            await trio.sleep_forever()

    def start(
        self,
        migrations: Sequence[PlannedMigration],
        policy: PolicyRules,
        requests: Mapping[str, str] | None = None,
    ) -> bool:
        """Queue one migration, or every member of a volume group (which then move all or none).
        ``requests`` names each volume's TierMigration (recorded in its intent).

        Returns False, doing nothing, when a volume is already migrating or recovery has not finished.
        """
        requests = requests or {}
        if (
            not migrations
            or self._nursery is None
            or not self.recovered.is_set()
            or any(m.volume in self.in_flight for m in migrations)
        ):
            return False
        limiter = self._policy_limiters.setdefault(
            policy.name, trio.CapacityLimiter(policy.max_concurrent_migrations)
        )
        # The policy may have been edited since the limiter was made.
        limiter.total_tokens = max(policy.max_concurrent_migrations, 1)
        members = [m.volume for m in migrations] if len(migrations) > 1 else []
        drafts = [
            Intent(
                pv=m.volume,
                volume=m.backend_volume or m.volume,
                policy=policy.name,
                from_tier=m.from_tier.value,
                to_tier=m.to_tier.value,
                target_pool=m.target_pool,
                source_pools=list(m.source_pools),
                original_replicas=0,  # filled from the fresh read before the intent is written
                original_inclusion={},
                target_inclusion=dict(m.target_topology),
                started_at=format_time(self.options.clock()),
                operator=self.options.identity,
                trigger_iops=m.score,
                timeout_seconds=policy.migration_timeout_seconds,
                group=m.group if members else "",
                group_members=members,
                request=requests.get(m.volume, ""),
            )
            for m in migrations
        ]
        sizes = {m.volume: m.size_bytes or None for m in migrations}
        for d in drafts:
            self._track(d, size_bytes=sizes.get(d.pv))
        barrier = _Barrier(frozenset(members)) if members else None
        self._nursery.start_soon(self._run_batch, drafts, limiter, barrier, True)
        return True

    def active_for(self, policy: str) -> int:
        return sum(1 for m in self.in_flight.values() if m.policy == policy)

    def stuck_for(self, policy: str) -> list[str]:
        """The PVs of ``policy`` whose rollback is past its deadline."""
        return sorted(pv for pv in self.stuck if pv in self.in_flight and self.in_flight[pv].policy == policy)

    # -- one migration ---------------------------------------------------------------------------------------

    def _track(self, intent: Intent, *, size_bytes: int | None = None) -> None:
        self.in_flight[intent.pv] = InFlight(
            intent.pv,
            intent.volume,
            intent.policy,
            intent.from_tier,
            intent.to_tier,
            source_pools=tuple(intent.source_pools),
            target_pool=intent.target_pool,
            request=intent.request,
            size_bytes=size_bytes,
        )
        self.metrics.active_migrations.set(len(self.in_flight))

    def _untrack(self, pv: str) -> None:
        self.in_flight.pop(pv, None)
        self.metrics.active_migrations.set(len(self.in_flight))
        if self.stuck.pop(pv, None) is not None:
            self.metrics.stuck_migrations.set(len(self.stuck))
        if pv in self._progress_labels:
            self._progress_labels.discard(pv)
            self.metrics.rebuild_progress.remove(pv)

    async def _run_batch(
        self,
        intents: list[Intent],
        limiter: trio.CapacityLimiter | None,
        barrier: _Barrier | None,
        new: bool,
    ) -> None:
        """Run one migration or one group's (one concurrency slot either way). ``new`` batches first record
        their intents — all of them, or none: a member that cannot start releases the others."""
        # Recovered batches skip the policy limiter: they already ran under it before the restart.
        slot = _Slot([self._limiter] if limiter is None else [self._limiter, limiter])
        try:
            async with slot:
                if new:
                    written: list[Intent] = []
                    for draft in intents:
                        intent = await self._write_first_intent(draft)
                        if intent is None:
                            break
                        written.append(intent)
                    if len(written) < len(intents):
                        for intent in written:
                            await self._release(intent, f"group member {draft.pv} cannot start")
                        return
                    intents = written
                async with trio.open_nursery() as nursery:
                    for intent in intents:
                        nursery.start_soon(self._drive, intent.volume, intent, barrier, slot)
        except BackendError as exc:
            log.warning("Not migrating %s: %s", ", ".join(i.pv for i in intents), exc)
        except Exception:
            # A bug must not take the operator down; intents already written stay for the next start.
            log.exception("Migration of %s crashed", ", ".join(i.pv for i in intents))
        finally:
            for intent in intents:
                self._untrack(intent.pv)

    async def _release(self, intent: Intent, why: str) -> None:
        """Remove an intent whose migration never changed the volume (a group that could not start whole)."""
        log.info("Not migrating %s: %s", intent.pv, why, extra=logs.migration(intent, "released"))
        while True:
            state = await self._retry(partial(self.backend.read, intent.volume), intent.pv)
            if state.intent is None or state.intent.started_at != intent.started_at:
                return
            try:
                await self._retry(
                    partial(self.backend.write_intent, intent.volume, None, expected_version=state.version),
                    intent.pv,
                )
                return
            except IntentConflict:
                continue

    async def _write_first_intent(self, draft: Intent) -> Intent | None:
        """Analyze the freshly read volume and record the intent; None when the migration must not start.

        A write whose answer was lost may have been applied: a retry then meets its own write as a conflict.
        So after any failed write the volume is read again, and an intent there that is the one just written
        (this operator's, same start) is adopted rather than refused as someone else's.
        """
        attempted: Intent | None = None
        for _ in range(3):
            state = await self._retry(lambda: self.backend.read(draft.volume), draft.pv)
            if attempted is not None and _same_migration(state.intent, attempted):
                return self._started(attempted)
            problem = plan.start_problem(
                state, draft.target_pool, tuple(draft.source_pools), self._pool_health()
            )
            if problem is not None:
                log.info(
                    "Not migrating %s: %s",
                    draft.pv,
                    problem,
                    extra=logs.fields(volume=draft.pv, policy=draft.policy),
                )
                return None
            attempted = replace(
                draft,
                original_replicas=state.num_replicas,
                original_inclusion=dict(state.inclusion),
                started_at=format_time(self.options.clock()),
            )
            try:
                await self._retry(
                    partial(
                        self.backend.write_intent, draft.volume, attempted, expected_version=state.version
                    ),
                    draft.pv,
                )
            except IntentConflict:
                continue  # the volume changed between read and write (or the write was ours): look again
            except BackendError as exc:
                if not exc.retryable:
                    raise
                log.warning(
                    "Migration of %s: the intent write may not have landed: %s",
                    draft.pv,
                    exc,
                    extra=logs.fields(volume=draft.pv, policy=draft.policy),
                )
                continue
            return self._started(attempted)
        state = await self._retry(lambda: self.backend.read(draft.volume), draft.pv)
        if attempted is not None and _same_migration(state.intent, attempted):
            return self._started(attempted)
        log.warning(
            "Not migrating %s: the volume keeps changing under us",
            draft.pv,
            extra=logs.fields(volume=draft.pv, policy=draft.policy),
        )
        return None

    def _started(self, intent: Intent) -> Intent:
        log.info(
            "Migrating %s %s -> %s",
            intent.pv,
            _tier_word(intent.from_tier),
            _tier_word(intent.to_tier),
            extra=logs.migration(intent, "started"),
        )
        self._event(intent, "Normal", "MigrationStarted", self._started_message(intent))
        return intent

    async def _drive(
        self, volume: str, intent: Intent, barrier: _Barrier | None = None, slot: _Slot | None = None
    ) -> None:
        """Step the migration until it is finished and recorded. Returns early only if the volume vanished
        or another operator took the intent away.

        A group member (``barrier`` given) stops before its first removal until every member reached that
        point — the group's commit — and rolls back if any member aborts before it. A rollback that still
        waits past its deadline is reported stuck and gives ``slot`` back.
        """
        failures = 0
        forced_abort: str | None = None
        rollback_since: datetime | None = None
        while True:
            try:
                state = await self.backend.read(volume)
                if state.intent is None or state.intent.started_at != intent.started_at:
                    log.warning(
                        "Migration of %s: intent removed by someone else; stopping",
                        intent.pv,
                        extra=logs.migration(intent, "stopped"),
                    )
                    if barrier is not None:
                        barrier.abort(f"member {intent.pv} stopped")
                    return
                intent = state.intent
                grouped = barrier is not None and intent.phase == "forward" and not intent.committed
                if grouped and barrier is not None and barrier.committed:
                    committed = replace(intent, committed=True)
                    await self.backend.write_intent(volume, committed, expected_version=state.version)
                    continue
                tm = self._tier_migration(intent)
                stop = forced_abort or self._stop_reason(intent) or stop_reason(tm)
                if grouped and barrier is not None and barrier.aborted is not None:
                    stop = stop or barrier.aborted
                step = plan.next_step(
                    state,
                    intent,
                    now=self.options.clock(),
                    pool_health=self._pool_health(),
                    preservation=self.options.preservation,
                    stop_reason=stop,
                    target_pools=self._pools_matching(intent.target_inclusion),
                    source_tier_pools=self._pools_matching(intent.original_inclusion),
                )
                if grouped and barrier is not None:
                    if isinstance(step, plan.Abort):
                        barrier.abort(f"member {intent.pv}: {step.reason}")
                    elif isinstance(step, plan.RemoveReplica):
                        barrier.ready(intent.pv)
                        if not barrier.committed:
                            self._note(intent, f"synced; waiting for the rest of group {intent.group}")
                            await barrier.wait_changed(RECHECK_INTERVAL)
                        continue  # committed: record it on the intent first (top of the loop)
                if intent.phase == "rolling-back":
                    rollback_since = rollback_since or self.options.clock()
                    # As long again as the migration had, from when this operator saw the rollback begin.
                    waited = (self.options.clock() - rollback_since).total_seconds()
                    overdue = waited >= intent.timeout_seconds
                    if overdue and isinstance(step, plan.Wait) and intent.pv not in self.stuck:
                        self._report_stuck(intent, step.reason)
                        if slot is not None:
                            slot.release()
                if isinstance(step, plan.Finished):
                    await self._finish(volume, state, intent, step, tm)
                    return
                await self._mirror(intent, state, tm)
                await self._perform(volume, state, intent, step)
                failures = 0
            except IntentConflict:
                continue  # re-read and decide again
            except BackendError as exc:
                if not exc.retryable:
                    log.error("Migration of %s stopped: %s", intent.pv, exc, extra=logs.migration(intent))
                    await self._conclude(intent, "failed", str(exc), moved=False)
                    return
                failures += 1
                if failures >= RETRY_LIMIT and intent.phase == "forward" and forced_abort is None:
                    forced_abort = f"storage API kept failing: {exc}"
                    failures = 0
                delay = _backoff(failures)
                log.warning(
                    "Migration of %s: %s (retrying in %.1fs)",
                    intent.pv,
                    exc,
                    delay,
                    extra=logs.migration(intent),
                )
                await trio.sleep(delay)

    async def _perform(self, volume: str, state: VolumeState, intent: Intent, step: plan.Step) -> None:
        progress = self.in_flight.get(intent.pv)
        if isinstance(step, plan.Wait):
            # One log line per phase, not per poll: progress goes to the metrics and the feed.
            if progress is None or progress.step != step.reason:
                at = "" if step.progress is None else f" ({step.progress}%)"
                log.info(
                    "Migration of %s: %s%s",
                    intent.pv,
                    step.reason,
                    at,
                    extra=logs.migration(intent, step.reason),
                )
            if progress is not None:
                progress.step, progress.progress = step.reason, step.progress
            if step.progress is not None:
                self.metrics.rebuild_progress.labels(volume=intent.pv).set(step.progress)
                self._progress_labels.add(intent.pv)
            self._publish(intent, step.reason, step.progress)
            with trio.move_on_after(RECHECK_INTERVAL):
                await self.backend.wait_changed(volume, state.version)
        elif isinstance(step, plan.AddReplica):
            self._note(intent, f"adding replica {step.count} on the {intent.to_tier} tier")
            await self.backend.add_replica(
                volume,
                count=step.count,
                pool=intent.target_pool,
                topology=step.topology,
                expected_version=state.version,
            )
        elif isinstance(step, plan.RemoveReplica):
            what = f"removing the replica on {step.pool}" if step.pool else "removing the surplus replica"
            self._note(intent, what)
            await self.backend.remove_replica(
                volume,
                count=step.count,
                pool=step.pool,
                topology=step.topology,
                expected_version=state.version,
            )
        elif isinstance(step, plan.Abort):
            log.warning(
                "Migration of %s aborted: %s; rolling back",
                intent.pv,
                step.reason,
                extra=logs.migration(intent, "rolling-back"),
            )
            rolled = replace(intent, phase="rolling-back", abort_reason=step.reason, failed=step.failed)
            await self.backend.write_intent(volume, rolled, expected_version=state.version)

    def _report_stuck(self, intent: Intent, reason: str) -> None:
        why = f"rollback still {reason} after {format_duration(intent.timeout_seconds)}"
        self.stuck[intent.pv] = why
        self.metrics.stuck_migrations.set(len(self.stuck))
        log.error(
            "Migration of %s stuck: %s; its slot is given back, the rollback goes on",
            intent.pv,
            why,
            extra=logs.migration(intent, "stuck"),
        )
        self._event(intent, "Warning", "MigrationStuck", f"{why}; the volume needs attention")

    async def _finish(
        self,
        volume: str,
        state: VolumeState,
        intent: Intent,
        step: plan.Finished,
        tm: TierMigration | None = None,
    ) -> None:
        if step.outcome == "rolled-back":
            status: Status = "failed" if intent.failed else "aborted"
            await self._conclude(intent, status, intent.abort_reason or step.detail, moved=False)
        else:
            await self._conclude(
                intent, "success", step.detail if step.outcome == "preserved" else "", moved=True
            )
        if intent.request:
            detail = intent.abort_reason if step.outcome == "rolled-back" else step.detail
            final = finished_status(
                step.outcome,
                now=self.options.clock(),
                detail=detail or "",
                failed=intent.failed,
                cancelled=stop_reason(tm) is not None or intent.abort_reason.startswith(CANCELLED_BY_USER),
            )
            await self._write_tm_status(intent.request, final, tm)
        await self._clear_intent(volume, state, intent)
        if intent.request:  # only once the intent is gone: until then the object must stay
            await self._release_tm(intent.request)

    async def _clear_intent(self, volume: str, state: VolumeState, intent: Intent) -> None:
        """Remove the intent: the last write of a migration. Until then a restart would record the same outcome
        again, which the history de-duplicates."""
        current = state
        failures = 0
        while True:
            try:
                await self.backend.write_intent(volume, None, expected_version=current.version)
                return
            except IntentConflict:
                pass
            except BackendError as exc:
                if not exc.retryable:
                    return
                failures += 1
                await trio.sleep(_backoff(failures))
            try:
                current = await self.backend.read(volume)
            except BackendError as exc:
                if not exc.retryable:
                    return
                continue
            if current.intent is None or current.intent.started_at != intent.started_at:
                return

    async def _conclude(self, intent: Intent, status: Status, detail: str, *, moved: bool) -> None:
        """Record the outcome everywhere it belongs: PV, policy history, events, metrics, log, feed."""
        now = self.options.clock()
        entry = history_entry(intent, status=status, now=now, error="" if status == "success" else detail)
        elapsed = plan.elapsed_seconds(intent, now)
        took = format_duration(elapsed if elapsed != float("inf") else 0)
        try:
            await self.client.merge_patch(
                resources.PERSISTENT_VOLUME, intent.pv, pv_patch(intent, now=now, moved=moved), type=dict
            )
            self.metrics.api_writes.labels(kind="PersistentVolume").inc()
        except NotFound:
            pass  # the PV is gone; nothing to annotate
        except KubeError as exc:
            log.warning(
                "Migration of %s: cannot annotate the PV: %s", intent.pv, exc, extra=logs.migration(intent)
            )
        await self._append_history(intent.policy, entry)
        self.recent[intent.pv] = now
        self.metrics.migrations_total.labels(status=status).inc()
        if elapsed != float("inf"):
            self.metrics.migration_duration.observe(elapsed)
        if status == "success":
            log.info(
                "Migration completed %s in %s%s",
                intent.pv,
                took,
                f" ({detail})" if detail else "",
                extra=logs.migration(intent, status, seconds=elapsed if elapsed != float("inf") else None),
            )
            message = f"Moved from {intent.from_tier} to {intent.to_tier} in {took}"
            self._event(intent, "Normal", "MigrationCompleted", message + (f"; {detail}" if detail else ""))
        else:
            log.warning(
                "Migration %s %s after %s: %s",
                status,
                intent.pv,
                took,
                detail,
                extra=logs.migration(intent, status, seconds=elapsed if elapsed != float("inf") else None),
            )
            reason = "MigrationFailed" if status == "failed" else "MigrationAborted"
            self._event(intent, "Warning", reason, f"Stayed on {intent.from_tier} after {took}: {detail}")
        self._publish(intent, status, None, final=True)

    async def _append_history(self, policy_name: str, entry: Any) -> None:
        for _ in range(STATUS_RETRIES):
            try:
                policy = await self.client.get(resources.STORAGE_POLICY, policy_name, type=StoragePolicy)
            except NotFound:
                return  # the policy was deleted: its history went with it
            except KubeError as exc:
                log.warning("Cannot read StoragePolicy %s to record history: %s", policy_name, exc)
                await trio.sleep(1.0)
                continue
            patch = history_patch(policy, entry)
            if patch is None:
                return
            try:
                await self.client.patch_status(resources.STORAGE_POLICY, policy_name, patch, type=dict)
                self.metrics.api_writes.labels(kind="StoragePolicy").inc()
                return
            except Conflict:
                continue
            except NotFound:
                return
            except KubeError as exc:
                log.warning("Cannot record history on StoragePolicy %s: %s", policy_name, exc)
                await trio.sleep(1.0)
        log.error(
            "Gave up recording a history entry on StoragePolicy %s after %d tries",
            policy_name,
            STATUS_RETRIES,
        )

    # -- helpers ---------------------------------------------------------------------------------------------

    async def _retry(self, call: Callable[[], Awaitable[T]], pv: str) -> T:
        """``call`` with backoff on retryable :class:`BackendError`; IntentConflict and the rest propagate."""
        failures = 0
        while True:
            try:
                return await call()
            except IntentConflict:
                raise
            except BackendError as exc:
                failures += 1
                if not exc.retryable or failures >= RETRY_LIMIT:
                    raise
                delay = _backoff(failures)
                log.warning(
                    "Migration of %s: %s (retrying in %.1fs)", pv, exc, delay, extra=logs.fields(volume=pv)
                )
                await trio.sleep(delay)

    def _pools_matching(self, topology: Mapping[str, str]) -> set[str]:
        return {str(p.metadata.name) for p in self.pools.list() if includes(p.topology_labels, topology)}

    def _pool_health(self) -> dict[str, str]:
        return {str(p.metadata.name): p.health for p in self.pools.list()}

    def _stop_reason(self, intent: Intent) -> str | None:
        """Why the policy no longer wants this migration (deleted, disabled, dry-run), or None."""
        obj = self.policies.get(intent.policy)
        if obj is None:
            return f"policy {intent.policy} was deleted"
        rules = compile_policy(obj, operations_enforced=True)
        if not isinstance(rules, PolicyRules):
            return None  # an invalid edit does not stop what a valid spec started
        if not rules.enabled:
            return f"policy {intent.policy} was disabled"
        if rules.dry_run:
            return f"policy {intent.policy} was switched to dry-run"
        return None

    # -- TierMigrations -------------------------------------------------------------------------------------

    def _tier_migration(self, intent: Intent) -> TierMigration | None:
        if not intent.request or self.tier_migrations is None:
            return None
        return self.tier_migrations.get(intent.request)

    async def _mirror(self, intent: Intent, state: VolumeState, tm: TierMigration | None) -> None:
        """Write the TierMigration's status computed from the intent and the volume as just read."""
        if tm is None:
            return
        progress = self.in_flight.get(intent.pv)
        new = running_status(
            intent,
            state,
            size_bytes=progress.size_bytes if progress is not None else None,
            now=self.options.clock(),
        )
        await self._write_tm_status(intent.request, new, tm, quiet=True)

    async def _write_tm_status(
        self,
        name: str,
        new: TierMigrationStatus,
        tm: TierMigration | None,
        *,
        quiet: bool = False,
    ) -> None:
        """Patch ``/status`` of TierMigration ``name`` to ``new`` when that changes anything (``quiet``: not for
        a new ETA alone, nor for progress of less than :data:`MIRROR_PROGRESS_STEP` points, so a rebuild costs a
        few writes, not one per volume change). Best effort: a failure is logged and the next step writes again."""
        old = self._mirrored.get(name)
        if old is None and tm is not None and tm.status is not msgspec.UNSET:
            old = tm.status
        patch = status_patch(old, new)
        if patch is None:
            return
        if quiet and set(patch["status"]) <= {"eta", "progress", "bytesCopied"}:
            before = old.progress if old is not None and isinstance(old.progress, int) else 0
            after = new.progress if isinstance(new.progress, int) else 0
            if abs(after - before) < MIRROR_PROGRESS_STEP:
                return
        try:
            with trio.fail_after(MIRROR_TIMEOUT):
                await self.client.patch_status(resources.TIER_MIGRATION, name, patch, type=dict)
            self.metrics.api_writes.labels(kind="TierMigration").inc()
            self._mirrored[name] = new
        except NotFound:
            self._mirrored.pop(name, None)
        except (KubeError, trio.TooSlowError) as exc:
            log.warning("Cannot update the status of TierMigration %s: %s", name, exc)

    async def _release_tm(self, name: str) -> None:
        """Drop the finalizer of a finished TierMigration (the reconciler drops any this leaves behind)."""
        self._mirrored.pop(name, None)
        await release_finalizer(self.client, name, self.metrics)

    def _note(self, intent: Intent, step: str) -> None:
        progress = self.in_flight.get(intent.pv)
        if progress is None or progress.step != step:  # a group member re-notes its wait on every check
            log.info("Migration of %s: %s", intent.pv, step, extra=logs.migration(intent, step))
        if progress is not None:
            progress.step, progress.progress = step, None
        self._publish(intent, step, None)

    def _publish(self, intent: Intent, step: str, progress: int | None, *, final: bool = False) -> None:
        if self.feed is None:
            return
        self.feed.publish(
            {
                "type": "migration",
                "volume": intent.pv,
                "policy": intent.policy,
                "from": intent.from_tier,
                "to": intent.to_tier,
                "step": step,
                "progress": progress,
                "final": final,
                "trigger_iops": intent.trigger_iops,
                "target_pool": intent.target_pool,
            },
            retain_as=None if final else f"migration/{intent.pv}",
        )

    def _started_message(self, intent: Intent) -> str:
        return (
            f"Moving from {intent.from_tier} to {intent.to_tier} (pool {intent.target_pool}), "
            f"heat {intent.trigger_iops:.1f} IOPS, {intent.original_replicas} replica(s)"
        )

    def _event(self, intent: Intent, type_: EventType, reason: str, message: str) -> None:
        """Events on the PV and on the policy (queued: an Event is never worth delaying a migration)."""
        self.events.emit(
            resources.PERSISTENT_VOLUME,
            {"metadata": {"name": intent.pv}},
            type=type_,
            reason=reason,
            message=message,
        )
        self.events.emit(
            resources.STORAGE_POLICY,
            {"metadata": {"name": intent.policy}},
            type=type_,
            reason=reason,
            message=f"{intent.pv}: {message}",
        )


class _Slot:
    """A batch's places in the concurrency limiters: taken on entry, given back on exit or earlier by
    :meth:`release` (a stuck rollback), whichever comes first."""

    def __init__(self, limiters: list[trio.CapacityLimiter]) -> None:
        self._limiters = limiters
        self._held: list[trio.CapacityLimiter] = []

    async def __aenter__(self) -> _Slot:
        try:
            for limiter in self._limiters:
                await limiter.acquire_on_behalf_of(self)
                self._held.append(limiter)
        except BaseException:
            self.release()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        while self._held:
            self._held.pop().release_on_behalf_of(self)


class _Barrier:
    """The commit point of a volume group: no member removes an old replica until every member's new
    replicas are synced; any member aborting before that aborts them all."""

    def __init__(self, members: frozenset[str]) -> None:
        self.members = members
        self.ready_members: set[str] = set()
        self.committed = False
        self.aborted: str | None = None
        self._changed = trio.Event()

    @classmethod
    def recovered(cls, intents: list[Intent]) -> _Barrier:
        """The barrier of a group found on start: committed if any member says so; aborted if, before the
        commit, a member is missing (it never started, or rolled back) or rolling back."""
        barrier = cls(frozenset(intents[0].group_members))
        if any(i.committed for i in intents):
            barrier.committed = True
            return barrier
        missing = sorted(barrier.members - {i.pv for i in intents})
        back = sorted(i.pv for i in intents if i.phase == "rolling-back")
        if missing:
            barrier.aborted = f"group member(s) {', '.join(missing)} no longer migrating"
        elif back:
            barrier.aborted = f"group member(s) {', '.join(back)} rolling back"
        return barrier

    def ready(self, member: str) -> None:
        self.ready_members.add(member)
        if self.aborted is None and not self.committed and self.ready_members >= self.members:
            self.committed = True
            self._wake()

    def abort(self, reason: str) -> None:
        if not self.committed and self.aborted is None:
            self.aborted = reason
            self._wake()

    async def wait_changed(self, seconds: float) -> None:
        """Return on the next change, or after ``seconds``."""
        with trio.move_on_after(seconds):
            await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


#: How a stop reason taken from a TierMigration begins (:func:`~couchestor.tiering.tiermigration.stop_reason`).
CANCELLED_BY_USER = "cancelled by the user"


async def release_finalizer(client: KubeClient, name: str, metrics: OperatorMetrics) -> bool:
    """Remove :data:`FINALIZER` from TierMigration ``name`` (guarded by its resourceVersion, retried on 409);
    True once it is gone (or the object is)."""
    for _ in range(3):
        try:
            with trio.fail_after(MIRROR_TIMEOUT):
                tm = await client.get(resources.TIER_MIGRATION, name, type=TierMigration)
                finalizers = list(tm.metadata.finalizers or ())
                if FINALIZER not in finalizers:
                    return True
                finalizers.remove(FINALIZER)
                patch = {
                    "metadata": {"finalizers": finalizers, "resourceVersion": tm.metadata.resource_version}
                }
                await client.merge_patch(resources.TIER_MIGRATION, name, patch, type=dict)
            metrics.api_writes.labels(kind="TierMigration").inc()
            return True
        except NotFound:
            return True
        except Conflict:
            continue
        except (KubeError, trio.TooSlowError) as exc:
            log.warning("Cannot remove the finalizer of TierMigration %s: %s", name, exc)
            return False
    return False


def _backoff(failures: int) -> float:
    base: float = min(0.5 * 2.0 ** max(failures - 1, 0), MAX_BACKOFF)
    return base * random.uniform(0.5, 1.0)


def _same_migration(found: Intent | None, written: Intent) -> bool:
    """True when ``found`` (read from the volume) is the intent ``written`` by this operator."""
    return (
        found is not None
        and found.operator == written.operator
        and found.started_at == written.started_at
        and found.pv == written.pv
    )


def _tier_word(tier: str) -> str:
    """Seed 001's log words: ``nvme`` for hot, ``sata`` for cold."""
    return {"hot": "nvme", "cold": "sata"}.get(tier, tier)


__all__ = ["InFlight", "MigrationRunner", "RunnerOptions", "release_finalizer"]
