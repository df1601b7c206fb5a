"""The VolumeReplication and VolumeGroupReplication controller.

::

    run_replication (nursery)
    ├── reflectors: VolumeReplication, VolumeGroupReplication, both classes, PersistentVolumeClaim
    ├── one follower per store: maps a change to the replication objects it concerns, into the work queue
    ├── backend watches (:mod:`~couchestor.replication.watches`), started the first time a class names that
    │   backend
    └── the worker: one reconcile at a time (controller-runtime's default), keys deduplicated

One reconcile of a replication object (level-triggered, from the stores):

1. Deleted (``deletionTimestamp``)? Delete the backend objects it owns, remove the member labels, wait until
   the objects are gone, release its claims, then drop the finalizer. Otherwise make sure the finalizer is
   there.
2. Resolve the class, its backend adapter and the member PVCs (the group's selector is evaluated on every
   reconcile, and PVC changes enqueue the groups of their namespace, so label changes add and remove
   members). Every member must be bound and not owned by another replication object
   (:mod:`~couchestor.replication.claims`). A missing prerequisite is reported (``Validated`` False, the last
   known state kept) and retried; the backend is not touched.
3. Own and protect the member claims (annotation and finalizer), write every backend object the adapter wants,
   delete owned objects no longer wanted, label members (:mod:`~couchestor.replication.writes`), release
   claims that left. One failed write does not stop the others; the object is then ``Degraded`` and retried
   with backoff, never reported done.
4. Aggregate the members' backend statuses (:mod:`~couchestor.replication.status`) and patch ``/status`` when
   something visible changed.

A VolumeReplication whose ``dataSource`` is a VolumeGroupReplication drives that group instead
(:mod:`~couchestor.replication.group_source`).

Backend objects in the owner's namespace carry an owner reference (garbage collection is the safety net) and
every one carries the owner's uid as a label (how changes find their owner, and how cleanup finds them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

import trio
from msgspec import UNSET

from couchestor import labels as labelsel
from couchestor.durations import format_time
from couchestor.kube import resources as core_resources
from couchestor.kube.backoff import Backoff, BackoffPolicy
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import Conflict, Invalid, KubeError, NotFound
from couchestor.kube.events import EventRecorder, EventType
from couchestor.kube.objects import ObjectKey
from couchestor.kube.patch import op_remove, op_test, pointer
from couchestor.kube.reflector import Reflector
from couchestor.kube.resources import Resource
from couchestor.kube.store import Store
from couchestor.kube.watcher import WatcherError
from couchestor.replication import claims, group_source
from couchestor.replication.adapters import Adapter, UnknownProvisioner, adapter_for
from couchestor.replication.model import Kind, Request
from couchestor.replication.queue import WorkQueue
from couchestor.replication.resources import (
    FINALIZER,
    VOLUME_GROUP_REPLICATION,
    VOLUME_GROUP_REPLICATION_CLASS,
    VOLUME_REPLICATION,
    VOLUME_REPLICATION_CLASS,
    VOLUME_REPLICATION_OWNER,
)
from couchestor.replication.status import Summary, status_patch, summarize
from couchestor.replication.watches import BackendWatches
from couchestor.replication.writes import label_members, owner_reference, sync_backend_objects
from k8s_schemas.core import ProtectablePersistentVolumeClaim
from k8s_schemas.replication import (
    VolumeGroupReplication,
    VolumeGroupReplicationClass,
    VolumeGroupReplicationStatus,
    VolumeReplication,
    VolumeReplicationClass,
)

log = logging.getLogger("couchestor.replication")

# csi-addons allows at most 100 PVCs in a group.
MAX_GROUP_MEMBERS = 100
# How long a reconcile waits for a just-started backend watch to list before reporting it as missing.
FIRST_LIST_GRACE = 5.0
RETRY_BACKOFF = BackoffPolicy(initial=1.0, cap=60.0, factor=2.0, jitter=0.5, reset_after=300.0)


class Key(NamedTuple):
    kind: Kind
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ControllerOptions:
    """``poll``: re-check of an object still progressing (backend watches normally wake it sooner);
    ``resync``: re-check of a settled object; ``retry``: backoff after a failure."""

    poll: float = 5.0
    resync: float = 300.0
    retry: BackoffPolicy = RETRY_BACKOFF


ReplicationObject = VolumeReplication | VolumeGroupReplication


@dataclass
class ReplicationController:
    """Reconciles VolumeReplications and VolumeGroupReplications of ``namespace`` (None: all namespaces)."""

    client: KubeClient
    namespace: str | None = None
    options: ControllerOptions = field(default_factory=ControllerOptions)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __post_init__(self) -> None:
        self.queue: WorkQueue[Key] = WorkQueue()
        self._backoffs: dict[Key, Backoff] = {}
        self._phases: dict[Key, str] = {}
        self.backends = BackendWatches(self.client, self.namespace, self._owner_changed)
        self.events = EventRecorder(self.client)

        def by_uid(obj: Any) -> list[str]:
            uid = obj.metadata.uid
            return [] if uid is UNSET else [uid]

        def by_pvc(obj: VolumeReplication) -> list[str]:
            pvc = obj.spec.pvc
            return [] if pvc is None else [f"{obj.metadata.namespace}/{pvc}"]

        def by_group(obj: VolumeReplication) -> list[str]:
            group = obj.spec.group
            return [] if group is None else [f"{obj.metadata.namespace}/{group}"]

        def by_vr_class(obj: VolumeReplication) -> list[str]:
            return [obj.spec.volume_replication_class]

        def by_vgr_class(obj: VolumeGroupReplication) -> list[str]:
            return [obj.spec.volume_group_replication_class]

        def by_namespace(obj: Any) -> list[str]:
            ns = obj.metadata.namespace
            return [] if ns is UNSET else [ns]

        ns = self.namespace
        self.vrs: Reflector[VolumeReplication] = Reflector.for_resource(
            self.client,
            VOLUME_REPLICATION,
            VolumeReplication,
            namespace=ns,
            indexers={"uid": by_uid, "pvc": by_pvc, "group": by_group, "class": by_vr_class},
            on_error=self._log_watch_error,
        )
        self.vgrs: Reflector[VolumeGroupReplication] = Reflector.for_resource(
            self.client,
            VOLUME_GROUP_REPLICATION,
            VolumeGroupReplication,
            namespace=ns,
            indexers={"uid": by_uid, "class": by_vgr_class, "namespace": by_namespace},
            on_error=self._log_watch_error,
        )
        self.vr_classes: Reflector[VolumeReplicationClass] = Reflector.for_resource(
            self.client, VOLUME_REPLICATION_CLASS, VolumeReplicationClass, on_error=self._log_watch_error
        )
        self.vgr_classes: Reflector[VolumeGroupReplicationClass] = Reflector.for_resource(
            self.client,
            VOLUME_GROUP_REPLICATION_CLASS,
            VolumeGroupReplicationClass,
            on_error=self._log_watch_error,
        )
        self.pvcs: Reflector[ProtectablePersistentVolumeClaim] = Reflector.for_resource(
            self.client,
            core_resources.PERSISTENT_VOLUME_CLAIM,
            ProtectablePersistentVolumeClaim,
            namespace=ns,
            indexers={"namespace": by_namespace},
            on_error=self._log_watch_error,
        )

    # --- running -------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch, then reconcile until cancelled; ``started`` as soon as the watches are started (reconciling
        begins once every store holds its first list).

        Cancellation stops the reflectors and the worker between API calls; a reconcile cut short leaves
        nothing inconsistent (every step is idempotent and is redone by the next leader or run).
        """
        async with trio.open_nursery() as nursery:
            self.backends.attach(nursery)
            nursery.start_soon(self.events.run)
            own = (self.vrs, self.vgrs, self.vr_classes, self.vgr_classes, self.pvcs)
            for reflector in own:
                nursery.start_soon(reflector.run)
            nursery.start_soon(self._follow, self.vrs.store, self._keys_of_vr)
            nursery.start_soon(self._follow, self.vgrs.store, self._keys_of_vgr)
            nursery.start_soon(self._follow, self.vr_classes.store, self._keys_of_vr_class)
            nursery.start_soon(self._follow, self.vgr_classes.store, self._keys_of_vgr_class)
            nursery.start_soon(self._follow, self.pvcs.store, self._keys_of_pvc)
            # Started before the first lists complete: a cluster without the replication CRDs must not hold
            # up whoever starts this (the reflectors report and retry until the CRDs appear).
            task_status.started()
            for reflector in own:
                await reflector.store.wait_synced()
            log.info("Replication controller watching %s", self.namespace or "all namespaces")
            while True:
                key = await self.queue.get()
                await self.reconcile(key)

    def _log_watch_error(self, exc: WatcherError) -> None:
        log.warning("%s", exc)

    async def _follow(self, store: Store[Any], keys_of: Callable[[ObjectKey], list[Key]]) -> None:
        async for change in store.subscribe():
            for key in keys_of(change.key):
                self.queue.add(key)

    def _keys_of_vr(self, key: ObjectKey) -> list[Key]:
        return [Key("VolumeReplication", key.namespace, key.name)]

    def _keys_of_vgr(self, key: ObjectKey) -> list[Key]:
        drivers = self.vrs.store.by_index("group", f"{key.namespace}/{key.name}")
        return [Key("VolumeGroupReplication", key.namespace, key.name), *(_key(vr) for vr in drivers)]

    def _keys_of_vr_class(self, key: ObjectKey) -> list[Key]:
        return [_key(o) for o in self.vrs.store.by_index("class", key.name)]

    def _keys_of_vgr_class(self, key: ObjectKey) -> list[Key]:
        return [_key(o) for o in self.vgrs.store.by_index("class", key.name)]

    def _owner_changed(self, uid: str) -> None:
        for vr in self.vrs.store.by_index("uid", uid):
            self.queue.add(_key(vr))
        for vgr in self.vgrs.store.by_index("uid", uid):
            self.queue.add(_key(vgr))

    def _keys_of_pvc(self, key: ObjectKey) -> list[Key]:
        # Any label change may move a claim in or out of any group of its namespace.
        vrs = self.vrs.store.by_index("pvc", f"{key.namespace}/{key.name}")
        vgrs = self.vgrs.store.by_index("namespace", key.namespace)
        return [_key(o) for o in vrs] + [_key(o) for o in vgrs]

    # --- reconcile -----------------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> None:
        """Reconcile one object and schedule its next visit. Never raises on API errors: they are logged,
        reported on the object when possible, and retried with backoff."""
        try:
            outcome = await self._reconcile(key)
        except KubeError as exc:
            log.warning("%s: %s", key, exc)
            outcome = "retry"
        if outcome == "done":
            self._backoffs.pop(key, None)
            self.queue.add_after(key, self.options.resync)
        elif outcome == "progressing":
            self._backoffs.pop(key, None)
            self.queue.add_after(key, self.options.poll)
        elif outcome == "retry":
            backoff = self._backoffs.setdefault(key, Backoff(self.options.retry))
            self.queue.add_after(key, backoff.next_delay())
        else:  # gone
            self._backoffs.pop(key, None)
            self._phases.pop(key, None)

    async def _reconcile(self, key: Key) -> Literal["done", "progressing", "retry", "gone"]:
        obj = self._get(key)
        if obj is None:
            return "gone"
        meta = obj.metadata
        finalizers = [] if meta.finalizers is UNSET else meta.finalizers
        if meta.deletion_timestamp is not UNSET:
            if FINALIZER not in finalizers:
                return "gone"
            return await self._finalize(key, obj, finalizers)
        if FINALIZER not in finalizers:
            await self.client.merge_patch(
                _resource(key),
                key.name,
                {
                    "metadata": {
                        "finalizers": [*finalizers, FINALIZER],
                        "resourceVersion": meta.resource_version,
                    }
                },
                key.namespace,
                type=dict,
            )
            return "progressing"  # the update comes back through the watch
        if isinstance(obj, VolumeReplication) and obj.spec.group is not None:
            return await self._drive_group(key, obj, obj.spec.group)
        adapter, req, problem = self._request(key, obj)
        errors: list[str] = []
        members = []
        if problem is None and adapter is not None and req is not None:
            backend = self.backends.get(adapter)
            if not backend.synced and backend.last_error is None:
                # Just started (first object of this backend): give its first list a moment rather than
                # reporting a transient "waiting" on the object.
                with trio.move_on_after(FIRST_LIST_GRACE):
                    await backend.answered.wait()
            if not backend.synced:
                problem = f"waiting for {adapter.resource} to be listed (is {adapter.name} installed?)" + (
                    f": {backend.last_error}" if backend.last_error else ""
                )
            else:
                errors = await self._protect(key, req.members)
            if not errors and backend.synced:
                current = backend.owned(meta.uid or "")
                owner = owner_reference(_resource(key), key.name, meta.uid or "")
                errors = await sync_backend_objects(
                    self.client,
                    owner,
                    key.namespace,
                    adapter.desired(req, current),
                    current,
                    adapter.resource,
                )
                errors += await label_members(
                    self.client,
                    self.pvcs.store.by_index("namespace", key.namespace),
                    key.namespace,
                    adapter.member_labels(req),
                    req.members,
                )
                errors += await self._release(key, keep=req.members)
                members = adapter.observe(req, current)
        previous = "Unknown" if obj.status is UNSET or obj.status.state is UNSET else obj.status.state
        summary = summarize(obj.spec.replication_state, members, problem, errors, previous=previous)
        wrote = await self._write_status(key, obj, summary, req)
        self._announce(key, obj, summary, wrote)
        if summary.phase == "Completed":
            return "done"
        return "progressing" if summary.phase == "Progressing" else "retry"

    async def _drive_group(
        self, key: Key, vr: VolumeReplication, name: str
    ) -> Literal["done", "progressing", "retry", "gone"]:
        """A VolumeReplication of a whole group (:mod:`~couchestor.replication.group_source`)."""
        group = self.vgrs.store.get(name, key.namespace)
        previous = "Unknown" if vr.status is UNSET or vr.status.state is UNSET else vr.status.state
        problem = group_source.check_group(vr, group, name)
        if problem is not None or group is None:
            summary = summarize(vr.spec.replication_state, [], problem or "", previous=previous)
        else:
            patch = group_source.group_patch(vr, group)
            if patch is not None:
                try:
                    await self.client.merge_patch(
                        VOLUME_GROUP_REPLICATION, name, patch, key.namespace, type=dict
                    )
                except Conflict:
                    return "progressing"  # the group changed: its watch event brings us back
                log.info("%s: drives VolumeGroupReplication %s (%s)", key, name, vr.spec.replication_state)
            summary = group_source.mirror(vr, group, previous)
        wrote = await self._write_status(key, vr, summary, None)
        self._announce(key, vr, summary, wrote)
        if summary.phase == "Completed":
            return "done"
        return "progressing" if summary.phase == "Progressing" else "retry"

    async def _release_group(self, key: Key, vr: VolumeReplication, name: str) -> None:
        group = self.vgrs.store.get(name, key.namespace)
        if group is None or group.metadata.annotation(VOLUME_REPLICATION_OWNER) != key.name:
            return
        patch = {"metadata": {"annotations": {VOLUME_REPLICATION_OWNER: None}}}
        try:
            await self.client.merge_patch(VOLUME_GROUP_REPLICATION, name, patch, key.namespace, type=dict)
        except NotFound:
            pass

    def _get(self, key: Key) -> ReplicationObject | None:
        if key.kind == "VolumeReplication":
            return self.vrs.store.get(key.name, key.namespace)
        return self.vgrs.store.get(key.name, key.namespace)

    def _request(self, key: Key, obj: ReplicationObject) -> tuple[Adapter | None, Request | None, str | None]:
        """The adapter and request for ``obj``, or the prerequisite that is missing."""
        if isinstance(obj, VolumeReplication):
            class_name = obj.spec.volume_replication_class
            klass: VolumeReplicationClass | VolumeGroupReplicationClass | None = self.vr_classes.store.get(
                class_name
            )
            kind_label = "VolumeReplicationClass"
        else:
            class_name = obj.spec.volume_group_replication_class
            klass = self.vgr_classes.store.get(class_name)
            kind_label = "VolumeGroupReplicationClass"
        if klass is None:
            return None, None, f"{kind_label} {class_name!r} not found"
        try:
            adapter = adapter_for(klass.spec.provisioner)
        except UnknownProvisioner as exc:
            return None, None, str(exc)
        members, problem = self._members(key, obj)
        if problem is not None:
            return adapter, None, problem
        parameters = {} if klass.spec.parameters is UNSET else klass.spec.parameters
        req = Request(
            kind=key.kind,
            namespace=key.namespace,
            name=key.name,
            uid=obj.metadata.uid or "",
            generation=obj.metadata.generation or 0,
            state=obj.spec.replication_state,
            auto_resync=obj.spec.auto_resync,
            class_name=class_name,
            provisioner=klass.spec.provisioner,
            parameters=parameters,
            members=members,
        )
        return adapter, req, adapter.validate(req)

    def _members(self, key: Key, obj: ReplicationObject) -> tuple[tuple[str, ...], str | None]:
        if isinstance(obj, VolumeReplication):
            pvc = obj.spec.pvc
            if pvc is None:
                return (), "spec.pvcName (or a PersistentVolumeClaim dataSource) is required"
            claim = self.pvcs.store.get(pvc, key.namespace)
            if claim is None:
                return (), f"PersistentVolumeClaim {key.namespace}/{pvc} not found"
            return (pvc,), claims.check_claim(claim, key.kind, key.name)
        try:
            selector = labelsel.from_label_selector(obj.spec.selector)
        except labelsel.SelectorError as exc:
            return (), f"invalid selector: {exc}"
        # A claim being deleted leaves the group (its backend objects go, then the claim is released).
        matched = sorted(
            (
                c
                for c in self.pvcs.store.by_index("namespace", key.namespace)
                if c.metadata.namespace == key.namespace
                and c.metadata.deletion_timestamp is UNSET
                and labelsel.matches(selector, None if c.metadata.labels is UNSET else c.metadata.labels)
            ),
            key=lambda c: c.metadata.name or "",
        )
        names = tuple(c.metadata.name or "" for c in matched)
        if not names:
            return (), f"no PersistentVolumeClaim in {key.namespace} matches the selector"
        if len(names) > MAX_GROUP_MEMBERS:
            return (), f"the selector matches {len(names)} claims; a group holds at most {MAX_GROUP_MEMBERS}"
        return names, claims.check_members(matched, key.kind, key.name)

    def _claims(self, namespace: str) -> list[ProtectablePersistentVolumeClaim]:
        return [
            c for c in self.pvcs.store.by_index("namespace", namespace) if c.metadata.namespace == namespace
        ]

    async def _protect(self, key: Key, members: Sequence[str]) -> list[str]:
        """Own and protect every member claim before the backend is touched (in name order, so that of two
        objects racing for the same claims, the one that wins the first wins them all)."""
        errors = []
        for name in sorted(members):
            claim = self.pvcs.store.get(name, key.namespace)
            if claim is None:
                continue
            try:
                try:
                    wrote = await claims.protect(self.client, claim, key.kind, key.name)
                except Conflict:
                    # The store was behind (often our own earlier write): decide again on the claim as it is.
                    claim = await self.client.get(
                        core_resources.PERSISTENT_VOLUME_CLAIM,
                        name,
                        key.namespace,
                        type=ProtectablePersistentVolumeClaim,
                    )
                    problem = claims.check_claim(claim, key.kind, key.name)
                    if problem is not None:
                        errors.append(problem)
                        continue
                    wrote = await claims.protect(self.client, claim, key.kind, key.name)
                if wrote:
                    log.info("%s: owns and protects PersistentVolumeClaim %s", key, name)
            except KubeError as exc:
                errors.append(f"claim PersistentVolumeClaim {name}: {exc}")
        return errors

    async def _release(self, key: Key, keep: Sequence[str] = ()) -> list[str]:
        """Release the claims this object owns that are not in ``keep``."""
        errors = []
        for claim in claims.owned_by(self._claims(key.namespace), key.kind, key.name):
            if claim.metadata.name in keep:
                continue
            try:
                await claims.release(self.client, claim, key.kind)
                log.info("%s: released PersistentVolumeClaim %s", key, claim.metadata.name)
            except KubeError as exc:
                errors.append(f"release PersistentVolumeClaim {claim.metadata.name}: {exc}")
        return errors

    async def _finalize(
        self, key: Key, obj: ReplicationObject, finalizers: Sequence[str]
    ) -> Literal["progressing", "retry", "gone"]:
        """Delete what the object owns; drop the finalizer once all of it is gone."""
        if isinstance(obj, VolumeReplication) and obj.spec.group is not None:
            # It owns no backend objects: the group does. Let go of the group, which keeps replicating.
            await self._release_group(key, obj, obj.spec.group)
            return await self._drop_finalizer(key, finalizers)
        uid = obj.metadata.uid or ""
        remaining = 0
        adapter, req, _ = self._request(key, obj)
        if adapter is not None:
            self.backends.get(adapter)
        for name, backend in self.backends:
            if not backend.synced:
                if adapter is not None and name == adapter.name and not backend.missing:
                    return "retry"  # cannot tell what exists yet
                continue
            for owned in backend.owned(uid).values():
                remaining += 1
                meta = owned["metadata"]
                if not meta.get("deletionTimestamp"):
                    await self.client.delete(
                        backend.resource, meta["name"], meta.get("namespace"), missing_ok=True
                    )
        if adapter is not None:
            # Member labels depend only on the object's identity, so a bare request does when the class or the
            # claims are gone.
            labels = adapter.member_labels(req or _bare_request(key, obj, uid))
            if await label_members(
                self.client, self.pvcs.store.by_index("namespace", key.namespace), key.namespace, labels, ()
            ):
                return "retry"
        if remaining:
            return "progressing"
        if await self._release(key):
            return "retry"
        return await self._drop_finalizer(key, finalizers)

    async def _drop_finalizer(self, key: Key, finalizers: Sequence[str]) -> Literal["progressing", "gone"]:
        index = finalizers.index(FINALIZER)
        try:
            await self.client.json_patch(
                _resource(key),
                key.name,
                [
                    op_test(pointer("metadata", "finalizers", index), FINALIZER),
                    op_remove(pointer("metadata", "finalizers", index)),
                ],
                key.namespace,
                type=dict,
            )
        except (NotFound, Conflict, Invalid):
            return "progressing"  # gone already, or changed under us: the watch brings the new state
        log.info("%s: backend objects deleted, finalizer removed", key)
        return "gone"

    async def _write_status(
        self, key: Key, obj: ReplicationObject, summary: Summary, req: Request | None
    ) -> bool:
        """Patch ``/status`` when something visible changed; True when it did."""
        current = VolumeGroupReplicationStatus()
        if obj.status is not UNSET:
            for name in obj.status.__struct_fields__:
                setattr(current, name, getattr(obj.status, name))
        members = None if key.kind == "VolumeReplication" else (list(req.members) if req else [])
        patch = status_patch(
            summary,
            current,
            generation=obj.metadata.generation or 0,
            members=members,
            now=format_time(self.clock()),
        )
        if patch is None:
            return False
        try:
            await self.client.patch_status(_resource(key), key.name, patch, key.namespace, type=dict)
        except NotFound:
            return False
        return True

    def _announce(self, key: Key, obj: ReplicationObject, summary: Summary, wrote: bool) -> None:
        """An Event and a log line when the object's phase changes (best effort). A restarted controller
        stays quiet about outcomes its predecessor already wrote (``wrote`` False on the first visit)."""
        marker = f"{obj.metadata.generation}:{summary.phase}"
        if self._phases.get(key) == marker:
            return
        first = key not in self._phases
        self._phases[key] = marker
        if first and (summary.phase == "Progressing" or not wrote):
            return
        kind: EventType = "Warning" if summary.phase == "Failed" else "Normal"
        reason = {"Completed": "ReplicationCompleted", "Failed": "ReplicationDegraded"}.get(
            summary.phase, "ReplicationProgressing"
        )
        log.info("%s: %s", key, summary.message)
        self.events.emit(_resource(key), obj, type=kind, reason=reason, message=summary.message)


def _key(obj: ReplicationObject) -> Key:
    kind: Kind = "VolumeReplication" if isinstance(obj, VolumeReplication) else "VolumeGroupReplication"
    return Key(kind, obj.metadata.namespace or "", obj.metadata.name or "")


def _resource(key: Key) -> Resource:
    return VOLUME_REPLICATION if key.kind == "VolumeReplication" else VOLUME_GROUP_REPLICATION


def _bare_request(key: Key, obj: ReplicationObject, uid: str) -> Request:
    return Request(
        kind=key.kind,
        namespace=key.namespace,
        name=key.name,
        uid=uid,
        generation=obj.metadata.generation or 0,
        state=obj.spec.replication_state,
        auto_resync=obj.spec.auto_resync,
        class_name="",
        provisioner="",
        parameters={},
        members=(),
    )


async def run_replication(
    client: KubeClient,
    *,
    namespace: str | None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the replication controllers until cancelled (see :class:`ReplicationController`)."""
    await ReplicationController(client, namespace).run(task_status=task_status)
