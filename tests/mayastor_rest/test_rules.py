"""The operator-side pure rules: which pools to cordon, the mirrored topology, replica conversion."""

from couchestor.mayastor_rest import rules, wire
from couchestor.mayastor_rest.mirror import to_mayastor_volume

GI = 2**30


def pool(pid, node, labels, *, capacity=100 * GI, used=0, status="Online", cordoned=False):
    spec = wire.PoolSpec(id=pid, node=node, labels=labels)
    if cordoned:
        spec.cordon_drain = {
            "cordoned": {"replicas": True, "snapshots": False, "restores": False, "import": False}
        }
    state = wire.PoolState(id=pid, node=node, status=status, capacity=capacity, used=used)
    return wire.Pool(id=pid, spec=spec, state=state)


def volume(pools_held, *, inclusion=None, size=10 * GI, num_replicas=None):
    topo = {
        f"r-{p}": wire.ReplicaTopology(state="Online", node=f"n-{p}", pool=p, child_status="Online")
        for p in pools_held
    }
    spec = wire.VolumeSpec(uuid="v", size=size, num_replicas=num_replicas or len(pools_held))
    if inclusion:
        labelled = wire.LabelledTopology(inclusion=inclusion)
        spec.topology = wire.Topology(pool_topology=wire.PoolTopology(labelled=labelled))
    return wire.Volume(
        spec=spec, state=wire.VolumeState(uuid="v", size=size, status="Online", replica_topology=topo)
    )


def test_only_pools_that_could_take_the_replica_are_cordoned():
    pools = [
        pool("hot-1", "n1", {"tier": "hot"}),
        pool("hot-2", "n2", {"tier": "hot"}),  # the target
        pool("hot-3", "n3", {"tier": "hot"}, used=95 * GI),  # no room
        pool("hot-4", "n4", {"tier": "hot"}, status="Faulted"),  # not usable
        pool("hot-5", "n5", {"tier": "hot"}, cordoned=True),  # somebody else's cordon: left alone
        pool("cold-1", "n6", {"tier": "cold"}),  # holds the volume
        pool("cold-2", "n7", {"tier": "cold"}),
    ]
    assert rules.pools_to_cordon(volume(["cold-1"]), pools, "hot-2") == ["cold-2", "hot-1"]
    # A volume whose topology only admits some pools only needs those fenced off.
    pools.append(pool("hot-6", "n8", {"tier": "hot", "zone": "b"}))
    pinned = volume(["hot-1"], inclusion={"tier": "hot"})
    assert rules.pools_to_cordon(pinned, pools, "hot-2") == ["hot-6"]


def test_without_pool_cordon_the_nodes_of_the_other_eligible_pools_are_cordoned():
    pools = [
        pool("hot-1", "n1", {"tier": "hot"}),
        pool("hot-2", "n2", {"tier": "hot"}),  # the target
        pool("hot-3", "n3", {"tier": "hot"}, used=95 * GI),  # no room: its node stays open
        pool("cold-1", "n-cold-1", {"tier": "cold"}),  # holds the volume: its node stays open
        pool("cold-2", "n1", {"tier": "cold"}),  # shares n1 with hot-1: one cordon for both
        pool("cold-3", "n4", {"tier": "cold"}),
    ]
    vol = volume(["cold-1"])
    assert rules.nodes_to_cordon(vol, pools, "hot-2") == ["n1", "n4"]
    # Another eligible pool on the target's own node: a node cordon would block the target too.
    pools.append(pool("hot-7", "n2", {"tier": "hot"}))
    assert rules.nodes_to_cordon(vol, pools, "hot-2") is None
    # ... unless the volume's topology rules that pool out anyway.
    pinned = volume(["cold-1"], inclusion={"tier": "hot", "zone": "a"})
    zoned = [
        pool("hot-1", "n1", {"tier": "hot", "zone": "a"}),
        pool("hot-2", "n2", {"tier": "hot", "zone": "a"}),
    ]
    assert rules.nodes_to_cordon(pinned, [*zoned, pool("hot-7", "n2", {"tier": "hot"})], "hot-2") == ["n1"]


def test_the_mirror_carries_the_creation_topology_for_the_decisions():
    vol = volume(["hot-1"], inclusion={"tier": "hot"})
    vol.spec.topology.node_topology = wire.NodeTopology(
        explicit=wire.ExplicitNodeTopology(allowed_nodes=["n2", "n1"])
    )
    msv = to_mayastor_volume(vol, "mayastor")
    assert msv.spec.inclusion == {"tier": "hot"}
    assert msv.spec.allowed_nodes == frozenset({"n1", "n2"})
    plain = to_mayastor_volume(volume(["hot-1"]), "mayastor")
    assert (plain.spec.inclusion, plain.spec.allowed_nodes) == ({}, None)


def test_replica_conversion_and_digest():
    vol = volume(["a", "b"])
    vol.state.replica_topology["r-b"] = wire.ReplicaTopology(
        state="Online", node="n-b", pool="b", child_status="Degraded", rebuild_progress=40
    )
    vol.state.replica_topology["r-c"] = wire.ReplicaTopology(state="Online", node="n-c", pool="c")
    vol.spec.target = wire.VolumeTarget(node="n-a", protocol="nvmf")
    got = {r.pool: (r.sync_state, r.progress, r.healthy) for r in rules.replicas(vol)}
    # A published volume's replica the target does not report on (not yet a child) is no complete copy.
    assert got == {"a": ("Synced", None, True), "b": ("Syncing", 40, False), "c": ("Unknown", None, False)}
    before = rules.digest(vol)
    vol.state.replica_topology["r-b"].rebuild_progress = 41
    assert rules.digest(vol) != before


def test_predicted_victim_prefers_the_remote_replica_unless_its_node_is_cordoned():
    vol = volume(["cold-1", "hot-2"], num_replicas=2)
    vol.state.target = wire.Nexus(uuid="x", node="n-cold-1", state="Online")
    labels = {"cold-1": {"tier": "cold"}, "hot-2": {"tier": "hot"}}
    assert rules.predicted_victim(vol, labels, set()) == "hot-2"
    assert rules.predicted_victim(vol, labels, {"n-cold-1"}) == "cold-1"
    # Three requested, two healthy: going down to two must keep both, so nothing can go.
    vol.spec.num_replicas = 3
    assert rules.predicted_victim(vol, labels, set()) is None
