"""Kubeconfig and in-cluster loading, credentials (token, token file, exec plugin)."""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from couchestor.errors import UserError
from couchestor.kube.auth import BearerAuth, ExecConfig, ExecCredentialSource, FileToken
from couchestor.kube.config import ClusterConfig, load_config, load_incluster, load_kubeconfig
from couchestor.kube.errors import ConfigError, CredentialError
from couchestor.kube.resources import PERSISTENT_VOLUME
from tests.kube.mock import obj


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed CA-like certificate and key (good enough for loading, not for handshakes)."""
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return {"cert": d / "cert.pem", "key": d / "key.pem"}


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def base_doc(**user: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [
            {"name": "c1", "cluster": {"server": "https://10.0.0.1:6443/", "insecure-skip-tls-verify": True}},
            {"name": "c2", "cluster": {"server": "http://127.0.0.1:8080"}},
        ],
        "users": [{"name": "u1", "user": user or {"token": "abc"}}],
        "contexts": [
            {"name": "main", "context": {"cluster": "c1", "user": "u1", "namespace": "mayastor"}},
            {"name": "plain", "context": {"cluster": "c2", "user": "u1"}},
        ],
    }


async def auth_header(cfg: ClusterConfig) -> str:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers.get("authorization", ""))
        return httpx.Response(200, json=obj("x", 1))

    async with httpx.AsyncClient(auth=cfg.auth, transport=httpx.MockTransport(handler)) as http:
        await http.get(f"{cfg.server}{PERSISTENT_VOLUME.path()}")
    return seen[0]


async def test_token_context_namespace_and_server(tmp_path: Path) -> None:
    cfg = load_kubeconfig([write_kubeconfig(tmp_path / "config", base_doc())])
    assert cfg.server == "https://10.0.0.1:6443"
    assert cfg.namespace == "mayastor"
    assert cfg.verify is False
    assert "context 'main'" in cfg.source
    assert await auth_header(cfg) == "Bearer abc"
    other = load_kubeconfig([tmp_path / "config"], context="plain")
    assert (other.server, other.namespace) == ("http://127.0.0.1:8080", "default")


def test_ca_and_client_certificate_data_and_files(tmp_path: Path, pki: dict[str, Path]) -> None:
    doc = base_doc(**{"client-certificate-data": b64(pki["cert"]), "client-key-data": b64(pki["key"])})
    doc["clusters"][0]["cluster"] = {
        "server": "https://k:6443",
        "certificate-authority-data": b64(pki["cert"]),
    }
    cfg = load_kubeconfig([write_kubeconfig(tmp_path / "a", doc)])
    assert isinstance(cfg.verify, ssl.SSLContext)
    assert cfg.verify.verify_mode == ssl.CERT_REQUIRED
    assert cfg.auth is None
    # Relative file paths are relative to the kubeconfig's directory.
    sub = tmp_path / "sub"
    sub.mkdir()
    for name in ("cert", "key"):
        (sub / f"{name}.pem").write_bytes(pki[name].read_bytes())
    doc = base_doc(**{"client-certificate": "cert.pem", "client-key": "key.pem"})
    doc["clusters"][0]["cluster"] = {"server": "https://k:6443", "certificate-authority": "cert.pem"}
    assert isinstance(load_kubeconfig([write_kubeconfig(sub / "b", doc)]).verify, ssl.SSLContext)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d.pop("current-context"),
            "no current-context set; pass --context (available: main, plain)",
        ),
        (
            lambda d: d.update({"current-context": "gone"}),
            "context 'gone' not found (available: main, plain)",
        ),
        (lambda d: d["contexts"][0]["context"].update(cluster="zz"), "unknown cluster 'zz'"),
        (lambda d: d["contexts"][0]["context"].update(user="zz"), "unknown user 'zz'"),
        (lambda d: d["clusters"][0]["cluster"].pop("server"), "cluster 'c1' has no server"),
        (lambda d: d["clusters"][0]["cluster"].update(server="ftp://x"), "is not an http(s) URL"),
        (
            lambda d: d["users"][0]["user"].update({"client-key-data": "!!"}),
            "'client-key-data' is not valid base64",
        ),
        (
            lambda d: d["users"][0].update(user={"client-certificate-data": "YWJj"}),
            "needs both a certificate and a key",
        ),
        (
            lambda d: d["clusters"][0]["cluster"].update({"certificate-authority": "/nonexistent/ca.crt"}),
            "certificate-authority and insecure-skip-tls-verify are exclusive",
        ),
        (
            lambda d: d["users"][0].update(user={"auth-provider": {"name": "gcp"}}),
            "auth-provider plugins are not supported",
        ),
        (lambda d: d["users"][0].update(user={"tokenFile": "missing-token"}), "tokenFile"),
        (
            lambda d: d["users"][0].update(user={"exec": {"command": "x", "apiVersion": "v0"}}),
            "apiVersion 'v0' is not supported",
        ),
        (lambda d: d.update(clusters="nope"), "'clusters' must be a list"),
    ],
)
def test_bad_kubeconfig_gives_one_line_error(tmp_path: Path, mutate: Any, message: str) -> None:
    doc = base_doc()
    mutate(doc)
    path = write_kubeconfig(tmp_path / "config", doc)
    with pytest.raises(ConfigError) as info:
        load_kubeconfig([path])
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert isinstance(info.value, UserError)


def test_missing_unreadable_and_invalid_files(tmp_path: Path, pki: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_kubeconfig([tmp_path / "nope"])
    bad = tmp_path / "bad"
    bad.write_text("clusters: [\n  - name: a\n  cluster: {")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_kubeconfig([bad])
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_kubeconfig([bad])
    doc = base_doc()
    doc["clusters"][0]["cluster"] = {"server": "https://k", "certificate-authority": str(tmp_path / "no-ca")}
    with pytest.raises(ConfigError, match="not found"):
        load_kubeconfig([write_kubeconfig(tmp_path / "c", doc)])
    doc["clusters"][0]["cluster"] = {"server": "https://k", "certificate-authority": str(pki["key"])}
    with pytest.raises(ConfigError, match="not a valid PEM CA bundle"):
        load_kubeconfig([write_kubeconfig(tmp_path / "c", doc)])


def test_kubeconfig_env_list_merges_first_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = base_doc(token="first")
    first["contexts"] = [{"name": "main", "context": {"cluster": "c1", "user": "u1", "namespace": "one"}}]
    first.pop("current-context")
    second = base_doc(token="second")
    second["current-context"] = "plain"
    p1 = write_kubeconfig(tmp_path / "one", first)
    p2 = write_kubeconfig(tmp_path / "two", second)
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(p1), str(tmp_path / "absent"), str(p2)]))
    cfg = load_config()
    assert cfg.server == "http://127.0.0.1:8080"  # current-context from the second file
    assert load_config(context="main").namespace == "one"  # the first file's context wins
    assert load_config(p2, context="main").namespace == "mayastor"  # an explicit path beats KUBECONFIG


def test_in_cluster(tmp_path: Path, pki: dict[str, Path]) -> None:
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "ca.crt").write_bytes(pki["cert"].read_bytes())
    (tmp_path / "namespace").write_text("couchestor")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    cfg = load_incluster(env, tmp_path)
    assert cfg.server == "https://[fd00::1]:443"
    assert cfg.namespace == "couchestor"
    assert isinstance(cfg.verify, ssl.SSLContext)
    assert isinstance(cfg.auth, BearerAuth)
    assert isinstance(cfg.auth.source, FileToken)
    with pytest.raises(ConfigError, match="not running in a cluster"):
        load_incluster({}, tmp_path)
    (tmp_path / "token").unlink()
    with pytest.raises(ConfigError, match="service-account token"):
        load_incluster(env, tmp_path)


async def test_token_file_is_reread_when_it_changes_and_on_401(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one")
    source = FileToken(token)
    assert await source.token() == "one"
    token.write_text("two-longer")
    assert await source.token() == "two-longer"

    accepted = {"Bearer three"}
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers["authorization"])
        if req.headers["authorization"] in accepted:
            return httpx.Response(200, json={})
        token.write_text("three")  # rotated while the request was in flight
        return httpx.Response(401, json={"kind": "Status", "code": 401, "reason": "Unauthorized"})

    async with httpx.AsyncClient(auth=BearerAuth(source), transport=httpx.MockTransport(handler)) as http:
        resp = await http.get("https://k/api")
    assert resp.status_code == 200
    assert seen == ["Bearer two-longer", "Bearer three"]
    token.unlink()
    with pytest.raises(CredentialError, match="cannot read token file"):
        await source.token(refresh=True)


def exec_plugin(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "plugin.py"
    script.write_text(f"#!{sys.executable}\nimport json, os, sys\n{body}\n")
    script.chmod(0o755)
    return script


PLUGIN = """
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
assert info["spec"]["interactive"] is False
count_file = os.environ["COUNT_FILE"]
n = int(open(count_file).read()) + 1 if os.path.exists(count_file) else 1
open(count_file, "w").write(str(n))
print(json.dumps({"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                  "status": {"token": f"tok-{n}", "expirationTimestamp": sys.argv[1]}}))
"""


async def test_exec_plugin_token_is_cached_until_expiry(tmp_path: Path) -> None:
    script = exec_plugin(tmp_path, PLUGIN)
    doc = base_doc(
        exec={
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": f"./{script.name}",  # relative to the kubeconfig's directory
            "args": ["2030-01-01T00:10:00Z"],
            "env": [{"name": "COUNT_FILE", "value": str(tmp_path / "count")}],
            "provideClusterInfo": True,
        }
    )
    cfg = load_kubeconfig([write_kubeconfig(tmp_path / "config", doc)])
    assert isinstance(cfg.auth, BearerAuth)
    source = cfg.auth.source
    assert isinstance(source, ExecCredentialSource)
    clock = [datetime(2030, 1, 1, tzinfo=UTC)]
    source.now = lambda: clock[0]
    assert await source.token() == "tok-1"
    assert await source.token() == "tok-1"
    clock[0] += timedelta(minutes=9, seconds=55)  # within the 10 s skew of expiry
    assert await source.token() == "tok-2"
    assert await source.token(refresh=True) == "tok-3"  # a 401 forces a new credential
    assert source.runs == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("sys.stderr.write('login required\\n'); sys.exit(3)", "exited with status 3: login required"),
        ("print('not json')", "invalid ExecCredential"),
        (
            "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',"
            " 'status': {}}))",
            "returned no status.token",
        ),
        (
            "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',"
            " 'status': {'token': 't', 'expirationTimestamp': 'soon'}}))",
            "bad expirationTimestamp",
        ),
    ],
)
async def test_exec_plugin_failures(tmp_path: Path, body: str, message: str) -> None:
    source = ExecCredentialSource(ExecConfig(command=str(exec_plugin(tmp_path, body))))
    with pytest.raises(CredentialError, match=message):
        await source.token()


async def test_exec_plugin_not_found_mentions_install_hint() -> None:
    source = ExecCredentialSource(ExecConfig(command="no-such-plugin-xyz", install_hint="install it from X"))
    with pytest.raises(CredentialError) as info:
        await source.token()
    assert str(info.value) == "exec credential plugin 'no-such-plugin-xyz' not found (install it from X)"


def test_no_configuration_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(
        ConfigError, match="no Kubernetes configuration found: pass --kubeconfig, set KUBECONFIG"
    ):
        load_config()
    (tmp_path / ".kube").mkdir()
    write_kubeconfig(tmp_path / ".kube" / "config", base_doc())
    assert load_config().namespace == "mayastor"
