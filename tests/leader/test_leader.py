"""Leader election on a Lease served by the API server emulator.

Each instance gets its own client whose transport can cut it off from the Lease (requests hang, the worst case
for fencing: the renewal neither succeeds nor fails). The transport timestamps, on trio's clock, every Lease
write that succeeded and every write the work makes, so the tests check the fencing promise directly: a leader
starts no write later than ``renew_deadline`` after its last successful renewal, and two instances never act
at once. Durations are short but the margins between them are what the checks rely on, never a wall time.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio

from couchestor.kube.backoff import BackoffPolicy
from couchestor.kube.client import KubeClient
from couchestor.kube.config import load_kubeconfig
from couchestor.kube.resources import CONFIG_MAP, LEASE
from couchestor.kube.retry import RetryPolicy
from couchestor.leader import LeaderElector, Observation, fenced_cleanup, may_acquire, next_spec
from k8s_schemas.core import Lease, LeaseSpec
from k8s_schemas.meta import ObjectMeta
from tests.kube.mock import wait_for

NS = "default"
LEASE_NAME = "couchestor-leader"
FAST_RETRY = RetryPolicy(max_attempts=2, backoff=BackoffPolicy(initial=0.02, cap=0.1, reset_after=5.0))


class Link(httpx.AsyncBaseTransport):
    """A real connection to the emulator that a test can cut for Lease requests, with a log of writes."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.cut = False
        self.lease_writes: list[float] = []  # trio time each successful Lease write was sent
        self.work_writes: list[float] = []  # trio time each ConfigMap write was sent

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        is_lease = "/leases" in request.url.path
        if self.cut and is_lease:
            await trio.sleep_forever()
        # Let a pending cancellation (the fence) land before the request counts as sent.
        await trio.lowlevel.checkpoint()
        sent = trio.current_time()
        if request.method != "GET" and "/configmaps" in request.url.path:
            self.work_writes.append(sent)
        response = await self._inner.handle_async_request(request)
        if is_lease and request.method in ("PUT", "POST") and response.status_code < 400:
            self.lease_writes.append(sent)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class Instance:
    """One operator instance: an elector, its client and link, and what its ``lead`` did."""

    def __init__(self, apiserver: Any, name: str, stage: Stage, **timing: float) -> None:
        self.name = name
        self.link = Link()
        config = load_kubeconfig([Path(apiserver.kubeconfig)])
        self.client = KubeClient(config, transport=self.link, qps=0, timeout=2.0, retry=FAST_RETRY)
        self.changes: list[bool] = []
        self.elector = LeaderElector(
            self.client,
            namespace=NS,
            name=LEASE_NAME,
            identity=name,
            on_change=self.changes.append,
            rng=random.Random(1),
            **timing,
        )
        self.stage = stage
        self.terms = 0  # how many times lead() started
        self.scope = trio.CancelScope()
        self.done = trio.Event()

    async def lead(self) -> None:
        """Act like the operator: write every 50 ms until cancelled, telling the stage who acts."""
        self.terms += 1
        self.stage.enter(self.name)
        try:
            while True:
                await self.client.merge_patch(
                    CONFIG_MAP, "work", {"data": {"by": self.name}}, NS, type=dict, timeout=1.0
                )
                await trio.sleep(0.05)
        finally:
            self.stage.leave(self.name)

    def start(self, nursery: trio.Nursery) -> None:
        async def run() -> None:
            try:
                with self.scope:
                    await self.elector.run(self.lead)
            finally:
                self.done.set()

        nursery.start_soon(run)

    async def stop(self) -> None:
        self.scope.cancel()
        with trio.fail_after(10):
            await self.done.wait()

    async def aclose(self) -> None:
        await self.stop()
        await self.client.aclose()


class Stage:
    """Records who acts, and every moment two instances acted at once."""

    def __init__(self) -> None:
        self.acting: set[str] = set()
        self.overlaps: list[tuple[str, frozenset[str]]] = []

    def enter(self, name: str) -> None:
        if self.acting:
            self.overlaps.append((name, frozenset(self.acting)))
        self.acting.add(name)

    def leave(self, name: str) -> None:
        self.acting.discard(name)


