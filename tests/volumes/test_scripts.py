"""The suite's integrity scripts, run with sh on a temp dir as the Jobs' containers run them, then graded."""

from __future__ import annotations

import pytest

from couchestor.volumes.grading import Verdict, grade
from couchestor.volumes.measurements import from_file_text, merge_by_class
from couchestor.volumes.thresholds import ClassThresholds
from tests.volumes.helpers import run_script, write_suite_files

FILES = 4


@pytest.fixture
def volume(tmp_path):
    """A suite directory and a 'volume' directory, with the environment the integrity Jobs set."""
    suite_dir = write_suite_files(tmp_path / "suite")
    data = tmp_path / "data"
    data.mkdir()
    env = {
        "STORAGE_CLASS": "standard-storage",
        "DATA_DIR": str(data),
        "INTEGRITY_FILES": str(FILES),
        "INTEGRITY_FILE_MIB": "1",
    }
    return suite_dir, data, env


def _grade(log: str):
    measured = merge_by_class(from_file_text(log, source="log", storage_class=None))
    return grade(measured["standard-storage"], ClassThresholds(integrity_percent=100), require_all=True)


def test_intact_files_verify_after_the_writer_exits(volume):
    suite_dir, data, env = volume
    written = run_script("integrity-write.sh", env, suite_dir)
    assert written.returncode == 0, written.stderr
    assert len(list((data / "couchestor-integrity").glob("file-*"))) == FILES
    verified = run_script("integrity-verify.sh", env, suite_dir)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = _grade(written.stdout + verified.stdout)
    (criterion,) = report.criteria
    assert criterion.verdict is Verdict.PASS
    assert criterion.measured == 100
    assert report.passed
    assert not (data / "couchestor-integrity").exists(), "the verifier cleans up"


def test_a_corrupted_file_fails_verification(volume):
    suite_dir, data, env = volume
    assert run_script("integrity-write.sh", env, suite_dir).returncode == 0
    victim = data / "couchestor-integrity" / "file-2"
    content = bytearray(victim.read_bytes())
    content[1000] ^= 0xFF
    victim.write_bytes(bytes(content))
    verified = run_script("integrity-verify.sh", env, suite_dir)
    assert verified.returncode != 0
    (criterion,) = _grade(verified.stdout).criteria
    assert criterion.verdict is Verdict.FAIL
    assert criterion.measured == pytest.approx(100 * (FILES - 1) / FILES)


def test_lost_data_verifies_nothing(volume):
    suite_dir, _, env = volume
    verified = run_script("integrity-verify.sh", env, suite_dir)
    assert verified.returncode != 0
    (criterion,) = _grade(verified.stdout).criteria
    assert criterion.verdict is Verdict.FAIL
    assert criterion.measured == 0
    assert f"0 of {FILES} files verified" in criterion.note
