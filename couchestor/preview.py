"""``couchestor plan -f policy.yaml``: what a StoragePolicy would do on this cluster now, before it is applied.

The file's policy is checked as the API server would check it (the CRD's schema and CEL rules, by the same
structural-schema code the emulated API server runs) and then by the policy compiler; any problem is printed
and the exit status is 1. A valid policy replaces the cluster's policy of the same name (or joins the others)
and :func:`~couchestor.tiering.decide.decide` runs over the cluster as listed now and the current heat scores:
the report lists the volumes that would move (from, to, pool, bytes to copy), each tier's pool fill before
and after those moves, and the volumes that want to move but cannot, with the reason (outside the policy's
maintenance windows or in a blackout, ``outside-window``: nothing moves now, the detail says when the next
window opens). ``dryRun`` in the file is ignored (the plan shows what the policy would do with it off).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import msgspec
import trio
import yaml

from couchestor import inspection
from couchestor.errors import UserError
from couchestor.sim.apiserver.schema import apply_defaults, validate
from couchestor.tiering.decide import decide
from couchestor.tiering.heat import ScoreSnapshot
from couchestor.tiering.operations import held_plan, window_holds
from couchestor.tiering.plan import Action, DecideOptions, Plan
from couchestor.tiering.policy import PolicyProblem, PolicyRules, Tier, compile_policy
from k8s_schemas.crds import storage_policy_crd
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.storage_policy import GROUP, StoragePolicy

#: Exit status of an invalid policy (a UserError, e.g. an unreadable cluster, exits 2).
INVALID = 1


def load_policy(path: str) -> dict[str, Any]:
    """The single StoragePolicy document of the YAML file at ``path`` (``-`` reads stdin)."""
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {exc}") from None
    policies = [d for d in docs if isinstance(d, dict) and d.get("kind") == "StoragePolicy"]
    if len(policies) != 1:
        raise UserError(f"{path} holds {len(policies)} StoragePolicy documents; give exactly one")
    body = policies[0]
    if not str(body.get("apiVersion", "")).startswith(f"{GROUP}/"):
        raise UserError(f"{path}: apiVersion {body.get('apiVersion')!r} is not {GROUP}/v1")
    return body


def problems(body: Mapping[str, Any]) -> list[str]:
    """Every problem of the policy: the CRD's schema and rules first (as the API server reports them), then
    the compiler's (when the schema passed, the compiler finds cross-field problems the CRD cannot express)."""
    schema = storage_policy_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    obj = copy.deepcopy(dict(body))
    obj.setdefault("metadata", {})
    if not obj["metadata"].get("name"):
        return ["metadata.name: Required value"]
    apply_defaults(obj, schema)
    found = [
        f"{e.field}: {e.detail}" if e.detail else f"{e.field}: {e.reason}" for e in validate(obj, schema)
    ]
    if found:
        return found
    compiled = compile_policy(StoragePolicy(metadata=_meta(obj), spec=obj.get("spec") or {}))
    if isinstance(compiled, PolicyProblem):
        return [str(p) for p in compiled.problems]
    return []


def _meta(obj: Mapping[str, Any]) -> ObjectMeta:
    try:
        return msgspec.convert(obj.get("metadata") or {}, ObjectMeta)
    except msgspec.ValidationError as exc:
        raise UserError(f"metadata: {exc}") from None


def build_plan(
    rules: PolicyRules,
    others: Sequence[PolicyRules | PolicyProblem],
    state: inspection.ClusterState,
    scores: Mapping[int, ScoreSnapshot],
    now: datetime,
    options: DecideOptions,
) -> dict[str, Any]:
    """What ``rules`` would do now beside the ``others`` (the cluster's other policies), as JSON-ready data."""
    plan = decide(
        [rules, *others],
        state.volume_views(),
        state.pool_views(),
        scores,
        in_flight=state.in_flight(),
        recent_migrations={},
        now=now,
        options=options,
    )
    # As the operator shows it: outside the policy's windows (or in a blackout) its moves are
    # skip:outside-window, listed with when the next window opens, and none counts as moving now.
    return _report(rules, held_plan(plan, window_holds([rules, *others], now)), state)


def _report(rules: PolicyRules, plan: Plan, state: inspection.ClusterState) -> dict[str, Any]:
    own = plan.policy(rules.name)
    assert own is not None
    moving = {d.volume for d in own.decisions if d.action is not Action.SKIP}
    own = replace(own, migrations=tuple(m for m in own.migrations if m.volume in moving))
    moves = [
        {
            "volume": m.volume,
            "from": m.from_tier.value,
            "to": m.to_tier.value,
            "pool": m.target_pool,
            "iops": m.score,
            "bytes": m.size_bytes,
            "group": m.group or None,
        }
        for m in own.migrations
    ]
    blocked = [
        {
            "volume": d.volume,
            "from": None if d.current_tier is None else d.current_tier.value,
            "to": None if d.target_tier is None else d.target_tier.value,
            "reason": d.reason,
            "detail": d.detail,
        }
        for d in own.decisions
        if d.action is Action.SKIP
    ]
    fill = _fill(rules, state, own.migrations)
    counts = {t.value: own.tier_counts.get(t, 0) for t in rules.tiers}
    return {
        "policy": rules.name,
        "selected": own.watched,
        "tiers": counts,
        "moves": moves,
        "bytesToCopy": sum(m.size_bytes for m in own.migrations),
        "fill": fill,
        "blocked": blocked,
        "staying": sum(d.action is Action.STAY for d in own.decisions),
    }


