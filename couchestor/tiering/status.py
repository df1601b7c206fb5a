"""StoragePolicy status as a pure function of a policy's plan: what to write, and whether to write at all.

The reconciler owns these status fields: ``phase``, the volume counts, ``tierFillPercent``, ``activeMigrations``,
``observedGeneration``, ``conditions`` and ``lastReconcileTime``. The migration history and its totals
(``migrationHistory``, ``totalMigrations``, ``failedMigrations``) are written by the migration runner, so a
merge-patch of the fields below never clobbers them.

:func:`status_patch` returns None when nothing the user can see changed, so a steady state makes no writes;
``lastReconcileTime`` alone is refreshed at most every ``heartbeat`` seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import msgspec
from msgspec import UNSET

from couchestor.durations import format_time, parse_time
from couchestor.tiering.plan import PolicyPlan
from couchestor.tiering.policy import Tier
from k8s_schemas.meta import Condition
from k8s_schemas.storage_policy import StoragePolicyStatus

HEARTBEAT_SECONDS = 600.0
ConditionStatus = Literal["True", "False", "Unknown"]


class Wanted(NamedTuple):
    """A condition as the operator wants it now (its transition time is decided by :func:`merge_conditions`)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


_MAX_LISTED = 10


@dataclass(frozen=True, slots=True)
class MetricsState:
    """Whether the policy's heat scores could be used; ``error`` says why not."""

    available: bool | None  # None: no answer yet
    error: str | None = None


def conditions_for(
    plan: PolicyPlan, metrics: MetricsState, stuck: Sequence[str] = (), steering: str | None = None
) -> list[Wanted]:
    """(type, status, reason, message) of every condition the operator maintains, in a fixed order.

    ``stuck`` names the policy's volumes whose rollback passed its deadline: while there are any, a
    ``MigrationsStuck`` condition says so (and disappears once they finish). ``steering``: how the backend steers
    a new replica to its pool (Mayastor 2.x: ``pool cordon`` or ``node cordon``), once it knows; a
    ``Steering`` condition says so. While a selected volume has an annotation that cannot be read (a pin, an
    opt-out, its last migration: it is then not moved), an ``UnreadableAnnotations`` condition names them.
    """
    ready: Wanted
    metric: Wanted
    conflict: Wanted
    if plan.problem is not None:
        ready = Wanted("Ready", "False", "InvalidSpec", plan.problem.message)
    elif not plan.enabled:
        ready = Wanted("Ready", "False", "Disabled", "spec.enabled is false: nothing is moved")
    else:
        mode = " (dry run: decisions are logged, nothing is moved)" if plan.dry_run else ""
        ready = Wanted("Ready", "True", "Reconciled", f"watching {plan.watched} volumes{mode}")
    if metrics.available is None:
        metric = Wanted("MetricsAvailable", "Unknown", "Waiting", "no answer from Prometheus yet")
    elif metrics.available:
        metric = Wanted("MetricsAvailable", "True", "Healthy", "heat scores are current")
    else:
        metric = Wanted(
            "MetricsAvailable",
            "False",
            "PrometheusUnavailable",
            f"no tier decisions from heat: {metrics.error or 'unknown error'}",
        )
    if plan.conflicts:
        names = sorted(plan.conflicts)
        listed = ", ".join(f"{v} (also {', '.join(plan.conflicts[v])})" for v in names[:_MAX_LISTED])
        more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
        conflict = Wanted(
            "Conflicts",
            "True",
            "OverlappingPolicies",
            f"{len(names)} volumes selected by several policies are never moved: {listed}{more}",
        )
    else:
        conflict = Wanted("Conflicts", "False", "NoOverlap", "no volume is selected by another policy")
    out = [ready, metric, conflict]
    if steering is not None:
        reason = "".join(word.capitalize() for word in steering.split())
        out.append(
            Wanted("Steering", "True", reason, f"new replicas are steered to their pool by {steering}")
        )
    if plan.unreadable:
        names = sorted(plan.unreadable)
        listed = "; ".join(f"{v} ({plan.unreadable[v]})" for v in names[:_MAX_LISTED])
        more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
        message = (
            f"{len(names)} volumes are not moved until an annotation is fixed (an unreadable last migration"
            f" counts as in cooldown): {listed}{more}"
        )
        out.append(Wanted("UnreadableAnnotations", "True", "UnreadableAnnotation", message))
    if not stuck:
        return out
    names = sorted(stuck)
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    message = (
        f"rollback past its deadline, waiting for the volume to be healthy: {', '.join(names[:_MAX_LISTED])}"
        f"{more}"
    )
    return [*out, Wanted("MigrationsStuck", "True", "RollbackStuck", message)]


