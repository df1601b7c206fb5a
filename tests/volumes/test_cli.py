"""`couchestor volumes ...` end to end, as a subprocess: output and exit status."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from couchestor.volumes import attachment, suite
from couchestor.volumes.fio import FioTest, parse_fio_json
from couchestor.volumes.markers import begin_line
from couchestor.volumes.thresholds import DEFAULT_THRESHOLDS_YAML
from tests.volumes.helpers import fio_document

END = "<<< couchestor-result end"


def _couchestor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "couchestor", "volumes", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _thresholds_file(tmp_path, fio_log, factor: float):
    """Criteria for fast-ssd ``factor`` times easier (> 1) or harder (< 1) than what fio measured here."""
    jobs = {job.kind: job for job in parse_fio_json(json.dumps(fio_document(fio_log)), source="log")}
    criteria = {
        "seqWriteMBps": jobs[FioTest.SEQ_WRITE].write.bandwidth_bytes_per_s / 1e6 / factor,
        "seqReadMBps": jobs[FioTest.SEQ_READ].read.bandwidth_bytes_per_s / 1e6 / factor,
        "randomRead4kIOPS": jobs[FioTest.RAND_READ_4K].read.iops / factor,
        "latencyMs": jobs[FioTest.LATENCY_4K].read.mean_latency_ns / 1e6 * factor,
        "integrityPercent": 100,
    }
    path = tmp_path / f"thresholds-{factor}.yaml"
    path.write_text(yaml.safe_dump({"storageClasses": {"fast-ssd": criteria}}))
    return path


@pytest.fixture
def logs(tmp_path, fio_log):
    fio = tmp_path / "fio.log"
    fio.write_text(fio_log)
    integrity = tmp_path / "integrity.log"
    integrity.write_text(
        "\n".join(
            [
                begin_line(kind="integrity-verify", storage_class="fast-ssd"),
                '{"files": 8, "verified": 8, "failed": 0, "expected": 8}',
                "<<< couchestor-result end",
            ]
        )
    )
    return fio, integrity


def test_report_passes_with_exit_0_when_every_criterion_is_met(tmp_path, fio_log, logs):
    thresholds = _thresholds_file(tmp_path, fio_log, 2.0)
    result = _couchestor("report", "--thresholds", str(thresholds), *map(str, logs))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "StorageClass fast-ssd: PASS" in result.stdout
    assert result.stdout.count(" pass ") + result.stdout.count(" pass\n") >= 5
    assert f"1 of 1 StorageClasses passed (criteria: {thresholds})" in result.stdout


def test_report_fails_with_exit_1_when_a_criterion_is_missed(tmp_path, fio_log, logs):
    thresholds = _thresholds_file(tmp_path, fio_log, 0.5)
    result = _couchestor("report", "--thresholds", str(thresholds), *map(str, logs))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "StorageClass fast-ssd: FAIL" in result.stdout
    assert result.stdout.count("FAIL") == 1 + 4  # the class line and the four fio criteria
    assert "data integrity after remount" in result.stdout


def test_require_all_fails_criteria_that_were_not_measured(tmp_path, fio_log, logs):
    thresholds = _thresholds_file(tmp_path, fio_log, 2.0)
    fio, _ = logs
    lenient = _couchestor("report", "--thresholds", str(thresholds), str(fio))
    strict = _couchestor("report", "--require-all", "--thresholds", str(thresholds), str(fio))
    assert lenient.returncode == 0
    assert "not measured" in lenient.stdout
    assert strict.returncode == 1


def test_plain_fio_json_is_graded_for_the_named_class(tmp_path, fio_log):
    path = tmp_path / "fio.json"
    path.write_text(json.dumps(fio_document(fio_log)))
    result = _couchestor("report", "--storage-class", "standard-storage", str(path))
    assert "StorageClass standard-storage:" in result.stdout
    assert result.returncode in (0, 1)


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ('{"jobs": [', (), "malformed JSON"),
        ('{"jobs": [{"jobname": "x"}]}', ("--storage-class", "fast-ssd"), "missing required field"),
        ("{}", (), "missing required field `jobs`"),
        ('{"jobs": []}', ("--storage-class", "fast-ssd"), "lists no jobs"),
        (
            f'{begin_line(kind="integrity-verify")}\n{{"files":1,"verified":1,"failed":0,"expected":1}}\n{END}',
            ("--storage-class", "gold"),
            "no thresholds for StorageClass 'gold'",
        ),
        (f"{begin_line(kind='fio', storage_class='fast-ssd')}\n{{}}\n", (), "has no end marker"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path, content, args, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = _couchestor("report", *args, str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("couchestor: error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_missing_file_and_missing_thresholds_exit_2(tmp_path):
    assert _couchestor("report", str(tmp_path / "nope.json")).returncode == 2
    result = _couchestor("report", "--thresholds", str(tmp_path / "t.yaml"), str(tmp_path / "x"))
    assert result.returncode == 2
    assert "cannot read thresholds file" in result.stderr


def test_thresholds_prints_the_defaults():
    result = _couchestor("thresholds")
    assert result.returncode == 0
    assert result.stdout == DEFAULT_THRESHOLDS_YAML


def test_render_suite_prints_the_suite_for_the_chosen_classes():
    result = _couchestor("render-suite", "--storage-class", "gold", "--namespace", "perf")
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert documents == suite.suite_documents(["gold"], suite.SuiteOptions(namespace="perf"))
    assert {d["kind"] for d in documents} == {"Namespace", "ConfigMap", "PersistentVolumeClaim", "Job"}


def test_render_attachment_prints_the_checks_for_the_chosen_classes():
    result = _couchestor(
        "render-attachment", "--storage-class", "gold", "--shared-class", "", "--namespace", "qa"
    )
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert documents == attachment.attachment_documents(["gold"], None, suite.SuiteOptions(namespace="qa"))
    jobs = [d["metadata"]["name"] for d in documents if d["kind"] == "Job"]
    assert jobs == ["attach-gold", "attach-memory"]
    shared = _couchestor("render-attachment", "--shared-class", "nfs")
    assert "attach-nfs-a" in shared.stdout
    assert "attach-nfs-b" in shared.stdout
