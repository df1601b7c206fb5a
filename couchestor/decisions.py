"""Per-volume tiering decisions and the migrations to start, as one pure function over plain data.

:func:`decide` takes compiled policies, volume and pool views (built from the watched Kubernetes objects by
:func:`build_volume_views` and :func:`build_pool_views`), heat-score snapshots, the volumes already migrating,
recent migrations and the current time, and returns a :class:`Plan`: for every policy, one
:class:`Decision` per volume it selects, placement counts per tier, its conflicts, and the migrations to
start now. It never performs I/O and gives the same plan for the same inputs in any order.

A volume is keyed everywhere by its PV name (``in_flight``, ``recent_migrations``, :attr:`Decision.volume`).

Per policy and selected volume, the first rule that applies gives the decision:

1. ``conflict:<others>`` when another enabled (or invalid, see :class:`~couchestor.policy.PolicyProblem`)
   policy selects it too: reported on every such policy, never moved.
2. ``invalid-policy``, then ``disabled`` (a disabled policy claims nothing and moves nothing).
3. Facts about the volume: ``deleting``, ``no-mayastor-volume``, ``in-flight``, ``degraded`` (a replica not
   Online and Synced, or fewer replicas than ``numReplicas``), ``tier-unknown`` (a Synced replica on a pool
   that is unknown or that not exactly one of the policy's tier selectors matches), ``mixed-tier``.
4. Metrics: ``metrics-unavailable`` (no snapshot yet for the policy's window, an unhealthy one, or one older
   than ``max_score_age_seconds``), ``no-score`` (a non-finite value), ``low-coverage``. A volume absent from
   a healthy snapshot scores 0, unless no volume at all has ``min_coverage`` of the window (Prometheus just
   started or lost its data): then absence proves nothing and it is ``low-coverage`` too.
5. ``stay`` when :meth:`~couchestor.policy.PolicyRules.target_tier` says so (hysteresis is documented there).
6. A wanted move (``target_tier`` set on the decision even when skipped): ``topology-pinned`` when the
   storage cannot change topologies (``fixed_topology``) and no target-tier pool satisfies the volume's;
   ``cooldown`` while the last
   migration (PV annotation or ``recent_migrations``, the later one) is younger than ``cooldownPeriod``;
   ``dry-run`` (with the pool it would use, without reserving it); ``size-unknown``; then scheduling.

Volume groups: when a policy has ``groupLabel``, volumes whose PVC labels share its value form a group (two
or more members). Each member is judged as above but on the group's combined score (the sum of the members'
scores); the group moves only if every member wants the same move (otherwise the wanting members get
``group-blocked``), takes one concurrency slot, and needs room for every member or none moves.

Scheduling: every wanted move of every policy is ordered promotions first, hottest first, then demotions,
coldest first (ties by volume name), and taken in that order while the policy has a free slot
(``maxConcurrentMigrations`` minus its volumes already in flight; else ``concurrency-limit``) and the target
tier has an Online pool with room (else ``no-capacity``). The chosen pool is the one with most room left,
preferring nodes that hold none of the volume's replicas, then by name; its room is reserved at once, so no
two planned moves count the same free bytes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import msgspec
from msgspec import UNSET

from couchestor.durations import format_duration, parse_time
from couchestor.heat import ScoreSnapshot, lookup
from couchestor.labels import includes
from couchestor.policy import PolicyProblem, PolicyRules, Tier
from k8s_schemas.core import PersistentVolume, PersistentVolumeClaim
from k8s_schemas.mayastor import DiskPool, MayastorVolume
from k8s_schemas.quantity import parse_quantity

LAST_MIGRATION_ANNOTATION = "storage.billyronks.io/last-migration"
#: One empty mapping for every view without PVC labels or topology (a view is kept per volume).
_EMPTY: Mapping[str, str] = MappingProxyType({})


# --- Inputs -------------------------------------------------------------------------------------------------


class ReplicaView(msgspec.Struct, frozen=True, gc=False):
    pool: str
    node: str | None
    state: str
    sync_state: str

    @property
    def synced(self) -> bool:
        return self.sync_state == "Synced"

    @property
    def healthy(self) -> bool:
        """Online and Synced: a complete copy of the data."""
        return self.state == "Online" and self.sync_state == "Synced"


@dataclass(frozen=True, slots=True)
class VolumeView:
    """What the decisions need of one PV, its bound PVC and its MayastorVolume.

    ``pvc_labels`` is empty when the PV is not bound (or its claimRef points at another PVC of that name);
    ``has_backend`` is False, with no replicas, when no MayastorVolume was found; ``size_bytes`` is the
    MayastorVolume's ``spec.size``, else the PV's ``capacity.storage``, else None.
    """

    name: str
    volume_id: str | None
    storage_class: str | None
    pvc_labels: Mapping[str, str] = field(default_factory=dict)
    size_bytes: int | None = None
    has_backend: bool = True
    num_replicas: int | None = None
    replicas: tuple[ReplicaView, ...] = ()
    last_migration: datetime | None = None
    deleting: bool = False
    #: The MayastorVolume's name (the volume handle, or the PV name as seed 001 shows), when one was found.
    backend_name: str | None = None
    #: The pool-label topology the volume's replicas must satisfy.
    inclusion: Mapping[str, str] = field(default_factory=dict)
    #: The only nodes the volume's replicas may be on (an explicit node topology), or None for any node.
    allowed_nodes: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class PoolView:
    name: str
    node: str | None
    labels: Mapping[str, str]
    health: str
    free_bytes: int | None

    @property
    def online(self) -> bool:
        return self.health == "Online"


def build_volume_views(
    pvs: Iterable[PersistentVolume],
    pvcs: Iterable[PersistentVolumeClaim],
    mayastor_volumes: Iterable[MayastorVolume],
) -> tuple[VolumeView, ...]:
    """One view per named PV, sorted by name.

    The PVC is the one ``spec.claimRef`` names (and, when both carry a UID, has that UID); the MayastorVolume
    is the one named by ``spec.csi.volumeHandle``, else by the PV name. An unparsable last-migration
    annotation is ignored (treated as never migrated).
    """
    claims = {
        (c.metadata.namespace, c.metadata.name): c
        for c in pvcs
        if c.metadata.namespace is not UNSET and c.metadata.name is not UNSET
    }
    backends = {v.metadata.name: v for v in mayastor_volumes if v.metadata.name is not UNSET}
    views = [volume_view(pv, claims.get, backends.get) for pv in pvs if pv.metadata.name is not UNSET]
    return tuple(sorted(views, key=lambda v: v.name))


def volume_view(
    pv: PersistentVolume,
    claim_of: Callable[[tuple[str, str]], PersistentVolumeClaim | None],
    backend_of: Callable[[str], MayastorVolume | None],
) -> VolumeView:
    """The view of one named PV; ``claim_of`` finds a PVC by (namespace, name), ``backend_of`` a
    MayastorVolume by name (see :func:`build_volume_views`)."""
    name = pv.metadata.name
    assert name is not UNSET
    handle = pv.volume_handle
    labels: Mapping[str, str] = _EMPTY
    ref = pv.spec.claim_ref
    if ref is not UNSET and ref.namespace is not UNSET and ref.name is not UNSET:
        claim = claim_of((ref.namespace, ref.name))
        stale = (
            claim is not None and UNSET not in (ref.uid, claim.metadata.uid) and ref.uid != claim.metadata.uid
        )
        if claim is not None and not stale and claim.metadata.labels is not UNSET:
            labels = claim.metadata.labels  # shared, not copied: a stored object is replaced, never changed
    backend = backend_of(handle) if handle is not None else None
    backend = backend or backend_of(name)
    size: int | None = None
    if backend is not None and backend.spec.size is not UNSET:
        size = backend.spec.size
    elif pv.spec.capacity is not UNSET and "storage" in pv.spec.capacity:
        try:
            size = parse_quantity(pv.spec.capacity["storage"])
        except ValueError:
            size = None
    last: datetime | None = None
    annotations = {} if pv.metadata.annotations is UNSET else pv.metadata.annotations
    if LAST_MIGRATION_ANNOTATION in annotations:
        try:
            last = parse_time(annotations[LAST_MIGRATION_ANNOTATION])
        except ValueError:
            last = None
    return VolumeView(
        name=name,
        volume_id=handle,
        storage_class=None if pv.spec.storage_class_name is UNSET else pv.spec.storage_class_name,
        pvc_labels=labels,
        size_bytes=size,
        has_backend=backend is not None,
        backend_name=None if backend is None else str(backend.metadata.name),
        inclusion=_EMPTY if backend is None else (backend.spec.inclusion or _EMPTY),
        allowed_nodes=None if backend is None else backend.spec.allowed_nodes,
        num_replicas=None if backend is None else backend.spec.num_replicas,
        replicas=()
        if backend is None
        else tuple(
            ReplicaView(r.pool, None if r.node is UNSET else r.node, r.state, r.sync_state)
            for r in backend.replicas
        ),
        last_migration=last,
        deleting=pv.metadata.deletion_timestamp is not UNSET,
    )


def build_pool_views(pools: Iterable[DiskPool]) -> tuple[PoolView, ...]:
    """One view per named DiskPool, sorted by name; labels are those Mayastor's topology matching sees."""
    views = [
        PoolView(
            name=p.metadata.name,
            node=p.spec.node or None,
            labels=p.topology_labels,
            health=p.health,
            free_bytes=p.free_bytes,
        )
        for p in pools
        if p.metadata.name is not UNSET
    ]
    return tuple(sorted(views, key=lambda p: p.name))


