"""Run the volume test suite on a cluster and gather what it measured, per StorageClass.

The StorageClasses are tested side by side, one task each in one nursery; within a class the steps run in
order (PVC bound, integrity write, integrity verify after a remount, fio). A failure in one class (a timeout,
a rejected object) is recorded in that class's :class:`Measurements` and does not stop the others. Whatever
happens, including cancellation (Ctrl-C), the objects a class created and the shared ConfigMap are deleted
afterwards (unless ``keep``) within a bounded, shielded cleanup; the namespace is left in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import trio

from couchestor.errors import CoucheStorError, UserError
from couchestor.volumes.cluster import Cluster
from couchestor.volumes.markers import extract_blocks
from couchestor.volumes.measurements import Measurements, from_blocks, merge_by_class
from couchestor.volumes.suite import ClassSuite, SuiteOptions, class_suite, config_map, namespace_object
from couchestor.volumes.waits import JobOutcome, Progress, wait_job_finished, wait_pvc_bound

CLEANUP_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How long to wait (each PVC bind and each Job, in seconds), how often to poll, and whether to keep the
    objects for inspection afterwards."""

    timeout: float = 900.0
    poll_interval: float = 1.0
    keep: bool = False


async def run_suite(
    cluster: Cluster,
    storage_classes: Sequence[str],
    options: SuiteOptions,
    settings: RunSettings,
    progress: Progress,
) -> list[Measurements]:
    """Test every class; return their measurements in the order given. Raises only for problems shared by
    all classes (kubectl missing, namespace rejected, a StorageClass that does not exist)."""
    binding_modes: dict[str, str] = {}
    for storage_class in storage_classes:
        found = await cluster.get("storageclass", storage_class, None)
        if found is None:
            raise UserError(
                f"StorageClass {storage_class!r} does not exist in the cluster; apply its template first"
            )
        binding_modes[storage_class] = str(found.get("volumeBindingMode") or "Immediate")
    shared = config_map(options)
    await cluster.apply([namespace_object(options), shared])
    results: dict[str, Measurements] = {}

    async def run_one(storage_class: str) -> None:
        results[storage_class] = await _run_class(
            cluster,
            class_suite(storage_class, options),
            options,
            settings,
            binding_modes[storage_class] == "WaitForFirstConsumer",
            lambda line: progress(f"[{storage_class}] {line}"),
        )

    try:
        async with trio.open_nursery() as nursery:
            for storage_class in storage_classes:
                nursery.start_soon(run_one, storage_class)
    finally:
        # The namespace stays: it may be the user's own, and deleting one is slow and final.
        if not settings.keep:
            with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
                try:
                    await cluster.delete([shared])
                except CoucheStorError as exc:
                    progress(f"cleanup failed: {exc}")
    return [results[storage_class] for storage_class in storage_classes]


async def _run_class(
    cluster: Cluster,
    suite: ClassSuite,
    options: SuiteOptions,
    settings: RunSettings,
    wait_for_consumer: bool,
    progress: Progress,
) -> Measurements:
    namespace = options.namespace
    pvc_name = suite.pvc["metadata"]["name"]
    measured = Measurements(storage_class=suite.storage_class)
    applied: list[dict[str, Any]] = []  # what to delete afterwards, in the order it was applied

    async def apply(*documents: dict[str, Any]) -> None:
        applied.extend(documents)  # before the call: a timed-out apply may still have created them
        await cluster.apply(documents)

    try:
        # A WaitForFirstConsumer class binds only once a pod uses the claim, so its first Job goes in at once.
        first_jobs = [suite.integrity_write] if wait_for_consumer else []
        await apply(suite.pvc, *first_jobs)
        progress(f"PVC {pvc_name} created; waiting for it to be Bound")
        bound = await wait_pvc_bound(
            cluster,
            pvc_name,
            namespace,
            time_limit=settings.timeout,
            poll_interval=settings.poll_interval,
            progress=progress,
        )
        progress(f"PVC bound in {bound:.1f} s")
        measured = measured.merged(Measurements(suite.storage_class, pvc_bound_seconds=bound))
        mounts: list[float] = []
        for job in suite.jobs:
            if job is not suite.integrity_write or not wait_for_consumer:
                await apply(job)
            outcome = await _finish_job(cluster, job, namespace, settings, progress)
            if outcome.mount_seconds is not None:
                mounts.append(outcome.mount_seconds)
            measured = measured.merged(await _job_results(cluster, suite.storage_class, outcome, namespace))
        if mounts:
            measured = measured.merged(Measurements(suite.storage_class, pod_mount_seconds=max(mounts)))
    except CoucheStorError as exc:
        progress(f"stopped: {exc}")
        measured = measured.merged(Measurements(suite.storage_class, problems=(str(exc),)))
    finally:
        if applied and not settings.keep:
            with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
                try:
                    await cluster.delete(applied[::-1])
                except CoucheStorError as exc:
                    progress(f"cleanup failed: {exc}")
    return measured


async def _finish_job(
    cluster: Cluster, job: dict[str, Any], namespace: str, settings: RunSettings, progress: Progress
) -> JobOutcome:
    name = job["metadata"]["name"]
    progress(f"job {name} started")
    outcome = await wait_job_finished(
        cluster,
        name,
        namespace,
        time_limit=settings.timeout,
        poll_interval=settings.poll_interval,
        progress=progress,
    )
    mount = (
        ""
        if outcome.mount_seconds is None
        else f", volume mounted {outcome.mount_seconds:.0f} s after pod creation"
    )
    progress(f"job {name} {'completed' if outcome.succeeded else 'failed'}{mount}")
    return outcome


async def _job_results(
    cluster: Cluster, storage_class: str, outcome: JobOutcome, namespace: str
) -> Measurements:
    """What the Job's log holds; a Job that printed no result is a problem that names it."""
    if outcome.pod is None:
        return Measurements(storage_class, problems=(f"job {outcome.name} ran no pod ({outcome.message})",))
    log = await cluster.logs(outcome.pod, namespace)
    source = f"log of pod {namespace}/{outcome.pod}"
    found = merge_by_class(
        from_blocks(extract_blocks(log, source=source), source=source, storage_class=storage_class)
    )
    result = found.get(storage_class)
    if result is not None:
        return result
    if outcome.name.endswith("-integrity-write") and outcome.succeeded:
        return Measurements(storage_class)
    reason = outcome.message or "see its log"
    return Measurements(storage_class, problems=(f"job {outcome.name} printed no result ({reason})",))
