"""TLS failures name the problem and are not retried; exec plugins get the cluster's TLS details."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
import yaml

from couchestor.kube.auth import BearerAuth, ExecCredentialSource
from couchestor.kube.backoff import BackoffPolicy
from couchestor.kube.client import KubeClient
from couchestor.kube.config import load_kubeconfig
from couchestor.kube.errors import ConnectionFailed, TLSFailure
from couchestor.kube.resources import CONFIG_MAP
from couchestor.kube.retry import RetryPolicy
from couchestor.sim.apiserver import ApiServer, serve, write_kubeconfig
from tests.kube.test_config import exec_plugin

# Retries so slow that a retried call could not finish inside the test's limit.
SLOW_RETRY = RetryPolicy(max_attempts=5, backoff=BackoffPolicy(initial=60.0, cap=60.0))


async def tls_server(nursery: trio.Nursery) -> tuple[str, bytes]:
    api = ApiServer()
    url: str = await nursery.start(lambda task_status: serve(api, tls=True, task_status=task_status))
    assert api.ca_pem is not None
    return url, api.ca_pem


def kubeconfig(tmp_path: Path, url: str, ca: bytes, **cluster: str) -> Path:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, url, ca_data=ca)
    doc = yaml.safe_load(path.read_text())
    doc["clusters"][0]["cluster"].update(cluster)
    path.write_text(yaml.safe_dump(doc))
    return path


async def first_call(path: Path) -> None:
    async with KubeClient(load_kubeconfig([path]), qps=0, retry=SLOW_RETRY, timeout=5) as client:
        with trio.fail_after(20):  # a retried call would sleep 60 s first
            await client.list_all(CONFIG_MAP, "default", type=dict)


async def test_unknown_ca_names_the_ca_and_is_not_retried(nursery: trio.Nursery, tmp_path: Path) -> None:
    url, _ = await tls_server(nursery)
    _, other_ca = await tls_server(nursery)  # a CA that did not sign this server's certificate
    with pytest.raises(TLSFailure) as info:
        await first_call(kubeconfig(tmp_path, url, other_ca))
    message = str(info.value)
    assert "TLS certificate verify failed: self-signed certificate" in message
    assert "server name '127.0.0.1'" in message
    assert "CA: cluster 'couchestor-sim' certificate-authority-data" in message
    assert message.startswith("GET /api/v1/namespaces/default/configmaps")


async def test_wrong_tls_server_name_names_it(nursery: trio.Nursery, tmp_path: Path) -> None:
    url, ca = await tls_server(nursery)
    with pytest.raises(TLSFailure) as info:
        await first_call(kubeconfig(tmp_path, url, ca, **{"tls-server-name": "wrong.example"}))
    message = str(info.value)
    assert "certificate is not valid for 'wrong.example'" in message
    assert "server name 'wrong.example'" in message


async def test_right_tls_server_name_is_used_for_verification(nursery: trio.Nursery, tmp_path: Path) -> None:
    url, ca = await tls_server(nursery)
    # The certificate names localhost; the URL names an IP: the server name makes it verify.
    await first_call(kubeconfig(tmp_path, url, ca, **{"tls-server-name": "localhost"}))


async def test_plain_http_server_behind_https_url_is_a_tls_failure(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    api = ApiServer()
    plain = await nursery.start(serve, api)
    _, ca = await tls_server(nursery)
    with pytest.raises(TLSFailure, match=r"TLS handshake failed: (WRONG_VERSION_NUMBER|.*record)"):
        await first_call(kubeconfig(tmp_path, plain.replace("http://", "https://"), ca))


async def test_refused_connection_says_why(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, "http://127.0.0.1:9")  # discard port: nothing listens
    retry = RetryPolicy(max_attempts=1)
    async with KubeClient(load_kubeconfig([path]), qps=0, retry=retry) as client:
        with pytest.raises(ConnectionFailed, match=r"cannot connect: \S"):
            await client.list_all(CONFIG_MAP, "default", type=dict)


PLUGIN = """
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
open(os.environ["INFO_FILE"], "w").write(json.dumps(info["spec"]["cluster"]))
print(json.dumps({"apiVersion": info["apiVersion"], "kind": "ExecCredential", "status": {"token": "t"}}))
"""


async def test_exec_plugin_gets_tls_server_name_proxy_and_config(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    _, ca = await _ca(tmp_path)
    ca_file.write_bytes(ca)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://10.0.0.1:6443",
                    "certificate-authority": str(ca_file),
                    "tls-server-name": "api.internal",
                    "proxy-url": "http://proxy.internal:3128",
                    "extensions": [
                        {"name": "other", "extension": {"x": 1}},
                        {"name": "client.authentication.k8s.io/exec", "extension": {"audience": "kube"}},
                    ],
                },
            }
        ],
        "users": [
            {
                "name": "u",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": str(exec_plugin(tmp_path, PLUGIN)),
                        "env": [{"name": "INFO_FILE", "value": str(tmp_path / "info.json")}],
                        "provideClusterInfo": True,
                    }
                },
            }
        ],
        "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u"}}],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    auth = load_kubeconfig([path]).auth
    assert isinstance(auth, BearerAuth)
    assert isinstance(auth.source, ExecCredentialSource)
    assert await auth.source.token() == "t"
    cluster = json.loads((tmp_path / "info.json").read_text())
    assert cluster["server"] == "https://10.0.0.1:6443"
    assert cluster["tls-server-name"] == "api.internal"
    assert cluster["proxy-url"] == "http://proxy.internal:3128"
    assert cluster["config"] == {"audience": "kube"}
    assert cluster["insecure-skip-tls-verify"] is False
    assert cluster["certificate-authority-data"]  # the file's content, as client-go passes it


async def _ca(tmp_path: Path) -> tuple[Path, bytes]:
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    await trio.run_process(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=t",
         "-keyout", str(key), "-out", str(cert)],
        capture_stdout=True, capture_stderr=True,
    )  # fmt: skip
    return cert, cert.read_bytes()
