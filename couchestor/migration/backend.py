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
    async def read(self, volume: str) -> VolumeState:
        """The current state; raises :class:`BackendError` (not retryable) when the volume does not exist."""
        ...

    async def write_intent(self, volume: str, intent: Intent | None, *, expected_version: str) -> VolumeState:
        """Record (or with None, clear) the intent, only if the volume is still at ``expected_version``."""
        ...

    async def scale(self, volume: str, replicas: int, inclusion: Mapping[str, str]) -> VolumeState:
        """Ask for ``replicas`` replicas placed on pools matching ``inclusion`` (idempotent)."""
        ...

    async def wait_changed(self, volume: str, version: str) -> None:
        """Return once the volume's state is no longer at ``version`` (driven by a watch, not a sleep loop)."""
        ...

    def pool_tier_labels(self, pool: str) -> Mapping[str, str] | None:
        """The labels of ``pool`` as last seen (None when unknown)."""
        ...

    def intents(self) -> list[VolumeState]:
        """Every volume that currently carries a migration intent (for restart recovery)."""
        ...
