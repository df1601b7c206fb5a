"""The operator's settings: every ``couchestor run`` flag, each also readable from ``COUCHESTOR_<FLAG>``.

A flag given on the command line wins over its environment variable, which wins over the default. A bad value
in either place is a :class:`~couchestor.errors.UserError` naming the flag and the variable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from couchestor.durations import parse_duration
from couchestor.errors import UserError


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated operator settings (seconds for durations)."""

    kubeconfig: str | None
    context: str | None
    namespace: str
    mayastor_namespace: str
    prometheus_url: str
    metric_preset: str
    metric_name: str | None
    metric_label: str | None
    metric_selector: str | None
    min_coverage: float
    scrape_interval: float
    metrics_addr: str
    score_ttl: float
    resync: float
    max_concurrent_migrations: int
    dry_run: bool
    paused: bool
    preservation_mode: bool
    log_format: str
    log_level: str
    leader_election: bool
    lease_name: str
    lease_duration: float
    renew_deadline: float
    retry_period: float
    identity: str | None
    backend: str
    mayastor_rest_url: str
    mayastor_rest_interval: float
    mayastor_rest_token_file: str | None
    mayastor_rest_ca: str | None
    enable_replication: bool


@dataclass(frozen=True, slots=True)
class _Flag:
    name: str
    help: str
    default: Any
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    is_bool: bool = False

    @property
    def env(self) -> str:
        return "COUCHESTOR_" + self.name.upper().replace("-", "_")

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be between 0 and 1")
    return value


def _duration(text: str) -> float:
    return parse_duration(text)


FLAGS: tuple[_Flag, ...] = (
    _Flag(
        "kubeconfig",
        "kubeconfig file (default: in-cluster config, else $KUBECONFIG, else ~/.kube/config)",
        None,
    ),
    _Flag("context", "kubeconfig context to use (default: its current-context)", None),
    _Flag("namespace", "namespace of the operator's own objects (Lease, Events of its own)", "kube-system"),
    _Flag("mayastor-namespace", "namespace of MayastorVolumes and DiskPools", "mayastor"),
    _Flag("prometheus-url", "Prometheus base URL", "http://prometheus.monitoring:9090"),
    _Flag(
        "metric-preset",
        "metric family: 'openebs' (gauge openebs_volume_iops{volume_id}) or 'mayastor-2x' (counters"
        " volume_num_read_ops/volume_num_write_ops{pv_name}); default: the one of the backend, 'mayastor-2x'"
        " with --backend mayastor-rest, else 'openebs'",
        None,
        choices=("openebs", "mayastor-2x"),
    ),
    _Flag("metric-name", "override the preset's IOPS metric name", None),
    _Flag(
        "metric-label",
        "override the preset's volume label (its value is the PV name or the volume UUID)",
        None,
    ),
    _Flag("metric-selector", "extra PromQL label matchers, e.g. 'cluster=\"prod\"'", None),
    _Flag(
        "min-coverage",
        "fraction of the sampling window a volume must have samples for before it gets a decision",
        0.5,
        _fraction,
    ),
    _Flag(
        "scrape-interval",
        "Prometheus scrape interval of the IOPS metric (for sample coverage)",
        15.0,
        _duration,
    ),
    _Flag("metrics-addr", "address of /metrics, /healthz, /readyz and /feed", "0.0.0.0:8080"),
    _Flag("score-ttl", "how long heat scores are reused before Prometheus is asked again", 30.0, _duration),
    _Flag("resync", "periodic full reconcile interval (jittered)", 30.0, _duration),
    _Flag("max-concurrent-migrations", "global limit on migrations running at once", 4, _positive_int),
    _Flag(
        "dry-run", "decide and report, change nothing (overrides every policy)", False, _bool, is_bool=True
    ),
    _Flag(
        "paused",
        "start no new move (running ones finish); TierMigrations still show what waits",
        False,
        _bool,
        is_bool=True,
    ),
    _Flag(
        "preservation-mode",
        "never remove the old replica: migrations leave n+1 replicas and say so",
        False,
        _bool,
        is_bool=True,
    ),
    _Flag(
        "log-format",
        "log line format; json lines carry volume, policy, decision, migration and phase as keys",
        "text",
        choices=("text", "json"),
    ),
    _Flag("log-level", "minimum log level", "info", choices=("debug", "info", "warning", "error")),
    _Flag(
        "leader-election",
        "take a Lease before acting (run several replicas safely)",
        True,
        _bool,
        is_bool=True,
    ),
    _Flag("lease-name", "name of the leader-election Lease", "couchestor-leader"),
    _Flag("lease-duration", "how long a Lease is valid without renewal", 15.0, _duration),
    _Flag("renew-deadline", "the leader stops acting if it could not renew for this long", 10.0, _duration),
    _Flag("retry-period", "how often to try to acquire or renew the Lease", 2.0, _duration),
    _Flag("identity", "leader-election identity (default: hostname and process id)", None),
    _Flag(
        "backend",
        "how volumes are changed: 'mayastor-crd' (the MayastorVolume resource) or 'mayastor-rest' (Mayastor 2.x"
        " control-plane REST API)",
        "mayastor-crd",
        choices=("mayastor-crd", "mayastor-rest"),
    ),
    _Flag(
        "mayastor-rest-url",
        "base URL of Mayastor's control-plane REST API (with --backend mayastor-rest)",
        "http://mayastor-api-rest.mayastor:8081",
    ),
    _Flag(
        "mayastor-rest-interval",
        "how often volumes are relisted from Mayastor's REST API (with --backend mayastor-rest)",
        10.0,
        _duration,
    ),
    _Flag(
        "mayastor-rest-token-file",
        "file holding the bearer token (JWT) for Mayastor's REST API, re-read whenever it changes (e.g. a "
        "projected service-account token); default: no Authorization header (a server run with --no-auth)",
        None,
    ),
    _Flag(
        "mayastor-rest-ca",
        "PEM file of the CA that signed the certificate of an https --mayastor-rest-url (default: the system's)",
        None,
    ),
    _Flag(
        "enable-replication",
        "also run the volume replication controllers (replication.unified.io)",
        False,
        _bool,
        is_bool=True,
    ),
)


