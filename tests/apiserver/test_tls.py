"""HTTPS with a self-signed certificate: trusted through the written kubeconfig, refused without it."""

from __future__ import annotations

import shutil
import ssl

import httpx
import pytest
import trio

from couchestor.sim.apiserver import ApiServer, serve, write_kubeconfig


@pytest.fixture
async def tls_server(nursery, tmp_path):
    api = ApiServer()
    url = await nursery.start(lambda task_status: serve(api, tls=True, task_status=task_status))
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, url, ca_data=api.ca_pem)
    return api, url, kubeconfig


async def test_https_is_trusted_with_the_emitted_ca_only(tls_server):
    api, url, _ = tls_server
    assert url.startswith("https://")
    assert api.ca_pem is not None
    trusted = ssl.create_default_context(cadata=api.ca_pem.decode())
    async with httpx.AsyncClient(base_url=url, verify=trusted, timeout=30) as client:
        r = await client.get("/api/v1/namespaces/default")
        assert r.status_code == 200
        assert r.json()["metadata"]["name"] == "default"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/version")


@pytest.mark.kubectl
async def test_kubectl_works_over_https(tls_server, tmp_path):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH")
    _, _, kubeconfig = tls_server
    cmd = [kubectl, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache")]
    with trio.fail_after(60):
        out = await trio.run_process([*cmd, "get", "namespaces", "-o", "name"], capture_stdout=True)
    assert "namespace/kube-system" in out.stdout.decode().split()
