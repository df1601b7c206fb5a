"""The built-in controllers a real cluster always runs around the served objects, as synchronous reactions.

Each reacts to one committed change and may write more, through the :class:`Host` it is given (the
:class:`~.core.Cluster`, which owns the controllers: this module does not import it, so the two form no cycle):

- CRD establishment: a new CRD's resources are served at once; its status gets ``NamesAccepted`` and
  ``Established``. A deleted CRD's objects are deleted, then the CRD itself, then its resources vanish.
- PV/PVC protection: the ``kubernetes.io/pvc-protection`` finalizer is dropped as soon as the claim is being
  deleted (no pods exist, so a claim is never in use); ``kubernetes.io/pv-protection`` once the volume is being
  deleted and not bound to an existing claim.
- PV/PVC binding status: a claim naming an existing volume (``spec.volumeName``) is Bound, the volume's
  ``claimRef`` is filled; a volume whose claim is gone is Released.
- Namespace lifecycle: a Terminating namespace's objects are deleted; once it is empty the ``kubernetes``
  finalizer is removed and the namespace is gone.
- Garbage collection (background propagation): an object all of whose owners are gone is deleted;
  ``foregroundDeletion`` and ``orphan`` finalizers are honoured.
"""

from __future__ import annotations

from typing import Any, Protocol

from couchestor.sim.apiserver import objects
from couchestor.sim.apiserver.errors import ApiError
from couchestor.sim.apiserver.resources import Registry, ResourceType, crd_types
from couchestor.sim.apiserver.store import Change, EventType, Key, Record, Store, decode

JSON = dict[str, Any]
CRD_BUCKET = "customresourcedefinitions.apiextensions.k8s.io"


class Host(Protocol):
    """What the controllers read and write of the cluster that runs them."""

    store: Store
    registry: Registry
    #: Storage-version type of each bucket.
    bucket_types: dict[str, ResourceType]
    #: uid -> (bucket, key) of every live object.
    uids: dict[str, tuple[str, Key]]

    def commit(self, rt: ResourceType, type: EventType, key: Key, obj: JSON) -> Record: ...

    def delete(
        self, rt: ResourceType, namespace: str, name: str, options: JSON | None = None, dry_run: bool = False
    ) -> tuple[JSON, bool]: ...

    def dependents(self, uid: str) -> list[tuple[str, Key]]: ...

    def remove_finalizer(self, rt: ResourceType, key: Key, finalizer: str) -> None: ...


