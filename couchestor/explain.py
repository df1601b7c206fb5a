"""``couchestor explain VOLUME``: why a volume is (not) moving, from the same decision code the operator runs.

VOLUME is a PV name, ``pv/NAME``, ``pvc/NAME`` (with ``-n NAMESPACE``), or ``NAMESPACE/NAME`` of a PVC. The
command lists the cluster once, asks Prometheus once per sampling window and runs
:func:`~couchestor.tiering.decide.decide` over all of it (so concurrency and pool room are judged as the operator
would), then reports for the one volume: the policy selecting it (and any overlapping), its heat with sample
coverage and window, its tier, replicas and pools, its claim's pin or opt-out, the decision in words, cooldown
left, the last migrations and what would change the decision. It needs no running operator. Installed as
``kubectl-couchestor`` too, so ``kubectl couchestor explain pvc/NAME`` works (kubectl's plugin convention).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import trio
from msgspec import UNSET

from couchestor import inspection
from couchestor.durations import format_duration, format_time
from couchestor.errors import UserError
from couchestor.tiering.decide import decide
from couchestor.tiering.heat import ScoreSnapshot, lookup
from couchestor.tiering.operations import held_plan, window_holds
from couchestor.tiering.plan import Action, DecideOptions, Decision
from couchestor.tiering.policy import IdleRule, PolicyProblem, PolicyRules, Tier, compile_policy
from couchestor.tiering.views import VolumeView
from k8s_schemas.annotations import EXCLUDE, PIN
from k8s_schemas.storage_policy import StoragePolicy

#: How many migrations of the volume the report lists, newest first.
HISTORY_SHOWN = 5


@dataclass(frozen=True, slots=True)
class Target:
    """Which volume was asked for: a PV by name, or a PVC by namespace and name."""

    kind: str  # "pv" or "pvc"
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        return f"pv/{self.name}" if self.kind == "pv" else f"pvc {self.namespace}/{self.name}"


def parse_target(text: str, namespace: str | None) -> Target:
    """``pv/NAME``, ``pvc/NAME``, ``NAMESPACE/NAME`` (a PVC) or ``NAME`` (a PV, else a PVC in ``namespace``).

    A PVC's namespace is None when neither the text nor ``namespace`` gives one: then the kubeconfig context's
    namespace applies, as with kubectl."""
    kind, sep, rest = text.partition("/")
    if sep and kind.lower() in ("pv", "persistentvolume", "persistentvolumes"):
        if not rest or "/" in rest:
            raise UserError(f"{text!r}: expected pv/NAME")
        return Target("pv", rest)
    if sep and kind.lower() in ("pvc", "persistentvolumeclaim", "persistentvolumeclaims"):
        ns, sep2, name = rest.rpartition("/")
        if not name or (sep2 and not ns):
            raise UserError(f"{text!r}: expected pvc/NAME or pvc/NAMESPACE/NAME")
        return Target("pvc", name, ns or namespace)
    if sep:
        if not kind or not rest or "/" in rest:
            raise UserError(f"{text!r}: expected NAME, pv/NAME, pvc/NAME or NAMESPACE/NAME")
        return Target("pvc", rest, kind)
    if not text:
        raise UserError("no volume given: expected NAME, pv/NAME, pvc/NAME or NAMESPACE/NAME")
    return Target("any", text, namespace)


def resolve_target(target: Target, state: inspection.ClusterState) -> str:
    """The PV name of ``target``; a UserError when there is no such PV or PVC, or the PVC is not bound."""
    if target.namespace is None:
        target = Target(target.kind, target.name, state.namespace)
    pv_names = {str(pv.metadata.name) for pv in state.pvs}
    if target.kind in ("pv", "any") and target.name in pv_names:
        return target.name
    if target.kind == "pv":
        raise UserError(f"PersistentVolume {target.name} not found")
    for pvc in state.pvcs:
        if pvc.metadata.name == target.name and pvc.metadata.namespace == target.namespace:
            bound = pvc.spec.volume_name
            if bound is UNSET or not bound:
                raise UserError(
                    f"PersistentVolumeClaim {target.namespace}/{target.name} is not bound to a volume"
                )
            if bound not in pv_names:
                raise UserError(
                    f"PersistentVolumeClaim {target.namespace}/{target.name} is bound to PV {bound}, which does"
                    " not exist"
                )
            return bound
    if target.kind == "any":
        raise UserError(
            f"no PersistentVolume {target.name} and no PersistentVolumeClaim {target.namespace}/{target.name}"
        )
    raise UserError(f"PersistentVolumeClaim {target.namespace}/{target.name} not found")


# --- The report (pure) ----------------------------------------------------------------------------------------


def change_conditions(rules: PolicyRules, current: Tier, score: float | None) -> list[str]:
    """What heat would move a volume on ``current`` under ``rules``, in words, e.g.
    ``promoted to hot above 5,000 IOPS; now 1,212`` (the thresholds of :meth:`PolicyRules.target_tier`)."""
    now = "" if score is None else f"; now {score:,.0f}"
    out = []
    for tier in rules.tiers:
        if tier is current:
            continue
        if tier is Tier.HOT:
            threshold, side = rules.high_iops, "above"
        elif tier is Tier.COLD:
            threshold, side = rules.low_iops, "below"
        elif rules.warm_iops is not None:
            threshold, side = rules.warm_iops, "below" if current is Tier.HOT else "above"
        else:  # pragma: no cover - a warm tier always has a warm watermark
            continue
        verb = "promoted" if tier.rank > current.rank else "demoted"
        out.append(f"{verb} to {tier} {side} {threshold:,} IOPS{now}")
    return out


_UNBLOCK = {
    "cooldown": "the cooldown ending",
    "dry-run": "dryRun: false on the policy",
    "disabled": "enabled: true on the policy",
    "no-capacity": "room on an Online pool of the target tier",
    "concurrency-limit": "a free migration slot of the policy (maxConcurrentMigrations)",
    "in-flight": "the running migration finishing",
    "degraded": "every replica Online and Synced",
    "low-coverage": "more samples in Prometheus for the sampling window",
    "metrics-unavailable": "heat scores from Prometheus",
    "size-unknown": "a known volume size",
    "group-blocked": "every member of its group wanting the same move",
    "outside-window": "the policy's next maintenance window opening (or the blackout ending)",
    "pinned": f"the pin ending or being removed ({PIN} on the PVC)",
    "excluded": f"removing {EXCLUDE} from the PVC",
    "pin-invalid": "a readable pin annotation on the PVC",
    "pin-conflict": "the group's members pinned to one tier",
    "max-tier-fill": "the target tier's pools under maxTierFillPercent with the volume on them",
}
#: Decisions a pin or opt-out makes: the heat does not change them.
_PIN_REASONS = ("pinned", "excluded", "pin-invalid", "pin-conflict")


def build_report(
    pv: str,
    claim: str | None,
    compiled: Sequence[PolicyRules | PolicyProblem],
    state: inspection.ClusterState,
    scores: Mapping[int, ScoreSnapshot],
    now: datetime,
    options: DecideOptions,
) -> dict[str, Any]:
    """Everything ``explain`` says about PV ``pv``, as plain JSON-ready data.

    Raises a UserError when no policy selects the volume (naming its storage class and PVC labels).
    """
    views = state.volume_views()
    view = next(v for v in views if v.name == pv)
    selecting = [
        p for p in compiled if p.scope is not None and p.scope.selects(view.storage_class, view.pvc_labels)
    ]
    if not selecting:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(view.pvc_labels.items())) or "none"
        names = ", ".join(sorted(p.name for p in compiled)) or "none exist"
        raise UserError(
            f"volume {pv} (storage class {view.storage_class or 'none'}, PVC labels {labels}) is not selected by"
            f" any StoragePolicy (policies: {names})"
        )
    plan = decide(
        compiled,
        views,
        state.pool_views(),
        scores,
        in_flight=state.in_flight(),
        recent_migrations={},
        now=now,
        options=options,
    )
    # As the operator shows it: a move its policy's window or blackout holds now is skip:outside-window.
    plan = held_plan(plan, window_holds(compiled, now))
    decisions = [d for d in plan.decisions if d.volume == pv]
    # The decision of an enabled valid policy first: that is the one the operator acts on.
    decisions.sort(key=lambda d: (d.reason in ("disabled", "invalid-policy"), d.policy))
    decision = decisions[0]
    rules = next(p for p in selecting if p.name == decision.policy)
    report: dict[str, Any] = {
        "volume": pv,
        "claim": claim,
        "storageClass": view.storage_class,
        "sizeBytes": view.size_bytes,
        "policy": decision.policy,
        "overlapping": sorted(p.name for p in selecting if p.name != decision.policy),
        "heat": None,
        "tier": None if decision.current_tier is None else decision.current_tier.value,
        "replicas": _replicas(view, rules, state),
        "decision": _decision(decision),
        "cooldown": None,
        "lastMigration": None if view.last_migration is None else format_time(view.last_migration),
        "lastMigrationError": view.last_migration_error,
        "pin": _pin(view, now),
        "history": _history(pv, state.policies),
        "wouldChange": [],
    }
    if isinstance(rules, PolicyProblem):
        report["wouldChange"] = [f"fixing the policy: {rules.message}"]
        return report
    report["watermarks"] = {"low": rules.low_iops, "warm": rules.warm_iops, "high": rules.high_iops}
    snapshot = scores.get(rules.window_seconds)
    heat = None if snapshot is None else lookup(snapshot, view.name, view.volume_id)
    report["heat"] = {
        "iops": 0.0 if heat is None else heat.score,
        "readIOPS": None if heat is None else heat.read_iops,
        "writeIOPS": None if heat is None else heat.write_iops,
        "coverage": 0.0 if heat is None else heat.coverage,
        "samples": 0 if heat is None else heat.samples,
        "window": format_duration(rules.window_seconds),
        "measuredAt": None if snapshot is None else format_time(snapshot.fetched_at),
    }
    own = plan.policy(rules.name)
    report["tierFill"] = {
        "percent": {} if own is None else {str(t): round(pct, 1) for t, pct in own.tier_fill.items()},
        "max": rules.max_fill_percent,
    }
    report["idle"] = None if rules.idle is None else _idle(rules.idle, snapshot, view)
    if view.last_migration is not None:
        left = rules.cooldown_seconds - (now - view.last_migration).total_seconds()
        report["cooldown"] = {
            "period": format_duration(rules.cooldown_seconds),
            "leftSeconds": max(0, round(left)),
            "left": format_duration(max(0.0, left)),
        }
    changes: list[str] = []
    if decision.current_tier is not None and decision.reason not in _PIN_REASONS:
        score = decision.score if decision.score is not None else (None if heat is None else heat.score)
        changes = change_conditions(rules, decision.current_tier, score)
    blocker = _UNBLOCK.get(decision.reason.split(":")[0])
    if decision.reason == "cooldown" and view.last_migration_error is not None:
        blocker = "the last-migration annotation fixed or removed"
    if decision.reason.startswith("conflict:"):
        blocker = "only one policy selecting it (now also " + ", ".join(report["overlapping"]) + ")"
    if decision.action is Action.SKIP and blocker is not None:
        changes.append(f"not before {blocker}")
    report["wouldChange"] = changes
    return report


def _idle(idle: IdleRule, snapshot: ScoreSnapshot | None, view: VolumeView) -> dict[str, Any]:
    """The policy's idle rule and the volume's peak over its period (None until Prometheus gave it)."""
    peaks = None if snapshot is None else snapshot.peaks.get(idle.period_seconds)
    found = None if peaks is None or not peaks.healthy else peaks.lookup(view.name, view.volume_id)
    peak: float | None = None
    if found is not None:
        peak = found.peak
    elif peaks is not None and peaks.healthy:
        peak = 0.0  # absent from a healthy answer: no I/O Prometheus knows of
    return {
        "period": format_duration(idle.period_seconds),
        "belowIOPS": idle.below_iops,
        "peakIOPS": peak,
        "coverage": None if found is None else found.coverage,
        "error": None if peaks is None or peaks.healthy else peaks.error,
    }


def _pin(view: VolumeView, now: datetime) -> dict[str, Any] | None:
    """The volume's pin or opt-out as its claim states it, or None when it has neither."""
    if view.pin_error is not None:
        return {"tier": None, "excluded": False, "until": None, "active": False, "error": view.pin_error}
    if view.pin is None:
        return None
    return {
        "tier": None if view.pin.tier is None else view.pin.tier.value,
        "excluded": view.pin.tier is None,
        "until": None if view.pin.until is None else format_time(view.pin.until),
        "active": view.pin.active(now),
        "error": None,
    }