def add_arguments(parser: argparse.ArgumentParser, only: Collection[str] | None = None) -> None:
    """Add every flag (or those named in ``only``); defaults are resolved later by :func:`resolve` so env vars
    can be reported precisely (a flag left out still reads its environment variable)."""
    for flag in FLAGS:
        if only is not None and flag.name not in only:
            continue
        help_text = f"{flag.help} [env {flag.env}; default {flag.default!r}]"
        if flag.is_bool:
            parser.add_argument(
                f"--{flag.name}",
                dest=flag.dest,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(
                f"--{flag.name}",
                dest=flag.dest,
                default=None,
                choices=flag.choices,
                metavar=flag.dest.upper(),
                help=help_text,
            )


def _check_rest_access(s: Settings) -> None:
    """The REST URL's scheme, and the token and CA files readable now (a typo fails at start, not per call)."""
    scheme = s.mayastor_rest_url.partition("://")[0]
    if scheme not in ("http", "https"):
        raise UserError(f"--mayastor-rest-url: {s.mayastor_rest_url!r} is not an http:// or https:// URL")
    if s.mayastor_rest_ca is not None and scheme != "https":
        raise UserError("--mayastor-rest-ca is given, but --mayastor-rest-url is not an https:// URL")
    for flag, path in (
        ("--mayastor-rest-token-file", s.mayastor_rest_token_file),
        ("--mayastor-rest-ca", s.mayastor_rest_ca),
    ):
        if path is None:
            continue
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as exc:
            raise UserError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from None


def resolve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Combine command line, environment and defaults into validated :class:`Settings`."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for flag in FLAGS:
        given = getattr(args, flag.dest, None)
        if given is not None and (flag.is_bool or not isinstance(given, str)):
            values[flag.dest] = given
            continue
        source, text = (f"--{flag.name}", given) if given is not None else (flag.env, environ.get(flag.env))
        if text is None:
            values[flag.dest] = flag.default
            continue
        if flag.choices is not None and text not in flag.choices:
            raise UserError(f"{source}: {text!r} is not one of {', '.join(flag.choices)}")
        try:
            values[flag.dest] = flag.parse(text)
        except ValueError as exc:
            raise UserError(f"{source}: invalid value {text!r}: {exc}") from None
    if values["metric_preset"] is None:
        # Each backend's own metrics: Mayastor 2.x's io-engine exports counters, the seeds' cluster a gauge.
        values["metric_preset"] = "mayastor-2x" if values["backend"] == "mayastor-rest" else "openebs"
    settings = Settings(**values)
    _check_rest_access(settings)
    if settings.renew_deadline >= settings.lease_duration:
        raise UserError("--renew-deadline must be shorter than --lease-duration")
    if settings.retry_period >= settings.renew_deadline:
        raise UserError("--retry-period must be shorter than --renew-deadline")
    return settings
