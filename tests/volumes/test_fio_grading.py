"""The fio decoder and the grader, on output the real fio produced in this test run, and on broken variants."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, strategies as st

from couchestor.errors import UserError
from couchestor.volumes.fio import (
    DirectionFigures,
    FioJobResult,
    FioOutputError,
    FioTest,
    classify,
    parse_fio_json,
    size_bytes,
)
from couchestor.volumes.grading import Verdict, grade
from couchestor.volumes.measurements import IntegrityVerdict, Measurements, from_file_text, merge_by_class
from couchestor.volumes.report import render_report
from couchestor.volumes.thresholds import ClassThresholds
from tests.volumes.helpers import fio_document


def _jobs(document: dict) -> tuple:
    return parse_fio_json(json.dumps(document), source="doc")


def test_real_fio_output_yields_every_test_with_figures(fio_log):
    document = fio_document(fio_log)
    jobs = _jobs(document)
    assert {job.kind for job in jobs} == set(FioTest)
    by_kind = {job.kind: job for job in jobs}
    raw = {job["jobname"]: job for job in document["jobs"]}
    for job in jobs:
        assert not job.failed, job.failure_reason()
        assert job.read.bandwidth_bytes_per_s == raw[job.name]["read"]["bw"] * 1024
        assert job.write.iops == raw[job.name]["write"]["iops"]
    assert by_kind[FioTest.SEQ_WRITE].write.io_bytes > 0
    assert by_kind[FioTest.SEQ_WRITE].read.io_bytes == 0
    assert by_kind[FioTest.SEQ_READ].read.io_bytes > 0
    assert by_kind[FioTest.LATENCY_4K].read.mean_latency_ns == raw["latency-4k"]["read"]["lat_ns"]["mean"]
    mixed = by_kind[FioTest.MIXED_4K]
    assert mixed.read.io_bytes > 0
    assert mixed.write.io_bytes > 0


def _figures(fio_log) -> dict[str, float]:
    jobs = {job.kind: job for job in _jobs(fio_document(fio_log))}
    return {
        "write": jobs[FioTest.SEQ_WRITE].write.bandwidth_bytes_per_s / 1e6,
        "read": jobs[FioTest.SEQ_READ].read.bandwidth_bytes_per_s / 1e6,
        "iops": jobs[FioTest.RAND_READ_4K].read.iops,
        "latency": jobs[FioTest.LATENCY_4K].read.mean_latency_ns / 1e6,
    }


def _criteria(figures: dict[str, float], factor: float) -> ClassThresholds:
    """Criteria ``factor`` times easier (> 1) or harder (< 1) than what was measured."""
    return ClassThresholds(
        seq_write_mbps=figures["write"] / factor,
        seq_read_mbps=figures["read"] / factor,
        random_read_4k_iops=figures["iops"] / factor,
        latency_ms=figures["latency"] * factor,
    )


def test_grading_real_output_passes_easier_and_fails_harder_criteria(fio_log):
    measured = from_file_text(fio_log, source="log", storage_class=None)
    assert [m.storage_class for m in measured] == ["fast-ssd"]
    figures = _figures(fio_log)

    easy = grade(measured[0], _criteria(figures, 2.0), require_all=True)
    assert easy.passed
    assert [r.verdict for r in easy.criteria] == [Verdict.PASS] * 4
    assert [r.measured for r in easy.criteria] == pytest.approx(
        [figures["write"], figures["read"], figures["iops"], figures["latency"]]
    )

    hard = grade(measured[0], _criteria(figures, 0.5), require_all=True)
    assert not hard.passed
    assert [r.verdict for r in hard.criteria] == [Verdict.FAIL] * 4


def test_one_criterion_failing_fails_the_class_and_the_report_says_which(fio_log):
    figures = _figures(fio_log)
    criteria = ClassThresholds(seq_write_mbps=figures["write"] / 2, seq_read_mbps=figures["read"] * 2)
    report = grade(
        Measurements("fast-ssd", fio_jobs=_jobs(fio_document(fio_log))), criteria, require_all=False
    )
    assert not report.passed
    assert [r.verdict for r in report.criteria] == [Verdict.PASS, Verdict.FAIL]
    text = render_report([report], thresholds_source="test")
    assert "StorageClass fast-ssd: FAIL" in text
    (read_line,) = [line for line in text.splitlines() if "sequential read" in line]
    assert "FAIL" in read_line
    assert "0 of 1 StorageClasses passed" in text


def test_unmeasured_criteria_fail_only_when_all_are_required(fio_log):
    jobs = _jobs(fio_document(fio_log))
    criteria = ClassThresholds(pvc_bound_seconds=30, seq_write_mbps=0.001)
    lenient = grade(Measurements("fast-ssd", fio_jobs=jobs), criteria, require_all=False)
    strict = grade(Measurements("fast-ssd", fio_jobs=jobs), criteria, require_all=True)
    assert [r.verdict for r in lenient.criteria] == [Verdict.MISSING, Verdict.PASS]
    assert lenient.passed
    assert not strict.passed


def test_nothing_graded_is_not_a_pass():
    report = grade(Measurements("fast-ssd"), ClassThresholds(seq_write_mbps=1), require_all=False)
    assert not report.passed
    assert any("nothing could be graded" in note for note in report.notes)


def test_timings_and_integrity_are_graded_strictly():
    criteria = ClassThresholds(pvc_bound_seconds=30, pod_mount_seconds=60, integrity_percent=100)
    intact = IntegrityVerdict(files=8, verified=8, failed=0, expected=8)
    good = grade(
        Measurements("fast-ssd", pvc_bound_seconds=29.9, pod_mount_seconds=12, integrity=intact),
        criteria,
        require_all=True,
    )
    assert good.passed
    damaged = IntegrityVerdict(files=8, verified=7, failed=1, expected=8)
    bad = grade(
        Measurements("fast-ssd", pvc_bound_seconds=30.0, pod_mount_seconds=12, integrity=damaged),
        criteria,
        require_all=True,
    )
    assert [r.verdict for r in bad.criteria] == [Verdict.FAIL, Verdict.PASS, Verdict.FAIL]
    assert bad.criteria[2].measured == pytest.approx(87.5)


def test_problems_fail_the_class_even_when_every_criterion_passes():
    report = grade(
        Measurements("fast-ssd", pvc_bound_seconds=1.0, problems=("job x timed out",)),
        ClassThresholds(pvc_bound_seconds=30),
        require_all=True,
    )
    assert all(r.verdict is Verdict.PASS for r in report.criteria)
    assert not report.passed
    assert "problem: job x timed out" in render_report([report], thresholds_source="t")


# --- broken and unusual fio output -------------------------------------------------------------------------


def test_a_failed_fio_job_fails_its_criterion_with_fios_error(fio_log):
    document = fio_document(fio_log)
    broken = copy.deepcopy(document)
    for job in broken["jobs"]:
        if job["jobname"] == "seq-read":
            job["error"] = 5
    report = grade(
        Measurements("fast-ssd", fio_jobs=_jobs(broken)),
        ClassThresholds(seq_write_mbps=0.001, seq_read_mbps=0.001),
        require_all=False,
    )
    write, read = report.criteria
    assert write.verdict is Verdict.PASS
    assert read.verdict is Verdict.FAIL
    assert read.measured is None
    assert "'seq-read' failed with error 5 (Input/output error)" in read.note
    assert not report.passed


def test_a_job_that_did_no_io_counts_as_failed(fio_log):
    broken = copy.deepcopy(fio_document(fio_log))
    for job in broken["jobs"]:
        if job["jobname"] == "rand-read-4k":
            job["read"]["io_bytes"] = 0
    report = grade(
        Measurements("fast-ssd", fio_jobs=_jobs(broken)),
        ClassThresholds(random_read_4k_iops=1),
        require_all=True,
    )
    assert report.criteria[0].verdict is Verdict.FAIL
    assert "did no I/O" in report.criteria[0].note


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("jobs", 0, "read", "lat_ns"), "lat_ns"),
        (("jobs", 1, "write", "bw"), "bw"),
        (("jobs", 0, "jobname"), "jobname"),
        (("jobs",), "jobs"),
    ],
)
def test_missing_fields_are_named_in_the_error(fio_log, path, expected):
    broken = copy.deepcopy(fio_document(fio_log))
    parent = broken
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(FioOutputError, match=f"doc: not fio 3.x JSON output: .*{expected}"):
        _jobs(broken)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no JSON object found"),
        ("fio: engine libaio not loadable", "no JSON object found"),
        ('{"jobs": [', "malformed JSON"),
        ('{"jobs": []}', "lists no jobs"),
        ('{"jobs": "many"}', "not fio 3.x JSON output"),
    ],
)
def test_malformed_output_is_a_user_error_not_a_crash(text, message):
    with pytest.raises(UserError, match=message):
        parse_fio_json(text, source="doc")


def test_notes_printed_before_the_document_are_skipped(fio_log):
    text = "note: both iodepth >= 1 and synchronous I/O engine are selected\n" + json.dumps(
        fio_document(fio_log)
    )
    assert {job.name for job in parse_fio_json(text, source="doc")} == {kind.value for kind in FioTest}


def test_plain_fio_json_needs_a_storage_class(fio_log):
    text = json.dumps(fio_document(fio_log))
    with pytest.raises(UserError, match=r"f\.json is plain fio output.*pass --storage-class"):
        from_file_text(text, source="f.json", storage_class=None)
    (measured,) = from_file_text(text, source="f.json", storage_class="standard-storage")
    assert measured.storage_class == "standard-storage"
    assert len(measured.fio_jobs) == len(FioTest)


def test_repeated_job_names_add_up_their_rates(fio_log):
    """numjobs > 1 without group_reporting: one entry per clone, all of the same test."""
    document = copy.deepcopy(fio_document(fio_log))
    (seq_write,) = [job for job in document["jobs"] if job["jobname"] == "seq-write"]
    document["jobs"].append(copy.deepcopy(seq_write))
    report = grade(
        Measurements("x", fio_jobs=_jobs(document)), ClassThresholds(seq_write_mbps=0.001), require_all=True
    )
    assert report.criteria[0].measured == pytest.approx(2 * seq_write["write"]["bw"] * 1024 / 1e6)


@pytest.mark.parametrize(
    ("options", "kind"),
    [
        ({"rw": "write", "bs": "1m"}, FioTest.SEQ_WRITE),
        ({"rw": "write", "bs": "128k"}, FioTest.SEQ_WRITE),
        ({"rw": "write", "bs": "4k"}, None),
        ({"rw": "read", "bs": "1M"}, FioTest.SEQ_READ),
        ({"rw": "randread", "bs": "4k", "iodepth": "64"}, FioTest.RAND_READ_4K),
        ({"rw": "randread", "bs": "4096"}, FioTest.LATENCY_4K),
        ({"rw": "randread"}, FioTest.LATENCY_4K),  # fio's default block size is 4 KiB
        ({"rw": "randrw", "bs": "4k", "rwmixread": "70"}, FioTest.MIXED_4K),
        ({"rw": "randwrite", "bs": "4k"}, None),
        ({"rw": "read", "bs": "4k,64k"}, None),
        ({"bs": "1m"}, FioTest.SEQ_READ),  # fio's default rw is read
    ],
)
def test_jobs_of_other_job_files_are_classified_by_their_options(options, kind):
    assert classify("my-job", options) is kind


def test_unclassified_jobs_are_reported_not_graded(fio_log):
    document = copy.deepcopy(fio_document(fio_log))
    for job in document["jobs"]:
        if job["jobname"] == "seq-write":
            job["jobname"] = "warm-up"
            job["job options"] = {"rw": "randwrite", "bs": "8k"}
    report = grade(
        Measurements("x", fio_jobs=_jobs(document)), ClassThresholds(seq_write_mbps=1), require_all=False
    )
    assert report.criteria[0].verdict is Verdict.MISSING
    assert any("'warm-up' matches none of the suite's tests" in note for note in report.notes)


def test_the_latency_tail_is_reported_from_fios_percentiles(fio_log):
    document = fio_document(fio_log)
    (raw,) = [job for job in document["jobs"] if job["jobname"] == "latency-4k"]
    p99 = raw["read"]["clat_ns"]["percentile"]["99.000000"]
    report = grade(
        Measurements("x", fio_jobs=_jobs(document)), ClassThresholds(latency_ms=1e9), require_all=True
    )
    assert f"99th percentile completion latency {p99 / 1e6:.3f} ms" in " ".join(report.notes)
    no_percentiles = copy.deepcopy(document)
    for job in no_percentiles["jobs"]:
        job["read"]["clat_ns"].pop("percentile", None)
    bare = grade(
        Measurements("x", fio_jobs=_jobs(no_percentiles)), ClassThresholds(latency_ms=1e9), require_all=True
    )
    assert bare.passed
    assert not any("99th percentile" in note for note in bare.notes)


def _direction(io_bytes: int, bandwidth: float, iops: float, latency_ns: float) -> DirectionFigures:
    return DirectionFigures(io_bytes, bandwidth, iops, latency_ns, None)


_IDLE = _direction(0, 0.0, 0.0, 0.0)
_positive = st.floats(min_value=1e-3, max_value=1e12, allow_nan=False, allow_infinity=False)


@given(bandwidth=_positive, threshold=_positive)
def test_a_minimum_passes_exactly_when_exceeded(bandwidth, threshold):
    job = FioJobResult("seq-write", FioTest.SEQ_WRITE, _IDLE, _direction(1, bandwidth, 1.0, 1.0), 0)
    report = grade(
        Measurements("x", fio_jobs=(job,)), ClassThresholds(seq_write_mbps=threshold), require_all=True
    )
    (criterion,) = report.criteria
    assert criterion.measured == pytest.approx(bandwidth / 1e6)
    assert (criterion.verdict is Verdict.PASS) == (bandwidth / 1e6 > threshold)
    assert report.passed == (criterion.verdict is Verdict.PASS)


@given(
    latencies=st.lists(st.tuples(st.integers(1, 10**9), _positive), min_size=1, max_size=5), limit=_positive
)
def test_a_maximum_passes_exactly_when_undercut_by_the_io_weighted_mean(latencies, limit):
    jobs = tuple(
        FioJobResult("latency-4k", FioTest.LATENCY_4K, _direction(size, 1.0, 1.0, ns), _IDLE, 0)
        for size, ns in latencies
    )
    (criterion,) = grade(
        Measurements("x", fio_jobs=jobs), ClassThresholds(latency_ms=limit), require_all=True
    ).criteria
    expected = sum(size * ns for size, ns in latencies) / sum(size for size, _ in latencies) / 1e6
    assert criterion.measured == pytest.approx(expected)
    assert (criterion.verdict is Verdict.PASS) == (criterion.measured < limit)


def test_separate_runs_of_a_test_are_graded_by_the_worst_not_added_up(fio_log):
    """Two fio documents for one class (a log with two runs, or two files) are repeats, not parallel load."""
    first = fio_document(fio_log)
    second = copy.deepcopy(first)
    for job in second["jobs"]:
        if job["jobname"] == "seq-write":
            job["write"]["bw"] /= 4
        if job["jobname"] == "latency-4k":
            job["read"]["lat_ns"]["mean"] *= 4
    measured = merge_by_class(
        [
            *from_file_text(json.dumps(first), source="run-1.json", storage_class="fast-ssd"),
            *from_file_text(json.dumps(second), source="run-2.json", storage_class="fast-ssd"),
        ]
    )["fast-ssd"]
    report = grade(
        measured,
        ClassThresholds(seq_write_mbps=0.001, seq_read_mbps=0.001, latency_ms=1e9),
        require_all=True,
    )
    write, read, latency = report.criteria
    raw = {job["jobname"]: job for job in second["jobs"]}
    assert write.measured == pytest.approx(raw["seq-write"]["write"]["bw"] * 1024 / 1e6)
    assert read.measured == pytest.approx(raw["seq-read"]["read"]["bw"] * 1024 / 1e6)
    assert latency.measured == pytest.approx(raw["latency-4k"]["read"]["lat_ns"]["mean"] / 1e6)
    assert "worst of 2 runs" in write.note


@given(runs=st.lists(st.lists(_positive, min_size=1, max_size=3), min_size=1, max_size=4))
def test_rates_add_up_within_a_run_and_the_worst_run_counts(runs):
    jobs = tuple(
        FioJobResult(
            "seq-read", FioTest.SEQ_READ, _direction(1, bandwidth, 1.0, 1.0), _IDLE, 0, run=f"run-{i}"
        )
        for i, run in enumerate(runs)
        for bandwidth in run
    )
    (criterion,) = grade(
        Measurements("x", fio_jobs=jobs), ClassThresholds(seq_read_mbps=1e-9), require_all=True
    ).criteria
    assert criterion.measured == pytest.approx(min(sum(run) for run in runs) / 1e6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2g", 2 * 1024**3),
        ("512m", 512 * 1024**2),
        ("4096", 4096),
        ("1TiB", 1024**4),
        ("2 g", None),
        ("", None),
    ],
)
def test_sizes_are_read_as_fio_reads_them(text, expected):
    assert size_bytes(text) == expected


def test_an_optional_p99_criterion_grades_fios_percentile(fio_log):
    document = fio_document(fio_log)
    (raw,) = [job for job in document["jobs"] if job["jobname"] == "latency-4k"]
    p99_ms = raw["read"]["clat_ns"]["percentile"]["99.000000"] / 1e6
    jobs = _jobs(document)
    easy = grade(
        Measurements("x", fio_jobs=jobs), ClassThresholds(latency_p99_ms=p99_ms * 2), require_all=True
    )
    (criterion,) = easy.criteria
    assert criterion.label == "4K read latency (p99)"
    assert criterion.measured == pytest.approx(p99_ms)
    assert criterion.verdict is Verdict.PASS
    hard = grade(
        Measurements("x", fio_jobs=jobs), ClassThresholds(latency_p99_ms=p99_ms / 2), require_all=True
    )
    assert hard.criteria[0].verdict is Verdict.FAIL
    # Without percentiles in fio's output the criterion is not measured, and fails only when all are required.
    bare = copy.deepcopy(document)
    for job in bare["jobs"]:
        job["read"]["clat_ns"].pop("percentile", None)
    lenient = grade(
        Measurements("x", fio_jobs=_jobs(bare)), ClassThresholds(latency_p99_ms=1e9), require_all=False
    )
    assert lenient.criteria[0].verdict is Verdict.MISSING
    assert "no completion latency percentiles" in lenient.criteria[0].note


@given(p99s=st.lists(_positive, min_size=1, max_size=4), limit=_positive)
def test_the_p99_criterion_takes_the_highest_of_several_jobs(p99s, limit):
    jobs = tuple(
        FioJobResult(
            "latency-4k",
            FioTest.LATENCY_4K,
            DirectionFigures(1, 1.0, 1.0, 1.0, p99),
            _IDLE,
            0,
            run=f"run-{i}",
        )
        for i, p99 in enumerate(p99s)
    )
    (criterion,) = grade(
        Measurements("x", fio_jobs=jobs), ClassThresholds(latency_p99_ms=limit), require_all=True
    ).criteria
    assert criterion.measured == pytest.approx(max(p99s) / 1e6)
    assert (criterion.verdict is Verdict.PASS) == (criterion.measured < limit)
