"""A real Kubernetes control plane on loopback, started from envtest assets.

The emulator in :mod:`couchestor.sim.apiserver` is only as good as its oracle; this module starts the oracle:
unmodified ``etcd`` and ``kube-apiserver`` (and, when asked, ``kube-controller-manager`` with the controllers
whose behaviour the emulator plays) from the folder ``KUBEBUILDER_ASSETS`` names, the layout controller-runtime's
``setup-envtest`` produces. It is a test and soak tool: nothing here runs in the operator.

Every component listens on a free loopback port; the API server authenticates a static admin token (in
``system:masters``) and authorizes with RBAC, so ServiceAccount tokens (``TokenRequest``) are checked against
the shipped RBAC for real. :meth:`ControlPlane.stop_component` and :meth:`ControlPlane.start_component` restart
one component in place (same ports, same data), which is what an API server or etcd restart looks like to a
client; their ``_async`` twins do the same from a trio task without blocking its event loop (``couchestor soak``).
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import trio

ASSETS_ENV = "KUBEBUILDER_ASSETS"

#: What a user without assets is told (tests print it as their skip reason).
ENABLE_HINT = (
    f"set {ASSETS_ENV} to a folder holding etcd and kube-apiserver (for example "
    "`setup-envtest use 1.28.0 -p path`) to run the real-API-server tests"
)

#: The controllers whose behaviour the emulator plays (docs/design.md, "the emulated cluster").
CONTROLLERS = "namespace,garbagecollector,pv-protection,pvc-protection,persistentvolume-binder"

_READY_TIMEOUT = 120.0
_START_ATTEMPTS = 3
_STOP_TIMEOUT = 10.0


class ControlPlaneError(RuntimeError):
    """A component could not be started; the message ends with the tail of its log."""


@dataclass(frozen=True)
class Assets:
    """The binaries of one envtest assets folder."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path | None


def find_assets(environ: Mapping[str, str] = os.environ) -> Assets | None:
    """The assets ``KUBEBUILDER_ASSETS`` names, or None when it is unset or lacks etcd or kube-apiserver."""
    folder = environ.get(ASSETS_ENV)
    if not folder:
        return None
    root = Path(folder)
    etcd, apiserver, kcm = root / "etcd", root / "kube-apiserver", root / "kube-controller-manager"
    if not (_executable(etcd) and _executable(apiserver)):
        return None
    return Assets(
        etcd=etcd, kube_apiserver=apiserver, kube_controller_manager=kcm if _executable(kcm) else None
    )


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


async def _exited(proc: subprocess.Popen[bytes]) -> None:
    """Return once ``proc`` has exited (a Popen offers nothing to await, so poll it)."""
    while proc.poll() is None:  # noqa: ASYNC110
        await trio.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Component:
    name: str
    argv: list[str]
    health_url: str
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None