@dataclass(frozen=True, slots=True)
class DecideOptions:
    """Operator-wide settings of :func:`decide`."""

    min_coverage: float = 0.5
    max_score_age_seconds: float = 300.0
    #: The storage system cannot change a volume's pool topology (Mayastor 2.x): a volume whose creation
    #: topology no pool of the target tier satisfies is ``topology-pinned``, never moved.
    fixed_topology: bool = False


# --- Outputs ------------------------------------------------------------------------------------------------


class Action(enum.StrEnum):
    HOT = "hot"
    WARM = "warm"
    COLD = "cold"
    STAY = "stay"
    SKIP = "skip"


class Decision(msgspec.Struct, frozen=True, gc=False):
    """What was decided for one volume under one policy.

    ``action`` is the tier to move to (``hot``/``warm``/``cold``, a migration is planned), ``stay``, or
    ``skip``; ``reason`` is the action's word, or for a skip the reason (``cooldown``, ``conflict:b`` ...).
    ``target_tier`` is the tier the volume should be on when a move was wanted, also on skips after the
    thresholds were applied (``cooldown``, ``dry-run``, ``no-capacity`` ...); ``target_pool`` is the pool
    chosen (or, in dry-run, the pool that would be). ``detail`` is one human-readable sentence.
    """

    volume: str
    policy: str
    action: Action
    reason: str
    score: float | None = None
    current_tier: Tier | None = None
    target_tier: Tier | None = None
    target_pool: str | None = None
    detail: str = ""

    @property
    def label(self) -> str:
        """``hot``, ``warm``, ``cold``, ``stay`` or ``skip:<reason>``, as logged and counted."""
        return f"skip:{self.reason}" if self.action is Action.SKIP else self.action.value


