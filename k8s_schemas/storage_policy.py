"""``StoragePolicy`` (``storage.billyronks.io/v1``, cluster-scoped, short names ``sp``, ``spolicy``).

Wire names follow the shipped CRD and the seeds exactly: the IOPS fields are spelled ``...IOPS`` (plain
camelCase renaming would give ``...Iops``, the very bug that made the seeds' operator ignore user thresholds).

The spec arrives as a plain mapping on :class:`StoragePolicy` and is converted to :class:`StoragePolicySpec`
separately (:func:`parse_spec`), so that one malformed policy is reported on that policy's status instead of
breaking the decode of the whole watch stream.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from k8s_schemas.meta import Base, Condition, LabelSelector, ObjectMeta

GROUP = "storage.billyronks.io"
VERSION = "v1"
HISTORY_LIMIT = 50

# Durations: one or more <integer><unit> with units d, h, m, s (e.g. "1h", "1h30m", "90s").
DURATION_PATTERN = r"^([0-9]+[dhms])+$"
Duration = Annotated[
    str,
    Meta(
        pattern=DURATION_PATTERN, description="A duration such as 30s, 15m, 1h or 1h30m (units d, h, m, s)."
    ),
]
Iops = Annotated[int, Meta(ge=0, le=100_000_000)]

#: Defaults of the rebuild limits, and why: a rebuild copies a whole volume at the storage's full speed.
#: On a pool (one disk or RAID set) a second concurrent rebuild only halves the speed of both, keeps two
#: volumes with an extra replica twice as long and queues the applications' I/O behind both: one per pool.
#: A node's network link and io-engine cores serve all its pools: two per node (KubeVirt's default for
#: outbound migrations per node) leave room for the applications; Longhorn's unlimited rebuilds raised
#: etcd and I/O latency until it capped them per node.
DEFAULT_MAX_REBUILDS_PER_NODE = 2
DEFAULT_MAX_REBUILDS_PER_POOL = 1
#: Finished TierMigrations kept per policy (as a Deployment keeps 10 old ReplicaSets).
DEFAULT_TIER_MIGRATION_HISTORY_LIMIT = 10


class MaintenanceWindow(Base):
    """A time when moves may start: from each time the cron ``schedule`` fires, for ``duration``."""

    schedule: Annotated[
        str,
        Meta(
            description="When the window opens: a cron expression of 5 fields (minute hour day-of-month month"
            " day-of-week; lists, ranges, steps and names such as MON or JAN) or @hourly/@daily/@weekly/"
            "@monthly/@yearly, in timeZone.",
            min_length=1,
            max_length=200,
        ),
    ]
    duration: Annotated[
        str,
        Meta(
            pattern=DURATION_PATTERN,
            description="How long the window stays open (elapsed time), e.g. 4h or 1h30m.",
        ),
    ]
    time_zone: Annotated[
        str,
        Meta(
            description="IANA time zone of the schedule, e.g. Europe/Paris; daylight-saving time is applied.",
            min_length=1,
            max_length=64,
        ),
    ] = "UTC"


class Blackout(Base):
    """A period when no move starts, even inside a maintenance window."""

    start: Annotated[
        str,
        Meta(
            description="First day (YYYY-MM-DD, from midnight in timeZone) or instant (RFC 3339) of the"
            " blackout.",
            min_length=10,
            max_length=40,
        ),
    ]
    end: Annotated[
        str,
        Meta(
            description="Last day (YYYY-MM-DD, included, until midnight after it in timeZone) or instant"
            " (RFC 3339, excluded) of the blackout.",
            min_length=10,
            max_length=40,
        ),
    ]
    time_zone: Annotated[
        str, Meta(description="IANA time zone of dates given as days.", min_length=1, max_length=64)
    ] = "UTC"
    reason: Annotated[str, Meta(max_length=256)] | None = None


# The engine's rule (PolicyRules.target_tier), with hysteresis: between the watermarks a volume's move depends
# on the tier it is on, so no two opposite moves share a threshold.
WARM_WATERMARK_DESCRIPTION = """Optional; unset or 0 means no warm tier. Otherwise it must lie strictly between \
lowWatermarkIOPS and highWatermarkIOPS, and where a volume goes depends on its average IOPS and on the tier \
it is on (hysteresis):

  on \\ IOPS    below low   low to warm   warm to high   above high
  hot          cold        warm          stays hot      stays hot
  warm         cold        stays warm    stays warm     hot
  cold         stays cold  stays cold    warm           hot

