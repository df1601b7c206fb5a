"""The little the volume test suite needs from a cluster, and an implementation that drives ``kubectl``.

:class:`Cluster` is the seam: apply objects, read one, list some, read a pod's log, delete objects. The suite
runner knows nothing else about how it reaches the cluster. :class:`KubectlCluster` implements it with the
``kubectl`` binary users already have (so their kubeconfig, contexts and credential plugins work unchanged);
every call runs under a timeout and a failure becomes a :class:`KubectlError` carrying kubectl's message.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio
import yaml

from couchestor.errors import UserError


class KubectlError(UserError):
    """kubectl is missing, timed out, or failed; the message carries kubectl's own error."""


class Cluster(Protocol):
    """What the suite runner asks of a cluster. Resources are kubectl's names (``pvc``, ``job``, ``pod``...)."""

    async def apply(self, documents: Sequence[Mapping[str, Any]]) -> None:
        """Create or update the objects."""

    async def get(self, resource: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""

    async def list(self, resource: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """The objects matching the selector."""

    async def logs(self, pod: str, namespace: str) -> str:
        """The whole log of the pod's (only) container."""

    async def delete(self, documents: Sequence[Mapping[str, Any]]) -> None:
        """Delete the objects; missing ones are not an error. Does not wait for them to be gone."""


@dataclass(frozen=True, slots=True)
class KubectlCluster:
    """:class:`Cluster` through the ``kubectl`` binary. ``call_timeout`` bounds every kubectl run (seconds);
    a run still going then is terminated and reported."""

    kubeconfig: str | None = None
    context: str | None = None
    kubectl: str = "kubectl"
    call_timeout: float = 60.0

    def _command(self, args: Sequence[str]) -> list[str]:
        command = [self.kubectl]
        if self.kubeconfig is not None:
            command += ["--kubeconfig", self.kubeconfig]
        if self.context is not None:
            command += ["--context", self.context]
        return [*command, *args]

    async def _run(self, args: Sequence[str], stdin: bytes = b"") -> str:
        command = self._command(args)
        what = "kubectl " + " ".join(args)
        process: subprocess.CompletedProcess[bytes] | None = None
        with trio.move_on_after(self.call_timeout):
            try:
                process = await trio.run_process(
                    command, stdin=stdin, capture_stdout=True, capture_stderr=True, check=False
                )
            except FileNotFoundError:
                raise KubectlError(
                    f"{self.kubectl!r} was not found; install kubectl or pass --kubectl PATH"
                ) from None
            except PermissionError:
                raise KubectlError(f"{self.kubectl!r} is not executable") from None
        if process is None:
            raise KubectlError(
                f"{what} did not finish within {self.call_timeout:g} s; is the cluster reachable?"
            )
        if process.returncode != 0:
            message = (
                _one_line(process.stderr.decode(errors="replace")) or f"exit status {process.returncode}"
            )
            raise KubectlError(f"{what} failed: {message}")
        return process.stdout.decode(errors="replace")

    async def apply(self, documents: Sequence[Mapping[str, Any]]) -> None:
        await self._run(["apply", "-f", "-", "-o", "name"], stdin=_stream(documents))

    async def get(self, resource: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        args = ["get", resource, name, "-o", "json", "--ignore-not-found"]
        if namespace is not None:
            args += ["-n", namespace]
        out = await self._run(args)
        if not out.strip():
            return None
        return _object(out, what=f"{resource}/{name}")

    async def list(self, resource: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        out = await self._run(["get", resource, "-n", namespace, "-l", label_selector, "-o", "json"])
        items = _object(out, what=f"{resource} list").get("items", [])
        return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

    async def logs(self, pod: str, namespace: str) -> str:
        return await self._run(["logs", "-n", namespace, f"pod/{pod}", "--tail=-1"])

    async def delete(self, documents: Sequence[Mapping[str, Any]]) -> None:
        await self._run(["delete", "-f", "-", "--ignore-not-found", "--wait=false"], stdin=_stream(documents))


# A klog line: severity letter, MMDD, time, thread id, source file, then the message (kubectl's own logging).
_KLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [^\]]+\] ")


def _one_line(stderr: str) -> str:
    """kubectl's error as one line: its own messages, without the klog lines it logs on the way (retries of
    discovery and the like), which repeat what the final message says; the last klog line when there is
    nothing else."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    plain = [line for line in lines if not _KLOG.match(line)]
    if plain:
        return "; ".join(plain)
    return _KLOG.sub("", lines[-1]) if lines else ""


def _stream(documents: Sequence[Mapping[str, Any]]) -> bytes:
    """The objects as a multi-document YAML stream: kubectl validates each object by its own kind, where a
    ``v1 List`` would need the server to describe the List kind too (and a JSON stream is read as one object)."""
    return yaml.safe_dump_all([dict(doc) for doc in documents], sort_keys=False).encode()


def _object(text: str, *, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise KubectlError(f"kubectl printed something other than JSON for {what}") from None
    if not isinstance(value, dict):
        raise KubectlError(f"kubectl returned something other than an object for {what}")
    return value
