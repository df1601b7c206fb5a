"""Bounded waits on the suite's objects, by polling a :class:`~couchestor.volumes.cluster.Cluster`.

Each wait polls every ``poll_interval`` seconds until its condition holds or ``time_limit`` passes; the deadline
also cancels a poll that is under way. Durations come from ``trio.current_time()``, so they are as precise as
the poll interval (PVCs have no "bound at" timestamp to read instead). Pod mount times are read from the pod's
own timestamps, which are more precise than polling (see :func:`pod_mount_seconds`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trio

from couchestor.errors import UserError
from couchestor.volumes.cluster import Cluster

Progress = Callable[[str], None]

# How often a wait says what it is waiting for, in seconds.
PROGRESS_EVERY = 10.0


class WaitTimeout(UserError):
    """A condition did not hold before its deadline; the message says what was last seen."""


class WaitFailed(UserError):
    """An object reached a state it cannot recover from (a Lost PVC, a failed Job's pod that never ran)."""


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def pod_mount_seconds(pod: dict[str, Any]) -> float | None:
    """Seconds from the pod's creation until its volumes were mounted, from the pod's own timestamps.

    The kubelet starts a pod's sandbox only once its volumes are attached and mounted, so the
    ``PodReadyToStartContainers`` condition (Kubernetes 1.29+) marks the mount, plus sandbox creation. Older
    clusters lack it; the first container's start time (which adds the image pull) is used then. None when
    neither is known yet. Kubernetes timestamps have a resolution of one second.
    """
    created = _timestamp(_get(pod, "metadata", "creationTimestamp"))
    if created is None:
        return None
    mounted: datetime | None = None
    for condition in _get(pod, "status", "conditions") or []:
        if _get(condition, "type") == "PodReadyToStartContainers" and _get(condition, "status") == "True":
            mounted = _timestamp(_get(condition, "lastTransitionTime"))
    if mounted is None:
        for status in _get(pod, "status", "containerStatuses") or []:
            for state in ("running", "terminated"):
                started = _timestamp(_get(status, "state", state, "startedAt"))
                if started is not None:
                    mounted = started if mounted is None else min(mounted, started)
    if mounted is None:
        return None
    return max(0.0, (mounted - created).total_seconds())


def _pod_state(pod: dict[str, Any] | None) -> str:
    """A pod's phase and, when a container waits, why (``Pending: ContainerCreating``)."""
    if pod is None:
        return "no pod yet"
    phase = _get(pod, "status", "phase") or "Unknown"
    for status in _get(pod, "status", "containerStatuses") or []:
        reason = _get(status, "state", "waiting", "reason")
        if reason:
            return f"{phase}: {reason}"
    return str(phase)


async def wait_pvc_bound(
    cluster: Cluster,
    name: str,
    namespace: str,
    *,
    time_limit: float,
    poll_interval: float,
    progress: Progress,
) -> float:
    """Wait until the PVC is Bound; return the seconds waited. Raises :class:`WaitTimeout` or, for a Lost
    claim, :class:`WaitFailed`."""
    start = trio.current_time()
    phase = "not found"
    next_note = start + PROGRESS_EVERY
    with trio.move_on_after(time_limit):
        while True:
            pvc = await cluster.get("persistentvolumeclaim", name, namespace)
            phase = "not found" if pvc is None else str(_get(pvc, "status", "phase") or "Pending")
            now = trio.current_time()
            if phase == "Bound":
                return now - start
            if phase == "Lost":
                raise WaitFailed(f"PVC {namespace}/{name} is Lost: its PersistentVolume is gone")
            if now >= next_note:
                progress(f"PVC {name} still {phase} after {now - start:.0f} s")
                next_note = now + PROGRESS_EVERY
            await trio.sleep(poll_interval)
    raise WaitTimeout(
        f"PVC {namespace}/{name} was not Bound within {time_limit:g} s (last phase: {phase}); "
        f"`kubectl describe pvc -n {namespace} {name}` shows the provisioner's events"
    )


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How a Job ended: success, its pod, and the pod's mount time (None when unknown)."""

    name: str
    succeeded: bool
    pod: str | None
    mount_seconds: float | None
    message: str  # the Job's failure condition message, or ""


def _job_finished(job: dict[str, Any] | None) -> tuple[bool, str] | None:
    """(succeeded, message) once the Job has a true Complete or Failed condition, else None."""
    for condition in _get(job, "status", "conditions") or []:
        if _get(condition, "status") != "True":
            continue
        kind = _get(condition, "type")
        if kind == "Complete":
            return True, ""
        if kind == "Failed":
            return (
                False,
                f"{_get(condition, 'reason') or 'Failed'}: {_get(condition, 'message') or ''}".strip(": "),
            )
    return None


async def wait_job_finished(
    cluster: Cluster,
    name: str,
    namespace: str,
    *,
    time_limit: float,
    poll_interval: float,
    progress: Progress,
) -> JobOutcome:
    """Wait until the Job completes or fails; raises :class:`WaitTimeout` when it does neither in time."""
    start = trio.current_time()
    pod: dict[str, Any] | None = None
    next_note = start + PROGRESS_EVERY
    with trio.move_on_after(time_limit):
        while True:
            job = await cluster.get("job", name, namespace)
            pods = await cluster.list("pod", namespace, f"job-name={name}")
            if pods:
                pod = pods[0]
            finished = _job_finished(job)
            if finished is not None:
                succeeded, message = finished
                return JobOutcome(
                    name=name,
                    succeeded=succeeded,
                    pod=None if pod is None else _get(pod, "metadata", "name"),
                    mount_seconds=None if pod is None else pod_mount_seconds(pod),
                    message=message,
                )
            now = trio.current_time()
            if now >= next_note:
                progress(f"job {name}: pod {_pod_state(pod)} after {now - start:.0f} s")
                next_note = now + PROGRESS_EVERY
            await trio.sleep(poll_interval)
    raise WaitTimeout(
        f"job {namespace}/{name} did not finish within {time_limit:g} s (pod: {_pod_state(pod)}); "
        f"`kubectl describe pod -n {namespace} -l job-name={name}` shows why"
    )
