"""The simulated control plane's rules: placement, rebuild, scale-down victims, faults, and the invariant."""

import pytest

from couchestor.sim.mayastor.invariant import InvariantChecker, InvariantViolation
from couchestor.sim.mayastor.model import (
    FAULTED_GRACE,
    OPEN_DELAY,
    Cluster,
    Pool,
    Replica,
    Volume,
    choose_pool,
    choose_victims,
)

GI = 2**30


def cluster_with(*pools):
    c = Cluster()
    for p in pools:
        c.pools[p.name] = p
    return c


def hot(name, node, free=100 * GI, **kw):
    return Pool(name, node, {"tier": "hot"}, capacity=free, **kw)


def cold(name, node, free=100 * GI, **kw):
    return Pool(name, node, {"tier": "cold"}, capacity=free, **kw)


def synced(uuid, pool, node):
    return Replica(uuid, pool, node, state="Online", sync_state="Synced")


def observe(checker, c, vol, t, has_intent=False):
    checker.observe(
        vol.name,
        t,
        num_replicas=vol.num_replicas,
        replicas=[(r.uuid, r.pool, r.state, r.sync_state) for r in vol.replicas],
        has_intent=has_intent,
    )


def test_placement_honours_topology_capacity_and_one_replica_per_pool():
    vol = Volume("v", "mayastor", 10 * GI, 2, {"tier": "hot"}, [synced("a", "h1", "n1")])
    pools = [
        hot("h1", "n1"),
        hot("h2", "n1", free=5 * GI),
        cold("c1", "n2"),
        hot("h3", "n3", state="Faulted"),
        hot("h4", "n1"),
    ]
    assert choose_pool(vol, pools).name == "h4"
    pools.append(hot("h5", "n2", free=50 * GI))
    # A node without a replica of this volume wins over more free space.
    assert choose_pool(vol, pools).name == "h5"
    vol.inclusion = {"tier": "warm"}
    assert choose_pool(vol, pools) is None


def test_scale_up_rebuilds_through_unknown_syncing_synced():
    c = cluster_with(cold("c1", "n1"), hot("h1", "n2", rebuild_bandwidth=GI))
    vol = Volume("v", "mayastor", 10 * GI, 1, {}, [synced("a", "c1", "n1")])
    c.volumes["v"] = vol
    vol.num_replicas, vol.inclusion = 2, {"tier": "hot"}
    assert c.reconcile(vol, now=0)
    new = vol.replicas[1]
    assert (new.pool, new.state, new.sync_state) == ("h1", "Unknown", "Unknown")
    assert c.pools["h1"].used == 10 * GI
    c.advance(vol, now=OPEN_DELAY, dt=0)
    assert (new.state, new.sync_state) == ("Online", "Syncing")
    c.advance(vol, now=OPEN_DELAY + 4, dt=4)
    assert vol.progress(new) == 40
    c.advance(vol, now=OPEN_DELAY + 10, dt=6)
    assert new.healthy
    assert vol.state == "Online"
    vol.num_replicas = 1
    c.reconcile(vol, now=20)
    assert [r.pool for r in vol.replicas] == ["h1"]
    assert c.pools["c1"].used == 0
    assert vol.state == "Online"


def test_scale_down_prefers_topology_mismatch_then_unhealthy_never_last_synced():
    pools = {p.name: p for p in [cold("c1", "n1"), hot("h1", "n2"), hot("h2", "n3")]}
    vol = Volume(
        "v",
        "mayastor",
        GI,
        1,
        {"tier": "hot"},
        [synced("old", "c1", "n1"), Replica("new", "h1", "n2", "Online", "Syncing")],
    )
    # The old replica does not fit the topology but is the last Synced copy: the new one goes instead.
    assert [r.uuid for r in choose_victims(vol, pools, 1)] == ["new"]
    vol.replicas[1].sync_state = "Synced"
    assert [r.uuid for r in choose_victims(vol, pools, 1)] == ["old"]
    vol.replicas.append(Replica("bad", "h2", "n3", "Faulted", "Unknown"))
    assert [r.uuid for r in choose_victims(vol, pools, 2)] == ["old", "bad"]


def test_rebuild_stalls_without_progress_and_without_a_source():
    c = cluster_with(cold("c1", "n1"), hot("h1", "n2", stalled=True))
    vol = Volume("v", "mayastor", GI, 2, {}, [synced("a", "c1", "n1")])
    c.volumes["v"] = vol
    c.reconcile(vol, 0)
    c.advance(vol, OPEN_DELAY, 0)
    c.advance(vol, 100, 100)
    assert vol.replicas[1].copied == 0
    c.pools["h1"].stalled = False
    vol.replicas[0].state = "Faulted"  # no Synced source left
    c.advance(vol, 200, 100)
    assert vol.replicas[1].copied == 0


def test_pool_fault_faults_replicas_and_they_are_replaced_after_the_grace_period():
    c = cluster_with(hot("h1", "n1"), hot("h2", "n2"), hot("h3", "n3"))
    vol = Volume("v", "mayastor", GI, 2, {"tier": "hot"}, [synced("a", "h1", "n1"), synced("b", "h2", "n2")])
    c.volumes["v"] = vol
    c.set_pool_state("h2", "Faulted")
    c.advance(vol, 10, 1)
    assert vol.replicas[1].state == "Faulted"
    assert vol.state == "Degraded"
    c.reconcile(vol, 10 + FAULTED_GRACE / 2)
    assert len(vol.replicas) == 2  # still waiting for it to come back
    c.reconcile(vol, 10 + FAULTED_GRACE)
    assert sorted(r.pool for r in vol.replicas) == ["h1", "h3"]


def test_checker_passes_a_safe_migration_and_catches_scale_down_before_sync():
    for safe in (True, False):
        checker = InvariantChecker()
        c = cluster_with(
            cold("c1", "n1"), cold("c2", "n2"), hot("h1", "n3", rebuild_bandwidth=GI), hot("h2", "n4")
        )
        vol = Volume(
            "v", "mayastor", 4 * GI, 2, {"tier": "cold"}, [synced("a", "c1", "n1"), synced("b", "c2", "n2")]
        )
        c.volumes["v"] = vol
        observe(checker, c, vol, 0)
        vol.num_replicas, vol.inclusion = 3, {"tier": "hot"}
        c.reconcile(vol, 0)
        observe(checker, c, vol, 0, has_intent=True)
        t = 0.0
        if safe:
            while not all(r.healthy for r in vol.replicas):
                t += 1
                c.advance(vol, t, 1)
                observe(checker, c, vol, t, has_intent=True)
        vol.num_replicas = 2
        c.reconcile(vol, t + 1)
        observe(checker, c, vol, t + 1, has_intent=True)
        if safe:
            checker.assert_clean()
        else:
            with pytest.raises(InvariantViolation, match="fewer Synced replicas than the floor"):
                checker.assert_clean()


def test_checker_flags_losing_the_last_copy_and_too_many_in_flight():
    checker = InvariantChecker(max_in_flight=1)
    checker.observe("a", 0, num_replicas=1, replicas=[("r", "p", "Online", "Synced")], has_intent=True)
    checker.observe("b", 1, num_replicas=1, replicas=[("s", "p", "Online", "Synced")], has_intent=True)
    checker.observe("a", 2, num_replicas=1, replicas=[("r", "p", "Faulted", "Unknown")], has_intent=False)
    whats = [v.what for v in checker.violations]
    assert "2 migrations in flight at once" in whats
    assert "lost its last Synced replica" in whats
    assert checker.peak_in_flight == 2
