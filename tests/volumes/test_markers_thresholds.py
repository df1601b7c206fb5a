"""Result blocks in logs, and the thresholds file."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from couchestor.errors import UserError
from couchestor.volumes.fio import parse_fio_json
from couchestor.volumes.markers import ResultBlockError, begin_line, extract_blocks
from couchestor.volumes.measurements import from_file_text
from couchestor.volumes.thresholds import (
    DEFAULT_THRESHOLDS_YAML,
    ThresholdsError,
    default_thresholds,
    load_thresholds,
    parse_thresholds,
)

END = "<<< couchestor-result end"


def test_blocks_are_found_among_other_output():
    log = "\n".join(
        [
            "fio: note: something",
            begin_line(kind="fio", storage_class="fast-ssd", exit="0"),
            "{",
            '  "a": 1',
            "}",
            END,
            "other noise",
            begin_line(kind="integrity-verify", storage_class="fast-ssd"),
            '{"files": 1}',
            END,
        ]
    )
    first, second = extract_blocks(log, source="log")
    assert first.attributes == {"kind": "fio", "storage-class": "fast-ssd", "exit": "0"}
    assert first.body == '{\n  "a": 1\n}'
    assert first.line == 2
    assert second.kind == "integrity-verify"
    assert second.body == '{"files": 1}'


@pytest.mark.parametrize(
    ("log", "message"),
    [
        (begin_line(kind="fio") + "\n{}\n", "has no end marker"),
        (END + "\n", "end marker without a begin"),
        (begin_line(kind="fio") + "\n" + begin_line(kind="fio") + "\n" + END, "begins inside the block"),
        (">>> couchestor-result kind=fio", "malformed begin marker"),
    ],
)
def test_broken_blocks_are_clear_errors(log, message):
    with pytest.raises(ResultBlockError, match=message):
        extract_blocks(log, source="pod.log")


def test_a_fio_block_with_a_nonzero_exit_is_a_problem_and_broken_json_an_error():
    log = "\n".join(
        [begin_line(kind="fio", storage_class="x", exit="1"), "fio: engine libaio not loadable", END]
    )
    with pytest.raises(UserError, match="block at line 1: fio exited with status 1 without results"):
        from_file_text(log, source="pod.log", storage_class=None)
    with pytest.raises(UserError, match="block at line 1: no JSON object found"):
        from_file_text(log.replace("exit=1", "exit=0"), source="pod.log", storage_class=None)
    verdict = "\n".join([begin_line(kind="integrity-verify", storage_class="x"), '{"files": 1}', END])
    with pytest.raises(UserError, match="unreadable integrity verdict"):
        from_file_text(verdict, source="pod.log", storage_class=None)


def test_blocks_without_a_class_take_the_command_lines():
    log = "\n".join(
        [begin_line(kind="integrity-verify"), '{"files":2,"verified":2,"failed":0,"expected":2}', END]
    )
    with pytest.raises(UserError, match="names no StorageClass"):
        from_file_text(log, source="l", storage_class=None)
    (measured,) = from_file_text(log, source="l", storage_class="backup-storage")
    assert measured.storage_class == "backup-storage"
    assert measured.integrity is not None
    assert measured.integrity.percent == 100


def test_defaults_hold_the_guides_criteria():
    thresholds = default_thresholds()
    fast = thresholds.for_class("fast-ssd", source="d")
    standard = thresholds.for_class("standard-storage", source="d")
    assert (fast.pvc_bound_seconds, fast.pod_mount_seconds) == (30, 60)
    assert (fast.seq_write_mbps, fast.seq_read_mbps, fast.random_read_4k_iops, fast.latency_ms) == (
        500,
        800,
        10000,
        1,
    )
    assert (standard.pvc_bound_seconds, standard.seq_write_mbps, standard.seq_read_mbps) == (60, 100, 200)
    assert (standard.random_read_4k_iops, standard.latency_ms) == (3000, 10)
    assert {c.integrity_percent for c in thresholds.storage_classes.values()} == {100}


def test_an_edited_file_overrides_the_defaults(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(DEFAULT_THRESHOLDS_YAML.replace("seqWriteMBps: 500", "seqWriteMBps: 450"))
    thresholds, source = load_thresholds(str(path))
    assert source == str(path)
    assert thresholds.for_class("fast-ssd", source=source).seq_write_mbps == 450
    assert load_thresholds(None)[0] == default_thresholds()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("storageClasses: [", "not valid YAML"),
        ("{}", "missing required field `storageClasses`"),
        ("storageClasses:\n  x:\n    seqWriteMbps: 1\n", "unknown field `seqWriteMbps`"),
        ("storageClasses:\n  x:\n    latencyMs: fast\n", "Expected `float | null`"),
        ("storageClasses:\n  x:\n    latencyMs: -1\n", "storageClasses.x.latencyMs must not be negative"),
    ],
)
def test_bad_thresholds_files_are_clear_errors(text, message):
    with pytest.raises(ThresholdsError, match=message):
        parse_thresholds(text, source="t.yaml")


def test_unknown_class_and_unreadable_file_are_user_errors(tmp_path):
    with pytest.raises(UserError, match=r"no thresholds for StorageClass 'gold'.*it lists: backup-storage"):
        default_thresholds().for_class("gold", source="the defaults")
    with pytest.raises(ThresholdsError, match="cannot read thresholds file"):
        load_thresholds(str(tmp_path / "missing.yaml"))


_line = st.text(st.characters(blacklist_categories=("Cs", "Zl", "Zp", "Cc")), max_size=40).filter(
    lambda line: not line.startswith((">>> couchestor-result", "<<< couchestor-result"))
)


@given(
    bodies=st.lists(st.lists(_line, max_size=5), min_size=1, max_size=4), noise=st.lists(_line, max_size=3)
)
def test_blocks_round_trip_whatever_they_hold(bodies, noise):
    lines: list[str] = []
    for index, body in enumerate(bodies):
        lines += [*noise, begin_line(kind="fio", n=str(index)), *body, END]
    blocks = extract_blocks("\n".join(lines), source="log")
    assert [b.body for b in blocks] == ["\n".join(body) for body in bodies]
    assert [b.attributes["n"] for b in blocks] == [str(i) for i in range(len(bodies))]


# --- no input crashes the readers: they return, or raise a UserError with a message -------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
_fio_keys = st.sampled_from(
    ["jobs", "jobname", "read", "write", "lat_ns", "mean", "bw", "iops", "io_bytes", "error"]
)
_fio_like = st.recursive(
    st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_fio_keys, children, max_size=6),
    max_leaves=20,
)


@given(document=st.one_of(_json_values, _fio_like), prefix=st.text(max_size=20))
def test_any_json_is_read_as_fio_output_or_refused_with_a_user_error(document, prefix):
    text = prefix + json.dumps(document)
    try:
        jobs = parse_fio_json(text, source="f.json")
    except UserError as exc:
        message = str(exc)
    else:
        assert jobs
        return
    assert message.startswith("f.json: ")


@given(text=st.text(max_size=300), storage_class=st.none() | st.just("fast-ssd"))
def test_any_file_given_to_report_is_read_or_refused_with_a_user_error(text, storage_class):
    try:
        measured = from_file_text(text, source="f", storage_class=storage_class)
    except UserError:
        return
    assert measured


@given(document=_json_values)
def test_any_thresholds_document_is_read_or_refused_with_a_thresholds_error(document):
    try:
        thresholds = parse_thresholds(json.dumps(document), source="t.yaml")
    except ThresholdsError as exc:
        message = str(exc)
    else:
        assert isinstance(thresholds.storage_classes, dict)
        return
    assert message.startswith("t.yaml: ")


def test_escaped_lone_surrogates_and_binary_files_are_thresholds_errors(tmp_path):
    with pytest.raises(ThresholdsError, match="not valid Unicode"):
        parse_thresholds('{"\\ud800": null}', source="t.yaml")
    binary = tmp_path / "t.bin"
    binary.write_bytes(b"storageClasses: \xb0\xff\n")
    with pytest.raises(ThresholdsError, match=r"t\.bin: not a text file \(byte 16 is not UTF-8\)"):
        load_thresholds(str(binary))
