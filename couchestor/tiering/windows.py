"""Maintenance windows and blackouts: may a move start at an instant, and when may the next one start.

Pure functions over plain data; every instant is a timezone-aware :class:`~datetime.datetime`.

- :func:`parse_cron` reads a 5-field cron expression (minute, hour, day of month, month, day of week) with
  ``*``, lists (``1,15``), ranges (``1-5``), steps (``*/15``, ``8-18/2``, ``5/10``), month and weekday names
  (``JAN``, ``MON-FRI``, any case; weekday 0 and 7 are Sunday) and the macros ``@yearly``/``@annually``,
  ``@monthly``, ``@weekly``, ``@daily``/``@midnight``, ``@hourly``. As in Vixie cron, when both day fields
  are restricted a day matches when *either* does (``0 3 1 * MON``: the 1st and every Monday).
- :func:`compile_window` makes a :class:`Window`: from each time its cron fires, in its IANA time zone, for
  its duration. :func:`compile_blackout` makes a :class:`Blackout`, a half-open period ``[start, end)``.
- :class:`Schedule` holds a policy's windows and blackouts: :meth:`Schedule.allows` says whether a move may
  start at an instant (inside some window, or the policy has none, and in no blackout);
  :meth:`Schedule.next_opening` says when the next one may.

Daylight-saving time. A window's start is a local wall-clock time, its duration elapsed time:

- a start that does not exist (the clocks jump over it, e.g. 02:30 when 02:00 becomes 03:00) opens the
  window at the jump, the first instant after the gap, for its full duration;
- a start that happens twice (the clocks go back over it) opens the window once, at the first occurrence;
- a 2h window opened at 01:30 on the night the clocks go back closes 2 elapsed hours later (at the second
  02:30 wall-clock time), never "4h" or "0h" of wall time.

Time zones come from :mod:`zoneinfo`, which needs a time-zone database (the system's, or the ``tzdata``
package). An unknown zone — or no database at all — is a :class:`WindowError`: a policy never acts on a
window it cannot read.
"""

from __future__ import annotations

import calendar
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from couchestor.durations import parse_duration, parse_time

#: How far :meth:`Schedule.next_opening` looks ahead by default: past the next 29 February, so a cron that
#: fires only in leap years is still found.
DEFAULT_HORIZON = timedelta(days=4 * 366)


class WindowError(ValueError):
    """A cron expression, time zone, duration or blackout that cannot be used; the message says why."""


# --- cron ---------------------------------------------------------------------------------------------------

_MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# name, low, high, names
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS),
)
_ITEM = re.compile(r"^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/([0-9]+))?$")


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed cron expression: the values each field allows (weekdays 0-6, Sunday 0).

    ``days_of_month_any``/``days_of_week_any`` record a day field that begins with ``*``: they decide
    between Vixie cron's AND (one day field is ``*``) and OR (both are restricted) of the two day fields.
    """

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    days_of_month_any: bool
    days_of_week_any: bool

    def matches_day(self, day: date) -> bool:
        """Whether the cron fires on local ``day`` (at some of its hours and minutes)."""
        if day.month not in self.months:
            return False
        dom = day.day in self.days_of_month
        dow = (day.weekday() + 1) % 7 in self.days_of_week
        if self.days_of_month_any or self.days_of_week_any:
            return dom and dow
        return dom or dow

    def matches(self, local: datetime) -> bool:
        """Whether the cron fires at the local wall-clock minute of ``local`` (seconds ignored)."""
        return local.minute in self.minutes and local.hour in self.hours and self.matches_day(local.date())


def parse_cron(text: str) -> Cron:
    """The :class:`Cron` of ``text``; raises :class:`WindowError` naming the field and what is accepted."""
    if not isinstance(text, str):
        raise WindowError(f"invalid cron expression {text!r}: expected a string")
    source = text.strip()
    expanded = _MACROS.get(source.lower(), source)
    if source.startswith("@") and expanded == source:
        raise WindowError(f"invalid cron expression {text!r}: unknown macro; use one of {', '.join(_MACROS)}")
    parts = expanded.split()
    if len(parts) != 5:
        raise WindowError(
            f"invalid cron expression {text!r}: expected 5 fields (minute hour day-of-month month"
            f" day-of-week), got {len(parts)}"
        )
    sets = [_field(part, *spec, text) for part, spec in zip(parts, _FIELDS, strict=True)]
    minutes, hours, doms, months, dows = sets
    dows = frozenset(d % 7 for d in dows)
    cron = Cron(
        text=source,
        minutes=minutes,
        hours=hours,
        days_of_month=doms,
        months=months,
        days_of_week=dows,
        days_of_month_any=_is_any(parts[2]),
        days_of_week_any=_is_any(parts[4]),
    )
    if cron.days_of_week_any and not cron.days_of_month_any:
        # Only the day of month restricts the days: some chosen month must have some chosen day.
        longest = max(_DAYS_IN_MONTH[m] for m in months)
        if min(doms) > longest:
            names = ",".join(calendar.month_abbr[m].upper() for m in sorted(months))
            raise WindowError(
                f"invalid cron expression {text!r}: day-of-month {min(doms)} never occurs in {names}, so the"
                " window would never open"
            )
    return cron


_DAYS_IN_MONTH = {m: (29 if m == 2 else calendar.monthrange(2001, m)[1]) for m in range(1, 13)}


def _is_any(part: str) -> bool:
    # Vixie cron: a day field that begins with "*" (``*``, ``*/2``) does not restrict the other one.
    return part.startswith("*")


def _field(part: str, name: str, low: int, high: int, names: dict[str, int], text: str) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        m = _ITEM.match(item)
        if m is None:
            raise WindowError(
                f"invalid cron expression {text!r}: {name} field {part!r}: {item!r} is not a value, range"
                " (a-b) or step (*/n, a-b/n)"
            )
        span, step_text = m.group(1), m.group(2)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, b = span.split("-")
            first, last = _value(a, name, low, high, names, text), _value(b, name, low, high, names, text)
            if first > last:
                raise WindowError(f"invalid cron expression {text!r}: {name} range {span!r} runs backwards")
        else:
            first = _value(span, name, low, high, names, text)
            last = high if step_text is not None else first
        step = 1
        if step_text is not None:
            step = int(step_text)
            if step == 0:
                raise WindowError(f"invalid cron expression {text!r}: {name} step must be at least 1")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(token: str, name: str, low: int, high: int, names: dict[str, int], text: str) -> int:
    if token.isdigit():
        value = int(token)
    elif token.upper() in names:
        value = names[token.upper()]
    else:
        accepted = f"{low}-{high}" + (f" or a name ({', '.join(names)})" if names else "")
        raise WindowError(f"invalid cron expression {text!r}: {name} {token!r} is not {accepted}")
    if not low <= value <= high:
        raise WindowError(f"invalid cron expression {text!r}: {name} {value} is outside {low}-{high}")
    return value


# --- time zones ---------------------------------------------------------------------------------------------


def load_zone(name: str) -> tzinfo:
    """The IANA time zone ``name``; raises :class:`WindowError` for an unknown zone or a missing database."""
    if name == "UTC":
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        pass
    if not zoneinfo.available_timezones():
        raise WindowError(
            f"unknown time zone {name!r}: no time-zone database is installed (install the system's tzdata"
            " package or the Python package tzdata)"
        )
    raise WindowError(f"unknown time zone {name!r}: expected an IANA name such as Europe/Paris or UTC")


def _instant(local: datetime, zone: tzinfo) -> datetime:
    """The first instant whose wall-clock time in ``zone`` is ``local`` (naive), or for a time skipped by a
    jump of the clocks, the instant of the jump (the first one after the gap)."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == local:
        return first
    # In a gap: fold=0 maps it past the jump by the gap's length, fold=1 before the jump. Find the jump.
    before = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after_offset = first.astimezone(zone).utcoffset()
    lo, hi = min(before, first), max(before, first)
    while hi - lo > timedelta(seconds=1):
        mid = lo + timedelta(seconds=(hi - lo).total_seconds() // 2)
        if mid.astimezone(zone).utcoffset() == after_offset:
            hi = mid
        else:
            lo = mid
    return hi


# --- windows and blackouts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """Open from each instant :attr:`cron` fires in :attr:`zone` (see the module doc for DST) for
    :attr:`duration` of elapsed time; ``zone_name`` is the zone as the policy spells it."""

    cron: Cron
    duration: timedelta
    zone: tzinfo
    zone_name: str

    def starts(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """The instants the window opens in ``(after, until]``, in order (UTC)."""
        # Wall-clock bounds with a day of slack either side: offsets and DST jumps are less than that.
        low = after.astimezone(self.zone).replace(tzinfo=None) - timedelta(days=1)
        high = until.astimezone(self.zone).replace(tzinfo=None) + timedelta(days=1)
        hours, minutes = sorted(self.cron.hours), sorted(self.cron.minutes)
        day = low.date()
        seen: datetime | None = None
        while day <= high.date():
            if self.cron.matches_day(day):
                for h in hours:
                    for m in minutes:
                        local = datetime.combine(day, time(h, m))
                        if not low <= local <= high:
                            continue
                        start = _instant(local, self.zone)
                        if after < start <= until and start != seen:
                            seen = start
                            yield start
            day += timedelta(days=1)

    def open_at(self, moment: datetime) -> datetime | None:
        """The start of the opening of this window that contains ``moment``, or None when it is closed."""
        found = None
        for start in self.starts(moment - self.duration, moment):
            found = start
        return found


@dataclass(frozen=True, slots=True)
class Blackout:
    """No move starts in ``[start, end)``; ``reason`` is shown to the user."""

    start: datetime
    end: datetime
    reason: str = ""

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def compile_window(schedule: str, duration: str, time_zone: str = "UTC") -> Window:
    """A :class:`Window`; raises :class:`WindowError` naming what is wrong (cron, duration or zone)."""
    cron = parse_cron(schedule)
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise WindowError(str(exc)) from None
    return Window(cron, timedelta(seconds=seconds), load_zone(time_zone), time_zone)


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def compile_blackout(start: str, end: str, time_zone: str = "UTC", reason: str = "") -> Blackout:
    """A :class:`Blackout` from days (``YYYY-MM-DD``, ``end`` included, midnight to midnight in
    ``time_zone``) or RFC 3339 instants (``end`` excluded); raises :class:`WindowError` when a bound cannot be
    read or ``end`` is not after ``start``."""
    zone = load_zone(time_zone)
    first = _bound(start, zone, "start", end_of_day=False)
    last = _bound(end, zone, "end", end_of_day=True)
    if last <= first:
        raise WindowError(f"blackout end {end!r} is not after its start {start!r}")
    return Blackout(first, last, reason)


def _bound(text: str, zone: tzinfo, which: str, *, end_of_day: bool) -> datetime:
    if isinstance(text, str) and _DAY.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise WindowError(f"blackout {which} {text!r} is not a real date") from None
        if end_of_day:
            day += timedelta(days=1)
        return _instant(datetime.combine(day, time()), zone)
    try:
        return parse_time(text)
    except ValueError:
        raise WindowError(
            f"blackout {which} {text!r}: expected a day (YYYY-MM-DD) or an RFC 3339 instant"
            " (2026-12-24T18:00:00+01:00)"
        ) from None


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a policy's moves may start: inside one of ``windows`` (any time when there are none) and in no
    blackout. The empty schedule allows every instant."""

    windows: tuple[Window, ...] = ()
    blackouts: tuple[Blackout, ...] = ()

    def blackout_at(self, moment: datetime) -> Blackout | None:
        """The blackout covering ``moment`` that ends last, or None."""
        covering = [b for b in self.blackouts if b.covers(moment)]
        return max(covering, key=lambda b: b.end) if covering else None

    def in_window(self, moment: datetime) -> bool:
        return not self.windows or any(w.open_at(moment) is not None for w in self.windows)

    def allows(self, moment: datetime) -> bool:
        """Whether a move may start at ``moment``."""
        return self.blackout_at(moment) is None and self.in_window(moment)

    def next_opening(self, moment: datetime, horizon: timedelta = DEFAULT_HORIZON) -> datetime | None:
        """The first instant at or after ``moment`` when a move may start, or None when there is none
        within ``horizon`` (every window falls in blackouts, or the cron fires only further ahead)."""
        limit = moment + horizon
        candidate = moment
        while candidate <= limit:
            blackout = self.blackout_at(candidate)
            if blackout is not None:
                candidate = blackout.end
                continue
            if self.in_window(candidate):
                return candidate
            following = [next(w.starts(candidate, limit), None) for w in self.windows]
            upcoming = [s for s in following if s is not None]
            if not upcoming:
                return None
            candidate = min(upcoming)
        return None


#: The schedule of a policy without windows or blackouts: every instant allows a move.
ALWAYS = Schedule()
