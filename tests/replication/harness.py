"""A replication environment: our CRDs, the backend CRDs, the three backend simulators and the controller, all
in the test's nursery, on the API server emulator or on a real kube-apiserver (with its PV binder, protection,
garbage-collection and namespace controllers); helpers to create objects and wait for states.

On the real server, shared by the whole session, each environment works in a namespace of its own and its
controller watches only that namespace; cluster-scoped objects (classes, volumes) are named so that tests never
collide."""

from __future__ import annotations

import itertools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from couchestor.kube import resources
from couchestor.kube.backoff import BackoffPolicy
from couchestor.kube.client import KubeClient
from couchestor.kube.config import load_kubeconfig
from couchestor.kube.errors import AlreadyExists, NotFound
from couchestor.replication import ControllerOptions, ReplicationController
from couchestor.replication.resources import (
    CSI_ADDONS_VOLUME_REPLICATION,
    DELL_REPLICATION_GROUP,
    TRIDENT_MIRROR_RELATIONSHIP,
    VOLUME_GROUP_REPLICATION,
    VOLUME_GROUP_REPLICATION_CLASS,
    VOLUME_REPLICATION,
    VOLUME_REPLICATION_CLASS,
)
from couchestor.sim.replication import (
    CephCsiAddonsSimulator,
    DellSimulator,
    TridentSimulator,
    install_backend_crds,
)
from k8s_schemas import crds

NS = "production"
PROVISIONERS = {
    "ceph": ("rbd.csi.ceph.com", {"mirroringMode": "snapshot", "schedulingInterval": "5m"}),
    "trident": ("csi.trident.netapp.io", {"replicationPolicy": "MirrorAllSnapshots", "remoteSVM": "svm-dr"}),
    "dell": ("csi-powerstore.dellemc.com", {"remoteClusterId": "dr-site", "rpo": "Fifteen_Minutes"}),
}
FAST = ControllerOptions(poll=0.5, resync=30.0, retry=BackoffPolicy(initial=0.2, cap=1.0, jitter=0.2))


_SEQ = itertools.count()


