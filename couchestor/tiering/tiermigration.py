"""TierMigration objects as a mirror of the migration intent, and the rules for approvals, as pure functions.

The migration intent on the volume stays the one source of truth for a move that has started: a
TierMigration's status is *computed* from the intent and the volume's observed state
(:func:`running_status`), never read back to decide anything, so after a crash the next operator recomputes
the same status from the same volume. Before a move starts there is no intent: the object then carries the
user's say (``spec.approved``, ``spec.cancel``, deletion) and the operator's verdict on it
(:func:`approval_verdict`, :func:`waiting_status`). When the intent is removed the outcome is written once
(:func:`finished_status`) and the object becomes history (:func:`history_to_delete`).

How the reconciler (through :mod:`couchestor.tiering.operations`) and the runner call this (see docs/design.md):

- reconciler, each pass: for every planned move without an unfinished TierMigration (:func:`open_migration`)
  create one named :func:`object_name` with :data:`~k8s_schemas.annotations.POLICY_LABEL`,
  :data:`~k8s_schemas.annotations.POLICY_GENERATION` and :data:`FINALIZER`; for every unfinished one without an intent, :func:`approval_verdict` — ``Cancel`` is
  written with :func:`finished_status` (phase Cancelled) and the finalizer removed, ``Ready`` moves go to
  :func:`couchestor.tiering.admission.admit`, and every waiting one gets :func:`waiting_status`;
- runner, each step of a migration: :func:`running_status` from the intent and the state it just read;
  :func:`stop_reason` of the move's TierMigration joins the policy-derived stop reason it passes to
  ``next_step``; at the end, :func:`finished_status` with the outcome;
- garbage collection: :func:`history_to_delete` with each policy's ``tierMigrationHistoryLimit``.

Every status write is :func:`status_patch` (old, new): a merge patch that also clears fields the new status
no longer has (an ETA once syncing ends), or None when nothing changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from msgspec import UNSET

from couchestor.durations import format_duration, format_time, parse_time
from couchestor.migration.backend import VolumeState
from couchestor.migration.intent import Intent
from couchestor.tiering.admission import AWAITING_APPROVAL, Hold, reason_word
from k8s_schemas.annotations import GROUP
from k8s_schemas.tier_migration import TERMINAL_PHASES, MigrationPreview, TierMigration, TierMigrationStatus

#: Held by every unfinished TierMigration, so deleting one cancels the move (rolled back first) instead of
#: losing sight of it; removed once the move is finished.
FINALIZER = f"{GROUP}/tiermigration"

_NAME_LIMIT = 253


# --- naming and lookup --------------------------------------------------------------------------------------


def object_name(pv: str, to_tier: str, decided_at: datetime) -> str:
    """``<pv>-<tier>-<UTC yyyymmddhhmmss>``: readable, and unique per volume and second. The PV part is
    lower-cased, characters other than letters, digits and ``-`` become ``-``, and it is cut so the name stays
    a valid object name (a DNS subdomain of at most 253 characters)."""
    stamp = format_time(decided_at).replace("-", "").replace(":", "").replace("T", "")[:-1]
    suffix = f"-{to_tier}-{stamp}"
    head = (
        re.sub(r"[^a-z0-9-]", "-", pv.lower()).strip("-")[: _NAME_LIMIT - len(suffix)].rstrip("-") or "volume"
    )
    return head + suffix


def is_finished(tm: TierMigration) -> bool:
    return tm.status is not UNSET and tm.status.phase in TERMINAL_PHASES


def open_migration(volume: str, migrations: Iterable[TierMigration]) -> TierMigration | None:
    """The unfinished TierMigration of ``volume`` (the oldest, should there be several), or None.

    A volume has at most one unfinished move: the reconciler creates a TierMigration only when this is None.
    """
    mine = [tm for tm in migrations if tm.spec.volume == volume and not is_finished(tm)]
    return min(
        mine, key=lambda tm: (tm.metadata.creation_timestamp or "", tm.metadata.name or ""), default=None
    )


# --- approvals ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The move may go to admission (approved, or the policy's approval is Automatic)."""


@dataclass(frozen=True, slots=True)
class AwaitApproval:
    """Waiting for ``spec.approved``; cancelled as expired at ``expires_at``."""

    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Cancel:
    """Finish the (unstarted) move as Cancelled: ``reason`` is the CamelCase word, ``message`` says why."""

    reason: str
    message: str


Verdict = Ready | AwaitApproval | Cancel


