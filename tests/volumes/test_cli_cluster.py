"""`couchestor volumes test` as a subprocess, through the real kubectl, against the API server emulator.

The emulator stores claims but provisions nothing, so a claim never binds: these tests pin down what the command
does around that (arguments reaching kubectl, checks before touching the cluster, progress, the report of a
class that failed, cleanup, exit status), while test_runner.py drives the whole run on a cluster double.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest
import trio
import yaml

from couchestor.sim.apiserver import write_kubeconfig
from couchestor.volumes.cluster import KubectlCluster
from couchestor.volumes.suite import CONFIG_MAP_NAME, DEFAULT_NAMESPACE

pytestmark = pytest.mark.kubectl

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kubectl(apiserver):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH; `volumes test` drives the cluster through it")
    return KubectlCluster(kubeconfig=str(apiserver.kubeconfig), call_timeout=30)


async def _volumes_test(*args: str) -> tuple[int, str, str]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    result = await trio.run_process(
        [sys.executable, "-m", "couchestor", "volumes", "test", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def _storage_classes() -> list[dict]:
    text = (ROOT / "manifests" / "volumes" / "templates" / "storage-classes.yaml").read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.slow
async def test_a_class_whose_claim_never_binds_is_reported_failed_and_cleaned_up(kubectl, apiserver):
    await kubectl.apply(_storage_classes())
    with trio.fail_after(120):
        status, out, err = await _volumes_test(
            "--kubeconfig", str(apiserver.kubeconfig), "--storage-class", "fast-ssd", "--timeout", "2"
        )
    assert status == 1, out + err
    assert "StorageClass fast-ssd: FAIL" in out
    assert f"problem: PVC {DEFAULT_NAMESPACE}/vt-fast-ssd was not Bound within 2 s" in out
    assert "0 of 1 StorageClasses passed (criteria: the default thresholds)" in out
    assert "[fast-ssd] PVC vt-fast-ssd created; waiting for it to be Bound" in err
    # Everything the run created is deleted (a claim may linger a moment behind its protection finalizer);
    # the namespace stays.
    claim = await kubectl.get("pvc", "vt-fast-ssd", DEFAULT_NAMESPACE)
    assert claim is None or claim["metadata"].get("deletionTimestamp")
    assert await kubectl.get("configmap", CONFIG_MAP_NAME, DEFAULT_NAMESPACE) is None
    assert await kubectl.get("namespace", DEFAULT_NAMESPACE, None) is not None


async def test_a_class_missing_from_the_cluster_stops_before_anything_is_created(
    kubectl, apiserver, tmp_path
):
    thresholds = tmp_path / "t.yaml"
    thresholds.write_text("storageClasses:\n  gold:\n    pvcBoundSeconds: 30\n")
    status, out, err = await _volumes_test(
        "--kubeconfig", str(apiserver.kubeconfig), "--storage-class", "gold", "--thresholds", str(thresholds)
    )
    assert status == 2
    assert out == ""
    assert (
        err
        == "couchestor: error: StorageClass 'gold' does not exist in the cluster; apply its template first\n"
    )
    assert await kubectl.get("namespace", DEFAULT_NAMESPACE, None) is None


async def test_a_class_without_thresholds_is_refused_before_the_cluster_is_asked(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, "http://127.0.0.1:9")  # nothing listens there: any kubectl call would fail
    status, out, err = await _volumes_test("--kubeconfig", str(kubeconfig), "--storage-class", "gold")
    assert status == 2
    assert out == ""
    assert "no thresholds for StorageClass 'gold' in the default thresholds" in err
    assert "kubectl" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--pvc-size", "lots"), "--pvc-size 'lots' is not a Kubernetes quantity"),
        (("--fio-size", "2 gigs"), "--fio-size '2 gigs' is not a size fio reads"),
        (("--pvc-size", "1Gi", "--fio-size", "1g"), "--fio-size 1g does not fit on a --pvc-size 1Gi claim"),
    ],
)
async def test_sizes_that_cannot_work_are_refused_before_the_cluster_is_asked(tmp_path, args, message):
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, "http://127.0.0.1:9")
    status, out, err = await _volumes_test("--kubeconfig", str(kubeconfig), *args)
    assert status == 2
    assert out == ""
    assert message in err
    assert "kubectl" not in err


async def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH")
    with socket.socket() as sock:  # a port that was free a moment ago: connections to it are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
    with trio.fail_after(120):
        status, out, err = await _volumes_test("--kubeconfig", str(kubeconfig), "--storage-class", "fast-ssd")
    assert status == 2
    assert out == ""
    assert err.startswith("couchestor: error: kubectl get storageclass fast-ssd")
    assert "Traceback" not in err
    assert err.count("\n") == 1
