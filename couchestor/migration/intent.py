"""The migration intent: written on the volume before its first change, removed after its last.

It holds everything needed to finish or roll back the migration without the memory of the operator that
started it: the original replica count and topology, where the volume goes, who started it and when.
"""

from __future__ import annotations

from typing import Literal

import msgspec

# The phase only says which way the migration goes; every step in between is derived from the volume's state.
Phase = Literal["forward", "rolling-back"]


class Intent(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    pv: str
    volume: str
    policy: str
    from_tier: str
    to_tier: str
    target_pool: str
    source_pools: list[str]
    original_replicas: int
    original_inclusion: dict[str, str]
    target_inclusion: dict[str, str]
    started_at: str
    operator: str
    trigger_iops: float
    timeout_seconds: int
    phase: Phase = "forward"
    abort_reason: str = ""
    # True when the rollback follows a failure (timeout, fault, errors), False for a deliberate abort.
    failed: bool = False
    # Volume groups move all or none: every member's intent names the group and its members (PV names).
    # ``committed`` is written on each member once every member's new replicas are synced; from then on
    # the group only goes forward.
    group: str = ""
    group_members: list[str] = msgspec.field(default_factory=list)
    committed: bool = False
    # The TierMigration this move is the face of (its name; empty for a move started without one).
    request: str = ""


_decoder = msgspec.json.Decoder(Intent)


def encode(intent: Intent) -> str:
    return msgspec.json.encode(intent).decode()


def decode(text: str) -> Intent:
    """Raises :class:`ValueError` naming the problem when ``text`` is not an intent."""
    try:
        return _decoder.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"unreadable migration intent: {exc}") from None
