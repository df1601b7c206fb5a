"""What every backend adapter provides, and helpers they share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from couchestor.kube.resources import Resource
from couchestor.replication.model import JSON, BackendObject, MemberStatus, Request


class UnknownProvisioner(ValueError):
    """A class names a provisioner no adapter serves."""


class Adapter(Protocol):
    """One backend. ``current`` arguments map a backend object's name to its JSON, holding only the objects
    owned by the request (possibly none yet)."""

    name: str
    resource: Resource
    provisioner_hint: str

    def serves(self, provisioner: str) -> bool: ...

    def validate(self, req: Request) -> str | None:
        """Why the request cannot be served as it stands (a class parameter missing ...), or None."""
        ...

    def desired(self, req: Request, current: Mapping[str, JSON]) -> list[BackendObject]:
        """The backend objects the request needs now, given what exists."""
        ...

    def observe(self, req: Request, current: Mapping[str, JSON]) -> list[MemberStatus]:
        """One status per member PVC, in ``req.members`` order."""
        ...

    def member_labels(self, req: Request) -> Mapping[str, str]:
        """Labels every member PVC must carry for the backend to see it (empty for most backends)."""
        ...


def dig(obj: Any, *path: str | int) -> Any:
    """``obj[path[0]][path[1]]...``, or None as soon as a step is missing or of the wrong type."""
    cur = obj
    for step in path:
        if isinstance(step, int):
            if not isinstance(cur, list) or step >= len(cur):
                return None
        elif not isinstance(cur, dict):
            return None
        cur = cur[step] if isinstance(step, int) else cur.get(step)
    return cur


def generation_seen(obj: JSON, observed: Any) -> bool:
    """True when a backend status written for ``observed`` generation reflects the object's current spec."""
    generation = dig(obj, "metadata", "generation")
    if not isinstance(generation, int):
        return True  # a server that does not count generations: trust the status
    return isinstance(observed, int) and observed >= generation
