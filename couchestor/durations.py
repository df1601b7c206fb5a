"""Durations and timestamps as StoragePolicies, annotations and logs spell them.

- Policy durations (``samplingWindow``, ``cooldownPeriod``, ``migrationTimeout``) are one or more
  ``<whole number><unit>`` parts with units ``d``, ``h``, ``m``, ``s`` (``30s``, ``15m``, ``1h30m``, ``7d``),
  the same grammar the CRD schema's pattern enforces. :func:`parse_duration` turns them into seconds;
  :func:`format_duration` renders seconds back in that style for logs and the migration history
  (``Migration completed pvc-x in 4m12s``).
- Timestamps (the ``storage.billyronks.io/last-migration`` annotation, status times) are RFC 3339 in UTC with
  whole seconds, like Kubernetes' ``metav1.Time``: :func:`format_time` writes them, :func:`parse_time` reads
  any RFC 3339 timestamp (fractional seconds, offsets and a space for the ``T`` included).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:[0-9]+[dhms])+")
_PART = re.compile(r"([0-9]+)([dhms])")
_ACCEPTED = "a positive duration of whole numbers with units d, h, m or s, e.g. 30s, 15m, 1h30m or 7d"

# RFC 3339 "date-time": full date, "T" (or a space, which section 5.6 allows), time, optional fraction, mandatory
# offset. datetime.fromisoformat alone would also accept dates without a time or an offset.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``"1h30m"`` -> 5400.0).

    Parts may come in any order and add up (``"90m"`` and ``"1h30m"`` are equal). Raises :class:`ValueError`
    saying what is accepted for an empty string, an unknown unit, a fraction, a sign, or a total of zero.
    """
    if not isinstance(text, str) or not _DURATION.fullmatch(text):
        raise ValueError(f"invalid duration {text!r}: expected {_ACCEPTED}")
    total = sum(int(amount) * _UNIT_SECONDS[unit] for amount, unit in _PART.findall(text))
    if total == 0:
        raise ValueError(f"invalid duration {text!r}: must be longer than zero ({_ACCEPTED})")
    return float(total)


def format_duration(seconds: float) -> str:
    """A compact rendering such as ``4m12s``, ``1h5s``, ``2d3h`` or ``2.5s``.

    Whole seconds (rounded to nearest) from one minute up; under a minute one decimal is kept when the value
    is not whole, so a quick migration does not read ``0s``. Zero components are left out, zero is ``0s``,
    and a negative value gets a leading ``-``. Results from one second up parse back with
    :func:`parse_duration`.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"cannot format a non-finite duration ({seconds!r})")
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 60:
        tenths = round(seconds * 10)
        if tenths % 10:
            return f"{tenths / 10:.1f}s"
        if tenths < 600:
            return f"{tenths // 10}s"
    rest = round(seconds)
    parts: list[str] = []
    for unit, size in _UNIT_SECONDS.items():
        amount, rest = divmod(rest, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


def parse_time(text: str) -> datetime:
    """An aware UTC datetime from an RFC 3339 timestamp (``2026-02-01T10:00:00Z``, with or without fraction,
    ``2026-02-01 10:00:00Z`` too).

    Raises :class:`ValueError` naming the text for anything else (dates alone, missing offsets, garbage).
    """
    if not isinstance(text, str) or not _RFC3339.fullmatch(text):
        raise ValueError(f"invalid timestamp {text!r}: expected RFC 3339, e.g. 2026-02-01T10:00:00Z")
    try:
        return datetime.fromisoformat(text.upper()).astimezone(UTC)
    except ValueError:
        raise ValueError(f"invalid timestamp {text!r}: not a real date or time") from None


def format_time(moment: datetime) -> str:
    """``moment`` in UTC with whole seconds and a ``Z`` suffix (``2026-02-01T10:00:00Z``), as Kubernetes writes.

    Raises :class:`ValueError` for a naive datetime: guessing its zone would silently shift cooldowns.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"cannot format a naive datetime ({moment.isoformat()}): give it a timezone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
