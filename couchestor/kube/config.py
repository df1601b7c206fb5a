"""Where the API server is and how to talk to it: kubeconfig files and the in-cluster environment.

:func:`load_config` follows the order controller-runtime uses: an explicit kubeconfig path, then
``$KUBECONFIG`` (a list of files, merged with the first definition of each name winning, as kubectl does),
then the in-cluster service account, then ``~/.kube/config``. The result is a :class:`ClusterConfig`: server
URL, TLS verification (an :class:`ssl.SSLContext` or False), credentials and default namespace.

Every problem is a :class:`~couchestor.kube.errors.ConfigError` whose message names the file and the entry
that is wrong; nothing here raises anything else for bad input.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from couchestor.kube.auth import BearerAuth, ExecConfig, ExecCredentialSource, FileToken, StaticToken
from couchestor.kube.errors import ConfigError
from couchestor.kube.proxy import normalize_proxy_url

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Everything needed to build an HTTP client for one API server.

    ``verify`` is an SSL context carrying the CA bundle and any client certificate, or False when the
    kubeconfig says ``insecure-skip-tls-verify`` and no client certificate is used. ``source`` says where the
    configuration came from, for log lines and error messages. ``proxy_url`` is the cluster's ``proxy-url``
    (see :mod:`couchestor.kube.proxy` for how the environment's proxies apply when it is unset). ``ca_source``
    says which certificate authority verifies the server, for TLS error messages.
    """

    server: str
    verify: ssl.SSLContext | bool
    auth: httpx.Auth | None = None
    namespace: str = "default"
    tls_server_name: str | None = None
    source: str = ""
    proxy_url: str | None = None
    ca_source: str = "the system trust store"


def load_config(
    kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
) -> ClusterConfig:
    """The cluster configuration to use, found the way controller-runtime finds it (see module doc)."""
    if kubeconfig is not None:
        return load_kubeconfig([Path(kubeconfig)], context)
    env = os.environ.get("KUBECONFIG", "")
    paths = [Path(p) for p in env.split(os.pathsep) if p]
    if paths:
        return load_kubeconfig(paths, context)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
        return load_incluster()
    default = Path.home() / ".kube" / "config"
    if not default.exists():
        raise ConfigError(
            "no Kubernetes configuration found: pass --kubeconfig, set KUBECONFIG, or run inside a cluster"
        )
    return load_kubeconfig([default], context)


def load_incluster(
    environ: Mapping[str, str] | None = None, account_dir: Path = SERVICE_ACCOUNT_DIR
) -> ClusterConfig:
    """The configuration of a pod: ``KUBERNETES_SERVICE_HOST``/``_PORT`` and the mounted service account.

    The token file is re-read whenever the kubelet rotates it.
    """
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError(
            "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT unset"
        )
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    token_path, ca_path = account_dir / "token", account_dir / "ca.crt"
    if not token_path.is_file():
        raise ConfigError(
            f"in-cluster: service-account token {token_path} not found (automountServiceAccountToken?)"
        )
    ctx = _ssl_context(ca_file=ca_path, what="in-cluster CA bundle")
    try:
        namespace = (account_dir / "namespace").read_text(encoding="utf-8").strip() or "default"
    except OSError:
        namespace = "default"
    return ClusterConfig(
        server=f"https://{host}:{port}",
        verify=ctx,
        auth=BearerAuth(FileToken(token_path)),
        namespace=namespace,
        source="in-cluster service account",
        ca_source=f"in-cluster CA bundle {ca_path}",
    )