@dataclass(frozen=True, slots=True)
class PlannedMigration:
    """A migration to start now. ``source_pools`` hold the volume's replicas, all on ``from_tier``."""

    volume: str
    volume_id: str | None
    policy: str
    from_tier: Tier
    to_tier: Tier
    target_pool: str
    source_pools: tuple[str, ...]
    score: float
    size_bytes: int
    timeout_seconds: int
    #: The MayastorVolume to change, and the pool labels its topology gets (the target tier's selector
    #: resolved against the chosen pool's labels).
    backend_volume: str = ""
    target_topology: Mapping[str, str] = field(default_factory=dict)
    #: Non-empty for a member of a volume group: every member moves in the same batch, or none does.
    group: str = ""


@dataclass(frozen=True, slots=True)
class PolicyPlan:
    """One policy's share of a plan: ``decisions`` (by volume name) cover every volume the policy selects.

    ``tier_counts`` counts those volumes by the tier their Synced replicas are on (for ``hotVolumes`` etc.);
    ``conflicts`` maps each conflicting volume to the other policies selecting it; ``in_flight`` counts the
    selected volumes already migrating; ``migrations`` are this policy's planned ones, in start order.
    """

    policy: str
    generation: int | None
    problem: PolicyProblem | None
    enabled: bool
    dry_run: bool
    decisions: tuple[Decision, ...]
    tier_counts: Mapping[Tier, int]
    conflicts: Mapping[str, tuple[str, ...]]
    in_flight: int
    migrations: tuple[PlannedMigration, ...]

    @property
    def watched(self) -> int:
        return len(self.decisions)

    @property
    def phase(self) -> str:
        """``Error``, ``Disabled`` or ``Active``, for ``status.phase``."""
        if self.problem is not None:
            return "Error"
        return "Active" if self.enabled else "Disabled"


@dataclass(frozen=True, slots=True)
class Plan:
    """Every policy's plan (by policy name) and all migrations to start, in start order."""

    policies: tuple[PolicyPlan, ...]
    migrations: tuple[PlannedMigration, ...]

    def policy(self, name: str) -> PolicyPlan | None:
        return next((p for p in self.policies if p.policy == name), None)

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return tuple(d for p in self.policies for d in p.decisions)


# --- The decision -------------------------------------------------------------------------------------------


