"""A replication environment on the API server emulator: our CRDs, the backend CRDs, the three backend
simulators and the controller, all in the test's nursery; helpers to create objects and wait for states."""

from __future__ import annotations

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


@dataclass
class Env:
    client: KubeClient
    ceph: CephCsiAddonsSimulator
    trident: TridentSimulator
    dell: DellSimulator
    controller: ReplicationController
    nursery: trio.Nursery
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
        ns = NS if res.namespaced else None
        return await self.client.create(res, body, ns, type=dict)

    async def get(self, res: Any, name: str, namespace: str | None = NS) -> dict[str, Any] | None:
        try:
            return await self.client.get(res, name, namespace if res.namespaced else None, type=dict)
        except NotFound:
            return None

    async def pvc(self, name: str, labels: dict[str, str] | None = None) -> None:
        await self.create(
            resources.PERSISTENT_VOLUME_CLAIM,
            {
                "metadata": {"name": name, "labels": labels or {}},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                    "storageClassName": "replicated",
                },
            },
        )

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
        await self.client.merge_patch(res, name, {"spec": {"replicationState": state}}, NS, type=dict)

    async def settled(self, res: Any, name: str, state: str, *, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until the object reports ``state`` with Completed True for its current generation."""

        async def check() -> dict[str, Any] | None:
            obj = await self.get(res, name)
            status = (obj or {}).get("status") or {}
            if (
                obj is not None
                and status.get("state") == state
                and status.get("observedGeneration") == obj["metadata"]["generation"]
                and condition(obj, "Completed").get("status") == "True"
            ):
                return obj
            return None

        return await self.eventually(check, timeout=timeout, what=f"{name} {state} and Completed")


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in ((obj.get("status") or {}).get("conditions")) or ():
        if c.get("type") == type_:
            return c
    return {}


async def open_env(
    nursery: trio.Nursery, apiserver: Any, *, transition: float = 0.3, backend_crds: bool = True
) -> Env:
    client = KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0)
    for crd in (
        crds.volume_replication_crd(),
        crds.volume_replication_class_crd(),
        crds.volume_group_replication_crd(),
        crds.volume_group_replication_class_crd(),
    ):
        await client.create(resources.CUSTOM_RESOURCE_DEFINITION, crd, type=dict)
    if backend_crds:
        await install_backend_crds(client)
    await client.create(resources.NAMESPACE, {"metadata": {"name": NS}}, type=dict)
    ceph = CephCsiAddonsSimulator(client, transition_seconds=transition)
    trident = TridentSimulator(client, transition_seconds=transition)
    dell = DellSimulator(client, transition_seconds=transition)
    controller = ReplicationController(client, None, FAST)
    env = Env(client, ceph, trident, dell, controller, nursery)
    await nursery.start(env._run)
    return env