@dataclass
class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) under ``directory``; use as a context manager."""

    assets: Assets
    directory: Path
    controllers: bool = False
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    etcd_url: str = field(default="", init=False)
    _apiserver_port: int = field(default=0, init=False, repr=False)
    _components: dict[str, _Component] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        """An admin kubeconfig (static token, CA pinned)."""
        return self.directory / "kubeconfig"

    @property
    def ca_path(self) -> Path:
        return self.directory / "pki" / "ca.crt"

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start every component and wait until each is healthy; raises :class:`ControlPlaneError`."""
        if self.controllers and self.assets.kube_controller_manager is None:
            raise ControlPlaneError(f"no kube-controller-manager in {self.assets.etcd.parent}")
        self.directory.mkdir(parents=True, exist_ok=True)
        pki = self._make_pki()
        for attempt in range(_START_ATTEMPTS):
            self._apiserver_port = _free_port()
            self._write_kubeconfig()
            self._define_components(pki)
            try:
                for name in self._components:
                    self.start_component(name)
                return
            except ControlPlaneError as exc:
                self.stop()
                # A free port can be taken by another process between choosing it and binding it.
                if "address already in use" not in str(exc) or attempt == _START_ATTEMPTS - 1:
                    raise
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Stop every running component (controllers first, etcd last); keeps logs, drops etcd's data."""
        for name in reversed(list(self._components)):
            self.stop_component(name)
        shutil.rmtree(self.directory / "etcd-data", ignore_errors=True)

    def start_component(self, name: str) -> None:
        """(Re)start one component with its original ports and flags; returns once it is healthy."""
        component = self._components[name]
        if self._launch(component):
            self._wait_healthy(component)

    async def start_component_async(self, name: str) -> None:
        """:meth:`start_component` for a trio caller: waits for health without blocking the event loop."""
        component = self._components[name]
        if self._launch(component):
            await self._await_healthy(component)

    def _launch(self, component: _Component) -> bool:
        """Start ``component``'s process; False when it is already running."""
        if component.process is not None and component.process.poll() is None:
            return False
        log = (self.directory / f"{component.name}.log").open("ab")
        component.log = log
        component.process = subprocess.Popen(
            component.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        return True

    def stop_component(self, name: str, *, kill: bool = False) -> None:
        """Stop one component: SIGTERM (or SIGKILL with ``kill``), SIGKILL after a grace period."""
        component = self._components.get(name)
        if component is None or component.process is None:
            return
        proc = component.process
        if proc.poll() is None:
            proc.kill() if kill else proc.terminate()
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=_STOP_TIMEOUT)
        self._forget(component)

    async def stop_component_async(self, name: str, *, kill: bool = False) -> None:
        """:meth:`stop_component` for a trio caller: waits for the exit without blocking the event loop."""
        component = self._components.get(name)
        if component is None or component.process is None:
            return
        proc = component.process
        if proc.poll() is None:
            proc.kill() if kill else proc.terminate()
            with trio.move_on_after(_STOP_TIMEOUT):
                await _exited(proc)
            if proc.poll() is None:
                proc.kill()
                await _exited(proc)
        self._forget(component)

    def _forget(self, component: _Component) -> None:
        component.process = None
        if component.log is not None:
            component.log.close()
            component.log = None

    def _define_components(self, pki: Path) -> None:
        etcd_client, etcd_peer, etcd_metrics = _free_port(), _free_port(), _free_port()
        data = self.directory / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(mode=0o700)
        etcd_url = f"http://127.0.0.1:{etcd_client}"
        self._components["etcd"] = _Component(
            "etcd",
            [
                str(self.assets.etcd),
                "--name=envtest",
                f"--data-dir={data}",
                "--unsafe-no-fsync",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=envtest=http://127.0.0.1:{etcd_peer}",
                f"--listen-metrics-urls=http://127.0.0.1:{etcd_metrics}",
            ],
            health_url=f"{etcd_url}/health",
        )
        self.etcd_url = etcd_url
        (pki / "tokens.csv").write_text(f"{self.token},admin,admin,system:masters\n")
        self._components["kube-apiserver"] = _Component(
            "kube-apiserver",
            [
                str(self.assets.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                f"--secure-port={self._apiserver_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=RBAC",
                # As OpenShift does: an owner reference with blockOwnerDeletion needs `update` on the owner's
                # finalizers, so the shipped RBAC is checked for it.
                "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
            ],
            health_url=f"{self.url}/readyz",
        )
        if self.controllers:
            assert self.assets.kube_controller_manager is not None
            port = _free_port()
            self._components["kube-controller-manager"] = _Component(
                "kube-controller-manager",
                [
                    str(self.assets.kube_controller_manager),
                    f"--kubeconfig={self.kubeconfig}",
                    f"--controllers={CONTROLLERS}",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    "--use-service-account-credentials=false",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={port}",
                ],
                health_url=f"https://127.0.0.1:{port}/healthz",
            )

    def _probe_options(self, component: _Component) -> tuple[ssl.SSLContext | bool, dict[str, str]]:
        """TLS verification and headers of ``component``'s health probe."""
        if component.name == "kube-apiserver":
            verify = ssl.create_default_context(cafile=str(self.ca_path))
            return verify, {"Authorization": f"Bearer {self.token}"}
        return False, {}

    async def _await_healthy(self, component: _Component) -> None:
        verify, headers = self._probe_options(component)
        async with httpx.AsyncClient(verify=verify, headers=headers, timeout=2.0) as client:
            with trio.move_on_after(_READY_TIMEOUT):
                while True:
                    assert component.process is not None
                    if component.process.poll() is not None:
                        raise ControlPlaneError(
                            f"{component.name} exited with {component.process.returncode}: "
                            f"{self._log_tail(component)}"
                        )
                    try:
                        if (await client.get(component.health_url)).status_code == 200:
                            return
                    except httpx.HTTPError:
                        pass
                    await trio.sleep(0.2)
        raise ControlPlaneError(
            f"{component.name} not healthy after {_READY_TIMEOUT:.0f} s: {self._log_tail(component)}"
        )

    def _wait_healthy(self, component: _Component) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        verify, headers = self._probe_options(component)
        with httpx.Client(verify=verify, headers=headers, timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert component.process is not None
                if component.process.poll() is not None:
                    raise ControlPlaneError(
                        f"{component.name} exited with {component.process.returncode}: {self._log_tail(component)}"
                    )
                try:
                    if client.get(component.health_url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        raise ControlPlaneError(
            f"{component.name} not healthy after {_READY_TIMEOUT:.0f} s: {self._log_tail(component)}"
        )

    def _log_tail(self, component: _Component, lines: int = 15) -> str:
        path = self.directory / f"{component.name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _make_pki(self) -> Path:
        pki = self.directory / "pki"
        pki.mkdir(exist_ok=True)
        if (pki / "ca.crt").exists():
            return pki
        ext = pki / "apiserver.ext"
        ext.write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
        )
        for command in (
            "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj /CN=envtest-ca"
            " -addext basicConstraints=critical,CA:TRUE"
            " -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver",
            "x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650"
            " -extfile apiserver.ext -out apiserver.crt",
            "genrsa -out sa.key 2048",
            "rsa -in sa.key -pubout -out sa.pub",
        ):
            argv = command.split()
            result = subprocess.run(["openssl", *argv], cwd=pki, capture_output=True, text=True, timeout=60)
            if result.returncode != 0:
                raise ControlPlaneError(f"openssl {argv[0]} failed: {result.stderr.strip()}")
        return pki

    def _write_kubeconfig(self) -> None:
        ca = base64.b64encode(self.ca_path.read_bytes()).decode()
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f'clusters: [{{name: envtest, cluster: {{server: "{self.url}", certificate-authority-data: "{ca}"}}}}]\n'
            f'users: [{{name: admin, user: {{token: "{self.token}"}}}}]\n'
            "contexts: [{name: envtest, context: {cluster: envtest, user: admin}}]\n"
            "current-context: envtest\n"
        )