class _Pools(dict[str, PoolView]):
    """The pools of one pass by name, with each pool's tiers under each policy matched once: matching label
    selectors per replica of every volume was the costliest step of a pass."""

    def __init__(self, pools: Iterable[PoolView]) -> None:
        super().__init__((p.name, p) for p in sorted(pools, key=lambda p: p.name))
        self._tiers: dict[str, dict[str, frozenset[Tier]]] = {}

    def tier_map(self, policy: PolicyRules) -> dict[str, frozenset[Tier]]:
        """Pool name -> the tiers whose pool selectors of ``policy`` match the pool (more than one:
        ambiguous), for every pool."""
        found = self._tiers.get(policy.name)
        if found is None:
            found = self._tiers[policy.name] = {
                name: policy.tiers_matching(pool.labels) for name, pool in self.items()
            }
        return found

    def tiers(self, policy: PolicyRules, pool: PoolView) -> frozenset[Tier]:
        """The tiers whose pool selectors of ``policy`` match ``pool`` (more than one: ambiguous)."""
        return self.tier_map(policy)[pool.name]


@dataclass(frozen=True, slots=True)
class _Wanted:
    """A move that passed every per-volume rule and now competes for a slot and for pool room."""

    rules: PolicyRules
    volume: VolumeView
    current: Tier
    target: Tier
    score: float
    detail: str
    #: The storage fixes the volume's topology at creation: only pools it satisfies can take the replica.
    fixed_topology: bool = False

    @property
    def order(self) -> tuple[int, float, str]:
        if self.target.rank > self.current.rank:
            return (0, -self.score, self.volume.name)
        return (1, self.score, self.volume.name)


def decide(
    policies: Sequence[PolicyRules | PolicyProblem],
    volumes: Iterable[VolumeView],
    pools: Iterable[PoolView],
    scores: Mapping[int, ScoreSnapshot],
    in_flight: Collection[str],
    recent_migrations: Mapping[str, datetime],
    now: datetime,
    options: DecideOptions | None = None,
    groups: Mapping[str, str] | None = None,
) -> Plan:
    """Decide every selected volume of every policy and plan the migrations to start now.

    ``scores`` maps a sampling window in seconds to the latest snapshot for it; ``in_flight`` holds the PV
    names being migrated; ``recent_migrations`` maps PV names to when a migration of theirs last finished
    (or failed) and not yet written to the PV annotation; ``now`` and every time are timezone-aware.
    ``groups`` maps PV names to a group key from outside the policy (a VolumeGroupReplication): such volumes
    are grouped like those sharing the policy's ``groupLabel``, and that membership wins over the label.
    The rules are in the module docstring.
    """
    opts = options or DecideOptions()
    ordered = sorted(policies, key=lambda p: (p.name, p.generation or 0))
    vols = sorted(volumes, key=lambda v: v.name)
    pools_by_name = _Pools(pools)
    claimants: dict[str, list[str]] = {}
    selected: dict[str, list[VolumeView]] = {}
    for policy in ordered:
        scope = policy.scope
        chosen = [] if scope is None else [v for v in vols if scope.selects(v.storage_class, v.pvc_labels)]
        selected[policy.name] = chosen
        if isinstance(policy, PolicyProblem) or policy.enabled:
            for v in chosen:
                claimants.setdefault(v.name, []).append(policy.name)

    decisions: dict[str, dict[str, Decision]] = {p.name: {} for p in ordered}
    counts: dict[str, dict[Tier, int]] = {}
    wanted: list[_Wanted | _GroupWanted] = []
    for policy in ordered:
        groups_of = _groups(policy, selected[policy.name], groups or {})
        combined = {key: _group_score(policy, members, scores, opts) for key, members in groups_of.items()}
        member_of = {v.name: key for key, members in groups_of.items() for v in members}
        verdicts: dict[str, Decision | _Wanted] = {}
        count = counts[policy.name] = dict.fromkeys(
            policy.tiers if isinstance(policy, PolicyRules) else (), 0
        )
        for v in selected[policy.name]:
            others = tuple(n for n in claimants.get(v.name, ()) if n != policy.name)
            key = member_of.get(v.name)
            group_score = combined.get(key) if key is not None else None
            # The volume's tier, once per policy: its status counts and its judging both need it.
            tier = _current_tier(policy, v, pools_by_name) if isinstance(policy, PolicyRules) else None
            if tier is not None and tier[0] is not None:
                count[tier[0]] += 1
            verdicts[v.name] = _judge(
                policy,
                v,
                others,
                pools_by_name,
                scores,
                in_flight,
                recent_migrations,
                now,
                opts,
                None if key is None or group_score is None else (key, group_score),
                tier,
            )
        for key, members in groups_of.items():
            group_wants = _group_verdict(key, [(v, verdicts[v.name]) for v in members])
            if isinstance(group_wants, _GroupWanted):
                wanted.append(group_wants)
                for v in members:
                    del verdicts[v.name]
            else:
                verdicts.update(group_wants)
        for name, verdict in verdicts.items():
            if isinstance(verdict, _Wanted):
                wanted.append(verdict)
            else:
                decisions[policy.name][name] = verdict

    slots = {
        p.name: p.max_concurrent_migrations - sum(v.name in in_flight for v in selected[p.name])
        for p in ordered
        if isinstance(p, PolicyRules)
    }
    reserved: dict[str, int] = {}
    started: list[PlannedMigration] = []
    for want in sorted(wanted, key=lambda w: w.order):
        if isinstance(want, _GroupWanted):
            for decision, migration in _schedule_group(want, slots, pools_by_name, reserved):
                decisions[decision.policy][decision.volume] = decision
                if migration is not None:
                    started.append(migration)
            continue
        decision, migration = _schedule(want, slots, pools_by_name, reserved)
        decisions[want.rules.name][want.volume.name] = decision
        if migration is not None:
            started.append(migration)

    plans = tuple(
        _policy_plan(
            policy, selected[policy.name], decisions[policy.name], counts[policy.name], in_flight, started
        )
        for policy in ordered
    )
    return Plan(policies=plans, migrations=tuple(started))


