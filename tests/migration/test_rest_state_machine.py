"""Random fault sequences against migrations on Mayastor 2.x: the pure plan driving the real RestBackend.

The backend talks to the simulated control plane's own REST app (through httpx's ASGI transport) and to a
model of the API server holding the volume's PV (the intent and the cordon record, with resourceVersion
preconditions). Between steps hypothesis advances simulated time, faults replicas (survivably), and makes
writes lose their answer after they were applied: a pool cordon, a scale, an uncordon, a PV patch. The
operator reads, decides with :func:`next_step` as the runner does, and writes; it may also see a step fail and
decide again.

Oracles: the invariant checker (never fewer Synced replicas than when the migration began), every run ends
``Finished``, and once it has, no pool or node cordon of the operator is left anywhere (a leaked cordon keeps
Mayastor from placing replicas on that pool for good).
"""

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import pytest
import trio
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from trio.testing import MockClock

from couchestor.durations import format_time
from couchestor.kube.client import KubeClient
from couchestor.kube.config import ClusterConfig
from couchestor.kube.store import Store
from couchestor.kube.watcher import Apply
from couchestor.labels import includes
from couchestor.mayastor_rest import MayastorRestClient, RestBackend
from couchestor.mayastor_rest.backend import PV_INDEXERS
from couchestor.migration import intent as intents
from couchestor.migration.backend import BackendError, IntentConflict
from couchestor.migration.plan import Finished, Wait, next_step
from couchestor.sim.mayastor.invariant import InvariantChecker
from couchestor.sim.mayastor.model import Pool
from couchestor.sim.mayastor_rest.app import RestApp
from couchestor.sim.mayastor_rest.state import RELEASES, ControlPlane
from k8s_schemas.annotations import MAYASTOR_CSI_DRIVER, MIGRATION_INTENT
from k8s_schemas.core import PersistentVolume
from tests.migration.test_state_machine import write_step

GI = 2**30
VOL = "0b5d4c55-6c0e-4f0e-9a55-5f3a5c4b2a01"
PV = f"pvc-{VOL}"
HOT = {"tier": "hot"}
COLD = {"tier": "cold"}
T0 = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
CONFIG = ClusterConfig(server="https://kube.test", verify=False)
DRAIN_ROUNDS = 300
DRAIN_TICK = 30.0

SETTINGS = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class PvApi:
    """The API server, for the one PV: merge-patches of its annotations with resourceVersion preconditions."""

    def __init__(self, machine):
        self.m = machine
        self.annotations = {}
        self.version = 1
        self.lose_next_reply = False

    def object(self):
        meta = {"name": PV, "resourceVersion": str(self.version)}
        if self.annotations:
            meta["annotations"] = dict(self.annotations)
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": meta,
            "spec": {"csi": {"driver": MAYASTOR_CSI_DRIVER, "volumeHandle": VOL}},
        }

    def handler(self, request):
        if request.method == "GET":
            return httpx.Response(200, json=self.object())
        patch = json.loads(request.content)
        meta = patch.get("metadata") or {}
        if "resourceVersion" in meta and meta["resourceVersion"] != str(self.version):
            return httpx.Response(409, json={"kind": "Status", "code": 409, "reason": "Conflict"})
        for key, value in (meta.get("annotations") or {}).items():
            if value is None:
                self.annotations.pop(key, None)
            else:
                self.annotations[key] = value
        self.version += 1
        self.m.observe()
        if self.lose_next_reply:
            self.lose_next_reply = False
            self.m.stats["lost replies (PV)"] += 1
            raise httpx.ReadError("connection reset after the server applied the write", request=request)
        return httpx.Response(200, json=self.object())


