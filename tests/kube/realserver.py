"""A real kube-apiserver for the tests that need a real network peer (``../shared/envtest``).

One small helper, so that it can be rewired to a shared session fixture: ``real_control_plane(directory)``
starts etcd + kube-apiserver with the envtest ``control-plane`` script and yields the admin kubeconfig's path;
the test is skipped, with one line saying why, when ``KUBEBUILDER_ASSETS`` is unset or lacks the binaries.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[2].parent / "shared" / "envtest" / "control-plane"
_START_TIMEOUT = 60


def skip_reason() -> str | None:
    """Why a real control plane cannot run here, or None."""
    assets = os.environ.get("KUBEBUILDER_ASSETS", "")
    if not assets:
        return "real API server tests need KUBEBUILDER_ASSETS (envtest binaries: etcd, kube-apiserver)"
    missing = [b for b in ("etcd", "kube-apiserver") if not os.access(Path(assets) / b, os.X_OK)]
    if missing:
        return f"KUBEBUILDER_ASSETS={assets} lacks {', '.join(missing)}"
    if not _SCRIPT.is_file():
        return f"no envtest control-plane script at {_SCRIPT}"
    return None


@contextmanager
def real_control_plane(directory: Path) -> Iterator[Path]:
    """A running control plane for the block; yields its admin kubeconfig."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    up = subprocess.run(
        [str(_SCRIPT), "up", str(directory)],
        capture_output=True,
        text=True,
        timeout=_START_TIMEOUT,
        check=False,
    )
    try:
        if up.returncode != 0:
            pytest.fail(f"control-plane up failed: {up.stderr.strip()[-2000:]}")
        yield Path(up.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run([str(_SCRIPT), "down", str(directory)], capture_output=True, timeout=60, check=False)