A score exactly on a watermark does not cross it. Without a warm tier, a volume between low and high stays \
where it is."""


class ColdAfterIdle(Base):
    """A volume counts as cold only once its IOPS stayed under ``belowIOPS`` for the whole ``period``."""

    period: Annotated[
        str,
        Meta(
            pattern=DURATION_PATTERN,
            description="How long the volume's IOPS must have stayed under belowIOPS before it may go to the"
            " cold tier, e.g. 7d.",
        ),
    ]
    below_iops: Annotated[
        Iops,
        Meta(
            description="The IOPS floor: one moment at or above it within the period keeps the volume off"
            " the cold tier."
        ),
    ] = msgspec.field(name="belowIOPS")


MAX_TIER_FILL_DESCRIPTION = """Optional, 1 to 100: the highest fill (used / capacity, in percent, as the pools \
report it) of a tier's pools. Above it the coldest volumes of that tier are moved one tier down, even between \
the watermarks, until the tier would be back under it; a promotion that would push a tier over it is refused \
(skip reason max-tier-fill). Applies to every tier a volume can leave downwards (hot, and warm when set)."""


class StoragePolicySpec(Base):
    """What to tier and how. Defaults are those of the seeds' operator."""

    storage_class_name: Annotated[str, Meta(description="Only PVs of this StorageClass are managed.")] = (
        "mayastor"
    )
    high_watermark_iops: Annotated[
        Iops, Meta(description="Above this average IOPS a volume belongs on the hot tier.")
    ] = msgspec.field(default=5000, name="highWatermarkIOPS")
    low_watermark_iops: Annotated[
        Iops, Meta(description="Below this average IOPS a volume belongs on the cold tier.")
    ] = msgspec.field(default=500, name="lowWatermarkIOPS")
    warm_watermark_iops: Annotated[Iops, Meta(description=WARM_WATERMARK_DESCRIPTION)] | None = msgspec.field(
        default=None, name="warmWatermarkIOPS"
    )
    sampling_window: Duration = "1h"
    cooldown_period: Duration = "24h"
    nvme_pool_selector: LabelSelector | None = None
    sata_pool_selector: LabelSelector | None = None
    hot_pool_selector: LabelSelector | None = None
    cold_pool_selector: LabelSelector | None = None
    warm_pool_selector: LabelSelector | None = None
    volume_selector: LabelSelector | None = None
    max_concurrent_migrations: Annotated[int, Meta(ge=1, le=100)] = 2
    migration_timeout: Duration = "30m"
    enabled: bool = True
    dry_run: bool = False
    approval: Annotated[
        Literal["Automatic", "Manual"],
        Meta(
            description="Automatic: planned moves start on their own. Manual: each waits, as a TierMigration in"
            " AwaitingApproval, until spec.approved is set on it."
        ),
    ] = "Automatic"
    approval_ttl: Annotated[
        str,
        Meta(
            pattern=DURATION_PATTERN,
            description="How long a move waits for approval before it is cancelled (expired).",
        ),
    ] = msgspec.field(default="24h", name="approvalTTL")
    maintenance_windows: (
        Annotated[
            list[MaintenanceWindow],
            Meta(
                description="Moves start only inside one of these windows (none: at any time). A move that"
                " started inside a window finishes.",
                max_length=20,
            ),
        ]
        | None
    ) = None
    blackouts: (
        Annotated[
            list[Blackout],
            Meta(description="Periods when no move starts, windows or not.", max_length=50),
        ]
        | None
    ) = None
    max_rebuilds_per_node: Annotated[
        int,
        Meta(
            ge=1,
            le=100,
            description="At most this many replica rebuilds at once on a node, counting moves from and to it"
            " (of every policy). Default 2: a node's network and io-engine serve all its pools.",
        ),
    ] = DEFAULT_MAX_REBUILDS_PER_NODE
    max_rebuilds_per_pool: Annotated[
        int,
        Meta(
            ge=1,
            le=100,
            description="At most this many replica rebuilds at once on a pool, counting moves from and to it"
            " (of every policy). Default 1: a second rebuild on the same disks only halves both.",
        ),
    ] = DEFAULT_MAX_REBUILDS_PER_POOL
    tier_migration_history_limit: Annotated[
        int,
        Meta(
            ge=0,
            le=1000,
            description="Finished TierMigration objects kept for this policy; older ones are deleted.",
        ),
    ] = DEFAULT_TIER_MIGRATION_HISTORY_LIMIT
    max_tier_fill_percent: Annotated[int, Meta(description=MAX_TIER_FILL_DESCRIPTION)] | None = None
    cold_after_idle: (
        Annotated[
            ColdAfterIdle,
            Meta(
                description="Optional: a volume goes to the cold tier only once its IOPS stayed under"
                " belowIOPS for the whole period (a volume busy within the period stays off it); promotions"
                " still follow the sampling window, so a busy volume comes back at once."
            ),
        ]
        | None
    ) = None
    group_label: (
        Annotated[
            str,
            Meta(
                description="Optional PVC label key: volumes whose PVCs share its value are tiered together, on"
                " their combined heat, all or none.",
                max_length=317,
            ),
        ]
        | None
    ) = None


