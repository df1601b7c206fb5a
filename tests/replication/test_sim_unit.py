"""The backend simulators' pure steps: what each vendor controller writes at a given moment."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio

from couchestor.kube.client import KubeClient
from couchestor.kube.config import load_kubeconfig
from couchestor.replication.resources import DELL_REPLICATION_GROUP
from couchestor.sim.replication import (
    CephCsiAddonsSimulator,
    DellSimulator,
    SimulatedBackends,
    TridentSimulator,
)

NOW = "2026-01-01T00:00:00Z"


def _ceph(state="primary", generation=2, status=None):
    return {
        "metadata": {"name": "v", "namespace": "ns", "generation": generation},
        "spec": {"replicationState": state, "dataSource": {"kind": "PersistentVolumeClaim", "name": "data"}},
        "status": status or {},
    }


def test_ceph_waits_then_completes_then_stays_quiet():
    sim = CephCsiAddonsSimulator(client=None, transition_seconds=1.0)
    assert sim.step(_ceph(), 0.5, NOW).status is None
    done = sim.step(_ceph(), 1.5, NOW).status
    assert done["state"] == "Primary"
    assert done["observedGeneration"] == 2
    assert {c["type"]: c["status"] for c in done["conditions"]}["Completed"] == "True"
    assert sim.step(_ceph(status=done), 5.0, NOW).status is None


def test_ceph_failing_volume_reports_failure_until_cleared():
    sim = CephCsiAddonsSimulator(client=None, transition_seconds=0.0, failing={"data"})
    failed = sim.step(_ceph("secondary"), 9.0, NOW).status
    completed = next(c for c in failed["conditions"] if c["type"] == "Completed")
    assert completed["reason"] == "FailedToDemote"
    sim.failing.clear()
    assert sim.step(_ceph("secondary", status=failed), 9.0, NOW).status["state"] == "Secondary"


def test_trident_reports_transition_then_state_per_mapping():
    sim = TridentSimulator(client=None, transition_seconds=1.0, failing={"wal"})
    tmr = {
        "metadata": {"name": "t", "namespace": "ns", "generation": 1},
        "spec": {
            "state": "promoted",
            "volumeMappings": [{"localPVCName": "data"}, {"localPVCName": "wal"}],
        },
    }
    during = {c["localPVCName"]: c["state"] for c in sim.step(tmr, 0.1, NOW).status["conditions"]}
    after = {c["localPVCName"]: c["state"] for c in sim.step(tmr, 2.0, NOW).status["conditions"]}
    assert during == {"data": "promoting", "wal": "failed"}
    assert after == {"data": "promoted", "wal": "failed"}


def test_dell_runs_action_then_clears_it():
    sim = DellSimulator(client=None, transition_seconds=1.0)
    rg = {"metadata": {"name": "ns.g"}, "spec": {"action": ""}, "status": {}}
    first = sim.step(rg, 0.0, NOW).status
    assert first["replicationLinkState"]["isSource"] is True
    rg = {**rg, "spec": {"action": "FAILOVER_REMOTE"}, "status": first}
    assert sim.step(rg, 0.5, NOW).status is None
    update = sim.step(rg, 1.5, NOW)
    assert update.spec == {"action": ""}
    assert update.status["replicationLinkState"]["isSource"] is False
    assert update.status["lastAction"]["condition"] == "Action FAILOVER_REMOTE succeeded"


async def test_simulated_backends_install_their_crds_and_start(apiserver):
    async with KubeClient(load_kubeconfig([apiserver.kubeconfig]), qps=0) as client:
        backends = SimulatedBackends.create(client, transition_seconds=0.1)
        async with trio.open_nursery() as nursery:
            await nursery.start(backends.run)
            listed = await client.list_all(DELL_REPLICATION_GROUP, type=dict)
            assert listed.items == []
            assert backends.dell.transition_seconds == 0.1
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--transition-seconds", "-1"], "--transition-seconds"),
        (["--kubeconfig", "/nonexistent/kubeconfig"], "/nonexistent/kubeconfig"),
    ],
)
def test_sim_replication_rejects_bad_values_in_one_line(args, named):
    proc = subprocess.run(
        [sys.executable, "-m", "couchestor", "sim", "replication", *args], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert named in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_sim_replication_says_when_the_server_is_unreachable(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "couchestor", "sim", "replication", "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "cannot simulate the replication backends" in proc.stderr
    assert "Traceback" not in proc.stderr
