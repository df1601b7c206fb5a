"""Helpers of the volume suite tests: run the suite's scripts as a Job's container would, cut fio documents."""

from __future__ import annotations

import json
import os
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


def run_script(script: str, env: dict[str, str], suite_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run one of the suite's scripts with ``sh`` as the Job's container would."""
    return subprocess.run(
        ["sh", str(suite_dir / script)],
        env={"PATH": os.environ["PATH"], "SUITE_DIR": str(suite_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fio_document(log: str) -> dict[str, Any]:
    """The fio JSON document inside a fio Job's log."""
    (block,) = [b for b in extract_blocks(log, source="log") if b.kind == "fio"]
    return json.loads(block.body)