def load_kubeconfig(paths: Sequence[Path], context: str | None = None) -> ClusterConfig:
    """Load and merge kubeconfig ``paths`` and resolve ``context`` (default: ``current-context``)."""
    merged = _merge([_read_kubeconfig(p) for p in paths if p.exists() or len(paths) == 1])
    where = ", ".join(str(p) for p in paths)
    if not merged.files:
        raise ConfigError(f"kubeconfig {where}: file not found")
    ctx_name = context or merged.current_context
    if not ctx_name:
        raise ConfigError(
            f"kubeconfig {where}: no current-context set; pass --context "
            f"(available: {_names(merged.contexts)})"
        )
    if ctx_name not in merged.contexts:
        raise ConfigError(
            f"kubeconfig {where}: context {ctx_name!r} not found (available: {_names(merged.contexts)})"
        )
    ctx, ctx_file = merged.contexts[ctx_name]
    cluster_name = _str(ctx, "cluster", f"context {ctx_name!r}", ctx_file)
    user_name = ctx.get("user") or ""
    if not cluster_name or cluster_name not in merged.clusters:
        raise ConfigError(
            f"kubeconfig {where}: context {ctx_name!r} refers to unknown cluster {cluster_name!r}"
        )
    cluster, cluster_file = merged.clusters[cluster_name]
    if user_name and user_name not in merged.users:
        raise ConfigError(f"kubeconfig {where}: context {ctx_name!r} refers to unknown user {user_name!r}")
    user, user_file = merged.users[user_name] if user_name else ({}, cluster_file)
    namespace = _str(ctx, "namespace", f"context {ctx_name!r}", ctx_file) or "default"
    return _build(cluster_name, cluster, cluster_file, user_name, user, user_file, namespace, ctx_name)


# --- parsing -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Merged:
    files: list[Path]
    current_context: str
    clusters: dict[str, tuple[Mapping[str, Any], Path]]
    users: dict[str, tuple[Mapping[str, Any], Path]]
    contexts: dict[str, tuple[Mapping[str, Any], Path]]


def _read_kubeconfig(path: Path) -> tuple[Path, Mapping[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"kubeconfig {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"kubeconfig {path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"kubeconfig {path}: not valid YAML{at}: {problem}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path}: expected a mapping at the top level, got {type(doc).__name__}")
    return path, doc


def _merge(docs: list[tuple[Path, Mapping[str, Any]]]) -> _Merged:
    merged = _Merged([], "", {}, {}, {})
    for path, doc in docs:
        merged.files.append(path)
        if not merged.current_context:
            merged.current_context = _str(doc, "current-context", "top level", path)
        for section, key, target in (
            ("clusters", "cluster", merged.clusters),
            ("users", "user", merged.users),
            ("contexts", "context", merged.contexts),
        ):
            entries = doc.get(section) or []
            if not isinstance(entries, list):
                raise ConfigError(f"kubeconfig {path}: {section!r} must be a list")
            for n, entry in enumerate(entries):
                if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                    raise ConfigError(f"kubeconfig {path}: {section}[{n}] needs a 'name'")
                body = entry.get(key) or {}
                if not isinstance(body, dict):
                    raise ConfigError(
                        f"kubeconfig {path}: {section}[{n}] ({entry['name']}): {key!r} must be a mapping"
                    )
                target.setdefault(entry["name"], (body, path))
    return merged


def _names(entries: Mapping[str, object]) -> str:
    return ", ".join(sorted(entries)) or "none"


def _str(doc: Mapping[str, Any], key: str, where: str, path: Path) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"kubeconfig {path}: {where}: {key!r} must be a string")
    return value


def _data(doc: Mapping[str, Any], key: str, where: str, path: Path) -> bytes | None:
    text = _str(doc, key, where, path)
    if not text:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"kubeconfig {path}: {where}: {key!r} is not valid base64") from None


def _file(doc: Mapping[str, Any], key: str, where: str, path: Path) -> Path | None:
    text = _str(doc, key, where, path)
    if not text:
        return None
    p = Path(text).expanduser()
    # Relative paths in a kubeconfig are relative to the file that contains them.
    return p if p.is_absolute() else path.parent / p