def _fill(rules: PolicyRules, state: inspection.ClusterState, migrations: Sequence[Any]) -> dict[str, Any]:
    """Per tier: capacity and used bytes over its reporting pools, now and after the planned moves (each move
    copies the volume onto its target pool and frees its replicas on the source pools)."""
    tier_of: dict[str, Tier] = {}
    capacity: dict[Tier, int] = dict.fromkeys(rules.tiers, 0)
    used: dict[Tier, int] = dict.fromkeys(rules.tiers, 0)
    for pool in state.pools:
        tiers = rules.tiers_matching(pool.topology_labels)
        if len(tiers) != 1 or pool.capacity_bytes is None or pool.used_bytes is None:
            continue
        tier = next(iter(tiers))
        tier_of[str(pool.metadata.name)] = tier
        capacity[tier] += pool.capacity_bytes
        used[tier] += pool.used_bytes
    after = dict(used)
    for m in migrations:
        after[m.to_tier] += m.size_bytes
        for source in m.source_pools:
            if source in tier_of:
                after[tier_of[source]] -= m.size_bytes
    out: dict[str, Any] = {}
    for tier in rules.tiers:
        cap = capacity[tier]
        out[tier.value] = {
            "capacityBytes": cap,
            "usedBytes": used[tier],
            "usedBytesAfter": after[tier],
            "fill": used[tier] / cap if cap else None,
            "fillAfter": after[tier] / cap if cap else None,
        }
    return out


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:,.1f}Gi"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def render(report: Mapping[str, Any]) -> str:
    lines = [
        f"Policy {report['policy']}: {report['selected']} volume(s) selected, "
        + ", ".join(f"{n} {t}" for t, n in report["tiers"].items()),
        "",
    ]
    if report["moves"]:
        rows = [("VOLUME", "FROM", "TO", "POOL", "IOPS", "COPY")]
        rows += [
            (m["volume"], m["from"], m["to"], m["pool"], f"{m['iops']:,.0f}", _gib(m["bytes"]))
            for m in report["moves"]
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.append(f"{len(report['moves'])} move(s), {_gib(report['bytesToCopy'])} to copy")
    else:
        lines.append("No volume would move now.")
    lines.append("")
    lines.append("Tier fill (pools' used / capacity), now -> after:")
    for tier, f in report["fill"].items():
        lines.append(
            f"  {tier}: {_pct(f['fill'])} -> {_pct(f['fillAfter'])}"
            f" ({_gib(f['usedBytes'])} -> {_gib(f['usedBytesAfter'])} of {_gib(f['capacityBytes'])})"
        )
    if report["blocked"]:
        lines.append("")
        lines.append("Cannot move or place:")
        for b in report["blocked"]:
            move = f" {b['from']} -> {b['to']}" if b["to"] else ""
            lines.append(f"  {b['volume']}{move}: {b['reason']}: {b['detail']}")
    return "\n".join(lines) + "\n"


async def gather(args: argparse.Namespace, body: dict[str, Any]) -> dict[str, Any]:
    settings = inspection.settings_from(args)
    compiled = compile_policy(StoragePolicy(metadata=_meta(body), spec=body.get("spec") or {}))
    assert isinstance(compiled, PolicyRules)  # problems() passed
    rules = replace(compiled, dry_run=False)
    state = await inspection.read_cluster(settings)
    others = [compile_policy(p) for p in state.policies if p.metadata.name != rules.name]
    active = [p for p in (rules, *others) if isinstance(p, PolicyRules) and p.enabled]
    windows = {p.window_seconds for p in active}
    periods = {p.idle.period_seconds for p in active if p.idle is not None}
    now = datetime.now(UTC)
    scores = await inspection.read_scores(settings, windows, now, periods)
    report = build_plan(rules, others, state, scores, now, inspection.decide_options(settings))
    report["dryRunIgnored"] = compiled.dry_run
    report["enabled"] = compiled.enabled
    return report


def main(args: argparse.Namespace) -> int:
    body = load_policy(args.filename)
    found = problems(body)
    if found:
        name = (body.get("metadata") or {}).get("name") or "(unnamed)"
        if args.output == "json":
            json.dump({"policy": name, "valid": False, "problems": found}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(f"StoragePolicy {name} is invalid:", file=sys.stderr)
            for problem in found:
                print(f"  {problem}", file=sys.stderr)
        return INVALID
    report = trio.run(gather, args, body)
    if args.output == "json":
        json.dump({"valid": True, **report}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(report))
    return 0


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "plan",
        help="what a StoragePolicy would do on this cluster now (moves, bytes, tier fill), before applying it",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("-f", "--filename", required=True, help="the StoragePolicy YAML file (- for stdin)")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    inspection.add_arguments(parser)
    parser.set_defaults(func=main)