class Cluster:
    """Makes instances on one emulator, all writing the same ConfigMap; ``admin`` is a bystander client."""

    def __init__(self, apiserver: Any, nursery: trio.Nursery) -> None:
        self.apiserver = apiserver
        self.nursery = nursery
        self.stage = Stage()
        self.admin = KubeClient(load_kubeconfig([Path(apiserver.kubeconfig)]), qps=0, timeout=5.0)
        self.made: list[Instance] = []

    def __call__(self, name: str, **timing: float) -> Instance:
        instance = Instance(self.apiserver, name, self.stage, **timing)
        instance.start(self.nursery)
        self.made.append(instance)
        return instance


@pytest.fixture
async def cluster(apiserver, nursery):
    made = Cluster(apiserver, nursery)
    await made.admin.create(
        CONFIG_MAP,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "work", "namespace": NS}},
        type=dict,
    )
    yield made
    for instance in made.made:
        await instance.aclose()
    await made.admin.aclose()


async def lease(admin: KubeClient) -> Lease:
    return await admin.get(LEASE, LEASE_NAME, NS, type=Lease)


@pytest.mark.slow
async def test_one_of_two_leads_and_keeps_renewing(cluster):
    # Generous against a loaded machine: the leader would have to stall for 2 s to lose the Lease.
    timing = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.2}
    a, b = cluster("a", **timing), cluster("b", **timing)
    await wait_for(lambda: a.elector.leading or b.elector.leading, limit=20)
    leader, standby = (a, b) if a.elector.leading else (b, a)
    first = await lease(cluster.admin)
    # Two lease durations: long enough for the standby to take over if renewals were not happening.
    await trio.sleep(2 * timing["lease_duration"])
    now = await lease(cluster.admin)
    assert leader.elector.leading
    assert not standby.elector.leading
    assert (leader.terms, standby.terms) == (1, 0)
    assert now.spec.holder_identity == leader.name
    assert now.spec.renew_time != first.spec.renew_time  # renewed
    assert now.spec.acquire_time == first.spec.acquire_time  # not re-acquired
    assert now.spec.lease_transitions == first.spec.lease_transitions == 0
    assert now.spec.lease_duration_seconds == 3
    assert len(leader.link.lease_writes) >= 5
    assert cluster.stage.overlaps == []


@pytest.mark.slow
async def test_cut_off_leader_stops_by_renew_deadline_then_standby_takes_over(cluster):
    timing = {"lease_duration": 4.0, "renew_deadline": 2.5, "retry_period": 0.3}
    a = cluster("a", **timing)
    await wait_for(lambda: a.elector.leading, limit=20)
    b = cluster("b", **timing)
    await wait_for(lambda: len(a.link.work_writes) >= 5 and len(a.link.lease_writes) >= 2, limit=20)

    a.link.cut = True  # A's renewals now hang; its work could still write.
    await wait_for(lambda: not a.elector.leading, limit=20)
    assert "a" not in cluster.stage.acting
    fence = a.link.lease_writes[-1] + timing["renew_deadline"]
    # No write started after the fence. The slack covers only a stall of the process between the transport's
    # last checkpoint and its timestamp; without fencing A would go on writing for as long as the test runs.
    assert max(a.link.work_writes) <= fence + 1.0

    await wait_for(lambda: b.elector.leading, limit=30)
    await wait_for(lambda: len(b.link.work_writes) >= 1, limit=10)
    assert max(a.link.work_writes) < min(b.link.work_writes)
    held = await lease(cluster.admin)
    assert held.spec.holder_identity == "b"
    assert held.spec.lease_transitions == 1
    assert a.changes == [True, False]
    assert b.changes == [True]
    assert cluster.stage.overlaps == []

    # Reconnected, A finds B's Lease alive and stays a standby.
    a.link.cut = False
    await trio.sleep(2 * timing["retry_period"] * 1.2 + 0.2)
    assert not a.elector.leading
    assert a.terms == 1
    assert (await lease(cluster.admin)).spec.holder_identity == "b"


