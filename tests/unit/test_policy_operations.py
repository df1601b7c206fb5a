"""The StoragePolicy's operational fields as the compiler reads them: approval, maintenance windows, blackouts,
rebuild limits, history limit and the paused annotation; every problem named by its field."""

from __future__ import annotations

from datetime import UTC, datetime

from couchestor.tiering.policy import PolicyProblem, PolicyRules, compile_policy
from k8s_schemas.annotations import PAUSED
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.storage_policy import StoragePolicy


def compiled(spec=None, annotations=None, enforced=True):
    meta = (
        ObjectMeta(name="p", generation=1, annotations=annotations) if annotations else ObjectMeta(name="p")
    )
    return compile_policy(StoragePolicy(metadata=meta, spec=spec or {}), operations_enforced=enforced)


def test_where_not_enforced_a_policy_asking_for_approvals_windows_or_a_pause_starts_nothing():
    asks = {
        "approval": "Manual",
        "maintenanceWindows": [{"schedule": "@daily", "duration": "1h"}],
        "blackouts": [{"start": "2026-12-24", "end": "2026-12-26"}],
        "maxRebuildsPerNode": 1,
    }
    problem = compiled(asks, annotations={PAUSED: "true"}, enforced=False)
    assert isinstance(problem, PolicyProblem)
    assert [p.field for p in problem.problems] == [
        "spec.approval",
        "spec.maintenanceWindows",
        "spec.blackouts",
        f"metadata.annotations[{PAUSED}]",
    ]
    assert "is not enforced without TierMigrations" in problem.message
    # Limits only hold moves back: accepted as they are.
    limits_only = compiled({"maxRebuildsPerNode": 1, "approval": "Automatic"}, enforced=False)
    assert isinstance(limits_only, PolicyRules)
    assert isinstance(compiled(annotations={PAUSED: "false"}, enforced=False), PolicyRules)


def test_defaults_are_automatic_unlimited_in_time_and_documented_limits():
    rules = compiled()
    assert isinstance(rules, PolicyRules)
    assert (rules.manual_approval, rules.approval_ttl_seconds, rules.paused) == (False, 86_400, False)
    assert (rules.max_rebuilds_per_node, rules.max_rebuilds_per_pool) == (2, 1)
    assert rules.tier_migration_history_limit == 10
    assert rules.schedule.windows == ()
    assert rules.schedule.allows(datetime(2026, 1, 1, tzinfo=UTC))


def test_windows_blackouts_and_limits_are_compiled():
    rules = compiled(
        {
            "approval": "Manual",
            "approvalTTL": "8h",
            "maintenanceWindows": [
                {"schedule": "0 22 * * MON-FRI", "duration": "6h", "timeZone": "Europe/Paris"},
                {"schedule": "@daily", "duration": "1h"},
            ],
            "blackouts": [{"start": "2026-12-24", "end": "2026-12-26", "timeZone": "Europe/Paris"}],
            "maxRebuildsPerNode": 4,
            "maxRebuildsPerPool": 2,
            "tierMigrationHistoryLimit": 0,
        }
    )
    assert isinstance(rules, PolicyRules)
    assert (rules.manual_approval, rules.approval_ttl_seconds) == (True, 8 * 3600)
    assert [w.zone_name for w in rules.schedule.windows] == ["Europe/Paris", "UTC"]
    assert (rules.max_rebuilds_per_node, rules.max_rebuilds_per_pool, rules.tier_migration_history_limit) == (
        4,
        2,
        0,
    )
    monday_night = datetime(2026, 6, 1, 21, 30, tzinfo=UTC)  # 23:30 in Paris
    assert rules.schedule.allows(monday_night)
    assert not rules.schedule.allows(datetime(2026, 6, 1, 12, tzinfo=UTC))
    assert not rules.schedule.allows(datetime(2026, 12, 24, 21, 30, tzinfo=UTC))  # blackout


def test_every_unreadable_window_part_is_a_problem_naming_its_field():
    problem = compiled(
        {
            "maintenanceWindows": [
                {"schedule": "0 25 * * *", "duration": "1h", "timeZone": "Mars/Olympus_Mons"},
                {"schedule": "0 1 * * *", "duration": "0s"},
            ],
            "blackouts": [{"start": "2026-12-26", "end": "2026-12-24"}],
            "approvalTTL": "0m",
        }
    )
    assert isinstance(problem, PolicyProblem)
    fields = {p.field: p.message for p in problem.problems}
    assert "hour 25 is outside 0-23" in fields["spec.maintenanceWindows[0].schedule"]
    assert "unknown time zone 'Mars/Olympus_Mons'" in fields["spec.maintenanceWindows[0].timeZone"]
    assert "must be longer than zero" in fields["spec.maintenanceWindows[1].duration"]
    assert "is not after its start" in fields["spec.blackouts[0]"]
    assert "spec.approvalTTL" in fields
    # The volumes stay claimed (and still) while the policy is broken.
    assert problem.scope is not None


def test_schema_level_problems_name_the_field():
    problem = compiled({"approval": "Sometimes"})
    assert isinstance(problem, PolicyProblem)
    assert problem.field == "spec.approval"
    missing = compiled({"maintenanceWindows": [{"schedule": "@daily"}]})
    assert isinstance(missing, PolicyProblem)
    assert "duration" in missing.message


def test_paused_annotation():
    paused = compiled(annotations={PAUSED: "true"})
    assert isinstance(paused, PolicyRules)
    assert paused.paused
    resumed = compiled(annotations={PAUSED: "false"})
    assert isinstance(resumed, PolicyRules)
    assert not resumed.paused
    typo = compiled(annotations={PAUSED: "yes"})
    assert isinstance(typo, PolicyProblem)
    assert typo.message == f'metadata.annotations[{PAUSED}]: must be "true" or "false", not \'yes\''