def _decision(decision: Decision) -> dict[str, Any]:
    return {
        "label": decision.label,
        "action": decision.action.value,
        "reason": decision.reason,
        "targetTier": None if decision.target_tier is None else decision.target_tier.value,
        "targetPool": decision.target_pool,
        "detail": decision.detail,
        "words": _words(decision),
    }


def _words(d: Decision) -> str:
    if d.action is Action.STAY:
        return f"stays on {d.current_tier}: {d.detail}"
    if d.action is not Action.SKIP:
        return f"moves from {d.current_tier} to {d.target_tier} (pool {d.target_pool}) now: {d.detail}"
    if d.target_tier is not None:
        return (
            f"would move from {d.current_tier} to {d.target_tier}, but is held back ({d.reason}): {d.detail}"
        )
    return f"not judged ({d.reason}): {d.detail}"


def _replicas(
    view: VolumeView, rules: PolicyRules | PolicyProblem, state: inspection.ClusterState
) -> list[dict[str, Any]]:
    pools = {p.name: p for p in state.pool_views()}
    out = []
    for r in view.replicas:
        pool = pools.get(r.pool)
        tiers = sorted(rules.tiers_matching(pool.labels)) if pool and isinstance(rules, PolicyRules) else []
        out.append(
            {
                "pool": r.pool,
                "node": r.node,
                "state": r.state,
                "sync": r.sync_state,
                "poolTier": tiers[0] if len(tiers) == 1 else None,
                "poolHealth": None if pool is None else pool.health,
                "poolFreeBytes": None if pool is None else pool.free_bytes,
            }
        )
    return out


