"""The typed REST client against the simulated control plane served over HTTP: pagination, errors, retries,
bearer tokens and TLS."""

import argparse
import subprocess

import httpx
import msgspec
import pytest
import trio

from couchestor.errors import UserError
from couchestor.mayastor_rest import MayastorRestClient, MayastorRestError, NotFoundError, RestVolumeReflector
from couchestor.mayastor_rest.client import FailedPreconditionError
from couchestor.settings import add_arguments, resolve
from couchestor.sim.mayastor.model import Pool
from couchestor.sim.mayastor_rest import RestSimulator
from couchestor.tiering.views import build_volume_views
from k8s_schemas.core import PersistentVolume

GI = 2**30


@pytest.fixture
async def sim(nursery):
    simulator = RestSimulator(time_scale=60.0, tick=0.05)
    for name, node, tier in (("hot-1", "n1", "hot"), ("hot-2", "n2", "hot"), ("cold-1", "n3", "cold")):
        simulator.plane.add_pool(Pool(name, node, {"tier": tier}, 100 * GI))
    await nursery.start(simulator.run)
    return simulator


async def test_list_volumes_follows_next_token_page_by_page(sim):
    ids = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(5)]
    for vid in ids:
        sim.plane.create_volume(vid, size=GI, replicas=1, topology=None, now=0)
    before = sim.app.requests
    async with MayastorRestClient(sim.url, page_size=2) as rest:
        volumes = await rest.list_volumes()
    assert [v.spec.uuid for v in volumes] == ids
    assert sim.app.requests - before == 3  # 2 + 2 + 1


async def test_volumes_endpoint_requires_max_entries_and_reports_json_errors(sim):
    async with httpx.AsyncClient(base_url=sim.url) as http:
        response = await http.get("/v0/volumes")
    assert response.status_code == 400
    assert response.json()["kind"] == "InvalidArgument"
    async with MayastorRestClient(sim.url) as rest:
        with pytest.raises(NotFoundError) as err:
            await rest.get_volume("no-such-volume")
    assert err.value.kind == "NotFound"
    assert not err.value.retryable


async def test_replica_count_and_cordons_round_trip(sim):
    sim.plane.create_volume("v", size=GI, replicas=1, topology=None, now=0, pools=["cold-1"])
    async with MayastorRestClient(sim.url) as rest:
        pool = await rest.cordon_pool("hot-1")
        assert pool.spec.cordoned_for_replicas
        volume = await rest.set_replica_count("v", 2)
        assert sorted(t.pool for t in volume.state.replica_topology.values()) == ["cold-1", "hot-2"]
        assert not (await rest.uncordon_pool("hot-1")).spec.cordoned_for_replicas
        node = await rest.cordon_node("n3", "test")
        assert node.spec.cordondrainstate.cordonedstate.cordonlabels == ["test"]
        await rest.uncordon_node("n3", "test")
        assert {n.id for n in await rest.list_nodes()} == {"n1", "n2", "n3"}
        with pytest.raises(FailedPreconditionError) as err:
            await rest.set_replica_count("v", 2)
    assert (err.value.status, err.value.kind) == (412, "FailedPrecondition")


async def test_reads_are_retried_on_503_but_replica_count_is_not(sim):
    sim.plane.create_volume("v", size=GI, replicas=1, topology=None, now=0)
    async with MayastorRestClient(sim.url, attempts=3) as rest:
        sim.app.fail_next[:] = [503, 503]
        assert (await rest.get_volume("v")).spec.uuid == "v"
        sim.app.fail_next[:] = [503]
        with pytest.raises(MayastorRestError) as err:
            await rest.set_replica_count("v", 2)
    assert err.value.status == 503
    assert err.value.retryable
    assert sim.plane.volume("v").num_replicas == 1


@pytest.mark.parametrize("release", ["2.7", "2.8+"])
async def test_the_pool_cordon_probe_rides_out_a_failed_answer_and_changes_nothing(sim, release):
    sim.plane.release = release
    async with MayastorRestClient(sim.url, attempts=3) as rest:
        sim.app.fail_next[:] = [503]  # the probe changes nothing, so it is retried as a read is
        assert await rest.probe_pool_cordon() == (release == "2.8+")
        assert rest.pool_cordon == (release == "2.8+")
    assert sim.plane.pool_cordons == {}
    assert sim.app.fail_next == []


