"""Object metadata and API envelopes shared by every resource (``meta/v1``).

Conventions for every Struct in this package:

- Only the fields CoucheStor reads or writes are declared; unknown fields are ignored on decode.
- Optional fields default to :data:`msgspec.UNSET`, which is never encoded, so an encoded Struct holding
  only the fields that were set *is* a minimal JSON merge-patch.
- Cache entries use ``gc=False``: they hold only strings, numbers, lists and dicts, never cycles.
- Wire names are camelCase (``rename="camel"``) unless a field says otherwise with ``msgspec.field(name=...)``.
"""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

T = TypeVar("T")


class Base(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel", gc=False):
    """Common Struct options: keyword-only, minimal on the wire, camelCase, no GC tracking."""


class OwnerReference(Base):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | UnsetType = UNSET
    block_owner_deletion: bool | UnsetType = UNSET


class CachedObjectMeta(Base):
    """The metadata kept of the objects cached by the hundred thousand (PVs, PVCs, MayastorVolumes): who the
    object is, its version, labels, annotations and whether it is being deleted. Decoding skips the rest
    (creation time, finalizers, owners: about 0.5 KB per volume), which nothing reads on these kinds; the
    operator changes them only by merge patches, so nothing it writes loses those fields."""

    name: str | UnsetType = UNSET
    namespace: str | UnsetType = UNSET
    uid: str | UnsetType = UNSET
    resource_version: str | UnsetType = UNSET
    deletion_timestamp: str | UnsetType = UNSET
    labels: dict[str, str] | UnsetType = UNSET
    annotations: dict[str, str] | UnsetType = UNSET

    def label(self, key: str) -> str | None:
        """The value of label ``key``, or None when absent."""
        return None if self.labels is UNSET else self.labels.get(key)

    def annotation(self, key: str) -> str | None:
        """The value of annotation ``key``, or None when absent."""
        return None if self.annotations is UNSET else self.annotations.get(key)


class ObjectMeta(CachedObjectMeta):
    """The subset of ``metav1.ObjectMeta`` the operator uses on every other kind."""

    generate_name: str | UnsetType = UNSET
    generation: int | UnsetType = UNSET
    # None: bookmarks and some clients send `"creationTimestamp": null`, as Kubernetes itself does.
    creation_timestamp: str | UnsetType | None = UNSET
    finalizers: tuple[str, ...] | UnsetType = UNSET
    owner_references: list[OwnerReference] | UnsetType = UNSET


class ListMeta(Base):
    resource_version: str | UnsetType = UNSET
    # Field name is ``continue`` on the wire, a keyword in Python.
    continue_: str | UnsetType = msgspec.field(default=UNSET, name="continue")
    remaining_item_count: int | UnsetType = UNSET


class ObjectList(Base, Generic[T]):
    """A LIST response: ``items`` decoded as ``T``."""

    api_version: str | UnsetType = UNSET
    kind: str | UnsetType = UNSET
    metadata: ListMeta = msgspec.field(default_factory=ListMeta)
    items: list[T] = msgspec.field(default_factory=list)


class StatusCause(Base):
    reason: str | UnsetType = UNSET
    message: str | UnsetType = UNSET
    field: str | UnsetType = UNSET


class StatusDetails(Base):
    name: str | UnsetType = UNSET
    group: str | UnsetType = UNSET
    kind: str | UnsetType = UNSET
    uid: str | UnsetType = UNSET
    causes: list[StatusCause] | UnsetType = UNSET
    retry_after_seconds: int | UnsetType = UNSET


class Status(Base):
    """``metav1.Status``: the body of every API error, and of some successful DELETEs."""

    api_version: str | UnsetType = UNSET
    kind: str | UnsetType = UNSET
    metadata: ListMeta | UnsetType = UNSET
    status: str | UnsetType = UNSET
    message: str | UnsetType = UNSET
    reason: str | UnsetType = UNSET
    details: StatusDetails | UnsetType = UNSET
    code: int | UnsetType = UNSET


WatchEventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]


class RawWatchEvent(msgspec.Struct, gc=False):
    """One line of a watch stream; ``object`` is decoded in a second step by ``type``.

    An ``ERROR`` event carries a :class:`Status`, every other type carries the watched kind (a
    ``BOOKMARK`` only its ``metadata.resourceVersion``), so one schema cannot decode all of them.
    """

    type: WatchEventType
    object: msgspec.Raw


class ObjectWatchEvent(msgspec.Struct, Generic[T], gc=False):
    """One line of a watch stream decoded in a single pass, its object as the watched kind ``T``.

    Half the decoding work of a :class:`RawWatchEvent` and then its object: the line is read once instead of
    twice. Only the types whose object is the watched kind are declared, so an ``ERROR`` event (a
    :class:`Status`), or a ``BOOKMARK`` whose sparse object does not fit ``T``, fails to decode as one and is
    read as a :class:`RawWatchEvent` instead.
    """

    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    object: T


class Condition(Base):
    """A standard condition (metav1.Condition)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    last_transition_time: str
    reason: str
    message: str = ""
    observed_generation: int | UnsetType = UNSET


class LabelSelectorRequirement(Base):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | UnsetType = UNSET


class LabelSelector(Base):
    """A label selector (matchLabels and matchExpressions); an empty selector matches everything."""

    match_labels: dict[str, str] | UnsetType = UNSET
    match_expressions: list[LabelSelectorRequirement] | UnsetType = UNSET


class ObjectReference(Base):
    api_version: str | UnsetType = UNSET
    kind: str | UnsetType = UNSET
    namespace: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    uid: str | UnsetType = UNSET
    resource_version: str | UnsetType = UNSET
    field_path: str | UnsetType = UNSET
