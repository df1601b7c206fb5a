"""The REST client and the simulator held to Mayastor's published OpenAPI documents (both shipped versions).

As ``tests/contract`` pins the API server emulator to Kubernetes, these pin the Mayastor side: every route the
client calls and the simulator serves is in the document; every request the client sends and every answer the
simulator gives validates against its schemas (objects closed: the simulator may not invent fields); the wire
Structs decode instances generated from the schemas. Pool cordon, which neither document has, is pinned by its
own tests against the documented design (OEP 3903). Release 2.7 is held to the release/2.7 document, 2.8+ to
develop's plus pool cordon.
"""

import inspect

import httpx
import msgspec
import pytest
import trio
from msgspec import UNSET

from couchestor.mayastor_rest import wire
from couchestor.mayastor_rest.client import (
    AlreadyExistsError,
    FailedPreconditionError,
    MayastorRestClient,
    NotFoundError,
    PoolCordonUnsupported,
)
from couchestor.sim.mayastor.model import Pool
from couchestor.sim.mayastor_rest import RestSimulator
from couchestor.sim.mayastor_rest.app import ROUTES
from tests.mayastor_rest import spec as specs
from tests.mayastor_rest.harness import HOT, VOL, intent, open_env

GI = 2**30
VERSIONS = sorted(specs.FILES)
U = [f"6f1c2a10-0000-4000-8000-00000000000{i}" for i in range(8)]


def spec_for(version):
    """The document ``version`` with pool cordon as described upstream; on 2.7 that route must be absent."""
    spec = specs.load(version, pool_cordon=True, closed=True)
    if specs.RELEASE_OF[version] == "2.7":
        spec.absent.add("/pools/{pool_id}/cordon")
    return spec


def served(release):
    return [(m, t) for m, t, only in ROUTES if not only or release in only]


def sample_path(template):
    values = {"volume_id": U[0], "replica_count": "2", "pool_id": "p", "id": "n", "label": "l"}
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return "/v0" + template


# --- the documents ----------------------------------------------------------------------------------------


def test_documents_load_and_their_quirks_are_the_known_ones():
    for version in VERSIONS:
        spec = specs.load(version)
        assert spec.quirks == [
            "#/components/schemas/VolumeSpec: required but undeclared num_paths, protocol",
            "#/components/schemas/RegisterAppNode: required but undeclared id",
        ]
        assert "/pools/{pool_id}/cordon" not in spec.doc["paths"], "pool cordon is in no published document"
        assert spec.doc["components"]["securitySchemes"]["JWT"]["scheme"] == "bearer"
    labelled = {
        v: specs.load(v).doc["components"]["schemas"]["LabelledTopology"]["properties"] for v in VERSIONS
    }
    assert "affinity_key" in labelled["develop"]
    assert "affinity_key" not in labelled["2.7"]
    assert not any("affinitykey" in props for props in labelled.values())


def test_the_checker_rejects_what_the_documents_forbid():
    spec = spec_for("develop")
    assert spec.check_request("PUT", httpx.URL(f"/v0/volumes/{U[0]}/replica_count/0"), b"")  # minimum 1
    assert spec.check_request("PUT", httpx.URL("/v0/volumes/not-a-uuid/replica_count/2"), b"")
    assert spec.check_request("GET", httpx.URL("/v0/volumes"), b"")  # max_entries is required
    assert spec.check_request("GET", httpx.URL("/v0/volumes?max_entries=1&bogus=1"), b"")
    assert spec.check_request("GET", httpx.URL("/v0/no-such-route"), b"")
    assert spec.check_response("GET", "/v0/pools/p", 200, b'{"id": "p"}')  # minProperties 2
    assert spec.check_response("GET", "/v0/pools/p", 404, b'{"kind": "NotFound"}')  # details, message
    node = {"id": "n", "spec": {"id": "n", "grpcEndpoint": "e", "invented": 1}}
    assert spec.check_response("GET", "/v0/nodes/n", 200, msgspec.json.encode(node))
    valid = {"id": "n", "spec": {"id": "n", "grpcEndpoint": "e"}}
    assert spec.check_response("GET", "/v0/nodes/n", 200, msgspec.json.encode(valid)) == []


# --- routes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_every_route_the_simulator_serves_is_in_the_document(version):
    spec = spec_for(version)
    for method, template in served(specs.RELEASE_OF[version]):
        found = spec.route(method, sample_path(template))
        assert found is not None, f"{method} {template} is not in the {version} document"
        assert found[0].template == template
        in_document = template in spec.doc["paths"]
        assert in_document or template == "/pools/{pool_id}/cordon"


