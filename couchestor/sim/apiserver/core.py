"""The cluster's object semantics: create, read, update, patch, delete and list, as synchronous operations.

:class:`Cluster` owns the :class:`~.store.Store` and the :class:`~.resources.Registry`. Each public method
either completes a write (and the built-in controllers' reactions to it, see :mod:`.controllers`) or raises
:class:`~.errors.ApiError` without changing anything. Nothing here awaits, so every operation is atomic.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from typing import Any

import msgspec
import yaml

from couchestor.labels import Selector, matches as labels_match
from couchestor.sim.apiserver import errors as E, objects
from couchestor.sim.apiserver.continuation import decode_continue, encode_continue
from couchestor.sim.apiserver.controllers import Controllers
from couchestor.sim.apiserver.errors import ApiError, FieldError
from couchestor.sim.apiserver.fieldsel import FieldSelector, matches as fields_match, object_fields
from couchestor.sim.apiserver.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from couchestor.sim.apiserver.resources import Registry, ResourceType
from couchestor.sim.apiserver.schema import apply_defaults, prune, validate
from couchestor.sim.apiserver.store import Change, EventType, Key, Record, Store, decode

JSON = dict[str, Any]

# Metadata fields Go's omitempty drops when empty.
_OMIT_EMPTY = ("labels", "annotations", "finalizers", "ownerReferences", "generateName")

_CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list."
)

BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(slots=True)
class ListResult:
    rv: int
    records: list[Record]
    continue_token: str
    remaining: int | None


@dataclass(slots=True)
class WriteOptions:
    dry_run: bool = False
    # "", "Ignore", "Warn" or "Strict": what to do with fields a CRD schema does not declare.
    field_validation: str = ""
    field_manager: str = ""
    force: bool = False


class Cluster:
    """All objects and their semantics; see the module docstring."""

    def __init__(self, history_limit: int) -> None:
        self.store = Store(history_limit)
        self.registry = Registry()
        # Storage-version type of each bucket, for controllers that walk buckets.
        self.bucket_types: dict[str, ResourceType] = {}
        for rt in self.registry.all():
            self.bucket_types[rt.bucket] = rt
        self._owners: dict[str, set[tuple[str, Key]]] = {}
        self._queue: deque[Change] = deque()
        self._settling = False
        # uid -> (bucket, key) of every live object: owner lookups for the garbage collector.
        self.uids: dict[str, tuple[str, Key]] = {}
        self.warnings: list[str] = []
        self._controllers = Controllers(self)
        ns = self.registry.get("", "v1", "namespaces")
        assert ns is not None
        for name in BOOTSTRAP_NAMESPACES:
            self.create(ns, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    # -- helpers -----------------------------------------------------------------------------------------

    def served(self, rt: ResourceType, obj: JSON) -> JSON:
        """``obj`` as the requested version presents it (custom resources convert by apiVersion alone)."""
        if obj.get("apiVersion") != rt.api_version:
            obj["apiVersion"] = rt.api_version
        return obj

    def serve_raw(self, rt: ResourceType, rec: Record) -> bytes:
        if rt.version == rt.storage_version or not rt.custom:
            return rec.raw
        obj = rec.obj()
        obj["apiVersion"] = rt.api_version
        return msgspec.json.encode(obj)

    def list_item(self, rt: ResourceType, rec: Record) -> bytes:
        """``rec`` as an item of a LIST: items of built-in kinds carry no apiVersion or kind on a real server."""
        if rt.custom:
            return self.serve_raw(rt, rec)
        prefix = b'{"apiVersion":"' + rt.api_version.encode() + b'","kind":"' + rt.kind.encode() + b'",'
        if rec.raw.startswith(prefix):
            return b"{" + rec.raw[len(prefix) :]
        obj = rec.obj()
        obj.pop("apiVersion", None)
        obj.pop("kind", None)
        return msgspec.json.encode(obj)

    def commit(self, rt: ResourceType, type: EventType, key: Key, obj: JSON) -> Record:
        """Store a change and queue it for the controllers."""
        meta = obj.get("metadata") or {}
        for k in _OMIT_EMPTY:
            if k in meta and not meta[k]:
                del meta[k]
        if rt.custom:
            obj["apiVersion"] = f"{rt.group}/{rt.storage_version}"
        else:
            # apiVersion and kind first, so a LIST can drop them from its items by slicing (list_item).
            rest = {k: obj.pop(k) for k in list(obj) if k not in ("apiVersion", "kind")}
            obj.update(rest)
        names = rt.selectable_fields
        rec = self.store.commit(
            rt.bucket, type, key, obj, fields=(lambda o: object_fields(o, names)) if names else None
        )
        change = self.store.history[-1]
        self._index_owners(change)
        if type == "DELETED":
            self.uids.pop(rec.uid, None)
        else:
            self.uids[rec.uid] = (rt.bucket, key)
        self._queue.append(change)
        return rec

    def _index_owners(self, change: Change) -> None:
        ref = (change.bucket, change.key)
        if change.old is not None and change.old.owners:
            for uid in change.old.owners:
                s = self._owners.get(uid)
                if s is not None:
                    s.discard(ref)
                    if not s:
                        del self._owners[uid]
        if change.type != "DELETED" and change.new.owners:
            for uid in change.new.owners:
                self._owners.setdefault(uid, set()).add(ref)

    def dependents(self, uid: str) -> list[tuple[str, Key]]:
        return sorted(self._owners.get(uid, ()))

    def settle(self) -> None:
        """Run the built-in controllers on queued changes until nothing more happens.

        Re-entrant calls (a controller's own writes) return at once; the outermost call drains the queue.
        """
        if self._settling:
            return
        self._settling = True
        try:
            while self._queue:
                self._controllers.react(self._queue.popleft())
        finally:
            self._settling = False

    def lookup(self, rt: ResourceType, namespace: str, name: str) -> Record:
        rec = self.store.get(rt.bucket, (namespace if rt.namespaced else "", name))
        if rec is None:
            raise E.not_found(rt.group, rt.plural, name)
        return rec

    def _key(self, rt: ResourceType, namespace: str, name: str) -> Key:
        return (namespace if rt.namespaced else "", name)

    def _check_kind(self, rt: ResourceType, body: Any) -> JSON:
        if not isinstance(body, dict):
            raise E.bad_request("the body of the request must be a JSON object")
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if not kind:
            raise E.bad_request(f"Object 'Kind' is missing in '{_short(body)}'")
        if not api_version:
            raise E.bad_request(f"Object 'apiVersion' is missing in '{_short(body)}'")
        if kind != rt.kind or api_version != rt.api_version:
            raise E.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})"
                if kind == rt.kind
                else f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        meta = body.get("metadata")
        if meta is None:
            body["metadata"] = {}
        elif not isinstance(meta, dict):
            raise E.bad_request("metadata must be an object")
        return body

    def _schema_checks(
        self, rt: ResourceType, obj: JSON, old: JSON | None, opts: WriteOptions, name: str
    ) -> list[FieldError]:
        errors = objects.validate_metadata(obj["metadata"])
        if rt.custom and rt.schema is not None:
            removed = prune(obj, rt.schema)
            if removed and opts.field_validation == "Strict":
                raise E.bad_request(
                    "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in removed)
                )
            if removed and opts.field_validation != "Ignore":
                self.warnings.extend(f'unknown field "{p}"' for p in removed)
            apply_defaults(obj, rt.schema)
            errors += validate(obj, rt.schema, old)
        if rt.group == "apiextensions.k8s.io":
            errors += objects.validate_crd(obj)
        return errors

    # -- reads -------------------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Record:
        return self.lookup(rt, namespace, name)

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        labels: Selector = (),
        fields: FieldSelector = (),
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        resource_version_match: str = "",
    ) -> ListResult:
        """One page of a LIST, honouring the resourceVersion semantics of the real API server."""
        _validate_list_options(resource_version, resource_version_match, continue_token)
        start: Key | None = None
        if continue_token:
            if resource_version not in ("", "0"):
                raise E.bad_request("specifying resource version is not allowed when using continue")
            at, start = decode_continue(continue_token, rt.namespaced)
            if at == -1:
                at = self.store.rv
            elif at < self.store.compacted_rv_of(rt.bucket):
                raise ApiError(410, "Expired", _CONTINUE_EXPIRED)
        elif resource_version in ("", "0"):
            at = self.store.rv
            if resource_version == "0":
                limit = 0  # served from the watch cache, which ignores limit
        else:
            at = _parse_rv(resource_version)
            exact = resource_version_match == "Exact" or (not resource_version_match and limit > 0)
            if at > self.store.rv:
                raise too_large_rv(at, self.store.rv)
            if exact:
                if at < self.store.compacted_rv_of(rt.bucket):
                    raise ApiError(410, "Expired", "The resourceVersion for the provided list is too old.")
            else:
                at = self.store.rv
        records: list[Record] = []
        next_key: Key | None = None
        remaining = 0
        filtered = bool(labels or fields)
        for key, rec in self.store.snapshot(rt.bucket, at, start, namespace if rt.namespaced else None):
            if filtered and not self._matches(key, rec, labels, fields):
                continue
            if limit and len(records) >= limit:
                next_key = key
                break
            records.append(rec)
        if next_key is not None and not filtered:
            remaining = self.store.bucket(rt.bucket).count_from(
                next_key, namespace if rt.namespaced else None
            )
        token = encode_continue(at, next_key) if next_key is not None else ""
        return ListResult(at, records, token, remaining if (next_key is not None and not filtered) else None)

    @staticmethod
    def _matches(key: Key, rec: Record, labels: Selector, fields: FieldSelector) -> bool:
        if labels and not labels_match(labels, rec.labels):
            return False
        if fields:
            values = {"metadata.name": key[1], "metadata.namespace": key[0]}
            if rec.fields:
                values.update(rec.fields)
            return fields_match(fields, values)
        return True

    def matches(self, key: Key, rec: Record, labels: Selector, fields: FieldSelector) -> bool:
        return self._matches(key, rec, labels, fields)

    # -- writes ------------------------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str, body: Any, opts: WriteOptions | None = None) -> JSON:
        opts = opts or WriteOptions()
        obj = self._check_kind(rt, body)
        meta = obj["metadata"]
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise E.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = objects.generated_name(meta["generateName"])
            else:
                raise E.invalid(
                    rt.kind,
                    rt.group,
                    "",
                    [FieldError("metadata.name", "FieldValueRequired", "name or generateName is required")],
                )
        name = meta["name"]
        for k in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ):
            meta.pop(k, None)
        errors = objects.validate_name(rt, name)
        objects.prepare_create(rt, obj)
        errors += self._schema_checks(rt, obj, None, opts, name)
        if errors:
            raise E.invalid(rt.kind, rt.group, name, errors)
        if rt.namespaced:
            self._check_namespace_open(namespace)
        if rt.custom:
            self._check_crd_open(rt)
        key = self._key(rt, namespace, name)
        if self.store.get(rt.bucket, key) is not None:
            raise E.already_exists(rt.group, rt.plural, name)
        meta["uid"] = objects.new_uid()
        meta["creationTimestamp"] = objects.now()
        if rt.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if opts.dry_run:
            return self.served(rt, obj)
        rec = self.commit(rt, "ADDED", key, obj)
        self.settle()
        return self.served(rt, rec.obj())

    def _check_namespace_open(self, namespace: str) -> None:
        ns = self.store.get("namespaces", ("", namespace))
        if ns is None:
            raise E.not_found("", "namespaces", namespace)
        if b'"deletionTimestamp"' in ns.raw:
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being terminated",
                details={
                    "name": namespace,
                    "kind": "namespaces",
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    def _check_crd_open(self, rt: ResourceType) -> None:
        crd = self.store.get("customresourcedefinitions.apiextensions.k8s.io", ("", rt.bucket))
        if crd is not None and b'"deletionTimestamp"' in crd.raw:
            raise E.method_not_allowed("create not allowed while custom resource definition is terminating")

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        opts: WriteOptions | None = None,
    ) -> tuple[JSON, bool]:
        """PUT; returns (object, created)."""
        opts = opts or WriteOptions()
        obj = self._check_kind(rt, body)
        meta = obj["metadata"]
        if meta.get("name", "") != name:
            raise E.bad_request(
                f"the name of the object ({meta.get('name', '')}) does not match the name on the URL ({name})"
            )
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise E.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        existing = self.store.get(rt.bucket, self._key(rt, namespace, name))
        if existing is None:
            if rt.allow_create_on_update and not subresource and not meta.get("resourceVersion"):
                return self.create(rt, namespace, obj, opts), True
            raise E.not_found(rt.group, rt.plural, name)
        body_rv = meta.get("resourceVersion", "")
        if not body_rv and not rt.allow_unconditional_update:
            raise E.invalid(
                rt.kind,
                rt.group,
                name,
                [
                    FieldError(
                        "metadata.resourceVersion", "FieldValueInvalid", "must be specified for an update", 0
                    )
                ],
            )
        if body_rv and body_rv != str(existing.rv):
            raise E.stale_conflict(rt.group, rt.plural, name)
        return self._write(rt, existing, obj, subresource, opts), False

    def _write(
        self, rt: ResourceType, existing: Record, obj: JSON, subresource: str, opts: WriteOptions
    ) -> JSON:
        """Turn a proposed object into the stored one (strategies, validation), then commit it."""
        old = self.served(rt, existing.obj())
        old_meta = old["metadata"]
        name = old_meta["name"]
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        else:
            new = obj
            meta = new["metadata"]
            for k in (
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if k in old_meta:
                    meta[k] = old_meta[k]
                else:
                    meta.pop(k, None)
            meta.pop("managedFields", None)
            if rt.status_subresource:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            if rt.plural == "namespaces" and not rt.group:
                new["spec"] = old.get("spec", {})
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        objects.apply_builtin_defaults(rt, new)
        errors = self._schema_checks(rt, new, old, opts, name)
        errors += objects.validate_update(rt, new, old)
        old_fins = set(old_meta.get("finalizers") or ())
        new_fins = new["metadata"].get("finalizers") or []
        if not new_fins:
            new["metadata"].pop("finalizers", None)
        added = [f for f in new_fins if f not in old_fins]
        if old_meta.get("deletionTimestamp") and added:
            errors.append(
                FieldError(
                    "metadata.finalizers",
                    "FieldValueForbidden",
                    f"no new finalizers can be added if the object is being deleted, "
                    f"found new finalizers []string{{{', '.join(repr(a) for a in added)}}}",
                )
            )
        if errors:
            raise E.invalid(rt.kind, rt.group, name, errors)
        if rt.has_generation and objects.spec_changed(new, old, rt.status_subresource):
            new["metadata"]["generation"] = int(old_meta.get("generation", 1)) + 1
        if new == old:
            return old  # a no-op write keeps its resourceVersion and emits no event
        if opts.dry_run:
            return new
        key = self._key(rt, old_meta.get("namespace", ""), name)
        if old_meta.get("deletionTimestamp") and not new_fins and not _spec_finalizers(rt, new):
            rec = self.commit(rt, "DELETED", key, new)
        else:
            rec = self.commit(rt, "MODIFIED", key, new)
        self.settle()
        return self.served(rt, rec.obj())

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        *,
        subresource: str = "",
        opts: WriteOptions | None = None,
    ) -> tuple[JSON, bool]:
        """PATCH with any of the four patch types; returns (object, created)."""
        opts = opts or WriteOptions()
        existing = self.store.get(rt.bucket, self._key(rt, namespace, name))
        if content_type == "application/apply-patch+yaml":
            if not opts.field_manager:
                raise E.invalid(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    [FieldError("fieldManager", "FieldValueRequired", "is required for apply patch")],
                )
            try:
                applied = yaml.safe_load(raw.decode())
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise E.bad_request(f"error decoding YAML: {exc}") from exc
            if existing is None:
                if isinstance(applied, dict):
                    applied.setdefault("metadata", {}).setdefault("name", name)
                return self.create(rt, namespace, applied, opts), True
            if not isinstance(applied, dict):
                raise E.bad_request("apply patch must be an object")
            old = self.served(rt, existing.obj())
            new = _apply_merge(old, applied)
            return self._write(rt, existing, self._check_kind(rt, new), subresource, opts), False
        if existing is None:
            raise E.not_found(rt.group, rt.plural, name)
        try:
            patch_doc = decode(raw)
        except Exception as exc:  # msgspec.DecodeError and friends
            raise E.bad_request(f"error decoding patch: {exc}") from exc
        old = self.served(rt, existing.obj())
        try:
            if content_type == "application/json-patch+json":
                new = json_patch(old, patch_doc)
            elif content_type == "application/merge-patch+json":
                if not isinstance(patch_doc, dict):
                    raise E.bad_request("merge patch must be a JSON object")
                new = merge_patch(old, patch_doc)
            elif content_type == "application/strategic-merge-patch+json":
                if rt.custom:
                    raise _unsupported_patch()
                if not isinstance(patch_doc, dict):
                    raise E.bad_request("strategic merge patch must be a JSON object")
                new = strategic_merge_patch(old, patch_doc)
            else:
                raise _unsupported_patch()
        except PatchError as exc:
            raise ApiError(422, "Invalid", str(exc)) from exc
        if not isinstance(new, dict):
            raise ApiError(422, "Invalid", "the patched object is not a JSON object")
        new_meta = new.get("metadata")
        if not isinstance(new_meta, dict):
            raise ApiError(422, "Invalid", "the patched object has no metadata")
        if new_meta.get("name") != name:
            raise E.bad_request(
                f"the name of the object ({new_meta.get('name')}) does not match the name on the URL ({name})"
            )
        patched_rv = new_meta.get("resourceVersion")
        if patched_rv and patched_rv != str(existing.rv):
            raise E.stale_conflict(rt.group, rt.plural, name)
        return self._write(rt, existing, self._check_kind(rt, new), subresource, opts), False

    def delete(
        self, rt: ResourceType, namespace: str, name: str, options: JSON | None = None, dry_run: bool = False
    ) -> tuple[JSON, bool]:
        """DELETE; returns (object, gone). Objects with finalizers only get a deletionTimestamp."""
        options = options or {}
        existing = self.lookup(rt, namespace, name)
        obj = self.served(rt, existing.obj())
        meta = obj["metadata"]
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise E.conflict(
                rt.group,
                rt.plural,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                f"{meta.get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise E.conflict(
                rt.group,
                rt.plural,
                name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
            )
        if dry_run:
            return obj, False
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is True:
            policy = "Orphan"
        fins = list(meta.get("finalizers") or ())
        if (
            policy == "Foreground"
            and self.dependents(meta.get("uid", ""))
            and "foregroundDeletion" not in fins
        ):
            fins.append("foregroundDeletion")
        if policy == "Orphan" and self.dependents(meta.get("uid", "")) and "orphan" not in fins:
            fins.append("orphan")
        key = self._key(rt, namespace, name)
        if fins or _spec_finalizers(rt, obj):
            if meta.get("deletionTimestamp"):
                return obj, False
            if fins:
                meta["finalizers"] = fins
            meta["deletionTimestamp"] = objects.now()
            meta["deletionGracePeriodSeconds"] = 0
            if rt.has_generation:
                meta["generation"] = int(meta.get("generation", 1)) + 1
            if rt.plural == "namespaces" and not rt.group:
                obj.setdefault("status", {})["phase"] = "Terminating"
            rec = self.commit(rt, "MODIFIED", key, obj)
            self.settle()
            return self.served(rt, rec.obj()), False
        rec = self.commit(rt, "DELETED", key, obj)
        self.settle()
        return self.served(rt, rec.obj()), True

    def delete_collection(
        self, rt: ResourceType, namespace: str | None, labels: Selector, fields: FieldSelector, options: JSON
    ) -> None:
        result = self.list(rt, namespace, labels=labels, fields=fields)
        for rec in result.records:
            obj = decode(rec.raw)
            meta = obj["metadata"]
            try:
                self.delete(rt, meta.get("namespace", ""), meta["name"], options)
            except ApiError as exc:
                if exc.code != 404:
                    raise

    def remove_finalizer(self, rt: ResourceType, key: Key, finalizer: str) -> None:
        """Controller helper: drop one finalizer (completing the deletion when it was the last)."""
        rec = self.store.get(rt.bucket, key)
        if rec is None:
            return
        obj = rec.obj()
        meta = obj["metadata"]
        fins = [f for f in meta.get("finalizers") or () if f != finalizer]
        if len(fins) == len(meta.get("finalizers") or ()):
            return
        if fins:
            meta["finalizers"] = fins
        else:
            meta.pop("finalizers", None)
        if meta.get("deletionTimestamp") and not fins and not _spec_finalizers(rt, obj):
            self.commit(rt, "DELETED", key, obj)
        else:
            self.commit(rt, "MODIFIED", key, obj)


def _spec_finalizers(rt: ResourceType, obj: JSON) -> bool:
    return rt.plural == "namespaces" and not rt.group and bool((obj.get("spec") or {}).get("finalizers"))


def _apply_merge(old: Any, applied: Any) -> Any:
    """Server-side apply approximated: the applied configuration merged over the live object."""
    if isinstance(old, dict) and isinstance(applied, dict):
        out = dict(old)
        for k, v in applied.items():
            out[k] = _apply_merge(old.get(k), v)
        return out
    return copy.deepcopy(applied)


def _unsupported_patch() -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
    )


def _short(body: JSON) -> str:
    import msgspec

    text = msgspec.json.encode(body).decode()
    return text if len(text) < 200 else text[:200] + "..."


def _parse_rv(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise E.bad_request(f"invalid resource version: {text}") from None
    if value < 0:
        raise E.bad_request(f"invalid resource version: {text}")
    return value


def too_large_rv(asked: int, current: int) -> ApiError:
    return ApiError(
        504,
        "Timeout",
        f"Too large resource version: {asked}, current: {current}",
        details={
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1,
        },
    )


def _validate_list_options(rv: str, match: str, cont: str) -> None:
    errors: list[FieldError] = []
    if match:
        if not rv:
            errors.append(
                FieldError(
                    "resourceVersionMatch",
                    "FieldValueForbidden",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                )
            )
        if cont:
            errors.append(
                FieldError(
                    "resourceVersionMatch",
                    "FieldValueForbidden",
                    "resourceVersionMatch is forbidden when continue is provided",
                )
            )
        if match not in ("Exact", "NotOlderThan"):
            errors.append(
                FieldError(
                    "resourceVersionMatch",
                    "FieldValueNotSupported",
                    'supported values: "Exact", "NotOlderThan", ""',
                    match,
                )
            )
        elif match == "Exact" and rv == "0":
            errors.append(
                FieldError(
                    "resourceVersionMatch",
                    "FieldValueForbidden",
                    'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
                )
            )
    if errors:
        raise E.invalid("ListOptions", "meta.k8s.io", "", errors)