@dataclass(frozen=True, slots=True)
class Facts:
    """What the approval rules need of one unstarted move.

    ``planned_generation`` is the policy's ``metadata.generation`` when the move was planned (the
    :data:`~k8s_schemas.annotations.POLICY_GENERATION` annotation the operator sets when it creates the object;
    None for a user's request), ``policy_generation`` the current one (None: the policy is gone
    or invalid). ``still_wanted`` is False, with ``why_not``, when this pass's decision for the volume is no
    longer this move (the heat changed, the volume left the policy, another tier is wanted ...).
    """

    approved: bool | None
    cancel: bool
    deleting: bool
    created_at: datetime
    manual: bool
    ttl_seconds: int
    planned_generation: int | None
    policy_generation: int | None
    still_wanted: bool
    why_not: str = ""


def approval_verdict(facts: Facts, now: datetime) -> Verdict:
    """The verdict on an unstarted move; the first rule that applies wins:

    cancelled (``spec.cancel`` or deletion) > declined (``approved: false``) > the policy is gone or invalid >
    the policy's spec changed since the move was planned (approved or not: the approval was given for a
    decision of the old spec) > the decision no longer holds > expired (Manual, no answer within
    ``approvalTTL`` of creation) > awaiting approval (Manual, no answer) > ready.
    """
    if facts.cancel or facts.deleting:
        how = "deleted" if facts.deleting and not facts.cancel else "cancelled (spec.cancel)"
        return Cancel("Cancelled", f"{how} by the user before it started")
    if facts.approved is False:
        return Cancel("Declined", "declined (spec.approved: false)")
    if facts.policy_generation is None:
        return Cancel("PolicyGone", "its StoragePolicy was deleted or is invalid")
    if facts.planned_generation is not None and facts.planned_generation != facts.policy_generation:
        return Cancel(
            "PolicyChanged",
            f"its StoragePolicy changed (generation {facts.planned_generation} -> {facts.policy_generation})"
            " after the move was planned; the new spec decides again",
        )
    if not facts.still_wanted:
        return Cancel("DecisionChanged", f"the decision no longer holds: {facts.why_not or 'not wanted'}")
    if facts.manual and facts.approved is None:
        expires = facts.created_at + timedelta(seconds=facts.ttl_seconds)
        if now >= expires:
            return Cancel(
                "Expired", f"not approved within approvalTTL ({format_duration(facts.ttl_seconds)})"
            )
        return AwaitApproval(expires)
    return Ready()


def stop_reason(tm: TierMigration | None) -> str | None:
    """Why a *running* move must be rolled back on its TierMigration's account (``spec.cancel`` or deletion),
    or None. The runner passes it to ``next_step`` as its stop reason: a rollback is then safe and complete,
    and a move already settling (removing the old replicas) finishes instead, as for any deliberate abort."""
    if tm is None:
        return None
    if tm.spec.cancel:
        return "cancelled by the user (spec.cancel)"
    if tm.metadata.deletion_timestamp is not UNSET:
        return "cancelled by the user (TierMigration deleted)"
    return None


# --- status -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Move:
    """What a waiting move's status shows of it (from the decision or the request)."""

    policy: str
    from_tier: str | None
    to_tier: str
    source_pools: tuple[str, ...] = ()
    target_pool: str | None = None
    size_bytes: int | None = None
    trigger_iops: float | None = None
    #: The target pool's free bytes now (before the move), for the preview.
    target_free_bytes: int | None = None
    policy_generation: int | None = None


def preview_of(move: Move) -> MigrationPreview | None:
    """The preview a user approves: target pool, bytes to copy, the pool's free space once the move is done."""
    if move.target_pool is None:
        return None
    to_copy = _bytes_to_copy(move.size_bytes, len(move.source_pools))
    after = None
    if move.target_free_bytes is not None and move.size_bytes is not None:
        after = move.target_free_bytes - move.size_bytes
    return MigrationPreview(
        target_pool=move.target_pool,
        bytes_to_copy=UNSET if to_copy is None else to_copy,
        pool_free_bytes_after=UNSET if after is None else after,
    )