async def _client_requests():
    """Every public call of the client once, answered 404: the requests it sends."""
    sent = []

    def answer(request):
        sent.append((request.method, request.url, request.content))
        return httpx.Response(404, json={"kind": "NotFound", "details": "d", "message": "m"})

    calls = {
        "list_volumes": (),
        "get_volume": (U[0],),
        "set_replica_count": (U[0], 2),
        "list_pools": (),
        "get_pool": ("p",),
        "cordon_pool": ("p",),
        "uncordon_pool": ("p",),
        "probe_pool_cordon": (),
        "list_nodes": (),
        "get_node": ("n",),
        "cordon_node": ("n", "l"),
        "uncordon_node": ("n", "l"),
    }
    public = {
        name
        for name, fn in inspect.getmembers(MayastorRestClient, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in ("aclose",)
    }
    assert public == set(calls), "every public call of the client is checked here"
    async with MayastorRestClient("http://mayastor.invalid", transport=httpx.MockTransport(answer)) as rest:
        for name, args in calls.items():
            try:
                await getattr(rest, name)(*args)
            except NotFoundError:
                pass
    return sent


@pytest.mark.parametrize("version", VERSIONS)
async def test_every_request_the_client_sends_is_in_the_document_and_served(version):
    # Pool cordon requests go out on every release (2.7 answers them 404): held to the upstream design.
    spec = spec_for(version)
    routes = {(m, t) for m, t, _ in ROUTES}
    for method, url, body in await _client_requests():
        assert spec.check_request(method, url, body) == []
        route, _ = spec.route(method, url.path)
        assert route.template in spec.doc["paths"] or route.template == "/pools/{pool_id}/cordon"
        assert (method, route.template) in routes, f"the simulator serves {method} {route.template}"


# --- traffic --------------------------------------------------------------------------------------------


@pytest.fixture(params=VERSIONS)
async def checked(request, nursery):
    """A simulator of the version's release over HTTP, and a client whose traffic is checked against it."""
    async for value in _checked(nursery, request.param):
        yield value


@pytest.fixture
async def checked_develop(nursery):
    async for value in _checked(nursery, "develop"):
        yield value


async def _checked(nursery, version):
    sim = RestSimulator(time_scale=60.0, tick=0.05, release=specs.RELEASE_OF[version])
    for name, node, tier in (("hot-1", "n1", "hot"), ("hot-2", "n2", "hot"), ("cold-1", "n3", "cold")):
        sim.plane.add_pool(Pool(name, node, {"tier": tier}, 100 * GI))
    await nursery.start(sim.run)
    transport = specs.SpecTransport(spec_for(version))
    async with MayastorRestClient(sim.url, page_size=2, transport=transport) as rest:
        yield sim, rest, transport


async def test_client_and_simulator_traffic_validates(checked):
    sim, rest, transport = checked
    topology = wire.Topology(pool_topology=wire.PoolTopology(labelled=wire.LabelledTopology(inclusion=HOT)))
    sim.plane.create_volume(U[0], size=GI, replicas=1, topology=topology, now=sim.now(), pools=["hot-1"])
    sim.plane.create_volume(U[1], size=GI, replicas=1, topology=None, now=sim.now(), published=False)
    sim.plane.create_volume(
        U[2], size=GI, replicas=2, topology=None, now=sim.now(), pools=["hot-1", "cold-1"]
    )
    sim.fault_replica(U[2], "cold-1")  # Degraded
    assert {v.spec.uuid for v in await rest.list_volumes()} == set(U[:3])
    rebuilding = await rest.set_replica_count(U[0], 2)
    assert rebuilding.spec.num_replicas == 2
    with trio.fail_after(10):
        while (await rest.get_volume(U[0])).state.status != "Online":
            await trio.sleep(0.05)
    await rest.set_replica_count(U[0], 1)
    unpublished = await rest.get_volume(U[1])
    assert unpublished.state.target is UNSET
    assert unpublished.spec.target is UNSET
    assert (await rest.get_volume(U[2])).state.status == "Degraded"
    await rest.get_pool("hot-1")
    await rest.list_pools()
    await rest.list_nodes()
    await rest.cordon_node("n1", "l1")
    await rest.cordon_node("n1", "l1")  # already there: 412, taken as done
    await rest.uncordon_node("n1", "l1")
    with pytest.raises(FailedPreconditionError):
        await rest.uncordon_node("n1", "l1")
    with pytest.raises(FailedPreconditionError):
        await rest.set_replica_count(U[0], 1)  # already so
    with pytest.raises(FailedPreconditionError):
        await rest.set_replica_count(U[0], 3)  # by two
    with pytest.raises(FailedPreconditionError):
        await rest.set_replica_count(U[2], 3)  # Degraded
    with pytest.raises(NotFoundError):
        await rest.get_volume(U[7])
    if sim.plane.cordon_supported:
        await rest.cordon_pool("cold-1")
        with pytest.raises(AlreadyExistsError):
            await rest.cordon_pool("cold-1")
        await rest.uncordon_pool("cold-1")
        await rest.uncordon_pool("cold-1")  # not cordoned: 422, taken as done
        assert await rest.probe_pool_cordon()
    else:
        with pytest.raises(PoolCordonUnsupported):
            await rest.cordon_pool("cold-1")
        assert not await rest.probe_pool_cordon()
    assert transport.problems == []
    statuses = {status for _, status in transport.seen}
    assert {200, 404, 412} <= statuses
    assert (422 in statuses) == sim.plane.cordon_supported


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_migration_validates(apiserver, version):
    release = specs.RELEASE_OF[version]
    transport = specs.SpecTransport(spec_for(version))
    target = "pool-hot-2"  # not the roomiest pool, which Mayastor would pick: steered on both releases
    async for env in open_env(apiserver, release=release, transport=transport):
        state = await env.backend.read(VOL)
        await env.backend.write_intent(VOL, intent(target_pool=target), expected_version=state.version)
        state = await env.backend.add_replica(VOL, count=2, pool=target, topology=HOT)
        assert sorted(r.pool for r in state.replicas) == sorted(["pool-cold-1", target])
        await env.wait_synced(2)
        state = await env.backend.remove_replica(VOL, count=1, pool="pool-cold-1", topology=HOT)
        assert [r.pool for r in state.replicas] == [target]
        env.sim.checker.assert_clean()
    assert transport.problems == []
    keys = {key for key, _ in transport.seen}
    assert "PUT /v0/volumes/{volume_id}/replica_count/{replica_count}" in keys
    cordons = {status for key, status in transport.seen if key == "PUT /v0/pools/{pool_id}/cordon"}
    # The release probe cordons a pool that does not exist: 404 on both (a bare one on 2.7, see above).
    assert cordons == ({404} if release == "2.7" else {200, 404})
    node_cordons = [s for key, s in transport.seen if key == "PUT /v0/nodes/{id}/cordon/{label}"]
    # 2.7 steers the new replica by node cordon (node-1, node-4), and both releases steer the scale-down by one.
    assert node_cordons == ([200] * 3 if release == "2.7" else [200])


# --- wire Structs -----------------------------------------------------------------------------------------

_DECODED = {
    "Volume": wire.Volume,
    "Volumes": wire.Volumes,
    "Pool": wire.Pool,
    "Node": wire.Node,
    "Nexus": wire.Nexus,
    "ReplicaTopology": wire.ReplicaTopology,
    "RestJsonError": wire.RestJsonError,
}


def _agrees(decoded, instance, where):
    """Every field the Struct declares and the instance carries came through unchanged."""
    if isinstance(decoded, dict) and isinstance(instance, dict):
        for key, value in decoded.items():
            if key in instance:
                _agrees(value, instance[key], f"{where}/{key}")
    elif isinstance(decoded, list) and isinstance(instance, list):
        assert len(decoded) == len(instance), where
        for i, (a, b) in enumerate(zip(decoded, instance, strict=True)):
            _agrees(a, b, f"{where}/{i}")
    else:
        assert decoded == instance, where


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(_DECODED))
def test_wire_structs_decode_instances_generated_from_the_document(version, name):
    spec = specs.load(version)
    generated = specs.instances(spec, name)
    assert len(generated) >= 2
    for instance in generated:
        assert spec.errors(instance, spec.schema(name)) == [], "the generator makes valid instances"
        decoded = msgspec.json.decode(msgspec.json.encode(instance), type=_DECODED[name])
        _agrees(msgspec.to_builtins(decoded), instance, name)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_create_body_the_simulator_takes_is_the_documents(version):
    spec = specs.load(version)
    topology = wire.Topology(pool_topology=wire.PoolTopology(labelled=wire.LabelledTopology(inclusion=HOT)))
    body = wire.CreateVolumeBody(
        policy=wire.VolumePolicy(), replicas=1, size=GI, thin=False, topology=topology
    )
    assert spec.errors(msgspec.to_builtins(body), spec.schema("CreateVolumeBody")) == []