def _judge(
    policy: PolicyRules | PolicyProblem,
    v: VolumeView,
    others: tuple[str, ...],
    pools: _Pools,
    scores: Mapping[int, ScoreSnapshot],
    in_flight: Collection[str],
    recent: Mapping[str, datetime],
    now: datetime,
    opts: DecideOptions,
    group: tuple[str, float] | None = None,
    tier: tuple[Tier | None, tuple[str, str] | None] | None = None,
) -> Decision | _Wanted:
    """The verdict on ``v`` under ``policy`` before scheduling; ``tier`` is :func:`_current_tier`'s answer
    when the caller has it already."""

    def skip(
        reason: str,
        detail: str,
        score: float | None = None,
        current_tier: Tier | None = None,
        target_tier: Tier | None = None,
        target_pool: str | None = None,
    ) -> Decision:
        return Decision(
            v.name, policy.name, Action.SKIP, reason, score, current_tier, target_tier, target_pool, detail
        )

    if isinstance(policy, PolicyProblem):
        if others:
            return skip(f"conflict:{','.join(others)}", f"also selected by {', '.join(others)}")
        return skip("invalid-policy", f"the policy is invalid: {policy.message}")
    if not policy.enabled:
        return skip("disabled", "the policy is disabled")
    if others:
        return skip(f"conflict:{','.join(others)}", f"also selected by {', '.join(others)}; never moved")
    facts = _volume_problem(v, in_flight)
    if facts is not None:
        return skip(*facts)
    current, problem = tier if tier is not None else _current_tier(policy, v, pools)
    if current is None:
        assert problem is not None
        return skip(*problem)
    snapshot = scores.get(policy.window_seconds)
    unavailable = _metrics_problem(snapshot, policy.window_seconds, now, opts)
    if unavailable is not None or snapshot is None:
        return skip("metrics-unavailable", unavailable or "", current_tier=current)
    heat = lookup(snapshot, v.name, v.volume_id)
    score = 0.0
    if heat is None and snapshot.max_coverage < opts.min_coverage:
        return skip(
            "low-coverage",
            "no samples for the volume, and no volume has enough of the window yet to call it idle",
            current_tier=current,
        )
    if heat is not None:
        if heat.score is None:
            return skip("no-score", "Prometheus returned a non-finite value", current_tier=current)
        if heat.coverage < opts.min_coverage:
            return skip(
                "low-coverage",
                f"{heat.coverage:.0%} of the window's samples present, {opts.min_coverage:.0%} needed",
                score=heat.score,
                current_tier=current,
            )
        score = heat.score
    if group is not None:
        # A group member is judged on the group's combined heat; its own checks above still apply.
        score = group[1]
    target = policy.target_tier(score, current)
    if target is None:
        return Decision(
            v.name,
            policy.name,
            Action.STAY,
            "stay",
            score,
            current,
            detail=_explain_stay(policy, score, current),
        )
    detail = _explain_move(policy, score, current, target)
    if group is not None:
        detail = f"group {group[0]}: combined {detail}"
    if opts.fixed_topology and not _topology_allows(policy, target, v, pools):
        return skip(
            "topology-pinned",
            f"{detail}; the volume was created with {_topology_text(v)}, which no {target} pool satisfies, and"
            " Mayastor cannot change a volume's topology (recreate it from a StorageClass without that"
            " affinity to make it movable)",
            score=score,
            current_tier=current,
            target_tier=target,
        )
    last = max((t for t in (v.last_migration, recent.get(v.name)) if t is not None), default=None)
    if last is not None and (now - last).total_seconds() < policy.cooldown_seconds:
        left = policy.cooldown_seconds - (now - last).total_seconds()
        return skip(
            "cooldown",
            f"{detail}; last migration {format_duration((now - last).total_seconds())} ago, {format_duration(left)} "
            "of cooldown left",
            score=score,
            current_tier=current,
            target_tier=target,
        )
    want = _Wanted(policy, v, current, target, score, detail, opts.fixed_topology)
    if policy.dry_run:
        preview = _pick_pool(want, pools, {})
        where = f"pool {preview.name}" if preview else "no pool with room"
        return skip(
            "dry-run",
            f"{detail}; dry run, would use {where}",
            score=score,
            current_tier=current,
            target_tier=target,
            target_pool=preview.name if preview else None,
        )
    if v.size_bytes is None:
        return skip(
            "size-unknown",
            f"{detail}; volume size unknown",
            score=score,
            current_tier=current,
            target_tier=target,
        )
    return want