async def test_every_call_has_a_deadline():
    async def never(request):
        await trio.sleep_forever()

    async with MayastorRestClient(
        "http://mayastor.invalid",
        timeout=0.2,
        connect_timeout=0.1,
        attempts=2,
        transport=httpx.MockTransport(never),
    ) as rest:
        with trio.fail_after(10):
            with pytest.raises(MayastorRestError) as err:
                await rest.list_pools()
    assert err.value.kind == "Timeout"


async def test_volume_mirror_relists_into_a_store_of_mayastor_volumes(sim):
    sim.plane.create_volume("v1", size=GI, replicas=1, topology=None, now=sim.now(), pools=["cold-1"])
    sim.plane.create_volume("v2", size=GI, replicas=1, topology=None, now=sim.now(), pools=["hot-1"])
    async with MayastorRestClient(sim.url, page_size=1) as rest:
        mirror = RestVolumeReflector(rest, "mayastor")
        assert await mirror.relist()
        assert mirror.store.synced
        v1 = mirror.store.get("v1", "mayastor")
        assert v1.spec.num_replicas == 1
        assert v1.spec.size == GI
        assert [(r.pool, r.sync_state, r.healthy) for r in v1.replicas] == [("cold-1", "Synced", True)]
        changes = mirror.store.subscribe(initial=False)
        await rest.set_replica_count("v1", 2)
        assert await mirror.relist()
        change = await changes.receive()
        assert (change.key.name, change.kind) == ("v1", "modified")
        assert len(changes) == 0  # v2 did not change, so it is not reported
        v1 = mirror.store.get("v1", "mayastor")
        assert [r.sync_state for r in v1.replicas] == ["Synced", "Unknown"]  # the new replica is not open yet
        # The decision side reads the mirror like MayastorVolumes: PV -> volume by its CSI handle.
        pv = msgspec.json.decode(
            msgspec.json.encode(
                {
                    "metadata": {"name": "pvc-v2"},
                    "spec": {
                        "storageClassName": "mayastor",
                        "csi": {"driver": "io.openebs.csi-mayastor", "volumeHandle": "v2"},
                    },
                }
            ),
            type=PersistentVolume,
        )
        (view,) = build_volume_views([pv], [], mirror.store.list())
        assert view.backend_name == "v2"
        assert [(r.pool, r.healthy) for r in view.replicas] == [("hot-1", True)]
        assert view.size_bytes == GI
        sim.app.fail_next[:] = [500]
        errors = []
        mirror.on_error = errors.append
        assert not await mirror.relist()
        assert errors
        assert mirror.store.get("v2", "mayastor") is not None  # the last good listing stays


async def test_bearer_token_is_read_from_its_file_and_again_when_it_rotates(tmp_path):
    seen = []

    def answer(request):
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json=[])

    token = tmp_path / "token"
    token.write_text("first.jwt.token\n")
    async with MayastorRestClient(
        "http://mayastor.invalid", token_file=str(token), transport=httpx.MockTransport(answer)
    ) as rest:
        await rest.list_pools()
        await rest.list_pools()
        rotated = tmp_path / "token.new"  # as the kubelet rotates a projected token: a new file renamed over
        rotated.write_text("second.jwt.token-longer")
        rotated.replace(token)
        await rest.list_nodes()
        token.unlink()
        with pytest.raises(MayastorRestError) as err:
            await rest.list_pools()
    assert seen == ["Bearer first.jwt.token", "Bearer first.jwt.token", "Bearer second.jwt.token-longer"]
    assert err.value.kind == "Unauthenticated"
    assert str(token) in str(err.value)


async def test_no_token_file_sends_no_authorization_header():
    seen = []

    def answer(request):
        seen.append("authorization" in request.headers)
        return httpx.Response(200, json=[])

    async with MayastorRestClient("http://mayastor.invalid", transport=httpx.MockTransport(answer)) as rest:
        await rest.list_pools()
    assert seen == [False]


def _self_signed(tmp_path):
    """A certificate for 127.0.0.1 that is its own CA (openssl, as on every developer machine and in CI)."""
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=mayastor-api-rest",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