# --- pool cordon, as documented upstream (OEP 3903), in no published document -----------------------------


async def test_pool_cordon_on_a_release_that_has_it(checked_develop):
    sim, rest, transport = checked_develop
    assert sim.plane.cordon_supported
    async with httpx.AsyncClient(base_url=sim.url) as http:
        body = {"replicas": True, "snapshots": False, "restores": False, "import": False}
        first = await http.request("PUT", "/v0/pools/hot-1/cordon", json=body)
        assert first.status_code == 200
        assert first.json()["spec"]["cordon_drain"] == {"cordoned": body}
        again = await http.request("PUT", "/v0/pools/hot-1/cordon", json=body)
        assert (again.status_code, again.json()["kind"]) == (422, "AlreadyExists")
        more = await http.request("PUT", "/v0/pools/hot-1/cordon", json=body | {"snapshots": True})
        assert more.status_code == 200, "a cordon for more resources is taken"
        lifted = await http.request("DELETE", "/v0/pools/hot-1/cordon", json={})  # no flags: lift them all
        assert lifted.status_code == 200
        assert "cordon_drain" not in lifted.json()["spec"]
        twice = await http.request("DELETE", "/v0/pools/hot-1/cordon", json=body)
        assert (twice.status_code, twice.json()["kind"]) == (422, "AlreadyExists")
        missing = await http.request("PUT", "/v0/pools/no-such-pool/cordon", json=body)
        assert (missing.status_code, missing.json()["kind"]) == (404, "NotFound")
    sim.plane.create_volume(U[3], size=GI, replicas=1, topology=None, now=sim.now(), pools=["cold-1"])
    await rest.cordon_pool("hot-1")
    grown = await rest.set_replica_count(U[3], 2)
    assert sorted(t.pool for t in grown.state.replica_topology.values()) == ["cold-1", "hot-2"]
    assert (await rest.get_pool("hot-1")).spec.cordoned_for_replicas
    assert not (await rest.uncordon_pool("hot-1")).spec.cordoned_for_replicas
    assert transport.problems == []


