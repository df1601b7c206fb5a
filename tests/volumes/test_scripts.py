"""The suite's integrity scripts, run with sh on a temp dir as the Jobs' containers run them, then graded."""

from __future__ import annotations

import pytest

from couchestor.volumes.fio import FioTest
from couchestor.volumes.grading import Verdict, grade
from couchestor.volumes.measurements import from_file_text, merge_by_class
from couchestor.volumes.thresholds import ClassThresholds
from tests.volumes.helpers import run_script, start_script, write_suite_files

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


# --- attachment checks ---------------------------------------------------------------------------------------


@pytest.fixture
def attach(tmp_path):
    """A 'volume' directory, a mounts table that says what is mounted there, and the attachment Job's env."""
    suite_dir = write_suite_files(tmp_path / "suite")
    data = tmp_path / "data"
    data.mkdir()
    mounts = tmp_path / "mounts"

    def mounted(fstype: str | None) -> None:
        lines = ["overlay / overlay rw 0 0"]
        if fstype is not None:
            lines.append(f"/dev/nvme1n1 {data} {fstype} rw,relatime 0 0")
        mounts.write_text("\n".join(lines) + "\n")

    env = {"STORAGE_CLASS": "fast-ssd", "DATA_DIR": str(data), "MOUNTS_FILE": str(mounts)}
    return suite_dir, data, env, mounted


@pytest.mark.slow
def test_attachment_check_writes_reads_back_then_runs_a_graded_fio_pass(attach):
    suite_dir, data, env, mounted = attach
    mounted("xfs")
    fio = {
        "FIO_DIR": str(data / "couchestor-fio"),
        "FIO_SIZE": "4m",
        "FIO_RUNTIME": "1",
        "FIO_RAMP": "0",
        "FIO_IOENGINE": "psync",
        "FIO_DIRECT": "0",
    }
    result = run_script("attach-check.sh", {**env, **fio}, suite_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: fast-ssd mounted (xfs), writable, read back" in result.stdout
    (measured,) = from_file_text(result.stdout, source="attach.log", storage_class=None)
    assert measured.storage_class == "fast-ssd"
    assert {job.kind for job in measured.fio_jobs} == set(FioTest)
    assert not [job.name for job in measured.fio_jobs if job.failed]
    assert sorted(p.name for p in data.iterdir()) == ["couchestor-fio"], (
        "the probe and fio's files are removed"
    )
    assert list((data / "couchestor-fio").iterdir()) == []


@pytest.mark.parametrize(
    ("fstype", "extra", "status", "message"),
    [
        (None, {}, 1, "is not a mounted volume"),
        ("ext4", {"EXPECT_FSTYPE": "tmpfs", "RUN_FIO": "0"}, 1, "is ext4, not tmpfs"),
        ("tmpfs", {"EXPECT_FSTYPE": "tmpfs", "RUN_FIO": "0"}, 0, "PASS: fast-ssd mounted (tmpfs)"),
    ],
)
def test_attachment_check_verdicts(attach, fstype, extra, status, message):
    suite_dir, _, env, mounted = attach
    mounted(fstype)
    result = run_script("attach-check.sh", {**env, **extra}, suite_dir)
    assert result.returncode == status, result.stdout + result.stderr
    assert message in result.stdout
    assert ">>> couchestor-result" not in result.stdout, "no fio pass after a failure or with RUN_FIO=0"


def test_shared_check_passes_when_both_pods_see_each_other(tmp_path):
    suite_dir = write_suite_files(tmp_path / "suite")
    env = {"STORAGE_CLASS": "standard-storage-shared", "DATA_DIR": str(tmp_path), "SHARED_WAIT": "60"}
    pods = [
        start_script("shared-check.sh", {**env, "SHARED_SELF": me, "SHARED_PEER": peer}, suite_dir)
        for me, peer in (("a", "b"), ("b", "a"))
    ]
    for pod, me in zip(pods, "ab", strict=True):
        out, err = pod.communicate(timeout=120)
        assert pod.returncode == 0, out + err
        assert f"PASS: standard-storage-shared shared between {me} and" in out


def test_shared_check_fails_when_the_peer_never_writes(tmp_path):
    suite_dir = write_suite_files(tmp_path / "suite")
    env = {"STORAGE_CLASS": "x", "DATA_DIR": str(tmp_path), "SHARED_WAIT": "1", "SHARED_SELF": "a"}
    result = run_script("shared-check.sh", {**env, "SHARED_PEER": "b"}, suite_dir)
    assert result.returncode == 1
    assert "FAIL: b's file never appeared in 1 s" in result.stdout
