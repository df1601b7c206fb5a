"""Mayastor 2.x volumes mirrored into a store of MayastorVolume-shaped objects, for the decision side.

The reconciler reads volumes (replicas, their pools and sync state, size) from a
``Store[MayastorVolume]``. With the REST backend there is no such resource, so :class:`RestVolumeReflector`
fills an ordinary :class:`~couchestor.kube.store.Store` by listing ``GET /v0/volumes`` (page by page) every
``interval`` seconds, as one relist each time (``Init``, ``InitApply``..., ``InitDone``): readers never see
half a list, and volumes gone from the control plane are reported deleted. Each object's resourceVersion is a
digest of its state, so only volumes that changed are reported modified. It is a drop-in for the operator's
MayastorVolume reflector (``.run()``, ``.store``).

A failed listing keeps the last good contents (and calls ``on_error``); the store becomes *synced* after
the first successful listing.

``GET /v0/volumes`` pages by offset, so a listing is not a snapshot: a volume deleted from an earlier page while
the listing runs shifts the next pages by one, and a volume that still exists slips between two pages. So a
volume that the store holds and the listing lacks is read with ``GET /v0/volumes/{id}`` before it is reported
deleted: only a 404 deletes it (a volume created meanwhile may appear twice; the later copy wins). That costs
one GET per volume actually deleted, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NoReturn

import trio
from msgspec import UNSET

from couchestor.kube.store import Store
from couchestor.kube.watcher import Init, InitApply, InitDone
from couchestor.mayastor_rest import rules, wire
from couchestor.mayastor_rest.client import MayastorRestClient, MayastorRestError, NotFoundError
from k8s_schemas.mayastor import (
    ExplicitNodeTopology,
    LabelledTopology,
    MayastorVolume,
    MayastorVolumeSpec,
    MayastorVolumeStatus,
    NodeTopology,
    PoolTopology,
    ReplicaStatus,
    VolumeTopology,
)
from k8s_schemas.meta import CachedObjectMeta

log = logging.getLogger("couchestor.mayastor_rest")


def to_mayastor_volume(volume: wire.Volume, namespace: str) -> MayastorVolume:
    """``volume`` in the shape of the seeds' MayastorVolume (name = volume id, in ``namespace``)."""
    inclusion, nodes = volume.spec.pool_inclusion, volume.spec.allowed_nodes
    topology = (
        VolumeTopology(
            pool=PoolTopology(labelled=LabelledTopology(inclusion=inclusion)) if inclusion else UNSET,
            node=NodeTopology(explicit=ExplicitNodeTopology(allowed_nodes=sorted(nodes))) if nodes else UNSET,
        )
        if inclusion or nodes
        else UNSET
    )
    replicas = []
    is_published = rules.published(volume)
    for _, topo in sorted(volume.state.replica_topology.items(), key=lambda kv: (str(kv[1].pool), kv[0])):
        info = rules.replica_info(topo, is_published=is_published)
        replicas.append(
            ReplicaStatus(
                pool=info.pool,
                node=info.node or UNSET,
                state=topo.state,
                sync_state="Synced"
                if info.sync_state == "Synced"
                else "Syncing"
                if info.sync_state == "Syncing"
                else "Unknown",
                rebuild_progress=info.progress if info.progress is not None else UNSET,
            )
        )
    return MayastorVolume(
        metadata=CachedObjectMeta(
            name=volume.spec.uuid, namespace=namespace, resource_version=rules.digest(volume)
        ),
        spec=MayastorVolumeSpec(
            num_replicas=volume.spec.num_replicas, size=volume.spec.size, topology=topology
        ),
        status=MayastorVolumeStatus(
            state=volume.state.status, size=volume.state.size, replicas=tuple(replicas)
        ),
    )


class RestVolumeReflector:
    """Keeps ``store`` equal to the control plane's volumes, relisting every ``interval`` seconds."""

    def __init__(
        self,
        rest: MayastorRestClient,
        namespace: str,
        *,
        interval: float = 10.0,
        on_error: Callable[[MayastorRestError], None] | None = None,
    ) -> None:
        self.rest = rest
        self.namespace = namespace
        self.interval = interval
        self.on_error = on_error
        self.store: Store[MayastorVolume] = Store()
        self.listings = 0

    async def run(self) -> NoReturn:
        """Relist until cancelled."""
        while True:
            await self.relist()
            await trio.sleep(self.interval)

    async def relist(self) -> bool:
        """One listing folded into the store; False (store unchanged) when it failed."""
        try:
            volumes = await self._list()
        except MayastorRestError as exc:
            log.warning("cannot list Mayastor volumes: %s", exc)
            if self.on_error is not None:
                self.on_error(exc)
            return False
        self.listings += 1
        self.store.apply(Init())
        for volume in volumes:
            self.store.apply(InitApply(to_mayastor_volume(volume, self.namespace)))
        self.store.apply(InitDone(str(self.listings)))
        return True

    async def _list(self) -> list[wire.Volume]:
        """Every volume: the paged listing, plus the known volumes it missed that a GET still finds."""
        listed = {volume.spec.uuid: volume for volume in await self.rest.list_volumes()}
        for name in [str(known.metadata.name) for known in self.store.list()]:
            if name in listed:
                continue
            try:
                listed[name] = await self.rest.get_volume(name)
            except NotFoundError:
                continue  # really gone
            log.info("volume %s was missing from a paged listing but exists; kept", name)
        return list(listed.values())


__all__ = ["RestVolumeReflector", "to_mayastor_volume"]