@dataclass
class Env:
    client: KubeClient
    ceph: CephCsiAddonsSimulator
    trident: TridentSimulator
    dell: DellSimulator
    controller: ReplicationController
    nursery: trio.Nursery
    ns: str = NS
    real: bool = False
    _scope: trio.CancelScope | None = None
    _stopped: trio.Event | None = None

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._stopped = trio.Event()
        try:
            with trio.CancelScope() as self._scope:
                async with trio.open_nursery() as inner:
                    for sim in (self.ceph, self.trident, self.dell):
                        inner.start_soon(sim.run)
                    await inner.start(self.controller.run)
                    task_status.started()
        finally:
            self._stopped.set()

    async def close(self) -> None:
        """Stop the simulators and the controller, then close the client (in that order: a task still
        running would otherwise call a closed client)."""
        if self._scope is not None and self._stopped is not None:
            self._scope.cancel()
            await self._stopped.wait()
        if self.controller.client is not self.client:
            await self.controller.client.aclose()
        await self.client.aclose()

    async def eventually(
        self, check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, what: str = ""
    ) -> Any:
        """Poll ``check`` until it returns something truthy; fail with its last value after ``timeout``."""
        last: Any = None
        with trio.move_on_after(timeout):
            while True:
                last = await check()
                if last:
                    return last
                await trio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {last!r}")

    async def create(self, res: Any, body: dict[str, Any]) -> dict[str, Any]:
        ns = self.ns if res.namespaced else None
        return await self.client.create(res, body, ns, type=dict)

    async def get(self, res: Any, name: str, namespace: str | None = "") -> dict[str, Any] | None:
        ns = (namespace or self.ns) if res.namespaced else None
        try:
            return await self.client.get(res, name, ns, type=dict)
        except NotFound:
            return None

    async def pvc(self, name: str, labels: dict[str, str] | None = None, *, bound: bool = True) -> None:
        """A claim, bound to a volume of its own (pre-bound: claimRef and volumeName name each other, which
        both the emulator and the real PV binder turn into Bound) unless ``bound`` is False (Pending)."""
        spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "replicated",
        }
        if bound:
            pv = f"pv-{self.ns}-{name}"
            await self.client.create(
                resources.PERSISTENT_VOLUME,
                {
                    "metadata": {"name": pv},
                    "spec": {
                        "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": "replicated",
                        "claimRef": {"namespace": self.ns, "name": name},
                        "csi": {"driver": "replication.test", "volumeHandle": pv},
                    },
                },
                type=dict,
            )
            spec["volumeName"] = pv
        await self.create(
            resources.PERSISTENT_VOLUME_CLAIM,
            {"metadata": {"name": name, "labels": labels or {}}, "spec": spec},
        )
        if bound:
            await self._mark_bound(name)

    async def bind(self, claim: str) -> None:
        """Play the provisioner for an existing Pending ``claim``: a volume pre-bound to it, named in its
        ``volumeName``; then wait until it is Bound."""
        pv = f"pv-{self.ns}-{claim}"
        await self.client.create(
            resources.PERSISTENT_VOLUME,
            {
                "metadata": {"name": pv},
                "spec": {
                    "capacity": {"storage": "100Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "claimRef": {"namespace": self.ns, "name": claim},
                    "csi": {"driver": "replication.test", "volumeHandle": pv},
                },
            },
            type=dict,
        )
        await self.client.merge_patch(
            resources.PERSISTENT_VOLUME_CLAIM, claim, {"spec": {"volumeName": pv}}, self.ns, type=dict
        )
        await self._mark_bound(claim)

    async def _mark_bound(self, claim: str) -> None:
        """Bound now, as the binder would make it: the real PV binder gets there on its own but may take its
        sync period under load, so the status is written as it would write it (it then completes the volume's
        side, the claimRef's uid), and written again while the binder, whose cache had not seen the volume
        yet, sets the claim back to Pending; the emulator binds at once."""
        status = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}

        async def bound() -> bool:
            obj = await self.get(resources.PERSISTENT_VOLUME_CLAIM, claim)
            if ((obj or {}).get("status") or {}).get("phase") == "Bound":
                return True
            if self.real:
                await self.client.patch_status(
                    resources.PERSISTENT_VOLUME_CLAIM, claim, {"status": status}, self.ns, type=dict
                )
            return False

        await self.eventually(bound, what=f"claim {claim} Bound")

    async def classes(self, backend: str) -> str:
        """A VolumeReplicationClass and a VolumeGroupReplicationClass for ``backend``, both named
        ``<backend>-replication``."""
        provisioner, parameters = PROVISIONERS[backend]
        name = f"{backend}-replication"
        for res in (VOLUME_REPLICATION_CLASS, VOLUME_GROUP_REPLICATION_CLASS):
            body = {
                "metadata": {"name": name},
                "spec": {"provisioner": provisioner, "parameters": parameters},
            }
            try:
                await self.create(res, body)
            except AlreadyExists:
                pass
        return name

    async def vr(self, name: str, backend: str, pvc: str, state: str = "primary") -> None:
        klass = await self.classes(backend)
        await self.create(
            VOLUME_REPLICATION,
            {
                "metadata": {"name": name},
                "spec": {"volumeReplicationClass": klass, "pvcName": pvc, "replicationState": state},
            },
        )

    async def vgr(self, name: str, backend: str, match: dict[str, str], state: str = "primary") -> None:
        klass = await self.classes(backend)
        await self.create(
            VOLUME_GROUP_REPLICATION,
            {
                "metadata": {"name": name},
                "spec": {
                    "volumeGroupReplicationClass": klass,
                    "selector": {"matchLabels": match},
                    "replicationState": state,
                    "autoResync": True,
                },
            },
        )

    async def set_state(self, res: Any, name: str, state: str) -> None:
        await self.client.merge_patch(res, name, {"spec": {"replicationState": state}}, self.ns, type=dict)

    async def seen(
        self, res: Any, name: str, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 20.0
    ) -> dict[str, Any]:
        """Wait until the object satisfies ``check`` (for its current generation); return it."""

        async def probe() -> dict[str, Any] | None:
            obj = await self.get(res, name)
            status = (obj or {}).get("status") or {}
            if obj is not None and status.get("observedGeneration") == obj["metadata"]["generation"]:
                return obj if check(obj) else None
            return None

        return await self.eventually(probe, timeout=timeout, what=f"{name}: {what}")

    async def settled(
        self, res: Any, name: str, state: str, *, timeout: float = 20.0, healthy: bool = False
    ) -> dict[str, Any]:
        """Wait until the object reports ``state`` with Completed True for its current generation (and with
        ``healthy``, Degraded False: a demoted volume is degraded until its resync is ready)."""

        async def check() -> dict[str, Any] | None:
            obj = await self.get(res, name)
            status = (obj or {}).get("status") or {}
            if (
                obj is not None
                and status.get("state") == state
                and status.get("observedGeneration") == obj["metadata"]["generation"]
                and condition(obj, "Completed").get("status") == "True"
                and (not healthy or condition(obj, "Degraded").get("status") == "False")
            ):
                return obj
            return None

        return await self.eventually(check, timeout=timeout, what=f"{name} {state} and Completed")


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in ((obj.get("status") or {}).get("conditions")) or ():
        if c.get("type") == type_:
            return c
    return {}


