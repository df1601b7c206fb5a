"""Proxies resolved as kubectl resolves them: the rules, and requests through a CONNECT proxy on loopback."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from couchestor.kube.client import KubeClient
from couchestor.kube.config import load_kubeconfig
from couchestor.kube.errors import ConfigError
from couchestor.kube.proxy import proxy_for, use_proxy
from couchestor.kube.resources import CONFIG_MAP
from couchestor.sim.apiserver import ApiServer, serve, write_kubeconfig
from tests.kube.tunnel import ConnectProxy

PROXY = "http://proxy.example:3128"


@pytest.mark.parametrize(
    ("server", "environ", "want"),
    [
        ("https://10.96.0.1", {"HTTPS_PROXY": PROXY}, PROXY),
        ("https://10.96.0.1", {"HTTPS_PROXY": PROXY, "NO_PROXY": "10.96.0.0/12"}, None),
        ("https://10.112.0.1", {"HTTPS_PROXY": PROXY, "NO_PROXY": "10.96.0.0/12"}, PROXY),
        ("https://[fd00::1]:6443", {"HTTPS_PROXY": PROXY, "NO_PROXY": "fd00::/8"}, None),
        ("https://127.0.0.1:6443", {"HTTPS_PROXY": PROXY}, None),
        ("https://127.8.9.10:6443", {"HTTPS_PROXY": PROXY}, None),
        ("https://[::1]:6443", {"HTTPS_PROXY": PROXY}, None),
        ("https://localhost:6443", {"HTTPS_PROXY": PROXY}, None),
        ("https://api.example.com", {"https_proxy": PROXY}, PROXY),
        ("https://api.example.com", {"HTTPS_PROXY": PROXY, "https_proxy": "http://other:1"}, PROXY),
        ("https://api.example.com", {"HTTP_PROXY": PROXY}, None),  # only HTTPS_PROXY for https
        ("http://api.example.com", {"HTTP_PROXY": PROXY}, PROXY),
        ("https://api.example.com", {"HTTPS_PROXY": PROXY, "NO_PROXY": "example.com"}, None),
        ("https://example.com", {"HTTPS_PROXY": PROXY, "NO_PROXY": "example.com"}, None),
        ("https://example.com", {"HTTPS_PROXY": PROXY, "NO_PROXY": ".example.com"}, PROXY),
        ("https://api.example.com", {"HTTPS_PROXY": PROXY, "NO_PROXY": "*.example.com"}, None),
        ("https://badexample.com", {"HTTPS_PROXY": PROXY, "NO_PROXY": "example.com"}, PROXY),
        ("https://api.example.com:6443", {"HTTPS_PROXY": PROXY, "NO_PROXY": "api.example.com:443"}, PROXY),
        ("https://api.example.com", {"HTTPS_PROXY": PROXY, "NO_PROXY": "api.example.com:443"}, None),
        ("https://10.0.0.7", {"HTTPS_PROXY": PROXY, "NO_PROXY": " 10.0.0.7 , x"}, None),
        ("https://10.0.0.7", {"HTTPS_PROXY": PROXY, "no_proxy": "*"}, None),
        ("https://10.0.0.7", {"HTTPS_PROXY": "proxy.example:3128"}, PROXY),  # no scheme: http
    ],
)
def test_environment_proxy_rules_are_go_s(server: str, environ: dict[str, str], want: str | None) -> None:
    assert proxy_for(server, None, environ) == want


def test_kubeconfig_proxy_url_wins_over_the_environment() -> None:
    environ = {"HTTPS_PROXY": "http://env:1", "NO_PROXY": "*"}
    assert proxy_for("https://127.0.0.1:6443", "https://kc:3129", environ) == "https://kc:3129"


def test_unusable_proxy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"socks5.*not supported"):
        proxy_for("https://10.0.0.1", "socks5://127.0.0.1:1080", {})
    with pytest.raises(ConfigError, match="HTTPS_PROXY"):
        proxy_for("https://10.0.0.1", None, {"HTTPS_PROXY": "ftp://x"})
    assert not use_proxy("10.0.0.1", 443, "bogus/99, 10.0.0.1")  # an unparsable entry is skipped


def host_address() -> str | None:
    """A non-loopback IPv4 address of this machine, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 9))  # UDP: nothing is sent; picks the outgoing address
        except OSError:
            return None
        address: str = s.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


async def tls_emulator(
    nursery: trio.Nursery, tmp_path: Path, host: str, proxy_url: str | None = None
) -> Path:
    api = ApiServer()
    url = await nursery.start(lambda task_status: serve(api, host=host, tls=True, task_status=task_status))
    kubeconfig = tmp_path / f"kubeconfig-{host}"
    write_kubeconfig(kubeconfig, url.replace("0.0.0.0", host), ca_data=api.ca_pem)
    if proxy_url is not None:
        doc = yaml.safe_load(kubeconfig.read_text())
        doc["clusters"][0]["cluster"]["proxy-url"] = proxy_url
        kubeconfig.write_text(yaml.safe_dump(doc))
    return kubeconfig


async def list_through(kubeconfig: Path) -> KubeClient:
    client = KubeClient(load_kubeconfig([kubeconfig]), qps=0, timeout=10)
    async with client:
        await client.list_all(CONFIG_MAP, "default", type=dict)
    return client


async def test_kubeconfig_proxy_url_carries_every_request(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("NO_PROXY", "*")  # proxy-url applies whatever the environment says
    proxy = ConnectProxy()
    await nursery.start(proxy.serve)
    kubeconfig = await tls_emulator(nursery, tmp_path, "127.0.0.1", proxy_url=proxy.url)
    client = await list_through(kubeconfig)
    assert client.proxy == proxy.url
    port = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"].rsplit(":", 1)[1]
    assert proxy.targets == [f"127.0.0.1:{port}"]


async def test_loopback_server_is_never_proxied(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: Any
) -> None:
    proxy = ConnectProxy()
    await nursery.start(proxy.serve)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    kubeconfig = await tls_emulator(nursery, tmp_path, "127.0.0.1")
    client = await list_through(kubeconfig)
    assert client.proxy is None
    assert proxy.targets == []


async def test_no_proxy_cidr_keeps_a_server_off_the_proxy(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: Any
) -> None:
    address = host_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to serve the emulator on")
    proxy = ConnectProxy()
    await nursery.start(proxy.serve)
    kubeconfig = await tls_emulator(nursery, tmp_path, address)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "192.168.255.0/24")  # another network: proxied
    await list_through(kubeconfig)
    assert len(proxy.targets) == 1
    assert proxy.targets[0].startswith(f"{address}:")
    monkeypatch.setenv("NO_PROXY", f"example.com,{address.rsplit('.', 1)[0]}.0/24")
    client = await list_through(kubeconfig)
    assert client.proxy is None
    assert len(proxy.targets) == 1  # the second client went direct
