"""The volume backend for the seeds' MayastorVolume custom resource (``openebs.io/v1``).

Reads are GETs (authoritative, for decisions that write); waiting follows the operator's MayastorVolume watch
stream through its store: :meth:`CrdBackend.run` turns store changes into per-volume wake-ups, with a bounded
fallback re-read so a lost notification can delay a step but never hang it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import trio
import trio.lowlevel
from msgspec import UNSET

from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import Conflict, KubeError, NotFound
from couchestor.kube.store import Store
from couchestor.migration import intent as intents
from couchestor.migration.backend import BackendError, IntentConflict, ReplicaInfo, VolumeState
from k8s_schemas.annotations import MIGRATION_INTENT
from k8s_schemas.mayastor import MayastorVolume

log = logging.getLogger("couchestor.migration")

# A missed watch event delays a wait by at most this long.
FALLBACK_REREAD = 10.0


def to_state(obj: MayastorVolume) -> VolumeState:
    text = obj.metadata.annotation(MIGRATION_INTENT)
    intent = None
    if text:
        try:
            intent = intents.decode(text)
        except ValueError as exc:
            log.warning("MayastorVolume %s: %s", obj.metadata.name, exc)
    return VolumeState(
        name=str(obj.metadata.name),
        num_replicas=obj.spec.num_replicas,
        inclusion=obj.spec.inclusion,
        replicas=tuple(
            ReplicaInfo(
                pool=r.pool,
                node=r.node if isinstance(r.node, str) else "",
                state=r.state,
                sync_state=r.sync_state,
                progress=r.rebuild_progress if isinstance(r.rebuild_progress, int) else None,
            )
            for r in obj.replicas
        ),
        intent=intent,
        version=str(obj.metadata.resource_version),
    )


class CrdBackend:
    """:class:`~couchestor.migration.backend.VolumeBackend` over MayastorVolumes in ``namespace``."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        volumes: Store[MayastorVolume],
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.volumes = volumes
        self._waiters: dict[str, trio.Event] = {}

    async def run(self) -> None:
        """Wake waiters on every change of their volume; runs until cancelled."""
        async for changes in self.volumes.subscribe(initial=False).batches():
            for change in changes:
                event = self._waiters.pop(change.key.name, None)
                if event is not None:
                    event.set()

    async def read(self, volume: str) -> VolumeState:
        try:
            obj = await self.client.get(
                resources.MAYASTOR_VOLUME, volume, self.namespace, type=MayastorVolume
            )
        except NotFound:
            raise BackendError(
                f"MayastorVolume {self.namespace}/{volume} does not exist", retryable=False
            ) from None
        except KubeError as exc:
            raise BackendError(f"cannot read MayastorVolume {volume}: {exc}", retryable=True) from None
        return to_state(obj)

    async def write_intent(
        self, volume: str, intent: intents.Intent | None, *, expected_version: str
    ) -> VolumeState:
        value = None if intent is None else intents.encode(intent)
        patch = {"metadata": {"resourceVersion": expected_version, "annotations": {MIGRATION_INTENT: value}}}
        return await self._patch(volume, patch)

    async def add_replica(
        self,
        volume: str,
        *,
        count: int,
        pool: str,
        topology: Mapping[str, str],
        expected_version: str = "",
    ) -> VolumeState:
        # The resource can only steer placement by pool labels: the replica lands on a pool of the tier.
        return await self._scale(volume, count, topology, expected_version)

    async def remove_replica(
        self,
        volume: str,
        *,
        count: int,
        pool: str,
        topology: Mapping[str, str],
        expected_version: str = "",
    ) -> VolumeState:
        # Mayastor drops replicas outside the topology first, so the topology names what stays. The patch is
        # conditional on the state the removal was decided on: if a replica faulted since, the control plane
        # could drop a healthy one and keep the faulted one.
        return await self._scale(volume, count, topology, expected_version)

    async def _scale(
        self, volume: str, replicas: int, inclusion: Mapping[str, str], expected_version: str
    ) -> VolumeState:
        current = await self.read(volume)
        if expected_version and current.version != expected_version:
            raise IntentConflict(f"MayastorVolume {volume} changed since the step was decided")
        # Merge-patch merges maps: keys of the old inclusion that the new one lacks must be set to null.
        labelled: dict[str, Any] = {key: None for key in current.inclusion if key not in inclusion}
        labelled.update(inclusion)
        patch: dict[str, Any] = {
            "spec": {"numReplicas": replicas, "topology": {"pool": {"labelled": {"inclusion": labelled}}}}
        }
        if expected_version:
            patch["metadata"] = {"resourceVersion": expected_version}
        return await self._patch(volume, patch)

    async def _patch(self, volume: str, patch: dict[str, Any]) -> VolumeState:
        try:
            obj = await self.client.merge_patch(
                resources.MAYASTOR_VOLUME, volume, patch, self.namespace, type=MayastorVolume
            )
        except Conflict as exc:
            raise IntentConflict(f"MayastorVolume {volume} changed concurrently: {exc}") from None
        except NotFound:
            raise BackendError(
                f"MayastorVolume {self.namespace}/{volume} does not exist", retryable=False
            ) from None
        except KubeError as exc:
            raise BackendError(f"cannot update MayastorVolume {volume}: {exc}", retryable=True) from None
        return to_state(obj)

    async def wait_changed(self, volume: str, version: str) -> None:
        cached = self.volumes.get(volume, self.namespace)
        if cached is not None and _newer(str(cached.metadata.resource_version), version):
            await trio.lowlevel.checkpoint()
            return
        event = self._waiters.setdefault(volume, trio.Event())
        with trio.move_on_after(FALLBACK_REREAD):
            await event.wait()

    def intents(self) -> list[VolumeState]:
        return [
            to_state(obj)
            for obj in self.volumes.list()
            if obj.metadata.annotations is not UNSET and MIGRATION_INTENT in obj.metadata.annotations
        ]


def _newer(seen: str, version: str) -> bool:
    """True when the store already holds a later version than ``version``.

    resourceVersions are opaque by contract; every API server in practice (etcd revisions, the emulator)
    issues integers, which lets us skip a wait. Otherwise we wait for the next event as usual.
    """
    try:
        return int(seen) > int(version)
    except ValueError:
        return False


__all__ = ["CrdBackend", "to_state"]