def waiting_status(
    move: Move, *, verdict: Verdict, hold: Hold | None = None, dry_run: bool = False
) -> TierMigrationStatus:
    """The status of a move that has not started.

    Phases: ``Planned`` for a dry-run policy's move (never started); ``AwaitingApproval`` while a Manual
    policy's move has no answer; ``Scheduled`` once it may start, with ``reason`` saying what it waits for
    (``OutsideWindow`` with ``nextWindow``, ``NodeLimit`` ...), or ``Starting`` when admission let it through
    (``hold`` None); ``Pending`` when it cannot be placed (no target pool). A ``Cancel`` verdict is written
    with :func:`finished_status` instead.
    """
    if isinstance(verdict, Cancel):
        raise ValueError("a cancelled move is finished: write finished_status(...)")
    base = _base(move)
    to_copy = _bytes_to_copy(move.size_bytes, len(move.source_pools))
    preview = preview_of(move)
    fields: dict[str, Any] = {
        **base,
        "bytes_to_copy": UNSET if to_copy is None else to_copy,
        "preview": UNSET if preview is None else preview,
    }
    if dry_run:
        return TierMigrationStatus(
            phase="Planned",
            reason="DryRun",
            message="dry-run policy: this move is shown, never started",
            **fields,
        )
    if isinstance(verdict, AwaitApproval):
        return TierMigrationStatus(
            phase="AwaitingApproval",
            reason="AwaitingApproval",
            message=f"set spec.approved: true to start it, false to decline; expires at {format_time(verdict.expires_at)}",
            **fields,
        )
    if move.target_pool is None:
        return TierMigrationStatus(
            phase="Pending", reason="NoTargetPool", message="no pool of the target tier can take it", **fields
        )
    if hold is None:
        return TierMigrationStatus(
            phase="Scheduled", reason="Starting", message="admitted; starting", **fields
        )
    if hold.reason == AWAITING_APPROVAL:  # admission and the verdict disagree only if fed different facts
        raise ValueError("an approved (or Automatic) move cannot be held for approval")
    return TierMigrationStatus(
        phase="Scheduled",
        reason=reason_word(hold.reason),
        message=hold.detail,
        next_window=UNSET if hold.next_window is None else format_time(hold.next_window),
        **fields,
    )


def running_status(
    intent: Intent, state: VolumeState, *, size_bytes: int | None, now: datetime
) -> TierMigrationStatus:
    """The status of a started move, computed from its intent and the volume as just read.

    A move copies the volume once per replica it moves (``len(intent.sourcePools)`` rounds): a new replica is
    added on the target tier, synced, and one old one removed. ``AddingReplica`` while a replica is requested
    but not yet placed (or the next round is about to add one), ``Syncing`` while a new replica rebuilds (with
    the copy's progress and an ETA extrapolated from the time spent so far), ``RemovingReplica`` while a
    surplus old replica goes (or once all data is in place, reason ``Finishing``). A rollback shows as
    ``RemovingReplica`` with reason ``RollingBack``.
    """
    source = set(intent.source_pools)
    new = [r for r in state.replicas if r.pool not in source]
    old = [r for r in state.replicas if r.pool in source]
    rounds = max(len(intent.source_pools), 1)
    total = _bytes_to_copy(size_bytes, rounds)
    done_fraction = (
        sum(1.0 for r in new if r.healthy) + sum((r.progress or 0) / 100 for r in new if not r.healthy)
    ) / rounds
    done_fraction = min(max(done_fraction, 0.0), 1.0)
    percent = int(done_fraction * 100)
    fields: dict[str, Any] = {
        "policy": intent.policy,
        "from_tier": intent.from_tier,
        "to_tier": intent.to_tier,
        "source_pools": sorted(source),
        "target_pool": intent.target_pool,
        "started_at": intent.started_at,
        "trigger_iops": intent.trigger_iops,
        "progress": percent,
        "bytes_to_copy": UNSET if total is None else total,
        "bytes_copied": UNSET if total is None else int(total * done_fraction),
    }
    if intent.phase == "rolling-back":
        return TierMigrationStatus(
            phase="RemovingReplica",
            reason="RollingBack",
            message=f"rolling back: {intent.abort_reason or 'aborted'}",
            **fields,
        )
    syncing = [r for r in new if not r.healthy]
    if state.num_replicas > len(state.replicas):
        return TierMigrationStatus(
            phase="AddingReplica",
            reason="PlacingReplica",
            message="waiting for the new replica to be placed",
            **fields,
        )
    if syncing:
        eta = _eta(intent.started_at, done_fraction, now)
        return TierMigrationStatus(
            phase="Syncing",
            reason="Rebuilding",
            message=f"new replica on pool {syncing[0].pool} rebuilding ({percent}% of the move copied)",
            eta=UNSET if eta is None else format_time(eta),
            **fields,
        )
    if len(state.replicas) > intent.original_replicas:
        return TierMigrationStatus(
            phase="RemovingReplica",
            reason="RemovingOldReplica",
            message="removing a replica off the source tier",
            **fields,
        )
    if old:
        return TierMigrationStatus(
            phase="AddingReplica",
            reason="AddingReplica",
            message=f"{len(old)} replica(s) left on the source tier; adding the next one on {intent.to_tier}",
            **fields,
        )
    return TierMigrationStatus(
        phase="RemovingReplica",
        reason="Finishing",
        message="every replica is on the target tier; verifying",
        **fields,
    )