def _build(
    cluster_name: str,
    cluster: Mapping[str, Any],
    cluster_file: Path,
    user_name: str,
    user: Mapping[str, Any],
    user_file: Path,
    namespace: str,
    ctx_name: str,
) -> ClusterConfig:
    cw, uw = f"cluster {cluster_name!r}", f"user {user_name!r}"
    server = _str(cluster, "server", cw, cluster_file).rstrip("/")
    if not server:
        raise ConfigError(f"kubeconfig {cluster_file}: {cw} has no server")
    url = httpx.URL(server)
    if url.scheme not in ("https", "http") or not url.host:
        raise ConfigError(f"kubeconfig {cluster_file}: {cw}: server {server!r} is not an http(s) URL")
    insecure = bool(cluster.get("insecure-skip-tls-verify", False))
    ca_data = _data(cluster, "certificate-authority-data", cw, cluster_file)
    ca_file = _file(cluster, "certificate-authority", cw, cluster_file)
    cert_data = _data(user, "client-certificate-data", uw, user_file)
    key_data = _data(user, "client-key-data", uw, user_file)
    cert_file = _file(user, "client-certificate", uw, user_file)
    key_file = _file(user, "client-key", uw, user_file)
    has_cert = bool(cert_data or cert_file)
    if has_cert != bool(key_data or key_file):
        raise ConfigError(
            f"kubeconfig {user_file}: {uw}: a client certificate needs both a certificate and a key"
        )
    if insecure and (ca_data or ca_file):
        raise ConfigError(
            f"kubeconfig {cluster_file}: {cw}: "
            "certificate-authority and insecure-skip-tls-verify are exclusive"
        )

    verify: ssl.SSLContext | bool = False
    if url.scheme == "https":
        ctx = _ssl_context(
            ca_file=ca_file, ca_data=ca_data, insecure=insecure, what=f"{cw} certificate authority"
        )
        if has_cert:
            _load_client_cert(ctx, cert_file, cert_data, key_file, key_data, f"kubeconfig {user_file}: {uw}")
        verify = ctx if (not insecure or has_cert) else False
        if insecure and has_cert:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE

    tls_server_name = _str(cluster, "tls-server-name", cw, cluster_file) or None
    proxy_url = _str(cluster, "proxy-url", cw, cluster_file) or None
    if proxy_url is not None:
        proxy_url = normalize_proxy_url(proxy_url, f"kubeconfig {cluster_file}: {cw}: proxy-url")
    if ca_file is not None and ca_data is None and url.scheme == "https":
        try:
            ca_data = ca_file.read_bytes()  # the exec plugin's cluster info carries the CA as data
        except OSError:
            pass  # _ssl_context has already checked the file; a race is not worth failing on here
    exec_cluster = _ExecCluster(
        server, tls_server_name, insecure, ca_data, proxy_url, _exec_extension(cluster)
    )
    auth = _auth(user, uw, user_file, exec_cluster)
    ca_source = (
        f"{cw} certificate-authority {ca_file}"
        if ca_file is not None
        else f"{cw} certificate-authority-data"
        if ca_data is not None
        else "the system trust store"
    )
    return ClusterConfig(
        server=server,
        verify=verify,
        auth=auth,
        namespace=namespace,
        tls_server_name=tls_server_name,
        source=f"kubeconfig {cluster_file} context {ctx_name!r}",
        proxy_url=proxy_url,
        ca_source=ca_source,
    )


@dataclass(frozen=True, slots=True)
class _ExecCluster:
    """What an exec credential plugin is told about the cluster (client-go's ``clientauthentication.Cluster``)."""

    server: str
    tls_server_name: str | None
    insecure: bool
    ca_data: bytes | None
    proxy_url: str | None
    config: object  # the cluster's ``client.authentication.k8s.io/exec`` extension, or None

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"server": self.server, "insecure-skip-tls-verify": self.insecure}
        if self.tls_server_name:
            info["tls-server-name"] = self.tls_server_name
        if self.ca_data:
            info["certificate-authority-data"] = base64.b64encode(self.ca_data).decode()
        if self.proxy_url:
            info["proxy-url"] = self.proxy_url
        if self.config is not None:
            info["config"] = self.config
        return info


_EXEC_EXTENSION = "client.authentication.k8s.io/exec"


def _exec_extension(cluster: Mapping[str, Any]) -> object:
    """The ``extension`` of the cluster's ``client.authentication.k8s.io/exec`` extension, if any (the
    per-cluster configuration client-go hands to exec plugins as ``spec.cluster.config``)."""
    for entry in cluster.get("extensions") or []:
        if isinstance(entry, dict) and entry.get("name") == _EXEC_EXTENSION:
            return entry.get("extension")
    return None