class CleaningInstance(Instance):
    """An instance whose work ends with a long clean-up that must not be skipped by a cancellation (as the
    REST backend lifts its pool cordons), writing all the while."""

    async def lead(self) -> None:
        try:
            await super().lead()
        finally:
            with fenced_cleanup(30.0):
                for _ in range(15):
                    await self.client.merge_patch(
                        CONFIG_MAP, "work", {"data": {"cleanup": self.name}}, NS, type=dict, timeout=1.0
                    )
                    await trio.sleep(0.2)


@pytest.mark.slow
async def test_shielded_clean_up_of_a_cut_off_leader_writes_nothing_after_the_fence(cluster):
    # Issue 25, defect 2: the clean-up was shielded for up to 30 s, longer than lease_duration - renew_deadline,
    # and the elector waited for it: the deposed leader kept writing after the other had taken the Lease.
    timing = {"lease_duration": 4.0, "renew_deadline": 2.5, "retry_period": 0.3}
    a = CleaningInstance(cluster.apiserver, "a", cluster.stage, **timing)
    a.start(cluster.nursery)
    cluster.made.append(a)
    await wait_for(lambda: a.elector.leading, limit=20)
    b = cluster("b", **timing)
    await wait_for(lambda: len(a.link.work_writes) >= 5 and len(a.link.lease_writes) >= 2, limit=20)

    a.link.cut = True  # A's renewals hang; its work and its clean-up could still write.
    await wait_for(lambda: not a.elector.leading, limit=20)
    fence = a.link.lease_writes[-1] + timing["renew_deadline"]
    assert trio.current_time() <= fence + 1.0, "leadership ends at the fence, not after the clean-up"
    await wait_for(lambda: b.elector.leading, limit=30)
    await wait_for(lambda: len(b.link.work_writes) >= 1, limit=10)
    await trio.sleep(1.0)
    assert max(a.link.work_writes) <= fence + 1.0
    assert max(a.link.work_writes) < min(b.link.work_writes)
    assert cluster.stage.overlaps == []


async def test_fenced_cleanup_runs_whole_when_not_cancelled_and_not_at_all_once_fenced():
    ran: list[str] = []
    with trio.CancelScope(deadline=trio.current_time() + 5.0):
        with fenced_cleanup(1.0) as scope:
            await trio.sleep(0.01)
            ran.append("whole")
        assert not scope.cancelled_caught
    with trio.CancelScope() as fence:
        fence.cancel()
        try:
            await trio.sleep(1)
        finally:
            with fenced_cleanup(30.0):
                await trio.lowlevel.checkpoint()
                ran.append("after the fence")
    assert ran == ["whole"]


async def test_takes_over_an_expired_lease_only_after_lease_duration(cluster):
    crashed = Lease(
        metadata=ObjectMeta(name=LEASE_NAME, namespace=NS),
        spec=LeaseSpec(
            holder_identity="crashed",
            lease_duration_seconds=2,
            acquire_time="2026-01-01T00:00:00.000000Z",
            renew_time="2026-01-01T00:00:00.000000Z",
            lease_transitions=4,
        ),
    )
    await cluster.admin.create(LEASE, crashed, NS, type=Lease)
    timing = {"lease_duration": 2.0, "renew_deadline": 1.0, "retry_period": 0.2}
    started = trio.current_time()
    b = cluster("b", **timing)
    await wait_for(lambda: b.elector.leading, limit=20)
    # The holder's renewTime (long ago) is never trusted: B waits a full lease duration of its own clock.
    assert b.link.lease_writes[0] - started >= timing["lease_duration"]
    held = await lease(cluster.admin)
    assert held.spec.holder_identity == "b"
    assert held.spec.lease_transitions == 5
    assert held.spec.acquire_time == held.spec.renew_time != crashed.spec.acquire_time