def _topology_allows(policy: PolicyRules, target: Tier, v: VolumeView, pools: _Pools) -> bool:
    """True when some pool of ``target`` could take a replica of ``v`` under its creation topology."""
    if not v.inclusion and v.allowed_nodes is None:
        return True
    return any(_placeable(v, pool) for pool in pools.values() if pools.tiers(policy, pool) == {target})


def _placeable(v: VolumeView, pool: PoolView) -> bool:
    """Whether ``pool`` satisfies ``v``'s creation topology: its pool labels and its allowed nodes."""
    return includes(pool.labels, v.inclusion) and (v.allowed_nodes is None or pool.node in v.allowed_nodes)


def _topology_text(v: VolumeView) -> str:
    parts = []
    if v.inclusion:
        parts.append("pool topology " + ", ".join(f"{k}={val}" for k, val in sorted(v.inclusion.items())))
    if v.allowed_nodes is not None:
        parts.append("replicas allowed only on node(s) " + ", ".join(sorted(v.allowed_nodes)))
    return " and ".join(parts)


def _volume_problem(v: VolumeView, in_flight: Collection[str]) -> tuple[str, str] | None:
    if v.deleting:
        return "deleting", "the PV is being deleted"
    if not v.has_backend:
        return "no-mayastor-volume", f"no MayastorVolume named {v.volume_id or v.name}"
    if v.name in in_flight:
        return "in-flight", "a migration of this volume is running"
    unhealthy = [r for r in v.replicas if not r.healthy]
    if unhealthy:
        r = unhealthy[0]
        return "degraded", f"replica on pool {r.pool} is {r.state}/{r.sync_state}"
    if not v.replicas or (v.num_replicas is not None and len(v.replicas) < v.num_replicas):
        return "degraded", f"{len(v.replicas)} of {v.num_replicas or 1} replicas reported"
    return None


def _current_tier(
    policy: PolicyRules, v: VolumeView, pools: _Pools
) -> tuple[Tier | None, tuple[str, str] | None]:
    """The single tier of the pools holding ``v``'s Synced replicas, or the skip reason and detail."""
    tiers: set[Tier] = set()
    synced = [r for r in v.replicas if r.synced]
    if not synced:
        return None, ("tier-unknown", "no Synced replica")
    tier_of = pools.tier_map(policy)
    for replica in synced:
        matched = tier_of.get(replica.pool)
        if matched is None:
            return None, ("tier-unknown", f"pool {replica.pool} is not known")
        if len(matched) != 1:
            which = " and ".join(sorted(matched)) or "no tier"
            return None, (
                "tier-unknown",
                f"pool {replica.pool} matches {which} of the policy's pool selectors",
            )
        tiers |= matched
    if len(tiers) > 1:
        return None, ("mixed-tier", f"replicas on {' and '.join(sorted(tiers))} pools")
    return tiers.pop(), None


def _metrics_problem(
    snapshot: ScoreSnapshot | None, window: int, now: datetime, opts: DecideOptions
) -> str | None:
    if snapshot is None:
        return f"no heat scores for a {format_duration(window)} window yet"
    if not snapshot.healthy:
        return f"metrics unhealthy: {snapshot.error or 'unknown error'}"
    age = (now - snapshot.fetched_at).total_seconds()
    if age > opts.max_score_age_seconds:
        return f"heat scores are {format_duration(age)} old"
    return None


def _explain_move(policy: PolicyRules, score: float, current: Tier, target: Tier) -> str:
    if target is Tier.HOT:
        rule = f"> highWatermarkIOPS {policy.high_iops}"
    elif target is Tier.COLD:
        rule = f"< lowWatermarkIOPS {policy.low_iops}"
    else:
        rule = f"{'<' if current is Tier.HOT else '>'} warmWatermarkIOPS {policy.warm_iops}"
    return f"score {score:.1f} {rule}: {current} -> {target}"


