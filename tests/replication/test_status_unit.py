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
        MemberStatus("a", "Primary", "Completed", last_sync_time="2026-01-01T00:02:00Z"),
        MemberStatus("b", "Primary", "Completed", last_sync_time="2026-01-01T00:01:00Z"),
    ]
    assert summarize("primary", ms).last_sync_time == "2026-01-01T00:01:00Z"
    ms.append(MemberStatus("c", "Primary", "Completed"))
    assert summarize("primary", ms).last_sync_time is None


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


def test_missing_prerequisite_keeps_the_last_known_state():
    # csi-addons reports a failure with the current state, so a failover tool never sees a Primary as Unknown.
    summary = summarize("primary", [], "VolumeReplicationClass 'x' not found", previous="Primary")
    assert summary.state == "Primary"
    assert _cond(summary, "Validated").reason == "PrerequisiteNotMet"


def test_demoted_but_not_in_sync_is_completed_and_degraded_until_ready():
    syncing = summarize("secondary", [MemberStatus("a", "Secondary", "Completed", degraded=True)])
    assert (_cond(syncing, "Completed").status, _cond(syncing, "Completed").reason) == ("True", "Demoted")
    assert (_cond(syncing, "Degraded").status, _cond(syncing, "Degraded").reason) == (
        "True",
        "VolumeDegraded",
    )
    assert syncing.phase == "Progressing"  # followed until the resync is ready
    ready = summarize("secondary", [MemberStatus("a", "Secondary", "Completed")])
    assert (_cond(ready, "Degraded").status, _cond(ready, "Degraded").reason) == ("False", "Healthy")
    assert ready.phase == "Completed"


def test_resync_reports_demoted_and_resync_triggered():
    summary = summarize(
        "resync", [MemberStatus("a", "Secondary", "Completed", resyncing=True, degraded=True)]
    )
    assert (_cond(summary, "Completed").status, _cond(summary, "Completed").reason) == ("True", "Demoted")
    assert (_cond(summary, "Resyncing").status, _cond(summary, "Resyncing").reason) == (
        "True",
        "ResyncTriggered",
    )
    done = summarize("resync", [MemberStatus("a", "Secondary", "Completed")])
    assert _cond(done, "Completed").reason == "Demoted"


def test_secondary_clears_last_sync_time_and_resync_keeps_it():
    synced = VolumeGroupReplicationStatus(last_sync_time=NOW, observed_generation=1)
    secondary = summarize("secondary", [MemberStatus("a", "Secondary", "Completed", last_sync_time=LATER)])
    patch = status_patch(secondary, synced, generation=2, members=None, now=LATER)
    assert patch["status"]["lastSyncTime"] is None
    resync = summarize("resync", [MemberStatus("a", "Secondary", "Completed", last_sync_time=LATER)])
    patch = status_patch(resync, synced, generation=2, members=None, now=LATER)
    assert patch["status"]["lastSyncTime"] == NOW


def test_a_failed_write_before_anything_was_observed_keeps_the_state():
    summary = summarize("secondary", [], errors=["claim PersistentVolumeClaim a: 403"], previous="Primary")
    assert summary.state == "Primary"
    assert _cond(summary, "Degraded").reason == "Error"