def finished_status(
    outcome: str,
    *,
    now: datetime,
    detail: str = "",
    failed: bool = False,
    cancelled: bool = False,
    reason: str | None = None,
) -> TierMigrationStatus:
    """The final status. ``outcome`` is the runner's (``completed``, ``preserved``, ``rolled-back``) or
    ``cancelled`` for a move that never started (``reason`` from its :class:`Cancel` verdict).

    ``completed``/``preserved`` -> Succeeded; ``rolled-back`` -> Cancelled when the user cancelled it, Failed
    after a failure (timeout, fault), RolledBack after any other deliberate abort (policy disabled or
    deleted); ``cancelled`` -> Cancelled. Only the terminal fields are set; :func:`status_patch` against
    the previous status keeps what the move showed while it ran.
    """
    if outcome in ("completed", "preserved"):
        phase, word = "Succeeded", "Completed" if outcome == "completed" else "Preserved"
    elif outcome == "rolled-back":
        if cancelled:
            phase, word = "Cancelled", "Cancelled"
        elif failed:
            phase, word = "Failed", "RolledBack"
        else:
            phase, word = "RolledBack", "Aborted"
    elif outcome == "cancelled":
        phase, word = "Cancelled", reason or "Cancelled"
    else:
        raise ValueError(f"unknown outcome {outcome!r}")
    return TierMigrationStatus(
        phase=phase,  # type: ignore[arg-type]
        reason=reason or word,
        message=detail or word,
        finished_at=format_time(now),
        progress=100 if phase == "Succeeded" else UNSET,
    )


#: Fields that only mean something while a move is under way: cleared when it finishes.
_TRANSIENT = ("eta", "nextWindow")


def status_patch(old: TierMigrationStatus | None, new: TierMigrationStatus) -> dict[str, Any] | None:
    """The ``/status`` merge patch from ``old`` to ``new``, or None when nothing changes.

    Fields ``old`` has and ``new`` does not are cleared (JSON null) — except when ``new`` is terminal
    (:func:`finished_status` writes only the terminal fields): then what the move showed while it ran is kept
    and only the transient fields (ETA, next window) are cleared. A finished status is final: once ``old`` is
    terminal, nothing more is written.
    """
    before = {} if old is None else msgspec.to_builtins(old)
    if before.get("phase") in TERMINAL_PHASES:
        return None
    after = msgspec.to_builtins(new)
    patch: dict[str, Any] = {k: v for k, v in after.items() if before.get(k) != v}
    gone = [k for k in before if k not in after and k != "conditions"]
    if new.phase in TERMINAL_PHASES:
        gone = [k for k in gone if k in _TRANSIENT]
    patch.update(dict.fromkeys(gone))
    return {"status": patch} if patch else None


# --- history ------------------------------------------------------------------------------------------------


def history_to_delete(
    migrations: Iterable[TierMigration], limits: Mapping[str, int], default_limit: int = 10
) -> list[str]:
    """Names of finished TierMigrations beyond their policy's history limit, oldest first.

    Per policy (``status.policy``, else ``spec.policy``), the newest ``limits[policy]`` finished ones (by
    ``status.finishedAt``, then name) are kept; a policy not in ``limits`` (deleted) keeps ``default_limit``.
    Unfinished ones are never deleted here.
    """
    by_policy: dict[str, list[tuple[str, str]]] = {}
    for tm in migrations:
        if not is_finished(tm) or tm.metadata.name is UNSET:
            continue
        status = tm.status
        assert status is not UNSET
        policy = status.policy if status.policy is not UNSET else (tm.spec.policy or "")
        finished = "" if status.finished_at is UNSET else status.finished_at
        by_policy.setdefault(policy, []).append((finished, tm.metadata.name))
    doomed: list[tuple[str, str]] = []
    for policy, items in by_policy.items():
        items.sort()
        keep = max(limits.get(policy, default_limit), 0)
        doomed.extend(items[: max(len(items) - keep, 0)])
    return [name for _, name in sorted(doomed)]


# --- helpers ------------------------------------------------------------------------------------------------


def _base(move: Move) -> dict[str, Any]:
    return {
        "policy": move.policy,
        "from_tier": UNSET if move.from_tier is None else move.from_tier,
        "to_tier": move.to_tier,
        "source_pools": list(move.source_pools) if move.source_pools else UNSET,
        "target_pool": UNSET if move.target_pool is None else move.target_pool,
        "trigger_iops": UNSET if move.trigger_iops is None else move.trigger_iops,
        "observed_generation": UNSET if move.policy_generation is None else move.policy_generation,
    }


def _bytes_to_copy(size_bytes: int | None, rounds: int) -> int | None:
    return None if size_bytes is None else size_bytes * max(rounds, 1)


def _eta(started_at: str, fraction: float, now: datetime) -> datetime | None:
    """Linear extrapolation of the time spent so far; None before any progress (or with no readable start)."""
    if fraction <= 0:
        return None
    try:
        elapsed = (now - parse_time(started_at)).total_seconds()
    except ValueError:
        return None
    if elapsed <= 0:
        return None
    return now + timedelta(seconds=round(elapsed * (1 - fraction) / fraction))
