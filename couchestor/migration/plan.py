"""The migration state machine as pure functions: given a volume's state and its intent, what comes next.

A migration moves a volume with ``n`` replicas from one tier to another in rounds: add one replica on the
target tier (``n+1``), wait until it is Online and Synced, then go back to ``n`` replicas dropping one on the
source tier; repeat until no replica is left on the source tier. Nothing here remembers anything: the next
step is computed from what the storage system reports and from the intent recorded on the volume, so an
operator that restarts (or a new leader) continues exactly where the last one stopped.

Invariant kept by every step: a replica is only removed while at least ``n + 1`` replicas are healthy (Online
and Synced), so the volume never has fewer healthy replicas than it had when the migration began.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from couchestor.durations import format_duration, parse_time
from couchestor.migration.backend import ReplicaInfo, VolumeState
from couchestor.migration.intent import Intent

Outcome = Literal["completed", "preserved", "rolled-back"]


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do until the volume changes; ``progress`` is the syncing replica's rebuild percent."""

    reason: str
    progress: int | None = None


@dataclass(frozen=True, slots=True)
class AddReplica:
    count: int
    topology: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RemoveReplica:
    """Go down to ``count`` replicas, dropping the one on ``pool`` ("" when any surplus replica will do)."""

    count: int
    pool: str
    topology: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Abort:
    """Stop going forward and roll back; ``failed`` distinguishes a failure from a deliberate abort."""

    reason: str
    failed: bool


@dataclass(frozen=True, slots=True)
class Finished:
    outcome: Outcome
    detail: str


Step = Wait | AddReplica | RemoveReplica | Abort | Finished


def start_problem(
    state: VolumeState, target_pool: str, source_pools: tuple[str, ...], pool_health: Mapping[str, str]
) -> str | None:
    """Why a planned migration must not start on ``state`` (freshly read), or None when it may."""
    if state.intent is not None:
        return f"volume already carries a migration intent from {state.intent.operator}"
    if len(state.replicas) != state.num_replicas or state.healthy_count != state.num_replicas:
        return "volume is degraded (not every replica is Online and Synced)"
    if tuple(sorted({r.pool for r in state.replicas})) != tuple(sorted(source_pools)):
        return "volume's replicas moved since the decision"
    if any(r.pool == target_pool for r in state.replicas):
        return f"target pool {target_pool} already holds a replica"
    health = pool_health.get(target_pool)
    if health != "Online":
        return f"target pool {target_pool} is {health or 'gone'}"
    return None


def elapsed_seconds(intent: Intent, now: datetime) -> float:
    try:
        return max((now - parse_time(intent.started_at)).total_seconds(), 0.0)
    except ValueError:
        # An unreadable start time counts as expired: the safe direction is rolling back.
        return float("inf")


def next_step(
    state: VolumeState,
    intent: Intent,
    *,
    now: datetime,
    pool_health: Mapping[str, str],
    preservation: bool = False,
    stop_reason: str | None = None,
    target_pools: Collection[str] | None = None,
    source_tier_pools: Collection[str] | None = None,
) -> Step:
    """The next step for ``state`` under ``intent``.

    ``pool_health`` maps pool names to their health (``Online``, ``Faulted`` ...); ``stop_reason``, when
    given, asks to abort (the policy was disabled or deleted); ``preservation`` keeps the old replicas.
    ``target_pools`` names the pools of the target tier; without it a replica is on the target tier when the
    volume's topology is the target's (storage whose topology can change, like the MayastorVolume resource).
    ``source_tier_pools`` names the pools matching the original topology, which a rollback restores; without
    it a rollback assumes the control plane may drop any replica, healthy ones first.
    """
    if intent.phase == "rolling-back":
        return _rollback_step(state, intent, target_pools, source_tier_pools)
    n = intent.original_replicas
    source = set(intent.source_pools)
    new = [r for r in state.replicas if r.pool not in source]
    old = [r for r in state.replicas if r.pool in source]
    if target_pools is not None:
        pools = set(target_pools)
        strays = [r.pool for r in new if r.pool not in pools]
    else:
        strays = [] if dict(state.inclusion) == dict(intent.target_inclusion) else [r.pool for r in new]

    # A volume already where the migration wanted it is finished, whatever happened since (a restarted
    # operator must not roll back a completed move because its deadline passed meanwhile).
    done = _finished(state, intent, new, old, strays, preservation)
    if done is not None:
        return done

    # Once a removal is under way (or the volume's group committed), going back would only undo progress:
    # deadlines and policy changes no longer abort; faults still do.
    settling = intent.committed or (state.num_replicas == n and len(state.replicas) > n)
    if stop_reason is not None and not settling:
        return Abort(stop_reason, failed=False)
    for replica in new:
        if replica.state == "Faulted":
            return Abort(f"new replica on pool {replica.pool} faulted", failed=True)
        health = pool_health.get(replica.pool, "gone")
        if health not in ("Online", "Unknown"):
            return Abort(f"target pool {replica.pool} is {health}", failed=True)
    elapsed = elapsed_seconds(intent, now)
    if elapsed >= intent.timeout_seconds and not settling:
        return Abort(f"timed out after {format_duration(int(min(elapsed, 10**9)))}", failed=True)

    target = intent.target_inclusion
    if preservation:
        return _preserving_step(state, intent, new)
    if state.num_replicas > n + 1 or state.num_replicas < n:
        return Abort(f"replica count changed to {state.num_replicas} by another writer", failed=True)
    if state.num_replicas == n:
        if len(state.replicas) > n:
            return Wait("waiting for the surplus replica to be removed")
        if state.healthy_count < len(state.replicas) or len(state.replicas) < n:
            return Wait("waiting for every replica to be Online and Synced")
        if not old:
            return Abort(f"replicas ended off the {intent.to_tier} tier (another writer?)", failed=True)
        return AddReplica(n + 1, target)
    # n + 1 requested: wait for the new replica, then drop one old replica.
    if strays and state.num_replicas == n + 1:
        # Our replica goes to the target tier; one elsewhere came from another writer's change.
        return Abort(f"a replica appeared off the {intent.to_tier} tier (another writer?)", failed=True)
    if len(state.replicas) < n + 1:
        return Wait("waiting for the new replica to be placed")
    syncing = [r for r in state.replicas if not r.healthy]
    if syncing:
        return Wait("new replica syncing", _progress(syncing))
    victim = min(old, key=lambda r: r.pool).pool if old else ""
    return RemoveReplica(n, victim, target)


