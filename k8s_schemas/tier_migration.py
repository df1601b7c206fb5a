"""``TierMigration`` (``storage.billyronks.io/v1``, cluster-scoped, short name ``tm``): one object per move.

The operator creates one for every move it plans or starts; a user creates one to request a move
(``spec.volume`` + ``spec.targetTier``, optionally ``spec.targetPool``). ``spec.approved`` approves (true) or
declines (false) a move of a ``approval: Manual`` policy; ``spec.cancel: true`` (or deleting the object)
cancels an unfinished move. The status mirrors the migration intent recorded on the volume (see
``docs/design.md``): the intent stays the one source of truth, the object is its readable face.

The CEL rules (:data:`TIER_MIGRATION_RULES` and the per-field ones) make what identifies a move immutable
(``volume``, ``targetTier``, ``targetPool``, ``policy``), make ``cancel`` one-way, and let ``approved`` be
set once: an approved move is stopped with ``cancel``, never by flipping ``approved``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from k8s_schemas.meta import Base, Condition, ObjectMeta
from k8s_schemas.storage_policy import GROUP, VERSION

KIND = "TierMigration"
PLURAL = "tiermigrations"

TierName = Literal["hot", "warm", "cold"]

#: Every phase, in the order a move goes through them; the last four are terminal.
Phase = Literal[
    "Pending",
    "Planned",
    "AwaitingApproval",
    "Scheduled",
    "AddingReplica",
    "Syncing",
    "RemovingReplica",
    "Succeeded",
    "Failed",
    "RolledBack",
    "Cancelled",
]
PHASES: tuple[str, ...] = Phase.__args__  # type: ignore[attr-defined]
TERMINAL_PHASES = frozenset({"Succeeded", "Failed", "RolledBack", "Cancelled"})

# A PersistentVolume name (DNS subdomain): what ``spec.volume`` names.
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _immutable(name: str) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": "self == oldSelf", "message": f"{name} is immutable"}]}


class TierMigrationSpec(Base):
    """What to move where, and the user's say on it."""

    volume: Annotated[
        str,
        Meta(
            description="The PersistentVolume to move (its name).",
            min_length=1,
            max_length=253,
            pattern=_DNS_SUBDOMAIN,
            extra_json_schema=_immutable("volume"),
        ),
    ]
    target_tier: Annotated[
        TierName,
        Meta(description="The tier to move the volume to.", extra_json_schema=_immutable("targetTier")),
    ]
    target_pool: (
        Annotated[
            str,
            Meta(
                description="Optional: the DiskPool of the target tier to put the new replica on.",
                min_length=1,
                max_length=253,
                extra_json_schema=_immutable("targetPool"),
            ),
        ]
        | None
    ) = None
    approved: (
        Annotated[
            bool,
            Meta(
                description="For a policy with approval: Manual: true starts the move, false declines it. Set"
                " once; stop an approved move with cancel."
            ),
        ]
        | None
    ) = None
    cancel: Annotated[
        bool,
        Meta(
            description="true cancels the move (rolled back safely if it started). One-way: it cannot be unset."
        ),
    ] = False
    policy: (
        Annotated[
            str,
            Meta(
                description="The StoragePolicy the move belongs to (set by the operator; for a request, the"
                " policy that selects the volume).",
                min_length=1,
                max_length=253,
                extra_json_schema=_immutable("policy"),
            ),
        ]
        | None
    ) = None


#: Spec-level rules: fields that are immutable once set may not be added or removed either, and an approval
#: is given once. Per-field ``self == oldSelf`` rules only see fields present in both versions.
TIER_MIGRATION_RULES = [
    {
        "rule": "has(self.targetPool) == has(oldSelf.targetPool)",
        "message": "targetPool is immutable: it cannot be added or removed after creation",
        "fieldPath": ".targetPool",
    },
    {
        "rule": "has(self.policy) == has(oldSelf.policy)",
        "message": "policy is immutable: it cannot be added or removed after creation",
        "fieldPath": ".policy",
    },
    {
        "rule": "!has(oldSelf.approved) || (has(self.approved) && self.approved == oldSelf.approved)",
        "message": "approved is set once: to stop an approved move set cancel: true",
        "fieldPath": ".approved",
    },
    {
        "rule": "!oldSelf.cancel || self.cancel",
        "message": "cancel is one-way: a cancelled move cannot be resumed",
        "fieldPath": ".cancel",
    },
]


class MigrationPreview(Base):
    """What a planned move would do, for a user deciding on an approval."""

    target_pool: str | UnsetType = UNSET
    bytes_to_copy: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    #: The target pool's free bytes once the move's replica is on it (negative: it would not fit).
    pool_free_bytes_after: int | UnsetType = UNSET


class TierMigrationStatus(Base):
    """Observed state, written by the operator through ``/status``; times are RFC 3339 UTC."""

    phase: Phase | UnsetType = UNSET
    #: One CamelCase word saying why the move is in its phase (``WaitingForWindow``, ``NodeLimit`` ...).
    reason: str | UnsetType = UNSET
    message: str | UnsetType = UNSET
    policy: str | UnsetType = UNSET
    from_tier: str | UnsetType = UNSET
    to_tier: str | UnsetType = UNSET
    source_pools: list[str] | UnsetType = UNSET
    target_pool: str | UnsetType = UNSET
    bytes_to_copy: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    bytes_copied: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    #: Rebuild progress of the whole move, in percent.
    progress: Annotated[int, Meta(ge=0, le=100)] | UnsetType = UNSET
    started_at: str | UnsetType = UNSET
    finished_at: str | UnsetType = UNSET
    #: Estimated finish while syncing.
    eta: str | UnsetType = UNSET
    #: The volume's heat score (IOPS) when the move was decided.
    trigger_iops: float | UnsetType = msgspec.field(default=UNSET, name="triggerIOPS")
    preview: MigrationPreview | UnsetType = UNSET
    #: When a move waiting outside its policy's maintenance windows may start.
    next_window: str | UnsetType = UNSET
    observed_generation: int | UnsetType = UNSET
    conditions: list[Condition] | UnsetType = UNSET


class TierMigration(Base, kw_only=True):
    api_version: str = f"{GROUP}/{VERSION}"
    kind: str = KIND
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: TierMigrationSpec
    status: TierMigrationStatus | UnsetType = UNSET
