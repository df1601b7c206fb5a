"""The simulated 2.x control plane: its rules (placement with cordons, victim order) and its JSON shapes."""

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from couchestor.mayastor_rest import rules, wire
from couchestor.sim.mayastor.model import Pool, Replica, Volume, choose_victims_2x
from couchestor.sim.mayastor_rest.state import ControlPlane, RestError

GI = 2**30


def plane_with(*pools):
    plane = ControlPlane()
    for name, node, tier, cap in pools:
        plane.add_pool(Pool(name, node, {"tier": tier}, cap))
    return plane


def three_pools():
    return plane_with(
        ("hot-1", "n1", "hot", 200 * GI), ("hot-2", "n2", "hot", 100 * GI), ("cold-1", "n3", "cold", 100 * GI)
    )


def synced(uuid, pool, node):
    return Replica(uuid, pool, node, "Online", "Synced", copied=GI)


def test_scale_up_avoids_cordoned_pools_and_fails_when_all_are_cordoned():
    plane = three_pools()
    plane.create_volume("v", size=GI, replicas=1, topology=None, now=0, pools=["cold-1"])
    plane.cordon_pool("hot-1", wire.PoolCordonReq(replicas=True))
    vol = plane.set_replica_count("v", 2, now=1)
    assert sorted(r.pool for r in vol.replicas) == ["cold-1", "hot-2"]
    plane.set_replica_count("v", 1, now=2)
    plane.cordon_pool("hot-2", wire.PoolCordonReq(replicas=True))
    with pytest.raises(RestError) as err:
        plane.set_replica_count("v", 2, now=3)
    assert (err.value.status, err.value.kind) == (507, "ResourceExhausted")
    assert plane.volume("v").num_replicas == 1
    plane.uncordon_pool("hot-1", wire.PoolCordonReq())  # no flags: lift everything
    assert "hot-1" not in plane.pool_cordons
    assert [r.pool for r in plane.set_replica_count("v", 2, now=4).replicas][-1] == "hot-1"


def test_replica_count_changes_one_at_a_time():
    plane = three_pools()
    plane.create_volume("v", size=GI, replicas=1, topology=None, now=0)
    with pytest.raises(RestError) as err:
        plane.set_replica_count("v", 3, now=0)
    assert (err.value.status, err.value.kind) == (412, "FailedPrecondition")
    with pytest.raises(RestError) as err:
        plane.set_replica_count("v", 1, now=0)
    assert (err.value.status, err.value.kind) == (412, "FailedPrecondition")