async def test_pool_cordon_routes_are_absent_on_2_7(nursery):
    sim = RestSimulator(release="2.7")
    sim.plane.add_pool(Pool("hot-1", "n1", {"tier": "hot"}, 100 * GI))
    await nursery.start(sim.run)
    async with httpx.AsyncClient(base_url=sim.url) as http:
        for method in ("PUT", "DELETE"):
            answer = await http.request(method, "/v0/pools/hot-1/cordon", json={"replicas": True})
            assert (answer.status_code, answer.content) == (404, b""), "an unknown route: no error body"
    async with MayastorRestClient(sim.url) as rest:
        assert rest.pool_cordon is None
        with pytest.raises(PoolCordonUnsupported):
            await rest.uncordon_pool("hot-1")
        assert rest.pool_cordon is False
        assert not await rest.probe_pool_cordon()
        assert (
            "cordon_drain"
            not in msgspec.json.decode(msgspec.json.encode(await rest.get_pool("hot-1")))["spec"]
        )


@pytest.mark.parametrize(
    ("cordon_drain", "blocks"),
    [
        (UNSET, False),
        ({}, False),
        ({"cordoned": {"replicas": True, "snapshots": False, "restores": False, "import": False}}, True),
        ({"cordoned": {"replicas": False, "snapshots": True, "restores": False, "import": False}}, False),
        ({"draining": {"replicas": True}}, True),
        ({"cordoned": {"cordonlabels": ["x"]}}, True),  # an unforeseen shape: counted as blocking
        ("Cordoned", True),
    ],
)
def test_a_pools_cordon_is_read_defensively(cordon_drain, blocks):
    pool = msgspec.json.decode(
        msgspec.json.encode({"id": "p", "node": "n", "cordon_drain": cordon_drain})
        if cordon_drain is not UNSET
        else b'{"id": "p", "node": "n"}',
        type=wire.PoolSpec,
    )
    assert pool.cordoned_for_replicas is blocks