def _history(pv: str, policies: Sequence[StoragePolicy]) -> list[dict[str, Any]]:
    entries = []
    for policy in policies:
        status = policy.status
        if status is UNSET or status.migration_history is UNSET:
            continue
        for e in status.migration_history:
            if e.volume_name == pv:
                entry = {
                    "policy": policy.metadata.name,
                    "timestamp": e.timestamp,
                    "fromTier": e.from_tier,
                    "toTier": e.to_tier,
                    "triggerIOPS": e.trigger_iops,
                    "duration": e.duration,
                    "success": e.success,
                }
                if e.error is not UNSET:
                    entry["error"] = e.error
                entries.append(entry)
    entries.sort(key=lambda e: str(e["timestamp"]), reverse=True)
    return entries[:HISTORY_SHOWN]


def render(report: Mapping[str, Any]) -> str:
    """The report as text for a terminal."""
    lines = [f"Volume:     {report['volume']}" + (f" (claim {report['claim']})" if report["claim"] else "")]
    overlap = f" (also selected by {', '.join(report['overlapping'])})" if report["overlapping"] else ""
    lines.append(f"Policy:     {report['policy']}{overlap}")
    heat = report["heat"]
    if heat is not None:
        iops = "not a number" if heat["iops"] is None else f"{heat['iops']:,.1f} IOPS"
        lines.append(
            f"Heat:       {iops} over {heat['window']}, {heat['coverage']:.0%} sample coverage"
            f" ({heat['samples']} samples)"
        )
    marks = report.get("watermarks")
    if marks:
        warm = f", warm {marks['warm']:,}" if marks["warm"] is not None else ""
        lines.append(f"Watermarks: low {marks['low']:,}{warm}, high {marks['high']:,} IOPS")
    lines.append(f"Tier:       {report['tier'] or 'unknown'}")
    pin = report.get("pin")
    if pin is not None:
        lines.append(f"Pin:        {_pin_words(pin)}")
    fill = report.get("tierFill")
    if fill and fill["percent"]:
        mark = f" (maxTierFillPercent {fill['max']})" if fill["max"] is not None else ""
        tiers = ", ".join(f"{tier} {pct:.0f}%" for tier, pct in fill["percent"].items())
        lines.append(f"Tier fill:  {tiers}{mark}")
    idle = report.get("idle")
    if idle:
        if idle["error"]:
            seen = f"peaks unavailable: {idle['error']}"
        elif idle["peakIOPS"] is None:
            seen = "no peak known yet"
        else:
            cover = "" if idle["coverage"] is None else f", {idle['coverage']:.0%} coverage"
            seen = f"peak {idle['peakIOPS']:,.1f} IOPS over it{cover}"
        lines.append(f"Idle rule:  cold only after {idle['period']} under {idle['belowIOPS']:,} IOPS; {seen}")
    for r in report["replicas"]:
        lines.append(
            f"Replica:    pool {r['pool']} ({r['poolTier'] or 'no tier'}) on {r['node'] or 'unknown node'},"
            f" {r['state']}/{r['sync']}"
        )
    lines.append(f"Decision:   {report['decision']['label']}: {report['decision']['words']}")
    cooldown = report["cooldown"]
    if report["lastMigrationError"]:
        lines.append(f"Cooldown:   unknown, {report['lastMigrationError']}")
    elif cooldown is not None:
        left = f"{cooldown['left']} left" if cooldown["leftSeconds"] else "over"
        lines.append(f"Cooldown:   {cooldown['period']} after {report['lastMigration']}: {left}")
    else:
        lines.append("Cooldown:   none (never migrated)")
    for e in report["history"]:
        outcome = "ok" if e["success"] else f"failed: {e.get('error', '')}"
        lines.append(
            f"Migration:  {e['timestamp']} {e['fromTier']} -> {e['toTier']} at {e['triggerIOPS']:,.0f} IOPS,"
            f" {e['duration']}, {outcome}"
        )
    for change in report["wouldChange"]:
        lines.append(f"Would move: {change}")
    return "\n".join(lines) + "\n"


