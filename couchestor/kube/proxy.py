"""Which HTTP proxy, if any, carries the requests to an API server: resolved the way kubectl resolves it.

kubectl (client-go, Go's ``net/http``) uses, in this order:

1. the cluster's ``proxy-url`` in the kubeconfig: every request goes through it, whatever the environment says;
2. otherwise ``HTTPS_PROXY`` (for an ``https`` server) or ``HTTP_PROXY`` (for ``http``), upper case before
   lower case, unless the server is excluded by ``NO_PROXY``/``no_proxy``.

Go's exclusion rules (``golang.org/x/net/http/httpproxy``), which differ from Python's ``urllib`` and httpx:

- ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``) are never proxied;
- ``NO_PROXY`` is a comma-separated list; ``*`` excludes everything; an entry is a CIDR block
  (``10.96.0.0/12``, matched against an IP-literal server), an IP address, or a domain name (``example.com``
  excludes it and its subdomains, ``.example.com`` and ``*.example.com`` only its subdomains), each optionally
  with ``:port`` to exclude only that port.

A proxy URL without a scheme means ``http://``. Only ``http`` and ``https`` proxies are supported (a ``socks5``
proxy needs a library the project does not ship): another scheme is a :class:`ConfigError`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import httpx

from couchestor.kube.errors import ConfigError

_SCHEMES = ("http", "https")


def proxy_for(server: str, proxy_url: str | None, environ: Mapping[str, str]) -> str | None:
    """The proxy URL for requests to ``server`` (an API server URL), or None to connect directly.

    ``proxy_url`` is the kubeconfig's; ``environ`` the process environment.
    """
    if proxy_url:
        return normalize_proxy_url(proxy_url, "kubeconfig proxy-url")
    url = httpx.URL(server)
    names = ("HTTPS_PROXY", "https_proxy") if url.scheme == "https" else ("HTTP_PROXY", "http_proxy")
    name = next((n for n in names if environ.get(n)), None)
    if name is None:
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    no_proxy = environ.get("NO_PROXY") or environ.get("no_proxy") or ""
    if not use_proxy(url.host, port, no_proxy):
        return None
    return normalize_proxy_url(environ[name], name)


def normalize_proxy_url(value: str, where: str) -> str:
    """``value`` as a full proxy URL (``http://`` added when it has no scheme); :class:`ConfigError` if bad."""
    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{where}: {value!r} is not a valid proxy URL ({exc})") from None
    if url.scheme not in _SCHEMES:
        raise ConfigError(
            f"{where}: proxy scheme {url.scheme!r} is not supported (use an http:// or https:// proxy)"
        )
    if not url.host:
        raise ConfigError(f"{where}: proxy URL {value!r} has no host")
    return text


def use_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Whether a request to ``host:port`` goes through the environment's proxy, given ``NO_PROXY``."""
    host = host.lower().strip("[]")
    if host == "localhost":
        return False
    ip = _ip(host)
    if ip is not None and ip.is_loopback:
        return False
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return False
        if "/" in entry:
            try:
                net = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue  # Go skips what it cannot parse
            if ip is not None and ip in net:
                return False
            continue
        entry_host, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        entry_ip = _ip(entry_host)
        if entry_ip is not None:
            if ip is not None and ip == entry_ip:
                return False
            continue
        if entry_host.startswith("*."):
            entry_host = entry_host[1:]
        if entry_host.startswith("."):
            if host.endswith(entry_host):
                return False
        elif host == entry_host or host.endswith("." + entry_host):
            return False
    return True


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port`` (``[v6]:port`` too) split; a bare IPv6 address has no port."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else None
    return entry, None