async def test_clean_shutdown_hands_the_lease_over_at_once(cluster):
    # A lease duration far longer than the test may take: B can only lead this soon if A released.
    timing = {"lease_duration": 60.0, "renew_deadline": 40.0, "retry_period": 0.2}
    a = cluster("a", **timing)
    await wait_for(lambda: a.elector.leading, limit=20)
    b = cluster("b", **timing)
    await trio.sleep(0.5)
    assert not b.elector.leading
    await a.stop()
    assert a.changes == [True, False]
    assert "a" not in cluster.stage.acting
    await wait_for(lambda: b.elector.leading, limit=20)
    held = await lease(cluster.admin)
    assert held.spec.holder_identity == "b"
    assert cluster.stage.overlaps == []


async def test_lease_taken_by_another_holder_stops_the_leader_at_once(cluster):
    timing = {"lease_duration": 60.0, "renew_deadline": 40.0, "retry_period": 0.2}
    a = cluster("a", **timing)
    await wait_for(lambda: a.elector.leading, limit=20)
    current = await lease(cluster.admin)
    current.spec.holder_identity = "intruder"
    current.spec.renew_time = "2026-01-01T00:00:00.000000Z"
    await cluster.admin.replace(LEASE, current, NS, type=Lease)
    # Far sooner than renew_deadline: the next renewal sees the other holder.
    await wait_for(lambda: not a.elector.leading, limit=20)
    assert "a" not in cluster.stage.acting
    await trio.sleep(0.6)
    assert not a.elector.leading
    assert a.terms == 1
    assert (await lease(cluster.admin)).spec.holder_identity == "intruder"


async def test_lead_returning_or_raising_releases_the_lease(apiserver):
    config = load_kubeconfig([Path(apiserver.kubeconfig)])
    async with KubeClient(config, qps=0, timeout=5.0) as client:
        timing = {"lease_duration": 60.0, "renew_deadline": 40.0, "retry_period": 0.5}
        returned = LeaderElector(client, namespace=NS, name=LEASE_NAME, identity="a", **timing)
        ran = []

        async def lead_and_return() -> None:
            ran.append((await lease(client)).spec.holder_identity)

        with trio.fail_after(20):
            await returned.run(lead_and_return)
        assert ran == ["a"]
        assert (await lease(client)).spec.holder_identity in ("", msgspec.UNSET)

        raising = LeaderElector(client, namespace=NS, name=LEASE_NAME, identity="b", **timing)

        async def lead_and_fail() -> None:
            raise RuntimeError("reconciler broke")

        with trio.fail_after(20), pytest.raises(RuntimeError, match="reconciler broke"):
            await raising.run(lead_and_fail)
        released = await lease(client)
        assert released.spec.holder_identity in ("", msgspec.UNSET)
        assert released.spec.lease_transitions == 1  # b took it from the released Lease once
        assert not raising.leading


def test_timings_must_nest():
    with pytest.raises(ValueError, match="lease_duration > renew_deadline"):
        LeaderElector(None, namespace=NS, name="x", identity="a", lease_duration=5, renew_deadline=5)  # type: ignore[arg-type]


def test_may_acquire_trusts_only_the_local_clock():
    seen = Observation(holder="other", renew_time="t", transitions=0, observed_at=100.0)
    assert may_acquire(None, "me", 100.0, 15.0)
    assert may_acquire(Observation("", "t", 0, 100.0), "me", 100.0, 15.0)
    assert may_acquire(Observation("me", "t", 0, 100.0), "me", 100.0, 15.0)
    assert not may_acquire(seen, "me", 114.9, 15.0)
    assert may_acquire(seen, "me", 115.0, 15.0)


def test_next_spec_counts_transitions_and_keeps_acquire_time_on_renewal():
    from datetime import UTC, datetime

    wall = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)
    fresh = next_spec(None, "me", wall, 15.0, None)
    assert (fresh.holder_identity, fresh.lease_transitions) == ("me", 0)
    assert fresh.acquire_time == fresh.renew_time == "2026-03-04T05:06:07.000890Z"
    takeover = next_spec(Observation("other", "t", 3, 0.0), "me", wall, 15.0, "old")
    assert (takeover.lease_transitions, takeover.acquire_time) == (4, fresh.renew_time)
    renewal = next_spec(Observation("me", "t", 3, 0.0), "me", wall, 15.0, "old")
    assert (renewal.lease_transitions, renewal.acquire_time) == (3, "old")