def _explain_stay(policy: PolicyRules, score: float, current: Tier) -> str:
    band = f"[{policy.low_iops}, {policy.high_iops}]"
    if policy.warm_iops is not None:
        band = f"[{policy.low_iops}, {policy.warm_iops}, {policy.high_iops}]"
    return f"score {score:.1f} keeps the volume on {current} (watermarks {band})"


def _pick_pool(want: _Wanted, pools: _Pools, reserved: Mapping[str, int]) -> PoolView | None:
    """The Online target-tier pool with the most room for the volume, or None when none has enough."""
    size = want.volume.size_bytes or 0
    used_nodes = {r.node for r in want.volume.replicas if r.node is not None}
    own_pools = {r.pool for r in want.volume.replicas}
    fitting = [
        pool
        for pool in pools.values()
        if pool.online
        and pool.free_bytes is not None
        and pool.name not in own_pools
        and pools.tiers(want.rules, pool) == {want.target}
        and pool.free_bytes - reserved.get(pool.name, 0) >= size
        and (not want.fixed_topology or _placeable(want.volume, pool))
    ]
    if not fitting:
        return None
    return min(
        fitting,
        key=lambda p: (p.node in used_nodes, -((p.free_bytes or 0) - reserved.get(p.name, 0)), p.name),
    )


def _schedule(
    want: _Wanted, slots: dict[str, int], pools: _Pools, reserved: dict[str, int]
) -> tuple[Decision, PlannedMigration | None]:
    v, rules = want.volume, want.rules

    def skip(reason: str, detail: str) -> tuple[Decision, None]:
        return Decision(
            v.name, rules.name, Action.SKIP, reason, want.score, want.current, want.target, None, detail
        ), None

    if slots[rules.name] <= 0:
        limit = rules.max_concurrent_migrations
        return skip(
            "concurrency-limit", f"{want.detail}; {limit} migration(s) running or planned for the policy"
        )
    pool = _pick_pool(want, pools, reserved)
    if pool is None:
        return skip("no-capacity", f"{want.detail}; no Online {want.target} pool has room for the volume")
    size = v.size_bytes or 0
    reserved[pool.name] = reserved.get(pool.name, 0) + size
    slots[rules.name] -= 1
    return _move(want, pool)


@dataclass(frozen=True, slots=True)
class _GroupWanted:
    """Every member of a volume group wants the same move: scheduled all together or not at all."""

    key: str
    members: tuple[_Wanted, ...]

    @property
    def order(self) -> tuple[int, float, str]:
        first = self.members[0]
        return (first.order[0], first.order[1], self.key)


def _groups(
    policy: PolicyRules | PolicyProblem, chosen: Sequence[VolumeView], external: Mapping[str, str]
) -> dict[str, list[VolumeView]]:
    """The policy's volume groups of two or more members, keyed by the external group key or the
    ``groupLabel`` value; every other volume stands alone."""
    if not isinstance(policy, PolicyRules):
        return {}
    by_value: dict[str, list[VolumeView]] = {}
    for v in chosen:
        value = external.get(v.name)
        if not value and policy.group_label is not None:
            value = v.pvc_labels.get(policy.group_label)
        if value:
            by_value.setdefault(value, []).append(v)
    return {value: members for value, members in sorted(by_value.items()) if len(members) > 1}


def _group_score(
    policy: PolicyRules | PolicyProblem,
    members: Sequence[VolumeView],
    scores: Mapping[int, ScoreSnapshot],
    opts: DecideOptions,
) -> float | None:
    """The group's combined heat (the sum of its members' IOPS), or None when a member has no usable score
    (that member is then skipped for its own reason and holds the whole group back)."""
    if not isinstance(policy, PolicyRules):
        return None
    snapshot = scores.get(policy.window_seconds)
    if snapshot is None or not snapshot.healthy:
        return None
    total = 0.0
    for v in members:
        heat = lookup(snapshot, v.name, v.volume_id)
        if heat is None:
            if snapshot.max_coverage < opts.min_coverage:
                return None
            continue
        if heat.score is None or heat.coverage < opts.min_coverage:
            return None
        total += heat.score
    return total


def _group_verdict(
    key: str, verdicts: Sequence[tuple[VolumeView, Decision | _Wanted]]
) -> _GroupWanted | dict[str, Decision | _Wanted]:
    """All members wanting the same move make a group move; otherwise no member moves, and those that
    wanted to say which member holds them back."""
    wants = [w for _, w in verdicts if isinstance(w, _Wanted)]
    if len(wants) == len(verdicts) and len({(w.current, w.target) for w in wants}) == 1:
        return _GroupWanted(key, tuple(sorted(wants, key=lambda w: w.volume.name)))
    holding = [
        f"{v.name} ({d.label})"
        for v, d in verdicts
        if isinstance(d, Decision) and d.action is not Action.STAY
    ]
    if not holding:
        holding = [f"{v.name} ({d.label})" for v, d in verdicts if isinstance(d, Decision)]
    if not holding:
        holding = ["members want different moves"]
    out: dict[str, Decision | _Wanted] = {}
    for v, verdict in verdicts:
        if isinstance(verdict, _Wanted):
            out[v.name] = Decision(
                v.name,
                verdict.rules.name,
                Action.SKIP,
                "group-blocked",
                verdict.score,
                verdict.current,
                verdict.target,
                None,
                f"{verdict.detail}; group {key} moves all or none, held back by {', '.join(holding)}",
            )
        else:
            out[v.name] = verdict
    return out


