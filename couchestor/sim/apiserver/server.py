"""Serving the emulator over HTTP(S) with hypercorn's trio worker, and kubeconfigs that point at it."""

from __future__ import annotations

import base64
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
import yaml
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

if TYPE_CHECKING:
    from couchestor.sim.apiserver.app import ApiServer

log = logging.getLogger(__name__)

_OPENSSL_TIMEOUT = 30.0
# Any bearer token is accepted; this one only keeps kubectl from prompting for credentials over https.
_PLACEHOLDER_TOKEN = "couchestor-sim"


async def _self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for ``host`` (and localhost/127.0.0.1), made with openssl."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    san = "DNS:localhost,IP:127.0.0.1" + (
        f",IP:{host}"
        if host[:1].isdigit() and host != "127.0.0.1"
        else f",DNS:{host}"
        if host not in ("localhost", "127.0.0.1")
        else ""
    )
    with trio.fail_after(_OPENSSL_TIMEOUT):
        await trio.run_process(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=couchestor-sim",
                "-addext",
                f"subjectAltName={san}",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            capture_stdout=True,
            capture_stderr=True,
        )
    return cert, key


async def serve(
    api: ApiServer,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool = False,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``api`` until cancelled; ``nursery.start(serve, api)`` returns the base URL once listening.

    With ``tls=True`` a self-signed certificate is made for the run; its PEM is on ``api.ca_pem``.
    Cancellation closes the listener and every open connection (watch streams end).
    """
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 75.0
    config.graceful_timeout = 1.0
    with tempfile.TemporaryDirectory(prefix="couchestor-sim-") as tmp:
        if tls:
            cert, key = await _self_signed(Path(tmp), host)
            config.certfile, config.keyfile = str(cert), str(key)
            api.ca_pem = cert.read_bytes()

        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(_run, api, config)
            api.server_address = binds[0].split("://", 1)[1]
            task_status.started(binds[0])


async def _run(api: ApiServer, config: Config, task_status: trio.TaskStatus[list[str]]) -> None:
    await hypercorn_serve(api, config, task_status=task_status, mode="asgi")  # type: ignore[arg-type]


def write_kubeconfig(
    path: str | os.PathLike[str],
    server_url: str,
    *,
    ca_file: str | os.PathLike[str] | None = None,
    token: str | None = None,
    context: str = "couchestor-sim",
    ca_data: bytes | None = None,
) -> None:
    """Write a kubeconfig with one cluster/user/context named ``context``, selected as current.

    The emulator authenticates nobody, but kubectl prompts for a username and password when an ``https``
    server has no credentials at all, so an ``https`` kubeconfig without ``token`` gets a placeholder one.
    """
    if token is None and server_url.startswith("https://"):
        token = _PLACEHOLDER_TOKEN
    cluster: dict[str, Any] = {"server": server_url}
    if ca_data is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    elif ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    user: dict[str, Any] = {"token": token} if token else {}
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": context, "user": user}],
        "contexts": [
            {"name": context, "context": {"cluster": context, "user": context, "namespace": "default"}}
        ],
        "current-context": context,
        "preferences": {},
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
