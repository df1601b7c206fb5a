"""`couchestor run` settings: flags, environment variables, defaults, errors, and their documentation."""

import argparse
from pathlib import Path

import pytest

from couchestor.errors import UserError
from couchestor.settings import FLAGS, add_arguments, resolve

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def parse(argv, env=None):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return resolve(parser.parse_args(argv), env or {})


def test_defaults():
    s = parse([])
    assert s.prometheus_url == "http://prometheus.monitoring:9090"
    assert (s.score_ttl, s.resync, s.min_coverage) == (30.0, 30.0, 0.5)
    assert (s.dry_run, s.preservation_mode, s.leader_election) == (False, False, True)
    assert (s.log_format, s.metric_preset) == ("text", "openebs")


def test_metric_preset_follows_the_backend_unless_given():
    assert parse(["--backend", "mayastor-rest"]).metric_preset == "mayastor-2x"
    assert parse([], {"COUCHESTOR_BACKEND": "mayastor-rest"}).metric_preset == "mayastor-2x"
    assert parse(["--backend", "mayastor-rest", "--metric-preset", "openebs"]).metric_preset == "openebs"
    assert parse(["--metric-preset", "mayastor-2x"]).metric_preset == "mayastor-2x"


def test_environment_then_flag_precedence():
    env = {
        "COUCHESTOR_PROMETHEUS_URL": "http://env:9090",
        "COUCHESTOR_DRY_RUN": "yes",
        "COUCHESTOR_RESYNC": "2m",
    }
    s = parse([], env)
    assert (s.prometheus_url, s.dry_run, s.resync) == ("http://env:9090", True, 120.0)
    s = parse(["--prometheus-url", "http://flag:9090", "--no-dry-run", "--resync", "10s"], env)
    assert (s.prometheus_url, s.dry_run, s.resync) == ("http://flag:9090", False, 10.0)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--resync", "soon"], {}, "--resync: invalid value 'soon'"),
        (
            [],
            {"COUCHESTOR_MIN_COVERAGE": "2"},
            "COUCHESTOR_MIN_COVERAGE: invalid value '2': must be between 0 and 1",
        ),
        ([], {"COUCHESTOR_LOG_FORMAT": "xml"}, "COUCHESTOR_LOG_FORMAT: 'xml' is not one of text, json"),
        ([], {"COUCHESTOR_DRY_RUN": "maybe"}, "COUCHESTOR_DRY_RUN: invalid value 'maybe'"),
        (["--max-concurrent-migrations", "0"], {}, "must be at least 1"),
        (["--renew-deadline", "20s"], {}, "--renew-deadline must be shorter than --lease-duration"),
    ],
)
def test_bad_values_are_user_errors_naming_the_source(argv, env, message):
    with pytest.raises(UserError, match=None) as info:
        parse(argv, env)
    assert message in str(info.value)


def test_every_flag_is_documented_with_its_variable():
    text = DOCS.read_text()
    for flag in FLAGS:
        assert f"`--{flag.name}` | `{flag.env}`" in text, flag.name