def merge_conditions(
    current: Sequence[Condition],
    wanted: Sequence[Wanted],
    now: str,
    generation: int | None,
) -> list[Condition]:
    """The new condition list: ``lastTransitionTime`` moves only when a condition's status changes."""
    by_type = {c.type: c for c in current}
    out = []
    for want in wanted:
        old = by_type.get(want.type)
        since = old.last_transition_time if old is not None and old.status == want.status else now
        cond = Condition(
            type=want.type,
            status=want.status,
            reason=want.reason,
            message=want.message,
            last_transition_time=since,
        )
        if generation is not None:
            cond.observed_generation = generation
        out.append(cond)
    return out


def _owned(status: StoragePolicyStatus) -> dict[str, Any]:
    return {
        "phase": status.phase,
        "watched": status.watched_volumes,
        "hot": status.hot_volumes,
        "warm": status.warm_volumes,
        "cold": status.cold_volumes,
        "active": status.active_migrations,
        "fill": {}
        if status.tier_fill_percent is UNSET
        else {k: v for k, v in status.tier_fill_percent.items() if v is not None},
        "generation": status.observed_generation,
        "next_window": None if status.next_window is UNSET else status.next_window,
        "conditions": []
        if status.conditions is UNSET
        else [(c.type, c.status, c.reason, c.message, c.observed_generation) for c in status.conditions],
    }


def status_patch(
    plan: PolicyPlan,
    current: StoragePolicyStatus | None,
    *,
    metrics: MetricsState,
    active: int,
    now: datetime,
    heartbeat: float = HEARTBEAT_SECONDS,
    stuck: Sequence[str] = (),
    steering: str | None = None,
    next_window: str | None = None,
) -> dict[str, Any] | None:
    """The ``{"status": {...}}`` merge-patch to send, or None when the visible status would not change.

    ``next_window`` is when the policy's next maintenance window opens while moves wait outside one (None:
    none wait, and a ``nextWindow`` shown is cleared)."""
    current = current or StoragePolicyStatus()
    stamp = format_time(now)
    conditions = merge_conditions(
        [] if current.conditions is UNSET else current.conditions,
        conditions_for(plan, metrics, stuck, steering),
        stamp,
        plan.generation,
    )
    desired = StoragePolicyStatus(
        phase=plan.phase,  # type: ignore[arg-type]
        watched_volumes=plan.watched,
        hot_volumes=plan.tier_counts.get(Tier.HOT, 0),
        warm_volumes=plan.tier_counts.get(Tier.WARM, 0),
        cold_volumes=plan.tier_counts.get(Tier.COLD, 0),
        active_migrations=active,
        conditions=conditions,
    )
    # Whole percents, rounded down: a pool filling by a few bytes is no reason to write the status. A tier
    # no longer reported is sent as null, which a merge patch removes (else it would linger, and differ).
    fill: dict[str, int | None] = {str(tier): int(pct) for tier, pct in plan.tier_fill.items()}
    shown = {} if current.tier_fill_percent is UNSET else current.tier_fill_percent
    fill.update({tier: None for tier, pct in shown.items() if tier not in fill and pct is not None})
    if fill:
        desired.tier_fill_percent = fill
    if plan.generation is not None:
        desired.observed_generation = plan.generation
    if next_window is not None:
        desired.next_window = next_window
    if _owned(desired) == _owned(current) and not _stale(current, now, heartbeat):
        return None
    desired.last_reconcile_time = stamp
    body: dict[str, Any] = msgspec.to_builtins(desired)
    if next_window is None and current.next_window is not UNSET:
        body["nextWindow"] = None  # merge patch: null removes it
    return {"status": body}


def _stale(status: StoragePolicyStatus, now: datetime, heartbeat: float) -> bool:
    if status.last_reconcile_time is UNSET:
        return True
    try:
        return (now - parse_time(status.last_reconcile_time)).total_seconds() >= heartbeat
    except ValueError:
        return True
