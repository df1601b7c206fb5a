"""The simulated cluster looks like a real one: unpublished, Degraded and self-rebuilding volumes, both releases."""

import pytest
import trio

from couchestor.kube import KubeClient, load_kubeconfig
from couchestor.mayastor_rest import MayastorRestClient, rules
from couchestor.mayastor_rest.client import PoolCordonUnsupported
from couchestor.sim.mayastor_rest.cluster import start_rest_cluster
from couchestor.sim.mayastor_rest.state import RELEASES
from couchestor.sim.populate import GI, default_spec


@pytest.mark.parametrize("release", RELEASES)
async def test_mixed_cluster_has_unpublished_degraded_and_rebuilding_volumes(apiserver, nursery, release):
    spec = default_spec(10, hot_pools=2, cold_pools=2, volume_sizes=(GI,), pool_capacity=100 * GI)
    async with KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0) as client:
        sim = await start_rest_cluster(
            nursery, client, spec, time_scale=60.0, tick=0.05, release=release, mixed=True
        )
        uuids = [v.uuid for v in spec.volumes]
        async with MayastorRestClient(sim.url) as rest:
            volumes = {v.spec.uuid: v for v in await rest.list_volumes()}
            unpublished, degraded, rebuilding = volumes[uuids[3]], volumes[uuids[5]], volumes[uuids[7]]
            assert not rules.published(unpublished)
            assert [r.sync_state for r in rules.replicas(unpublished)] == ["Synced"]
            assert degraded.state.status == "Degraded"
            assert sorted(r.state for r in rules.replicas(degraded)) == ["Faulted", "Online"]
            assert rebuilding.spec.num_replicas == 2
            others = [v for u, v in volumes.items() if u not in (uuids[3], uuids[5], uuids[7])]
            assert all(v.state.status == "Online" and rules.published(v) for v in others)
            with trio.fail_after(20):  # Mayastor places and rebuilds the missing replica by itself
                while (await rest.get_volume(uuids[7])).state.status != "Online":
                    await trio.sleep(0.05)
            assert [r.sync_state for r in rules.replicas(await rest.get_volume(uuids[7]))] == ["Synced"] * 2
            if release == "2.7":
                with pytest.raises(PoolCordonUnsupported):
                    await rest.cordon_pool(spec.pools[0].name)
            else:
                assert (await rest.cordon_pool(spec.pools[0].name)).spec.cordoned_for_replicas
        sim.checker.assert_clean()
        nursery.cancel_scope.cancel()