def _auth(user: Mapping[str, Any], uw: str, path: Path, cluster: _ExecCluster) -> httpx.Auth | None:
    if "auth-provider" in user:
        raise ConfigError(
            f"kubeconfig {path}: {uw}: auth-provider plugins are not supported; use an exec credential plugin"
        )
    token = _str(user, "token", uw, path)
    token_file = _file(user, "tokenFile", uw, path) or _file(user, "token-file", uw, path)
    exec_cfg = user.get("exec")
    if token:
        return BearerAuth(StaticToken(token))
    if token_file is not None:
        if not token_file.is_file():
            raise ConfigError(f"kubeconfig {path}: {uw}: tokenFile {token_file} not found")
        return BearerAuth(FileToken(token_file))
    if exec_cfg is not None:
        return BearerAuth(ExecCredentialSource(_exec_config(exec_cfg, uw, path, cluster)))
    username, password = _str(user, "username", uw, path), _str(user, "password", uw, path)
    if username:
        return httpx.BasicAuth(username, password)
    return None


def _exec_config(raw: object, uw: str, path: Path, cluster: _ExecCluster) -> ExecConfig:
    where = f"{uw} exec"
    if not isinstance(raw, dict):
        raise ConfigError(f"kubeconfig {path}: {where} must be a mapping")
    command = _str(raw, "command", where, path)
    if not command:
        raise ConfigError(f"kubeconfig {path}: {where} has no command")
    # A command with a path separator but not absolute is relative to the kubeconfig (as in client-go).
    if os.sep in command and not os.path.isabs(command):
        command = str(path.parent / command)
    api_version = _str(raw, "apiVersion", where, path)
    if api_version not in ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"):
        raise ConfigError(
            f"kubeconfig {path}: {where}: apiVersion {api_version!r} is not supported "
            "(client.authentication.k8s.io/v1 or v1beta1)"
        )
    if raw.get("interactiveMode") == "Always":
        raise ConfigError(
            f"kubeconfig {path}: {where}: interactiveMode Always needs a terminal; not supported"
        )
    args = raw.get("args") or []
    env = raw.get("env") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"kubeconfig {path}: {where}: args must be a list of strings")
    if not isinstance(env, list) or not all(
        isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("value"), str)
        for e in env
    ):
        raise ConfigError(f"kubeconfig {path}: {where}: env must be a list of {{name, value}}")
    cluster_info = cluster.info() if raw.get("provideClusterInfo") else None
    return ExecConfig(
        command=command,
        args=tuple(args),
        env=tuple((e["name"], e["value"]) for e in env),
        api_version=api_version,
        install_hint=_str(raw, "installHint", where, path),
        cluster_info=cluster_info,
    )


# --- TLS -----------------------------------------------------------------------------------------------


def _ssl_context(
    *, ca_file: Path | None = None, ca_data: bytes | None = None, insecure: bool = False, what: str
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH)
    if insecure:
        return ctx
    try:
        if ca_file is not None:
            ctx = ssl.create_default_context(cafile=str(ca_file))
        elif ca_data is not None:
            ctx = ssl.create_default_context(cadata=ca_data.decode("ascii", "replace"))
    except FileNotFoundError:
        raise ConfigError(f"{what}: file {ca_file} not found") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        source = ca_file if ca_file is not None else "certificate-authority-data"
        raise ConfigError(f"{what}: {source} is not a valid PEM CA bundle ({_ssl_reason(exc)})") from None
    return ctx


def _load_client_cert(
    ctx: ssl.SSLContext,
    cert_file: Path | None,
    cert_data: bytes | None,
    key_file: Path | None,
    key_data: bytes | None,
    where: str,
) -> None:
    # ssl only loads certificates from files: write inline data to a private temporary directory.
    with tempfile.TemporaryDirectory(prefix="couchestor-tls-") as tmp:
        if cert_data is not None:
            cert_file = Path(tmp) / "client.crt"
            cert_file.write_bytes(cert_data)
        if key_data is not None:
            key_file = Path(tmp) / "client.key"
            key_file.touch(mode=0o600)
            key_file.write_bytes(key_data)
        assert cert_file is not None
        assert key_file is not None
        try:
            ctx.load_cert_chain(str(cert_file), str(key_file))
        except FileNotFoundError as exc:
            raise ConfigError(f"{where}: client certificate or key file {exc.filename} not found") from None
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"{where}: client certificate/key not usable ({_ssl_reason(exc)})") from None


def _ssl_reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)