class LossyControlPlane(httpx.AsyncBaseTransport):
    """The control plane's REST app; ``lose`` names the next write (method, path suffix) whose answer is lost
    after the control plane applied it."""

    def __init__(self, machine, app):
        self.m = machine
        self.inner = httpx.ASGITransport(app=app)
        self.lose: str | None = None

    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        parts = request.url.path.split(
            "/"
        )  # .../replica_count/{n} and nodes' .../cordon/{label}: the verb is [-2]
        what = parts[-2] if parts[-2] in ("replica_count", "cordon") else parts[-1]
        if request.method != "GET":
            self.m.observe()
            if self.lose is not None and self.lose == what:
                self.lose = None
                await response.aread()
                self.m.stats[f"lost replies ({what})"] += 1
                raise httpx.ReadError("connection reset after the control plane acted", request=request)
        return response


class RestMigrationMachine(RuleBasedStateMachine):
    stats: Counter[str] = Counter()
    #: The release the control plane plays: 2.7 steers by node cordon, 2.8+ by pool cordon.
    release = "2.8+"

    @initialize(
        n=st.integers(1, 2),
        timeout=st.sampled_from([120, 900]),
        placement=st.none() | st.integers(0, 2**32 - 1),
    )
    def setup(self, n, timeout, placement):
        self.n = n
        self.now = 0.0
        self.finished = None
        self.checker = InvariantChecker(keep_transitions=False)
        self.plane = ControlPlane(release=self.release)
        self.plane.cluster.placement_rng = None if placement is None else random.Random(placement)
        for i in range(1, 4):
            self.plane.add_pool(Pool(f"c{i}", f"node{i}", dict(COLD), 100 * GI))
        for i in range(1, 3):
            self.plane.add_pool(Pool(f"h{i}", f"node-h{i}", dict(HOT), 100 * GI))
        self.plane.create_volume(
            VOL, size=GI, replicas=n, topology=None, now=0.0, pools=[f"c{i}" for i in range(1, n + 1)]
        )
        self.volume = self.plane.volume(VOL)
        self.app = RestApp(self.plane, clock=lambda: self.now)
        self.rest = LossyControlPlane(self, self.app)
        self.pv = PvApi(self)
        self.pvs = Store(indexers=PV_INDEXERS)
        self.pvs.apply(Apply(msgspec.convert(self.pv.object(), PersistentVolume)))
        self.observe()
        source = [r.pool for r in self.volume.replicas]
        intent = intents.Intent(
            pv=PV,
            volume=VOL,
            policy="p",
            from_tier="cold",
            to_tier="hot",
            target_pool="h1",
            source_pools=source,
            original_replicas=n,
            original_inclusion={},
            target_inclusion=dict(HOT),
            started_at=format_time(T0),
            operator="op-a",
            trigger_iops=6500.0,
            timeout_seconds=timeout,
        )
        self.pv.annotations[MIGRATION_INTENT] = intents.encode(intent)
        self.pv.version += 1
        self.observe()
        self.stats["examples"] += 1

    # --- the world --------------------------------------------------------------------------------------------

    def healthy(self):
        return self.volume.synced

    def observe(self):
        v = self.volume
        self.checker.observe(
            VOL,
            self.now,
            num_replicas=v.num_replicas,
            replicas=[(r.uuid, r.pool, r.state, r.sync_state) for r in v.replicas],
            has_intent=MIGRATION_INTENT in self.pv.annotations,
        )

    def pools_matching(self, labels):
        return {p.name for p in self.plane.cluster.pools.values() if includes(p.labels, labels)}

    def call(self, use):
        async def main():
            async with (
                KubeClient(CONFIG, transport=httpx.MockTransport(self.pv.handler), qps=0) as kube,
                MayastorRestClient("http://control-plane.test", transport=self.rest) as rest,
            ):
                backend = RestBackend(rest, kube, self.pvs, poll_interval=0.01)
                return await use(backend)

        return trio.run(main, clock=MockClock(autojump_threshold=0))

    # --- the operator -----------------------------------------------------------------------------------------

    def operate(self):
        """One runner iteration: read, decide, write."""
        if self.finished is not None:
            return self.finished
        try:
            state = self.call(lambda b: b.read(VOL))
        except BackendError:
            self.stats["reads failed"] += 1
            return None
        assert state.intent is not None
        s = next_step(
            state,
            state.intent,
            now=T0 + timedelta(seconds=self.now),
            pool_health={p.name: p.state for p in self.plane.cluster.pools.values()},
            target_pools=self.pools_matching(state.intent.target_inclusion),
            source_tier_pools=self.pools_matching(state.intent.original_inclusion),
        )
        if isinstance(s, Wait):
            return s
        before = self.healthy()
        try:
            self.call(lambda b: write_step(b, state, s))
        except (IntentConflict, BackendError) as exc:
            self.stats[f"refused: {type(exc).__name__}"] += 1
            return s
        assert self.healthy() >= min(before, self.n), (
            f"{s} lowered healthy replicas {before} -> {self.healthy()}"
        )
        if isinstance(s, Finished):
            self.finished = s
            self.stats[s.outcome] += 1
        return s

    def react(self):
        for _ in range(8):
            if isinstance(self.operate(), Wait | Finished | None):
                return

    @rule()
    def operator_steps(self):
        self.operate()

    @rule(dt=st.floats(0.5, 200), noticed=st.booleans())
    def time_passes(self, dt, noticed):
        self.advance(dt)
        if noticed:
            self.react()

    def advance(self, dt):
        while dt > 0:
            chunk = min(dt, 20.0)
            dt -= chunk
            self.now += chunk
            self.plane.advance(self.now, chunk)
            self.observe()

    @rule(what=st.sampled_from(["cordon", "replica_count", "uncordon", "pv"]))
    def next_write_loses_its_reply(self, what):
        # Applied, answer lost. ("uncordon" is the DELETE of .../cordon.)
        if what == "pv":
            self.pv.lose_next_reply = True
        else:
            self.rest.lose = "cordon" if what in ("cordon", "uncordon") else what
        self.react()

    @rule(data=st.data())
    def a_replica_faults(self, data):
        if self.finished is not None or not self.volume.replicas:
            return
        victim = data.draw(st.sampled_from(self.volume.replicas))
        if victim.healthy and self.healthy() - 1 < self.n:
            return  # not survivable
        self.plane.fault_replica(VOL, victim.pool, self.now)
        self.observe()
        self.stats["replica faults"] += 1
        self.react()

    @invariant()
    def never_below_the_floor(self):
        if hasattr(self, "checker"):
            assert not self.checker.violations, self.checker.violations

    def teardown(self):
        if not hasattr(self, "checker"):
            return
        self.rest.lose, self.pv.lose_next_reply = None, False
        for _ in range(DRAIN_ROUNDS):
            if isinstance(self.operate(), Finished):
                break
            self.advance(DRAIN_TICK)
        assert self.finished is not None, f"not finished after draining: {self.volume}"
        # Recovery (the next leader's, or the periodic one) lifts whatever a failed step left recorded.
        self.call(lambda b: b.recover())
        assert self.plane.pool_cordons == {}, f"cordons left behind: {sorted(self.plane.pool_cordons)}"
        assert all(not labels for labels in self.plane.node_cordons.values()), self.plane.node_cordons
        self.checker.assert_clean()


@pytest.mark.slow
@pytest.mark.parametrize("release", RELEASES)
def test_rest_migrations_leave_no_cordon_and_no_data_loss_under_lost_replies(release):
    machine = type(f"RestMigrationMachine{release}", (RestMigrationMachine,), {"release": release})
    machine.stats = Counter()
    run_state_machine_as_test(machine, settings=SETTINGS)
    stats = machine.stats
    print(f"\nREST migration state machine: {dict(stats)}")
    assert stats["completed"] + stats["rolled-back"] == stats["examples"]
    assert stats["lost replies (cordon)"] > 0
