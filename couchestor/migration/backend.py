"""The volume backend interface: everything a migration needs from the storage system, nothing more.

Two implementations are planned: the MayastorVolume custom resource the seeds describe (:mod:`.crd`), and
Mayastor 2.x's control-plane REST API. Nothing above this interface knows which one runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from couchestor.migration.intent import Intent


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    pool: str
    node: str
    state: str  # Online | Degraded | Faulted | Unknown
    sync_state: str  # Unknown | Syncing | Synced
    progress: int | None = None  # rebuild percent while Syncing

    @property
    def healthy(self) -> bool:
        return self.state == "Online" and self.sync_state == "Synced"


@dataclass(frozen=True, slots=True)
class VolumeState:
    """A volume as the backend reports it now; ``version`` changes whenever anything changes."""

    name: str
    num_replicas: int
    inclusion: Mapping[str, str]
    replicas: tuple[ReplicaInfo, ...]
    intent: Intent | None
    version: str

    @property
    def healthy_count(self) -> int:
        return sum(1 for r in self.replicas if r.healthy)


class BackendError(Exception):
    """The backend refused or failed an operation; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class IntentConflict(BackendError):
    """The guarded intent write lost against a concurrent writer: re-read and decide again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class VolumeBackend(Protocol):
    """What the migration runner needs from a storage system.

    Every method is idempotent: repeating a call after a crash or a lost reply changes nothing more. Methods
    raise :class:`BackendError` (or :class:`IntentConflict`) and nothing else for storage-side failures; they
    have their own timeouts and may be cancelled at any await.
    """

    async def read(self, volume: str) -> VolumeState:
        """The current state; raises :class:`BackendError` (not retryable) when the volume does not exist."""
        ...

    async def write_intent(self, volume: str, intent: Intent | None, *, expected_version: str) -> VolumeState:
        """Record (or with None, clear) the intent, only if the volume is still at ``expected_version``.

        Raises :class:`IntentConflict` when the volume changed since ``expected_version`` was read.
        """
        ...

    async def add_replica(
        self,
        volume: str,
        *,
        count: int,
        pool: str,
        topology: Mapping[str, str],
        expected_version: str = "",
    ) -> VolumeState:
        """Raise the replica count to ``count``, the new replica going to ``pool``.

        ``topology`` is the pool-label topology the volume should carry (the target tier's labels); a backend
        that cannot pin the exact pool places the replica on some pool matching ``topology`` — the caller reads
        back where it went. ``expected_version`` as for :meth:`remove_replica`.
        """
        ...

    async def remove_replica(
        self,
        volume: str,
        *,
        count: int,
        pool: str,
        topology: Mapping[str, str],
        expected_version: str = "",
    ) -> VolumeState:
        """Lower the replica count to ``count``, dropping the replica on ``pool``.

        ``topology`` is the topology the volume keeps afterwards. Storage systems may choose the victim
        themselves: the caller verifies which replicas remain and never trusts this call alone.
        ``expected_version`` is the version of the state the removal was decided on: when the volume changed
        since (a replica faulted, another writer), nothing is removed and :class:`IntentConflict` is raised.
        """
        ...

    async def wait_changed(self, volume: str, version: str) -> None:
        """Return once the volume's state is probably no longer at ``version``.

        Driven by a watch, not a sleep loop; may return early (spuriously) but never waits unboundedly long
        after a change: callers re-read and loop.
        """
        ...

    def intents(self) -> list[VolumeState]:
        """Every volume that currently carries a migration intent, as last seen (for restart recovery)."""
        ...