def _finished(
    state: VolumeState,
    intent: Intent,
    new: list[ReplicaInfo],
    old: list[ReplicaInfo],
    strays: list[str],
    preservation: bool,
) -> Finished | None:
    """The outcome when the volume already is where the migration wanted it, else None."""
    n = intent.original_replicas
    if strays:
        return None
    if preservation:
        kept = sum(1 for r in old if r.healthy)
        if state.num_replicas == n + 1 and kept == n and any(r.healthy for r in new):
            return Finished(
                "preserved",
                f"preservation mode: kept the {n} old replica(s) beside the new one ({state.num_replicas} replicas)",
            )
        return None
    if not old and state.num_replicas == n == len(state.replicas) == state.healthy_count:
        return Finished("completed", f"{n} replica(s) on the {intent.to_tier} tier")
    return None


def _preserving_step(state: VolumeState, intent: Intent, new: list[ReplicaInfo]) -> Step:
    n = intent.original_replicas
    if state.num_replicas < n or state.num_replicas > n + 1:
        return Abort(f"replica count changed to {state.num_replicas} by another writer", failed=True)
    if state.num_replicas < n + 1:
        return AddReplica(n + 1, intent.target_inclusion)
    source = set(intent.source_pools)
    if sum(1 for r in state.replicas if r.pool in source and r.healthy) < n:
        return Wait("waiting for the old replicas to be Online and Synced")
    if len(state.replicas) < state.num_replicas:
        return Wait("waiting for the new replica to be placed")
    return Wait("new replica syncing", _progress([r for r in new if not r.healthy]))


def _rollback_step(
    state: VolumeState,
    intent: Intent,
    target_pools: Collection[str] | None,
    source_tier_pools: Collection[str] | None,
) -> Step:
    n = intent.original_replicas
    original = intent.original_inclusion
    if state.num_replicas != n or dict(state.inclusion) != dict(original):
        excess = max(len(state.replicas) - n, 0)
        lost = healthy_victims(state.replicas, excess, source_tier_pools)
        # Never fewer than n healthy after a removal; replicas of unknown health may be the complete copies.
        if excess and state.healthy_count - lost < n:
            if dict(state.inclusion) != dict(original):
                # Restore the topology but keep every replica: replacements then go to the source tier, and
                # the replicas the control plane drops first are the ones off it.
                return AddReplica(max(state.num_replicas, len(state.replicas)), original)
            return Wait("waiting for enough healthy replicas before removing the new one")
        source = set(intent.source_pools)
        target = set(target_pools) if target_pools is not None else set()
        surplus = sorted(
            (r for r in state.replicas if r.pool not in source),
            key=lambda r: (r.healthy, r.pool not in target, r.pool),
        )
        return RemoveReplica(n, surplus[0].pool if surplus else "", original)
    if len(state.replicas) > n:
        return Wait("waiting for the new replica to be removed")
    left = sorted(r.pool for r in state.replicas)
    return Finished("rolled-back", f"{len(left)} replica(s) left on {', '.join(left) or 'no pool'}")


def healthy_victims(
    replicas: Collection[ReplicaInfo], excess: int, kept_pools: Collection[str] | None
) -> int:
    """How many healthy replicas a scale-down removing ``excess`` of ``replicas`` may take, at worst.

    Both control planes drop unhealthy replicas before healthy ones of equal standing, but the MayastorVolume
    one drops replicas off the volume's topology (pools outside ``kept_pools``) first, healthy or not; 2.x
    never drops a healthy one while fewer than the new count are healthy. Without ``kept_pools`` any replica
    may be off the topology, so healthy ones are counted first.
    """
    if kept_pools is None:
        return min(excess, sum(1 for r in replicas if r.healthy))
    kept = set(kept_pools)
    order = sorted(replicas, key=lambda r: (r.pool in kept, r.healthy))
    return sum(1 for r in order[:excess] if r.healthy)


def _progress(replicas: list[ReplicaInfo]) -> int | None:
    known = [r.progress for r in replicas if r.progress is not None]
    return min(known) if known else None


__all__ = [
    "Abort",
    "AddReplica",
    "Finished",
    "RemoveReplica",
    "Step",
    "Wait",
    "elapsed_seconds",
    "healthy_victims",
    "next_step",
    "start_problem",
]
