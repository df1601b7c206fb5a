"""What a finished migration leaves behind in the policy's status, as pure functions.

The history lives in ``status.migrationHistory`` (newest last, at most 50 entries) so it survives restarts.
A migration is identified by its volume and start time; recording the same migration twice (an operator that
crashed between writing the history and clearing the intent) changes nothing the second time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from msgspec import UNSET

from couchestor.durations import format_duration, format_time, parse_time
from couchestor.migration.intent import Intent
from k8s_schemas.annotations import LAST_MIGRATION, TIER_LABEL
from k8s_schemas.storage_policy import HISTORY_LIMIT, MigrationHistoryEntry, StoragePolicy

Status = Literal["success", "failed", "aborted"]


def history_entry(intent: Intent, *, status: Status, now: datetime, error: str = "") -> MigrationHistoryEntry:
    try:
        seconds = max((now - parse_time(intent.started_at)).total_seconds(), 0.0)
    except ValueError:
        seconds = 0.0
    entry = MigrationHistoryEntry(
        volume_name=intent.pv,
        timestamp=intent.started_at,
        from_tier=intent.from_tier,
        to_tier=intent.to_tier if status == "success" else intent.from_tier,
        trigger_iops=intent.trigger_iops,
        duration=format_duration(seconds),
        success=status == "success",
    )
    if error:
        entry.error = error
    return entry


def history_patch(policy: StoragePolicy, entry: MigrationHistoryEntry) -> dict[str, Any] | None:
    """The guarded ``/status`` merge-patch that appends ``entry``; None when it is already recorded.

    The patch carries the policy's resourceVersion: lists are replaced whole by a merge-patch, so a concurrent
    writer must make this one fail (409) rather than lose an entry.
    """
    status = policy.status if policy.status is not UNSET else None
    history = [] if status is None or status.migration_history is UNSET else list(status.migration_history)
    if any(h.volume_name == entry.volume_name and h.timestamp == entry.timestamp for h in history):
        return None
    total = 0 if status is None or status.total_migrations is UNSET else status.total_migrations
    failed = 0 if status is None or status.failed_migrations is UNSET else status.failed_migrations
    history = [*history, entry][-HISTORY_LIMIT:]
    return {
        "metadata": {"resourceVersion": policy.metadata.resource_version},
        "status": {
            "migrationHistory": msgspec.to_builtins(history),
            "totalMigrations": total + 1,
            "failedMigrations": failed + (0 if entry.success else 1),
        },
    }


def pv_patch(intent: Intent, *, now: datetime, moved: bool) -> dict[str, Any]:
    """The PV merge-patch: the cooldown annotation always (a failed attempt also waits), the tier label
    only when the volume moved."""
    metadata: dict[str, Any] = {"annotations": {LAST_MIGRATION: format_time(now)}}
    if moved:
        metadata["labels"] = {TIER_LABEL: intent.to_tier}
    return {"metadata": metadata}


__all__ = ["Status", "history_entry", "history_patch", "pv_patch"]
