"""Logging setup: one line per event, as text (``--log-format text``) or JSON (``--log-format json``).

Decision and migration lines keep the seeds' wording (``Volume pvc-abc heat score: 6500.0``,
``Migrating pvc-abc cold -> hot``, ``Migration completed pvc-abc in 4m12s``) so existing greps keep working;
structured fields go in ``extra={"fields": {...}}`` and appear as keys in JSON output.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

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
