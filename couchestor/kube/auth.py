"""Bearer-token credentials for the API server, as :class:`httpx.Auth` flows.

A :class:`TokenSource` yields the current token; :class:`BearerAuth` puts it on every request and, when the
server answers 401, asks the source for a fresh token and retries the request once (as client-go does for
rotated service-account tokens and expired exec credentials). Sources:

- :class:`StaticToken`: a token written in the kubeconfig.
- :class:`FileToken`: a token file (``tokenFile``, or the in-cluster service-account token that the kubelet
  rotates); re-read whenever the file changes (checked with ``stat`` per request, which is cheap).
- :class:`ExecCredentialSource`: a ``client.authentication.k8s.io`` exec plugin; its credential is cached
  until its ``expirationTimestamp`` (or a 401) and refreshed by one task at a time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import msgspec
import trio
from msgspec import UNSET, UnsetType

from couchestor.kube.errors import CredentialError


class TokenSource(Protocol):
    """Anything that can produce a bearer token; ``refresh=True`` means the last one was rejected."""

    async def token(self, *, refresh: bool = False) -> str: ...


@dataclass(frozen=True, slots=True)
class StaticToken:
    value: str

    async def token(self, *, refresh: bool = False) -> str:
        return self.value


@dataclass(slots=True)
class FileToken:
    """A token read from ``path`` and re-read when the file's identity, size or mtime changes."""

    path: Path
    _stamp: tuple[int, int, int] | None = None
    _value: str = ""

    def _read(self, *, refresh: bool) -> str:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            if refresh or stamp != self._stamp:
                value = self.path.read_text(encoding="utf-8").strip()
                if not value:
                    raise CredentialError(f"token file {self.path} is empty")
                self._stamp, self._value = stamp, value
        except OSError as exc:
            raise CredentialError(f"cannot read token file {self.path}: {exc.strerror or exc}") from None
        return self._value

    async def token(self, *, refresh: bool = False) -> str:
        # A local stat/read of a few hundred bytes: not worth a thread.
        return self._read(refresh=refresh)


@dataclass(frozen=True, slots=True)
class ExecConfig:
    """The ``user.exec`` stanza of a kubeconfig, with relative paths already resolved."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = "client.authentication.k8s.io/v1"
    install_hint: str = ""
    # The ``spec.cluster`` sent to the plugin when ``provideClusterInfo`` is true, else None.
    cluster_info: Mapping[str, Any] | None = None


class _ExecStatus(msgspec.Struct, rename="camel"):
    token: str | UnsetType = UNSET
    expiration_timestamp: str | UnsetType = UNSET
    client_certificate_data: str | UnsetType = UNSET


class _ExecCredential(msgspec.Struct, rename="camel"):
    api_version: str = ""
    kind: str = ""
    status: _ExecStatus | UnsetType = UNSET


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class ExecCredentialSource:
    """Runs an exec credential plugin and caches its token until it expires.

    The plugin runs with ``KUBERNETES_EXEC_INFO`` set (non-interactive) and is killed after ``timeout``
    seconds. A token is considered expired ``skew`` before its ``expirationTimestamp`` so that a request
    never leaves with a token about to lapse. ``now`` is injectable for tests.
    """

    config: ExecConfig
    timeout: float = 60.0
    skew: timedelta = timedelta(seconds=10)
    now: Callable[[], datetime] = _utcnow
    _token: str | None = None
    _expiry: datetime | None = None
    _lock: trio.Lock = field(default_factory=trio.Lock)
    runs: int = 0

    def _valid(self) -> bool:
        return self._token is not None and (self._expiry is None or self.now() < self._expiry - self.skew)

    async def token(self, *, refresh: bool = False) -> str:
        stale = self._token if refresh else None
        async with self._lock:
            # Another task may have refreshed while this one waited for the lock.
            if self._token is not None and self._token != stale and self._valid():
                return self._token
            self._token, self._expiry = await self._run()
            return self._token

    async def _run(self) -> tuple[str, datetime | None]:
        cfg = self.config
        name = Path(cfg.command).name
        spec: dict[str, Any] = {"interactive": False}
        if cfg.cluster_info is not None:
            spec["cluster"] = dict(cfg.cluster_info)
        info = {"apiVersion": cfg.api_version, "kind": "ExecCredential", "spec": spec}
        env = {**os.environ, **dict(cfg.env), "KUBERNETES_EXEC_INFO": msgspec.json.encode(info).decode()}
        self.runs += 1
        try:
            with trio.fail_after(self.timeout):
                proc = await trio.run_process(
                    [cfg.command, *cfg.args], capture_stdout=True, capture_stderr=True, env=env, check=False
                )
        except FileNotFoundError:
            hint = f" ({cfg.install_hint.strip()})" if cfg.install_hint else ""
            raise CredentialError(f"exec credential plugin {cfg.command!r} not found{hint}") from None
        except PermissionError:
            raise CredentialError(f"exec credential plugin {cfg.command!r} is not executable") from None
        except trio.TooSlowError:
            raise CredentialError(
                f"exec credential plugin {name!r} did not finish in {self.timeout:g}s"
            ) from None
        if proc.returncode != 0:
            lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            last = f": {lines[-1]}" if lines else ""
            raise CredentialError(
                f"exec credential plugin {name!r} exited with status {proc.returncode}{last}"
            )
        try:
            cred = msgspec.json.decode(proc.stdout, type=_ExecCredential)
        except msgspec.DecodeError as exc:
            raise CredentialError(
                f"exec credential plugin {name!r} printed an invalid ExecCredential: {exc}"
            ) from None
        if cred.kind != "ExecCredential" or cred.api_version != cfg.api_version:
            raise CredentialError(
                f"exec credential plugin {name!r} returned kind {cred.kind!r} "
                f"apiVersion {cred.api_version!r}, "
                f"expected ExecCredential {cfg.api_version}"
            )
        status = cred.status
        if status is UNSET or status.token is UNSET or not status.token:
            if status is not UNSET and status.client_certificate_data is not UNSET:
                raise CredentialError(
                    f"exec credential plugin {name!r} returned a client certificate; only token credentials "
                    "from exec plugins are supported"
                )
            raise CredentialError(f"exec credential plugin {name!r} returned no status.token")
        expiry: datetime | None = None
        if status.expiration_timestamp is not UNSET:
            try:
                expiry = datetime.fromisoformat(status.expiration_timestamp)
            except ValueError:
                raise CredentialError(
                    f"exec credential plugin {name!r} returned a bad expirationTimestamp "
                    f"{status.expiration_timestamp!r}"
                ) from None
            if expiry.tzinfo is None:
                expiry = expiry.replace(tzinfo=UTC)
        return status.token, expiry


class BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer`` from ``source``; on a 401, refreshes the token and retries once."""

    requires_request_body = True  # the request may be sent twice

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("BearerAuth is async-only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and not isinstance(self.source, StaticToken):
            fresh = await self.source.token(refresh=True)
            if fresh != token:
                request.headers["Authorization"] = f"Bearer {fresh}"
                yield request