def test_victims_unhealthy_first_then_outside_topology_then_cordoned_node_then_remote():
    pools = {
        "a": Pool("a", "n1", {"tier": "hot"}, 100 * GI),
        "b": Pool("b", "n2", {"tier": "hot"}, 100 * GI),
        "c": Pool("c", "n3", {"tier": "cold"}, 100 * GI),
    }
    rebuilding = Replica("r-b", "b", "n2", "Online", "Syncing", copied=GI // 2)
    vol = Volume(
        "v", "", GI, 2, {"tier": "hot"}, [synced("r-a", "a", "n1"), rebuilding, synced("r-c", "c", "n3")]
    )
    # The rebuilding replica goes first, though it is the newest and inside the topology.
    assert [r.uuid for r in choose_victims_2x(vol, pools, 1, nexus_node="n1")] == ["r-b"]
    vol.replicas[1] = synced("r-b", "b", "n2")
    assert [r.uuid for r in choose_victims_2x(vol, pools, 1, nexus_node="n1")] == ["r-c"]
    vol.inclusion = {}
    # All fit: a replica on a cordoned node goes before the remote one, the remote before the local one.
    assert [r.uuid for r in choose_victims_2x(vol, pools, 1, nexus_node="n1", cordoned_nodes={"n1"})] == [
        "r-a"
    ]
    assert choose_victims_2x(vol, pools, 1, nexus_node="n2")[0].uuid in {"r-a", "r-c"}
    assert "r-b" not in [r.uuid for r in choose_victims_2x(vol, pools, 2, nexus_node="n2")]


def test_healthy_replicas_never_drop_below_the_requested_count():
    pools = {p: Pool(p, f"n-{p}", {}, 100 * GI) for p in "ab"}
    vol = Volume("v", "", GI, 2, {}, [synced("r-a", "a", "n-a"), synced("r-b", "b", "n-b")])
    assert choose_victims_2x(vol, pools, 1) == []
    vol.num_replicas = 1
    assert len(choose_victims_2x(vol, pools, 2)) == 1


def test_misremove_knob_drops_the_newest_replica():
    plane = three_pools()
    plane.create_volume("v", size=GI, replicas=1, topology=None, now=0, pools=["cold-1"])
    plane.set_replica_count("v", 2, now=0)
    plane.volume("v").replicas[1].state, plane.volume("v").replicas[1].sync_state = "Online", "Synced"
    plane.misremove = 1
    assert [r.pool for r in plane.set_replica_count("v", 1, now=1).replicas] == ["cold-1"]


def test_volume_json_has_the_upstream_shape_while_rebuilding():
    plane = three_pools()
    topo = wire.Topology(
        pool_topology=wire.PoolTopology(labelled=wire.LabelledTopology(inclusion={"tier": "hot"}))
    )
    plane.create_volume("v", size=GI, replicas=1, topology=topo, now=0)
    plane.set_replica_count("v", 2, now=0)
    plane.advance(now=5.0, dt=1.0)  # opened and partly rebuilt
    raw = msgspec.json.decode(msgspec.json.encode(plane.render_volume(plane.volume("v"))))
    assert set(raw) == {"spec", "state"}
    spec, state = raw["spec"], raw["state"]
    assert spec["num_replicas"] == 2
    assert spec["uuid"] == "v"
    assert spec["status"] == "Created"
    assert spec["topology"]["pool_topology"]["labelled"]["inclusion"] == {"tier": "hot"}
    assert spec["policy"] == {"self_heal": True}
    assert spec["thin"] is False
    assert state["status"] == "Degraded"
    by_pool = {t["pool"]: t for t in state["replica_topology"].values()}
    assert by_pool["hot-1"]["child-status"] == "Online"
    assert "rebuild-progress" not in by_pool["hot-1"]
    syncing = by_pool["hot-2"]
    assert syncing["state"] == "Online"
    assert syncing["child-status"] == "Degraded"
    assert 0 <= syncing["rebuild-progress"] < 100
    children = state["target"]["children"]
    assert any("rebuildProgress" in c for c in children)
    assert state["target"]["node"] == "n1"
    decoded = msgspec.json.decode(msgspec.json.encode(raw), type=wire.Volume)
    assert [r.sync_state for r in rules.replicas(decoded)] == ["Synced", "Syncing"]


def test_pool_and_node_json():
    plane = three_pools()
    plane.cordon_pool("hot-1", wire.PoolCordonReq(replicas=True))
    plane.cordon_node("n2", "maintenance")
    pool = msgspec.json.decode(msgspec.json.encode(plane.render_pool(plane.pool("hot-1"))))
    assert pool["id"] == "hot-1"
    assert pool["spec"]["labels"] == {"tier": "hot"}
    assert pool["spec"]["cordon_drain"]["cordoned"]["replicas"] is True
    assert (
        "cordon_drain"
        not in msgspec.json.decode(msgspec.json.encode(plane.render_pool(plane.pool("hot-2"))))["spec"]
    )
    assert {"capacity", "used", "status", "node", "id", "disks"} <= set(pool["state"])
    node = msgspec.json.decode(msgspec.json.encode(plane.render_node("n2")))
    assert node["spec"]["cordondrainstate"]["cordonedstate"]["cordonlabels"] == ["maintenance"]
    assert node["state"]["status"] == "Online"
    with pytest.raises(RestError) as err:
        plane.uncordon_node("n2", "other")
    assert (err.value.status, err.value.kind) == (412, "FailedPrecondition")
    with pytest.raises(RestError) as err:
        plane.uncordon_node("no-such-node", "maintenance")
    assert (err.value.status, err.value.kind) == (404, "NotFound")
    with pytest.raises(RestError) as err:
        plane.cordon_node("n2", "maintenance")  # a label it already has
    assert (err.value.status, err.value.kind) == (412, "FailedPrecondition")


_STATES = st.sampled_from([("Online", "Synced"), ("Online", "Syncing"), ("Faulted", "Unknown")])


@settings(max_examples=150, deadline=None)
@given(
    replicas=st.lists(
        st.tuples(st.sampled_from("abcde"), _STATES, st.integers(0, 99)),
        min_size=2,
        max_size=4,
        unique_by=lambda t: t[0],
    ),
    inclusion=st.sampled_from([{}, {"tier": "hot"}]),
    nexus=st.sampled_from(["n-a", "n-b", "n-c"]),
    cordoned=st.sets(st.sampled_from(["n-a", "n-b", "n-c", "n-d", "n-e"]), max_size=2),
)
def test_predicted_victim_agrees_with_the_simulator(replicas, inclusion, nexus, cordoned):
    plane = ControlPlane()
    for p in "abcde":
        plane.add_pool(Pool(p, f"n-{p}", {"tier": "hot" if p in "ab" else "cold"}, 100 * GI))
    vol = Volume("v", "", 100, len(replicas), dict(inclusion), nexus_node=nexus)
    for i, (pool, (state, sync), progress) in enumerate(replicas):
        vol.replicas.append(
            Replica(f"r{i}", pool, f"n-{pool}", state, sync, copied=100 if sync == "Synced" else progress)
        )
    plane.cluster.volumes["v"] = vol
    rendered = plane.render_volume(vol)
    labels = {p.name: p.labels for p in plane.cluster.pools.values()}
    predicted = rules.predicted_victim(rendered, labels, cordoned)
    vol.num_replicas -= 1
    chosen = choose_victims_2x(vol, plane.cluster.pools, 1, nexus_node=nexus, cordoned_nodes=cordoned)
    if not chosen:
        assert predicted is None
        return
    assert predicted is not None
    victim = next(r for r in vol.replicas if r.pool == predicted)

    def rank(r):
        # Everything the rules order by; only the final tie-break (replica ids, which differ on the wire) may
        # pick a different replica of equal rank.
        fits = plane.cluster.pools[r.pool].labels.get("tier") == inclusion.get(
            "tier", plane.cluster.pools[r.pool].labels["tier"]
        )
        progress = vol.progress(r)
        if not r.healthy:
            state = {"Faulted": 0, "Unknown": 1, "Online": 3}[r.state]
            return (False, state, progress if r.sync_state == "Syncing" else 0)
        return (True, fits, r.node not in cordoned, r.node == nexus)

    assert rank(victim) == rank(chosen[0])


def test_cordoning_again_for_the_same_resources_answers_already_exists():
    plane = three_pools()
    plane.cordon_pool("hot-1", wire.PoolCordonReq(replicas=True))
    with pytest.raises(RestError) as raised:
        plane.cordon_pool("hot-1", wire.PoolCordonReq(replicas=True))
    assert (raised.value.status, raised.value.kind) == (422, "AlreadyExists")
    plane.cordon_pool("hot-1", wire.PoolCordonReq(replicas=True, snapshots=True))  # adds one: accepted
    assert plane.pool_cordons["hot-1"].snapshots


def test_pool_cordon_request_speaks_the_wire_names():
    body = msgspec.json.encode(wire.PoolCordonReq(replicas=True))
    assert msgspec.json.decode(body) == {
        "replicas": True,
        "snapshots": False,
        "restores": False,
        "import": False,
    }