class MigrationHistoryEntry(Base):
    volume_name: str
    timestamp: str
    from_tier: str
    to_tier: str
    trigger_iops: float = msgspec.field(name="triggerIOPS")
    duration: str
    success: bool
    error: str | UnsetType = UNSET


Phase = Literal["Pending", "Active", "Disabled", "Error"]


class StoragePolicyStatus(Base):
    """Observed state, written by the operator through the ``/status`` subresource."""

    phase: Phase | UnsetType = UNSET
    watched_volumes: int | UnsetType = UNSET
    hot_volumes: int | UnsetType = UNSET
    warm_volumes: int | UnsetType = UNSET
    cold_volumes: int | UnsetType = UNSET
    active_migrations: int | UnsetType = UNSET
    total_migrations: int | UnsetType = UNSET
    failed_migrations: int | UnsetType = UNSET
    last_reconcile_time: str | UnsetType = UNSET
    observed_generation: int | UnsetType = UNSET
    conditions: list[Condition] | UnsetType = UNSET
    migration_history: list[MigrationHistoryEntry] | UnsetType = UNSET
    #: When the next maintenance window opens, while moves wait outside the policy's windows (RFC 3339).
    next_window: str | UnsetType = UNSET
    #: Per tier, how full its pools are (used / capacity in percent, rounded down), as they report it. (None
    #: only in a merge patch, to remove a tier no longer reported.)
    tier_fill_percent: dict[str, int | None] | UnsetType = UNSET


class StoragePolicy(Base):
    api_version: str = f"{GROUP}/{VERSION}"
    kind: str = "StoragePolicy"
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: dict[str, Any] = msgspec.field(default_factory=dict)
    status: StoragePolicyStatus | UnsetType = UNSET


class SpecError(ValueError):
    """A StoragePolicy spec that cannot be used; ``field`` is its wire path (e.g. ``spec.samplingWindow``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def parse_spec(raw: dict[str, Any]) -> StoragePolicySpec:
    """Convert a spec mapping (wire names) to a typed spec, or raise :class:`SpecError` naming the field.

    Only the type- and range-level checks live here; cross-field rules (low < high, durations that parse,
    selectors that are valid) are the operator's policy validation.
    """
    try:
        return msgspec.convert(raw, StoragePolicySpec)
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = "spec"
        # msgspec ends its message with " - at `$.field[...]`"; turn that into a Kubernetes-style path.
        head, sep, tail = message.rpartition(" - at `$")
        if sep:
            message = head
            path = "spec" + tail.rstrip("`")
        raise SpecError(path, message) from None
