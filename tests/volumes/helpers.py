"""Helpers of the volume suite tests: run the suite's scripts as a Job's container would, cut fio documents."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from couchestor.volumes import suite
from couchestor.volumes.markers import extract_blocks


def write_suite_files(directory: Path) -> Path:
    """The ConfigMap's files (job file and scripts), as a pod would see them mounted."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in suite.SCRIPTS.items():
        (directory / name).write_text(text)
    return directory


# What the suite's image promises (a POSIX shell, coreutils, fio) and nothing more: the scripts run with only these
# on their PATH, so one that reaches for grep, sed or awk fails here as it would in the default image.
IMAGE_TOOLS = (
    "sh",
    "fio",
    "cat",
    "df",
    "head",
    "ls",
    "mkdir",
    "rm",
    "sha256sum",
    "sleep",
    "stat",
    "sync",
    "wc",
)


def image_path(directory: Path) -> str:
    """A directory holding only :data:`IMAGE_TOOLS` (as links to this machine's), for a script's PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    for tool in IMAGE_TOOLS:
        found = shutil.which(tool)
        assert found is not None, f"{tool} is not installed"
        link = directory / tool
        if not link.exists():
            link.symlink_to(found)
    return str(directory)


def _command(script: str, env: dict[str, str], suite_dir: Path) -> tuple[list[str], dict[str, str]]:
    environment = {"PATH": image_path(suite_dir.parent / "image-bin"), "SUITE_DIR": str(suite_dir), **env}
    return [shutil.which("sh") or "sh", str(suite_dir / script)], environment


def start_script(script: str, env: dict[str, str], suite_dir: Path) -> subprocess.Popen[str]:
    """Start one of the suite's scripts as :func:`run_script` runs it, without waiting for it."""
    command, environment = _command(script, env, suite_dir)
    return subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_script(script: str, env: dict[str, str], suite_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run one of the suite's scripts with ``sh`` as the Job's container would, with only the image's tools."""
    command, environment = _command(script, env, suite_dir)
    return subprocess.run(
        command,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fio_document(log: str) -> dict[str, Any]:
    """The fio JSON document inside a fio Job's log."""
    (block,) = [b for b in extract_blocks(log, source="log") if b.kind == "fio"]
    return json.loads(block.body)