REPLICATION_CRDS = (
    crds.volume_replication_crd,
    crds.volume_replication_class_crd,
    crds.volume_group_replication_crd,
    crds.volume_group_replication_class_crd,
)


async def _install_crds(client: KubeClient, backend_crds: bool) -> None:
    """Create the CRDs (those there already are kept) and wait until each kind is served: a real server takes a
    moment to establish a new CRD."""
    for make in REPLICATION_CRDS:
        try:
            await client.create(resources.CUSTOM_RESOURCE_DEFINITION, make(), type=dict)
        except AlreadyExists:
            pass
    if backend_crds:
        await install_backend_crds(client)
    served = [
        VOLUME_REPLICATION,
        VOLUME_GROUP_REPLICATION,
        VOLUME_REPLICATION_CLASS,
        VOLUME_GROUP_REPLICATION_CLASS,
    ]
    if backend_crds:
        served += [CSI_ADDONS_VOLUME_REPLICATION, TRIDENT_MIRROR_RELATIONSHIP, DELL_REPLICATION_GROUP]
    with trio.fail_after(30):
        for res in served:
            while True:
                try:
                    await client.list_page(res, limit=1, type=dict)
                    break
                except NotFound:
                    await trio.sleep(0.1)


async def open_env(
    nursery: trio.Nursery,
    apiserver: Any,
    *,
    transition: float = 0.3,
    backend_crds: bool = True,
    real: bool = False,
    controller_kubeconfig: Any = None,
) -> Env:
    """``apiserver``: the emulator fixture, or with ``real`` the real control plane (anything with a
    ``kubeconfig``). ``controller_kubeconfig``: the controller's own credentials (default: the admin's)."""
    client = KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0)
    await _install_crds(client, backend_crds)
    ns = f"{NS}-{os.getpid()}-{next(_SEQ)}" if real else NS
    await client.create(resources.NAMESPACE, {"metadata": {"name": ns}}, type=dict)
    ceph = CephCsiAddonsSimulator(client, transition_seconds=transition)
    trident = TridentSimulator(client, transition_seconds=transition)
    dell = DellSimulator(client, transition_seconds=transition)
    controller_client = (
        client
        if controller_kubeconfig is None
        else KubeClient(load_kubeconfig([controller_kubeconfig]), qps=0)
    )
    controller = ReplicationController(controller_client, ns if real else None, FAST)
    env = Env(client, ceph, trident, dell, controller, nursery, ns=ns, real=real)
    await nursery.start(env._run)
    return env