def _pin_words(pin: Mapping[str, Any]) -> str:
    if pin["error"]:
        return f"unreadable, so the volume is not moved: {pin['error']}"
    if pin["excluded"]:
        return f"excluded from tiering ({EXCLUDE}): never moved"
    until = f" until {pin['until']}" if pin["until"] else ""
    if not pin["active"]:
        return f"{pin['tier']}{until}, ended: tiered by its heat again"
    return f"{pin['tier']}{until} ({PIN}): moved there, never away"


# --- The command ------------------------------------------------------------------------------------------------


async def gather(args: argparse.Namespace) -> dict[str, Any]:
    settings = inspection.settings_from(args)
    target = parse_target(args.volume, args.pvc_namespace)
    state = await inspection.read_cluster(settings)
    pv = resolve_target(target, state)
    claim = _claim_of(pv, state)
    compiled = [compile_policy(p) for p in state.policies]
    active = [p for p in compiled if isinstance(p, PolicyRules) and p.enabled]
    windows = {p.window_seconds for p in active}
    periods = {p.idle.period_seconds for p in active if p.idle is not None}
    now = datetime.now(UTC)
    scores = await inspection.read_scores(settings, windows, now, periods) if windows else {}
    return build_report(pv, claim, compiled, state, scores, now, inspection.decide_options(settings))


def _claim_of(pv: str, state: inspection.ClusterState) -> str | None:
    for obj in state.pvs:
        ref = obj.spec.claim_ref
        if obj.metadata.name == pv and ref is not UNSET and ref.name is not UNSET:
            return f"{ref.namespace}/{ref.name}"
    return None


def main(args: argparse.Namespace) -> int:
    report = trio.run(gather, args)
    if args.output == "json":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(report))
    return 0


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "explain",
        help="why a volume is (not) moving: its policy, heat, tier, decision and what would change it",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "volume", metavar="VOLUME", help="PV name, pv/NAME, pvc/NAME or NAMESPACE/NAME (a PVC)"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        dest="pvc_namespace",
        default=None,
        help="namespace of a PVC (default: the kubeconfig context's, as with kubectl)",
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    inspection.add_arguments(parser)
    parser.set_defaults(func=main)
