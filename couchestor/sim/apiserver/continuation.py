"""``continue`` tokens: the snapshot resourceVersion and the key to resume from, like etcd3's tokens."""

from __future__ import annotations

import base64
import binascii

import msgspec

from couchestor.sim.apiserver.errors import bad_request
from couchestor.sim.apiserver.store import Key


class _Token(msgspec.Struct):
    v: str
    rv: int
    start: str


def encode_continue(rv: int, next_key: Key) -> str:
    """A token that resumes a list at ``rv`` from ``next_key`` (inclusive)."""
    namespace, name = next_key
    start = f"{namespace}/{name}" if namespace else name
    raw = msgspec.json.encode(_Token(v="meta.k8s.io/v1", rv=rv, start=start))
    return base64.b64encode(raw).decode()


def decode_continue(token: str, namespaced: bool) -> tuple[int, Key]:
    """(snapshot rv, start key); rv -1 means "the latest". 400 BadRequest for anything else malformed."""
    try:
        data = msgspec.json.decode(base64.b64decode(token, validate=True), type=_Token)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise bad_request(f"invalid continue token: {exc}") from exc
    if data.v != "meta.k8s.io/v1":
        raise bad_request(
            "invalid continue token: continue key is not valid: incorrect encoded start "
            "resourceVersion (version meta.k8s.io/v1)"
        )
    if data.rv == 0:
        raise bad_request("0 continue resource version is not allowed when using continue")
    if ".." in data.start.split("/") or data.start.startswith("/"):
        raise bad_request("invalid continue token: continue key is not valid: path traversal attempt")
    if namespaced and "/" in data.start:
        ns, _, name = data.start.partition("/")
        return data.rv, (ns, name)
    return data.rv, ("", data.start)
