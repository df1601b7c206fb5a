"""Pure aggregation of member statuses into the object's status."""

from __future__ import annotations

from hypothesis import given, strategies as st

from couchestor.replication.model import MemberStatus
from couchestor.replication.status import status_patch, summarize
from k8s_schemas.replication import VolumeGroupReplicationStatus

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:05:00Z"

members = st.lists(
    st.builds(
        MemberStatus,
        pvc=st.text("abc", min_size=1, max_size=3),
        state=st.sampled_from(["Primary", "Secondary", "Unknown"]),
        phase=st.sampled_from(["Progressing", "Completed", "Failed"]),
        message=st.just("m"),
    ),
    min_size=1,
    max_size=6,
)


def _cond(summary, type_):
    return next(c for c in summary.conditions if c.type == type_)


@given(members, st.sampled_from(["primary", "secondary", "resync"]))
def test_group_state_only_when_all_members_agree(ms, requested):
    summary = summarize(requested, ms)
    states = {m.state for m in ms}
    if len(states) == 1:
        assert summary.state == next(iter(states))
    else:
        assert summary.state == "Unknown"
    all_done = all(m.phase == "Completed" for m in ms)
    any_failed = any(m.phase == "Failed" for m in ms)
    assert (_cond(summary, "Completed").status == "True") == all_done
    assert (_cond(summary, "Degraded").status == "True") == any_failed
    assert summary.phase == ("Failed" if any_failed else "Completed" if all_done else "Progressing")


def test_partial_failover_names_the_failed_member():
    ms = [
        MemberStatus("data", "Primary", "Completed"),
        MemberStatus("wal", "Secondary", "Failed", "peer unreachable"),
    ]
    summary = summarize("primary", ms)
    assert summary.state == "Unknown"
    assert _cond(summary, "Completed").reason == "FailedToPromote"
    assert "wal: peer unreachable" in summary.message
    assert "Primary: data" in summary.message
    assert "Secondary: wal" in summary.message


def test_problem_reports_validation_failure():
    summary = summarize("secondary", [], "VolumeReplicationClass 'x' not found")
    assert summary.phase == "Failed"
    assert _cond(summary, "Validated").status == "False"
    assert _cond(summary, "Validated").reason == "PrerequisiteNotMet"
    assert _cond(summary, "Completed").reason == "FailedToDemote"


def test_write_errors_degrade():
    summary = summarize("primary", [MemberStatus("a", "Primary", "Completed")], errors=["create x: denied"])
    assert summary.phase == "Failed"
    assert _cond(summary, "Degraded").reason == "Error"
    assert "denied" in summary.message


def test_last_sync_is_the_stalest_member():
    ms = [
        MemberStatus("a", "Secondary", "Completed", last_sync_time="2026-01-01T00:02:00Z"),
        MemberStatus("b", "Secondary", "Completed", last_sync_time="2026-01-01T00:01:00Z"),
    ]
    assert summarize("secondary", ms).last_sync_time == "2026-01-01T00:01:00Z"
    ms.append(MemberStatus("c", "Secondary", "Completed"))
    assert summarize("secondary", ms).last_sync_time is None


def _apply(status: VolumeGroupReplicationStatus, patch) -> VolumeGroupReplicationStatus:
    import msgspec

    raw = msgspec.to_builtins(status)
    for k, v in msgspec.to_builtins(patch["status"]).items():
        if v is None:
            raw.pop(k, None)
        else:
            raw[k] = v
    return msgspec.convert(raw, VolumeGroupReplicationStatus)


def test_status_written_once_then_not_again():
    summary = summarize("primary", [MemberStatus("a", "Primary", "Completed")])
    first = status_patch(summary, VolumeGroupReplicationStatus(), generation=1, members=["a"], now=NOW)
    assert first is not None
    body = first["status"]
    assert body["lastStartTime"] == NOW
    assert body["lastCompletionTime"] == NOW
    assert body["persistentVolumeClaimsRefList"][0].name == "a"
    current = _apply(VolumeGroupReplicationStatus(), first)
    assert status_patch(summary, current, generation=1, members=["a"], now=LATER) is None
    # A new generation (new requested state) restarts the clock.
    again = status_patch(summary, current, generation=2, members=["a"], now=LATER)
    assert again["status"]["lastStartTime"] == LATER
    assert again["status"]["observedGeneration"] == 2


def test_condition_transition_time_moves_only_on_change():
    progressing = summarize("primary", [MemberStatus("a", "Unknown", "Progressing")])
    done = summarize("primary", [MemberStatus("a", "Primary", "Completed")])
    current = _apply(
        VolumeGroupReplicationStatus(),
        status_patch(progressing, VolumeGroupReplicationStatus(), generation=1, members=None, now=NOW),
    )
    after = status_patch(done, current, generation=1, members=None, now=LATER)["status"]
    times = {c.type: c.last_transition_time for c in after["conditions"]}
    assert times["Completed"] == LATER
    assert times["Degraded"] == NOW  # still False
    assert "persistentVolumeClaimsRefList" not in after