async def test_https_with_a_private_ca(sim, nursery, tmp_path):
    from hypercorn.config import Config
    from hypercorn.trio import serve

    cert, key = _self_signed(tmp_path)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.certfile, config.keyfile = str(cert), str(key)
    config.accesslog = config.errorlog = None
    binds = await nursery.start(serve, sim.app, config)
    url = binds[0].replace("http://", "https://")
    assert url.startswith("https://127.0.0.1:")
    async with MayastorRestClient(url, ca_file=str(cert)) as rest:
        assert {p.id for p in await rest.list_pools()} == {"hot-1", "hot-2", "cold-1"}
    async with MayastorRestClient(url, attempts=1) as rest:  # the system's CAs do not know it
        with pytest.raises(MayastorRestError) as err:
            await rest.list_pools()
    assert err.value.kind == "Unavailable"
    assert "certificate" in str(err.value).lower()


def test_rest_access_settings_are_checked_at_start(tmp_path):
    def parse(argv):
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        return resolve(parser.parse_args(argv), {})

    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    with pytest.raises(UserError, match="not an https:// URL"):
        parse(["--mayastor-rest-ca", str(ca)])
    with pytest.raises(UserError, match="--mayastor-rest-token-file: cannot read"):
        parse(["--mayastor-rest-token-file", str(tmp_path / "missing")])
    with pytest.raises(UserError, match="not an http:// or https:// URL"):
        parse(["--mayastor-rest-url", "mayastor:8081"])
    s = parse(["--mayastor-rest-url", "https://api:8080", "--mayastor-rest-ca", str(ca)])
    assert s.mayastor_rest_ca == str(ca)
    with pytest.raises(ValueError, match="cannot load the CA file"):
        MayastorRestClient(s.mayastor_rest_url, ca_file=str(ca))


async def test_a_server_that_requires_a_token_gets_the_rotated_one(sim, tmp_path):
    sim.app.token = "token-1"
    token = tmp_path / "token"
    token.write_text("token-1")
    async with MayastorRestClient(sim.url, token_file=str(token)) as rest:
        assert len(await rest.list_pools()) == 3
        sim.app.token = "token-2"  # the token was rotated, the server knows only the new one
        rotated = tmp_path / "token.new"
        rotated.write_text("token-2")
        rotated.replace(token)
        assert len(await rest.list_pools()) == 3
    async with MayastorRestClient(sim.url) as rest:
        with pytest.raises(MayastorRestError) as err:
            await rest.list_pools()
    assert (err.value.status, err.value.kind) == (401, "Unauthenticated")
    assert not err.value.retryable


class DeleteAfterFirstPage(httpx.AsyncBaseTransport):
    """Deletes ``volume`` from the control plane as soon as the first page of a volume listing is served."""

    def __init__(self, sim, volume):
        self.inner = httpx.AsyncHTTPTransport()
        self.sim = sim
        self.volume = volume

    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/v0/volumes" and request.url.params.get("starting_token") == "0":
            self.sim.plane.delete_volume(self.volume)
        return response

    async def aclose(self):
        await self.inner.aclose()


async def test_volume_mirror_never_reports_a_live_volume_deleted_by_a_shifted_page(sim):
    ids = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(5)]
    for vid in ids:
        sim.plane.create_volume(vid, size=GI, replicas=1, topology=None, now=sim.now())
    async with MayastorRestClient(sim.url, page_size=2) as rest:
        mirror = RestVolumeReflector(rest, "mayastor")
        assert await mirror.relist()
    changes = mirror.store.subscribe(initial=False)
    # ids[0] goes once the first page (which still lists it) is served: the second page starts at offset 2,
    # now ids[3], so ids[2] is on no page although it still exists.
    async with MayastorRestClient(sim.url, page_size=2, transport=DeleteAfterFirstPage(sim, ids[0])) as rest:
        mirror.rest = rest
        assert await mirror.relist()
    assert sorted(v.metadata.name for v in mirror.store.list()) == ids
    assert len(changes) == 0  # nothing reported deleted
    async with MayastorRestClient(sim.url, page_size=2) as rest:
        mirror.rest = rest
        assert await mirror.relist()
    assert [(c.key.name, c.kind) for c in await changes.receive_batch()] == [(ids[0], "deleted")]