class Controllers:
    def __init__(self, cluster: Host) -> None:
        self.c = cluster

    def _rt(self, bucket: str) -> ResourceType | None:
        return self.c.bucket_types.get(bucket)

    def react(self, change: Change) -> None:
        obj: JSON = decode(change.new.raw)
        deleting = bool(obj["metadata"].get("deletionTimestamp"))
        if change.bucket == CRD_BUCKET:
            self._crd(change, obj, deleting)
        elif change.bucket == "persistentvolumeclaims":
            self._pvc(change, obj, deleting)
        elif change.bucket == "persistentvolumes":
            self._pv(change.key, obj, deleting)
            if change.type == "ADDED" and not deleting:
                self._claim_waiting_for(change, obj)
        elif change.bucket == "namespaces" and deleting and change.type != "DELETED":
            self._namespace(change.key[1])
        if change.type == "DELETED":
            self._after_delete(change, obj)
        elif deleting:
            self._owner_finalizers(change.bucket, change.key, obj)

    # -- CRDs --------------------------------------------------------------------------------------------

    def _crd(self, change: Change, crd: JSON, deleting: bool) -> None:
        spec = crd.get("spec") or {}
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        bucket = f"{plural}.{group}"
        if change.type == "DELETED":
            self.c.registry.remove_group_resource(group, plural)
            self.c.bucket_types.pop(bucket, None)
            for w in self.c.store.watchers():
                if w.bucket == bucket:
                    self.c.store.remove_watcher(w)
            self.c.store.buckets.pop(bucket, None)
            return
        types = crd_types(crd)
        self.c.registry.remove_group_resource(group, plural)
        for served in types:
            self.c.registry.add(served)
            if served.version == served.storage_version:
                self.c.bucket_types[bucket] = served
        if deleting:
            rt = self.c.bucket_types.get(bucket)
            if rt is not None:
                for key in list(self.c.store.bucket(bucket).entries):
                    self._delete(rt, key)
            self._crd_maybe_done(bucket)
            return
        status = crd.get("status") or {}
        if not any(c.get("type") == "Established" for c in status.get("conditions") or ()):
            now = objects.now()
            crd["status"] = {
                "conditions": [
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "lastTransitionTime": now,
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                    },
                    {
                        "type": "Established",
                        "status": "True",
                        "lastTransitionTime": now,
                        "reason": "InitialNamesAccepted",
                        "message": "the initial names have been accepted",
                    },
                ],
                "acceptedNames": spec.get("names") or {},
                "storedVersions": [v["name"] for v in spec.get("versions") or () if v.get("storage")],
            }
            crd_rt = self._rt(CRD_BUCKET)
            assert crd_rt is not None
            self.c.commit(crd_rt, "MODIFIED", change.key, crd)

    def _crd_maybe_done(self, bucket: str) -> None:
        crd_rec = self.c.store.get(CRD_BUCKET, ("", bucket))
        if crd_rec is None or b'"deletionTimestamp"' not in crd_rec.raw:
            return
        if self.c.store.bucket(bucket).entries:
            return
        crd_rt = self._rt(CRD_BUCKET)
        assert crd_rt is not None
        self.c.remove_finalizer(crd_rt, ("", bucket), objects.CRD_FINALIZER)

    # -- volumes -----------------------------------------------------------------------------------------

    def _pvc(self, change: Change, pvc: JSON, deleting: bool) -> None:
        rt = self._rt("persistentvolumeclaims")
        assert rt is not None
        if change.type == "DELETED":
            # A bound claim names its volume: look there first instead of decoding every PV (mass deletions
            # of claims would otherwise cost O(claims x volumes)); scan only when that volume is not its own.
            volume_name = (pvc.get("spec") or {}).get("volumeName") or ""
            named = self.c.store.get("persistentvolumes", ("", volume_name)) if volume_name else None
            if named is None or not self._recheck_volume_of(("", volume_name), named, change.key):
                for key, rec in list(self.c.store.bucket("persistentvolumes").entries.items()):
                    self._recheck_volume_of(key, rec, change.key)
            return
        if deleting:
            self.c.remove_finalizer(rt, change.key, objects.PVC_PROTECTION)
            return
        volume: str = (pvc.get("spec") or {}).get("volumeName") or ""
        pv_rec = self.c.store.get("persistentvolumes", ("", volume)) if volume else None
        phase = "Bound" if pv_rec is not None else "Pending"
        status = pvc.get("status") or {}
        if status.get("phase") != phase:
            pvc["status"] = dict(status, phase=phase)
            if pv_rec is not None:
                pv = decode(pv_rec.raw)
                spec = pv.get("spec") or {}
                pvc["status"]["accessModes"] = spec.get("accessModes", [])
                pvc["status"]["capacity"] = spec.get("capacity", {})
            self.c.commit(rt, "MODIFIED", change.key, pvc)
        if pv_rec is not None:
            pv = decode(pv_rec.raw)
            if not (pv.get("spec") or {}).get("claimRef"):
                meta = pvc["metadata"]
                pv.setdefault("spec", {})["claimRef"] = {
                    "kind": "PersistentVolumeClaim",
                    "apiVersion": "v1",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "resourceVersion": meta["resourceVersion"],
                }
                pv_rt = self._rt("persistentvolumes")
                assert pv_rt is not None
                self.c.commit(pv_rt, "MODIFIED", ("", volume), pv)
            else:
                self._pv(("", volume), pv, bool(pv["metadata"].get("deletionTimestamp")))

    def _claim_waiting_for(self, change: Change, pv: JSON) -> None:
        """A claim created before its volume (naming it in ``volumeName``) binds once the volume exists, as the
        PV binder binds it."""
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        key = (ref.get("namespace") or "", ref.get("name") or "")
        rec = self.c.store.get("persistentvolumeclaims", key) if key[1] else None
        if rec is None:
            return
        pvc = decode(rec.raw)
        if (pvc.get("spec") or {}).get("volumeName") == change.key[1] and not pvc["metadata"].get(
            "deletionTimestamp"
        ):
            self._pvc(Change(change.rv, "persistentvolumeclaims", "MODIFIED", key, rec, rec), pvc, False)

    def _recheck_volume_of(self, key: Key, rec: Record, claim: Key) -> bool:
        """Re-evaluate volume ``key`` when its claimRef names ``claim``; True when it did."""
        pv = decode(rec.raw)
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if (ref.get("namespace"), ref.get("name")) != claim:
            return False
        self._pv(key, pv, bool(pv["metadata"].get("deletionTimestamp")))
        return True

    def _claim_exists(self, pv: JSON) -> bool:
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if not ref.get("name"):
            return False
        rec = self.c.store.get("persistentvolumeclaims", (ref.get("namespace", ""), ref["name"]))
        return rec is not None and (not ref.get("uid") or ref["uid"] == rec.uid)

    def _pv(self, key: Key, pv: JSON, deleting: bool) -> None:
        rt = self._rt("persistentvolumes")
        assert rt is not None
        if key not in self.c.store.bucket("persistentvolumes").entries:
            return
        bound = self._claim_exists(pv)
        if deleting:
            if not bound:
                self.c.remove_finalizer(rt, key, objects.PV_PROTECTION)
            return
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if bound:
            phase = "Bound"
        elif ref.get("uid"):
            phase = "Released"
        else:
            phase = "Available"
        status = pv.get("status") or {}
        if status.get("phase") != phase:
            pv["status"] = dict(status, phase=phase)
            self.c.commit(rt, "MODIFIED", key, pv)

    # -- namespaces --------------------------------------------------------------------------------------

    def _namespace(self, namespace: str) -> None:
        ns_rec = self.c.store.get("namespaces", ("", namespace))
        if ns_rec is None:
            return
        empty = True
        for bucket, rt in list(self.c.bucket_types.items()):
            if not rt.namespaced:
                continue
            for key in list(self.c.store.bucket(bucket).keys_from(None, namespace)):
                empty = False
                self._delete(rt, key)
        if not empty:
            # Deletions may have finished synchronously; look again.
            empty = not any(
                any(True for _ in self.c.store.bucket(b).keys_from(None, namespace))
                for b, rt in self.c.bucket_types.items()
                if rt.namespaced
            )
        if empty:
            ns = decode(ns_rec.raw)
            spec = ns.get("spec") or {}
            if spec.get("finalizers"):
                ns["spec"] = dict(spec, finalizers=[])
                ns_rt = self._rt("namespaces")
                assert ns_rt is not None
                done = not ns["metadata"].get("finalizers")
                self.c.commit(ns_rt, "DELETED" if done else "MODIFIED", ("", namespace), ns)

    # -- garbage collection ------------------------------------------------------------------------------

    def _delete(self, rt: ResourceType, key: Key, policy: str = "Background") -> None:
        try:
            self.c.delete(rt, key[0], key[1], {"propagationPolicy": policy})
        except ApiError:
            pass  # already gone

    def _after_delete(self, change: Change, obj: JSON) -> None:
        ns = change.key[0]
        if ns:
            ns_rec = self.c.store.get("namespaces", ("", ns))
            if ns_rec is not None and b'"deletionTimestamp"' in ns_rec.raw:
                self._namespace(ns)
        bucket_type = self.c.bucket_types.get(change.bucket)
        if change.bucket != CRD_BUCKET and bucket_type is not None and bucket_type.custom:
            self._crd_maybe_done(change.bucket)
        uid = change.new.uid
        for bucket, key in self.c.dependents(uid):
            rec = self.c.store.get(bucket, key)
            rt = self._rt(bucket)
            if rec is None or rt is None or not rec.owners:
                continue
            if not any(o in self.c.uids for o in rec.owners):
                self._delete(rt, key)
        # A dependent's deletion may complete an owner's foreground deletion.
        for owner_uid in change.old.owners if change.old is not None and change.old.owners else ():
            self._foreground_check(owner_uid)

    def _owner_finalizers(self, bucket: str, key: Key, obj: JSON) -> None:
        fins = obj["metadata"].get("finalizers") or ()
        rt = self._rt(bucket)
        if rt is None:
            return
        uid = obj["metadata"].get("uid", "")
        if "orphan" in fins:
            for dep_bucket, dep_key in self.c.dependents(uid):
                dep_rt = self._rt(dep_bucket)
                rec = self.c.store.get(dep_bucket, dep_key)
                if dep_rt is None or rec is None:
                    continue
                dep = decode(rec.raw)
                refs = [r for r in dep["metadata"].get("ownerReferences") or () if r.get("uid") != uid]
                if refs:
                    dep["metadata"]["ownerReferences"] = refs
                else:
                    dep["metadata"].pop("ownerReferences", None)
                self.c.commit(dep_rt, "MODIFIED", dep_key, dep)
            self.c.remove_finalizer(rt, key, "orphan")
        elif "foregroundDeletion" in fins:
            for dep_bucket, dep_key in self.c.dependents(uid):
                dep_rt = self._rt(dep_bucket)
                if dep_rt is not None:
                    self._delete(dep_rt, dep_key, "Foreground")
            self._foreground_check(uid)

    def _foreground_check(self, owner_uid: str) -> None:
        if self.c.dependents(owner_uid) or owner_uid not in self.c.uids:
            return
        bucket, key = self.c.uids[owner_uid]
        rec = self.c.store.get(bucket, key)
        rt = self._rt(bucket)
        if rec is not None and rt is not None and b'"foregroundDeletion"' in rec.raw:
            self.c.remove_finalizer(rt, key, "foregroundDeletion")
