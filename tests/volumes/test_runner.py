"""The suite runner against an in-memory cluster that binds claims and runs Jobs on trio's mock clock.

The fake plays what a cluster shows through kubectl: a PVC turns Bound some seconds after it is created (or
once a pod uses it, for WaitForFirstConsumer classes), each Job's pod records when its volume was mounted, and
Job logs hold the result blocks the real scripts print (the fio block is the real fio output of this run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio
import trio.testing

from couchestor.errors import UserError
from couchestor.volumes.grading import Verdict, grade
from couchestor.volumes.markers import begin_line
from couchestor.volumes.runner import RunSettings, run_suite
from couchestor.volumes.suite import SuiteOptions
from couchestor.volumes.thresholds import ClassThresholds
from couchestor.volumes.waits import pod_mount_seconds

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
END = "<<< couchestor-result end"


def _stamp(seconds: float) -> str:
    return (EPOCH + timedelta(seconds=int(seconds))).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ClassBehaviour:
    bind_after: float | None = 2.0  # None: never binds
    binding_mode: str = "Immediate"
    mount_after: float = 4.0
    job_seconds: float = 10.0
    fail_jobs: bool = False
    no_pods: bool = False
    verdict: str = '{"files": 8, "verified": 8, "failed": 0, "expected": 8}'
    failing_jobs: tuple[str, ...] = ()  # suffixes of Jobs that fail with their pod's log intact
    fio_exit: int = 0


@dataclass
class FakeCluster:
    fio_log: str
    behaviour: dict[str, ClassBehaviour]
    objects: dict[tuple[str, str], tuple[dict[str, Any], float]] = field(default_factory=dict)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    applied: list[tuple[str, str]] = field(default_factory=list)

    def _class_of(self, obj: dict[str, Any]) -> str:
        if obj["kind"] == "PersistentVolumeClaim":
            return obj["spec"]["storageClassName"]
        return next(
            e["value"]
            for e in obj["spec"]["template"]["spec"]["containers"][0]["env"]
            if e["name"] == "STORAGE_CLASS"
        )

    async def apply(self, documents):
        await trio.sleep(0.1)
        for doc in documents:
            key = (doc["kind"], doc["metadata"]["name"])
            self.applied.append(key)
            self.objects.setdefault(key, (doc, trio.current_time()))

    async def get(self, resource, name, namespace):
        await trio.sleep(0.1)
        now = trio.current_time()
        if resource == "storageclass":
            if name not in self.behaviour:
                return None
            return {"metadata": {"name": name}, "volumeBindingMode": self.behaviour[name].binding_mode}
        if resource == "persistentvolumeclaim":
            found = self.objects.get(("PersistentVolumeClaim", name))
            if found is None:
                return None
            doc, created = found
            b = self.behaviour[self._class_of(doc)]
            ready = b.bind_after is not None and now - created >= b.bind_after
            if b.binding_mode == "WaitForFirstConsumer":
                ready = ready and any(k[0] == "Job" and k[1].startswith(name) for k in self.objects)
            return {"status": {"phase": "Bound" if ready else "Pending"}}
        if resource == "job":
            found = self.objects.get(("Job", name))
            if found is None:
                return None
            doc, started = found
            b = self.behaviour[self._class_of(doc)]
            if now - started < b.job_seconds:
                return {"status": {}}
            kind = "Failed" if b.fail_jobs or name.endswith(b.failing_jobs or ("\0",)) else "Complete"
            return {
                "status": {"conditions": [{"type": kind, "status": "True", "reason": "BackoffLimitExceeded"}]}
            }
        raise AssertionError(resource)

    async def list(self, resource, namespace, label_selector):
        await trio.sleep(0.1)
        job_name = label_selector.removeprefix("job-name=")
        found = self.objects.get(("Job", job_name))
        if found is None or self.behaviour[self._class_of(found[0])].no_pods:
            return []
        doc, started = found
        b = self.behaviour[self._class_of(doc)]
        status: dict[str, Any] = {"phase": "Pending"}
        if trio.current_time() - started >= b.mount_after:
            status = {
                "phase": "Running",
                "conditions": [
                    {
                        "type": "PodReadyToStartContainers",
                        "status": "True",
                        "lastTransitionTime": _stamp(started + b.mount_after),
                    }
                ],
            }
        return [
            {"metadata": {"name": f"{job_name}-pod", "creationTimestamp": _stamp(started)}, "status": status}
        ]

    async def logs(self, pod, namespace):
        await trio.sleep(0.1)
        job_name = pod.removesuffix("-pod")
        doc, _ = self.objects[("Job", job_name)]
        storage_class = self._class_of(doc)
        b = self.behaviour[storage_class]
        if job_name.endswith("-fio"):
            log = self.fio_log.replace("storage-class=fast-ssd", f"storage-class={storage_class}")
            return log.replace("exit=0", f"exit={b.fio_exit}")
        if job_name.endswith("-integrity-write"):
            return (
                f'{begin_line(kind="integrity-write", storage_class=storage_class)}\n{{"files": 8}}\n{END}\n'
            )
        return f"checking\n{begin_line(kind='integrity-verify', storage_class=storage_class)}\n{b.verdict}\n{END}\n"

    async def delete(self, documents):
        await trio.sleep(0.1)
        for doc in documents:
            key = (doc["kind"], doc["metadata"]["name"])
            self.deleted.append(key)
            self.objects.pop(key, None)


EASY = ClassThresholds(
    pvc_bound_seconds=30,
    pod_mount_seconds=60,
    seq_write_mbps=0.001,
    seq_read_mbps=0.001,
    random_read_4k_iops=0.001,
    latency_ms=1e9,
    integrity_percent=100,
)


async def _run(cluster, classes, wait_limit=300.0):
    lines: list[str] = []
    measured = await run_suite(
        cluster, classes, SuiteOptions(), RunSettings(timeout=wait_limit, poll_interval=1.0), lines.append
    )
    return measured, lines


@pytest.fixture
def clock():
    return trio.testing.MockClock(autojump_threshold=0)


async def test_each_class_is_timed_measured_and_cleaned_up(fio_log, clock):
    cluster = FakeCluster(
        fio_log,
        {
            "fast-ssd": ClassBehaviour(bind_after=3, mount_after=4),
            "standard-storage": ClassBehaviour(bind_after=7),
        },
    )
    measured, lines = await _run(cluster, ["fast-ssd", "standard-storage"])
    fast, standard = measured
    assert (fast.storage_class, standard.storage_class) == ("fast-ssd", "standard-storage")
    # Bound is observed at the first poll after the claim binds: within one poll interval (plus call time).
    assert 3 <= fast.pvc_bound_seconds <= 4.5
    assert 7 <= standard.pvc_bound_seconds <= 8.5
    assert fast.pod_mount_seconds == 4  # from the pod's own timestamps
    assert fast.integrity is not None
    assert fast.integrity.percent == 100
    assert len(fast.fio_jobs) == 5
    assert not fast.problems
    report = grade(fast, EASY, require_all=True)
    assert report.passed, report
    # Every object of every class was deleted afterwards, Jobs before their claim.
    for name in ("vt-fast-ssd", "vt-standard-storage"):
        assert ("PersistentVolumeClaim", name) in cluster.deleted
        assert cluster.deleted.index(("Job", f"{name}-fio")) < cluster.deleted.index(
            ("PersistentVolumeClaim", name)
        )
    assert not [key for key in cluster.objects if key[0] in ("Job", "PersistentVolumeClaim", "ConfigMap")]
    assert ("Namespace", "storage-tests") in cluster.objects, "the namespace may be the user's: it stays"
    assert any(line.startswith("[fast-ssd] PVC bound in") for line in lines)
    # The Jobs of a class run one after another on its ReadWriteOnce claim.
    jobs = [name for kind, name in cluster.applied if kind == "Job" and name.startswith("vt-fast-ssd")]
    assert jobs == ["vt-fast-ssd-integrity-write", "vt-fast-ssd-integrity-verify", "vt-fast-ssd-fio"]


async def test_a_claim_that_never_binds_fails_its_class_only(fio_log, clock):
    cluster = FakeCluster(
        fio_log, {"fast-ssd": ClassBehaviour(bind_after=None), "standard-storage": ClassBehaviour()}
    )
    measured, lines = await _run(cluster, ["fast-ssd", "standard-storage"], wait_limit=45)
    fast, standard = measured
    assert fast.pvc_bound_seconds is None
    (problem,) = fast.problems
    assert "PVC storage-tests/vt-fast-ssd was not Bound within 45 s (last phase: Pending)" in problem
    assert not any(name.startswith("vt-fast-ssd-") for kind, name in cluster.applied if kind == "Job")
    assert ("PersistentVolumeClaim", "vt-fast-ssd") in cluster.deleted
    assert not [name for kind, name in cluster.deleted if kind == "Job" and name.startswith("vt-fast-ssd")]
    assert any("still Pending after" in line for line in lines), "progress while waiting"
    report = grade(fast, EASY, require_all=True)
    assert not report.passed
    assert report.criteria[0].verdict is Verdict.MISSING
    assert grade(standard, EASY, require_all=True).passed


async def test_wait_for_first_consumer_classes_bind_when_their_first_job_starts(fio_log, clock):
    cluster = FakeCluster(fio_log, {"backup-storage": ClassBehaviour(binding_mode="WaitForFirstConsumer")})
    (backup,) = (await _run(cluster, ["backup-storage"]))[0]
    assert backup.pvc_bound_seconds is not None
    assert not backup.problems
    assert cluster.applied.count(("Job", "vt-backup-storage-integrity-write")) == 1


async def test_failed_jobs_without_pods_are_reported_as_problems(fio_log, clock):
    cluster = FakeCluster(fio_log, {"fast-ssd": ClassBehaviour(fail_jobs=True, no_pods=True)})
    (fast,) = (await _run(cluster, ["fast-ssd"]))[0]
    assert len(fast.problems) == 3
    assert all("ran no pod (BackoffLimitExceeded" in p for p in fast.problems)
    assert not grade(fast, EASY, require_all=True).passed


async def test_failed_jobs_that_printed_results_are_graded_from_their_logs(fio_log, clock):
    """A verifier that found damage and a fio that exited non-zero both fail their Job; what they printed still
    counts: the damaged share fails integrity, fio's exit status is a problem, the other criteria are graded."""
    cluster = FakeCluster(
        fio_log,
        {
            "fast-ssd": ClassBehaviour(
                verdict='{"files": 8, "verified": 6, "failed": 2, "expected": 8}',
                failing_jobs=("-integrity-verify", "-fio"),
                fio_exit=1,
            )
        },
    )
    (fast,) = (await _run(cluster, ["fast-ssd"]))[0]
    assert fast.integrity is not None
    assert fast.integrity.percent == 75
    (problem,) = fast.problems
    assert problem.startswith("fio exited with status 1")
    report = grade(fast, EASY, require_all=True)
    assert not report.passed
    verdicts = {r.label: r.verdict for r in report.criteria}
    assert verdicts.pop("data integrity after remount") is Verdict.FAIL
    assert set(verdicts.values()) == {Verdict.PASS}
    assert ("Job", "vt-fast-ssd-fio") in cluster.applied, "a failed verification does not stop the class"