def _schedule_group(
    group: _GroupWanted, slots: dict[str, int], pools: _Pools, reserved: dict[str, int]
) -> list[tuple[Decision, PlannedMigration | None]]:
    """Schedule every member or none: one concurrency slot for the group, room for every member first."""
    rules = group.members[0].rules
    local: dict[str, int] = dict(reserved)
    picked: list[tuple[_Wanted, PoolView]] = []
    problem: tuple[str, str] | None = None
    if slots[rules.name] <= 0:
        problem = ("concurrency-limit", f"{rules.max_concurrent_migrations} migration(s) running or planned")
    else:
        for want in group.members:
            pool = _pick_pool(want, pools, local)
            if pool is None:
                problem = (
                    "no-capacity",
                    f"no Online {want.target} pool has room for member {want.volume.name}",
                )
                break
            local[pool.name] = local.get(pool.name, 0) + (want.volume.size_bytes or 0)
            picked.append((want, pool))
    if problem is not None:
        reason, why = problem
        return [
            (
                Decision(
                    w.volume.name,
                    rules.name,
                    Action.SKIP,
                    reason,
                    w.score,
                    w.current,
                    w.target,
                    None,
                    f"{w.detail}; group {group.key} moves all or none: {why}",
                ),
                None,
            )
            for w in group.members
        ]
    reserved.update(local)
    slots[rules.name] -= 1
    return [_move(want, pool, group=f"{rules.name}/{group.key}") for want, pool in picked]


def _move(want: _Wanted, pool: PoolView, group: str = "") -> tuple[Decision, PlannedMigration]:
    """The decision and the planned migration of a scheduled move of ``want`` to ``pool``."""
    v, rules = want.volume, want.rules
    action = Action(want.target.value)
    decision = Decision(
        v.name,
        rules.name,
        action,
        action.value,
        want.score,
        want.current,
        want.target,
        pool.name,
        want.detail,
    )
    migration = PlannedMigration(
        volume=v.name,
        volume_id=v.volume_id,
        policy=rules.name,
        from_tier=want.current,
        to_tier=want.target,
        target_pool=pool.name,
        source_pools=tuple(sorted({r.pool for r in v.replicas})),
        score=want.score,
        size_bytes=v.size_bytes or 0,
        timeout_seconds=rules.migration_timeout_seconds,
        backend_volume=v.backend_name or v.name,
        target_topology=MappingProxyType(tier_topology(rules, want.target, pool.labels)),
        group=group,
    )
    return decision, migration


def tier_topology(rules: PolicyRules, tier: Tier, pool_labels: Mapping[str, str]) -> dict[str, str]:
    """The topology labels that keep a volume's replicas on ``tier``: the keys the tier's selector requires
    (by equality or set membership), with the chosen pool's values."""
    keys = [
        req.key
        for t, selector in rules.pool_selectors
        if t is tier
        for req in selector
        if req.op in ("=", "in")
    ]
    return {key: pool_labels[key] for key in keys if key in pool_labels}


def _policy_plan(
    policy: PolicyRules | PolicyProblem,
    chosen: Sequence[VolumeView],
    decisions: Mapping[str, Decision],
    counts: dict[Tier, int],
    in_flight: Collection[str],
    started: Sequence[PlannedMigration],
) -> PolicyPlan:
    own = tuple(decisions[v.name] for v in chosen)
    conflicts = {
        d.volume: tuple(d.reason.removeprefix("conflict:").split(","))
        for d in own
        if d.reason.startswith("conflict:")
    }
    return PolicyPlan(
        policy=policy.name,
        generation=policy.generation,
        problem=policy if isinstance(policy, PolicyProblem) else None,
        enabled=policy.enabled if isinstance(policy, PolicyRules) else False,
        dry_run=policy.dry_run if isinstance(policy, PolicyRules) else False,
        decisions=own,
        tier_counts=MappingProxyType(counts),
        conflicts=MappingProxyType(conflicts),
        in_flight=sum(v.name in in_flight for v in chosen),
        migrations=tuple(m for m in started if m.policy == policy.name),
    )
