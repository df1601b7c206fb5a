"""Logging setup: one line per event, as text (``--log-format text``) or JSON (``--log-format json``).

Decision and migration lines keep the seeds' wording (``Volume pvc-abc heat score: 6500.0``,
``Migrating pvc-abc cold -> hot``, ``Migration completed pvc-abc in 4m12s``) so existing greps keep working;
structured fields go in ``extra=fields(...)`` (or ``extra=migration(intent, ...)``) and appear as keys in JSON
output, so a log system can filter by them:

- ``volume``: the PV name; ``policy``: the StoragePolicy; on every line about one volume.
- ``decision``: the decision's label (``hot``, ``stay``, ``skip:cooldown`` ...), on decision lines.
- ``migration``: ``<pv>@<start time>``, the same on every line of one migration (and in no other), with
  ``phase`` (``started``, the step it entered, then ``success``/``failed``/``aborted``), ``from_tier``, ``to_tier``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Protocol, TextIO

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra=`` of a log call whose ``values`` become keys of the JSON line (None values are left out)."""
    return {"fields": {k: v for k, v in values.items() if v is not None}}


class MigrationLike(Protocol):
    """What :func:`migration` reads of a migration intent."""

    @property
    def pv(self) -> str: ...
    @property
    def policy(self) -> str: ...
    @property
    def started_at(self) -> str: ...
    @property
    def from_tier(self) -> str: ...
    @property
    def to_tier(self) -> str: ...


def migration_id(pv: str, started_at: str) -> str:
    """One migration's id in the logs: its volume and start time (unique: a volume migrates once at a time)."""
    return f"{pv}@{started_at}"


def migration(intent: MigrationLike, phase: str | None = None, **more: Any) -> dict[str, Any]:
    """The ``extra=`` of a log line about one migration: volume, policy, migration id, tiers, ``phase``."""
    return fields(
        volume=intent.pv,
        policy=intent.policy,
        migration=migration_id(intent.pv, intent.started_at),
        from_tier=intent.from_tier,
        to_tier=intent.to_tier,
        phase=phase,
        **more,
    )


def configure(fmt: str = "text", level: str = "info", stream: TextIO | None = None) -> None:
    """Route the ``couchestor`` loggers to ``stream`` (stderr by default) in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger("couchestor")
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    root.propagate = False
