"""Fixtures of the volume suite tests: the suite's own fio job file, run for real by the Debian fio."""

from __future__ import annotations

import shutil

import pytest

from tests.volumes.helpers import run_script, write_suite_files


@pytest.fixture(scope="session")
def fio_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The log of the suite's fio Job, produced by the real fio running the shipped job file on a temp dir:
    small file, one second per job, synchronous I/O through the page cache (tmpfs has no O_DIRECT)."""
    if shutil.which("fio") is None:
        pytest.fail("fio is not installed (Debian package fio; `just ensure-tools` installs it)")
    root = tmp_path_factory.mktemp("fio")
    suite_dir = write_suite_files(root / "suite")
    result = run_script(
        "run-fio.sh",
        {
            "STORAGE_CLASS": "fast-ssd",
            "FIO_DIR": str(root / "data"),
            "FIO_SIZE": "8m",
            "FIO_RUNTIME": "1",
            "FIO_RAMP": "0",
            "FIO_IOENGINE": "psync",
            "FIO_DIRECT": "0",
        },
        suite_dir,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
