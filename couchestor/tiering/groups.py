"""Volume groups: volumes sharing a ``groupLabel`` value or a VolumeGroupReplication, scored on their combined
heat, moved all together or not at all (one concurrency slot, room for every member first)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from couchestor.tiering.heat import ScoreSnapshot, lookup
from couchestor.tiering.placement import Pools, Wanted, pick_pool
from couchestor.tiering.plan import Action, DecideOptions, Decision, PlannedMigration
from couchestor.tiering.policy import PolicyProblem, PolicyRules
from couchestor.tiering.pressure import REASON as PRESSURE, Pressure, footprint
from couchestor.tiering.schedule import move
from couchestor.tiering.views import PoolView, VolumeView


@dataclass(frozen=True, slots=True)
class GroupWanted:
    """Every member of a volume group wants the same move: scheduled all together or not at all."""

    key: str
    members: tuple[Wanted, ...]

    @property
    def order(self) -> tuple[int, float, str]:
        first = self.members[0]
        return (first.order[0], first.order[1], self.key)


def find_groups(
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


def group_score(
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


def group_verdict(
    key: str, verdicts: Sequence[tuple[VolumeView, Decision | Wanted]]
) -> GroupWanted | dict[str, Decision | Wanted]:
    """All members wanting the same move make a group move; otherwise no member moves, and those that
    wanted to say which member holds them back."""
    wants = [w for _, w in verdicts if isinstance(w, Wanted)]
    if len(wants) == len(verdicts) and len({(w.current, w.target) for w in wants}) == 1:
        return GroupWanted(key, tuple(sorted(wants, key=lambda w: w.volume.name)))
    holding = [
        f"{v.name} ({d.label})"
        for v, d in verdicts
        if isinstance(d, Decision) and d.action is not Action.STAY
    ]
    if not holding:
        holding = [f"{v.name} ({d.label})" for v, d in verdicts if isinstance(d, Decision)]
    if not holding:
        holding = ["members want different moves"]
    out: dict[str, Decision | Wanted] = {}
    for v, verdict in verdicts:
        if isinstance(verdict, Wanted):
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


def schedule_group(
    group: GroupWanted,
    slots: dict[str, int],
    pools: Pools,
    reserved: dict[str, int],
    pressure: Pressure | None = None,
) -> list[tuple[Decision, PlannedMigration | None]]:
    """Schedule every member or none: one concurrency slot for the group, the tier pressure of all members
    together, room for every member first."""
    rules = group.members[0].rules
    local: dict[str, int] = dict(reserved)
    picked: list[tuple[Wanted, PoolView]] = []
    problem: tuple[str, str] | None = None
    refused = (
        None
        if pressure is None
        else pressure.refusal(group.members[0], sum(footprint(w.volume) for w in group.members))
    )
    if slots[rules.name] <= 0:
        problem = ("concurrency-limit", f"{rules.max_concurrent_migrations} migration(s) running or planned")
    elif refused is not None:
        problem = (PRESSURE, refused)
    else:
        for want in group.members:
            pool = pick_pool(want, pools, local)
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
    moves = [move(want, pool, group=f"{rules.name}/{group.key}") for want, pool in picked]
    if pressure is not None:
        for (want, _), (_, migration) in zip(picked, moves, strict=True):
            pressure.record(migration, want.volume)
    return list(moves)