async def test_an_unknown_storage_class_stops_the_run_before_anything_is_applied(fio_log, clock):
    cluster = FakeCluster(fio_log, {"fast-ssd": ClassBehaviour()})
    with pytest.raises(UserError, match="StorageClass 'gold' does not exist"):
        await _run(cluster, ["fast-ssd", "gold"])
    assert cluster.applied == []


async def test_cancelling_a_run_still_cleans_up(fio_log, clock):
    cluster = FakeCluster(fio_log, {"fast-ssd": ClassBehaviour(job_seconds=1000)})
    with trio.move_on_after(60):
        await _run(cluster, ["fast-ssd"])
    assert ("Job", "vt-fast-ssd-integrity-write") in cluster.deleted
    assert ("PersistentVolumeClaim", "vt-fast-ssd") in cluster.deleted
    assert ("ConfigMap", "couchestor-volume-tests") in cluster.deleted


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (
            {
                "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
                "status": {
                    "conditions": [
                        {
                            "type": "PodReadyToStartContainers",
                            "status": "True",
                            "lastTransitionTime": "2026-01-01T00:00:07Z",
                        }
                    ],
                    "containerStatuses": [{"state": {"running": {"startedAt": "2026-01-01T00:00:20Z"}}}],
                },
            },
            7.0,
        ),
        (
            {
                "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
                "status": {
                    "containerStatuses": [{"state": {"terminated": {"startedAt": "2026-01-01T00:01:05Z"}}}]
                },
            },
            65.0,
        ),
        ({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Pending"}}, None),
        ({"metadata": {}, "status": {}}, None),
        ({"metadata": {"creationTimestamp": "garbage"}}, None),
    ],
)
def test_pod_mount_time_comes_from_the_pods_timestamps(pod, expected):
    assert pod_mount_seconds(pod) == expected
