"""The live terminal view of the demo (``rich``): a header with every volume counted by tier and by decision,
the story's volumes and the running migrations in a table, the hottest and coldest volumes and the latest
completed migrations beside each other, and the latest events.

Importing this module imports ``rich``, a development extra; :func:`couchestor.demo.make_view` falls back to
the headless view when it is missing.
"""

from __future__ import annotations

import time
from collections import deque
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from couchestor.demo.progress import Migration, VolumeRow, overview, table_rows
from couchestor.demo.story import DemoResult, Snapshot
from couchestor.demo.view import count_text, heat_text, summary_lines

#: Narrated lines kept under the table.
EVENT_LINES = 8
#: Volumes listed as the hottest and as the coldest, and completed migrations listed.
EXTREMES = 5
_TIER_STYLE = {"hot": "bold red", "cold": "bold blue"}


class LiveView:
    """Redraws the whole screen region on every :meth:`show`; use as a context manager around the run."""

    #: The table shows each migration's step; the events panel keeps starts and outcomes.
    narrate_steps = False

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._events: deque[str] = deque(maxlen=EVENT_LINES)
        self._started = time.monotonic()
        self._live = Live(console=self.console, refresh_per_second=8, auto_refresh=True)
        self._last: Snapshot | None = None

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._last is not None:
            self._live.update(self._render(self._last))
        self._live.__exit__(exc_type, exc, tb)

    def say(self, line: str) -> None:
        self._events.append(f"[{time.monotonic() - self._started:5.1f}s] {line}")
        if self._last is not None:
            self._live.update(self._render(self._last))

    def show(self, snapshot: Snapshot) -> None:
        self._last = snapshot
        self._live.update(self._render(snapshot))

    def finish(self, result: DemoResult) -> None:
        self.console.print()
        for line in summary_lines(result):
            self.console.print(line, markup=False, highlight=False)

    def _render(self, s: Snapshot) -> RenderableType:
        o = overview(s.rows, extremes=EXTREMES)
        header = Text.assemble(
            ("CoucheStor demo", "bold"),
            f" · {s.elapsed:3.0f}s · {s.act}",
            (f" · {s.setup}" if s.setup else "", "dim"),
            "\n",
            f"{len(s.rows)} volumes: ",
            count_text(o.tiers),
            " · decisions: ",
            count_text(o.decisions),
            f"\nmigrations: {s.running} running, {s.completed} done, {s.failed} failed · ",
            "no-data-loss invariant: ",
            (f"{s.violations} violations", "bold red" if s.violations else "green"),
        )
        shown = table_rows(s.rows, finished=False)
        parts: list[RenderableType] = [header, _table(shown)]
        if len(shown) < len(s.rows):
            extremes = Table.grid(padding=(0, 2))
            extremes.add_row(
                _listing("hottest", o.hottest), _listing("coldest", o.coldest), _completed(s.finished)
            )
            parts.append(extremes)
        parts.append(Panel(Text("\n".join(self._events)), title="events", title_align="left"))
        return Group(*parts)


def _listing(title: str, rows: list[VolumeRow]) -> Panel:
    lines = Table.grid(padding=(0, 1))
    for row in rows:
        lines.add_row(
            row.pv, Text(heat_text(row), justify="right"), Text(row.tier, style=_tier_style(row.tier))
        )
    return Panel(lines, title=f"{title} (IOPS)", title_align="left")


def _completed(finished: tuple[Migration, ...]) -> Panel:
    lines = Table.grid(padding=(0, 1))
    for m in finished[-EXTREMES:][::-1]:
        style = "green" if m.outcome == "success" else "red"
        lines.add_row(m.pv, Text(f"{m.from_tier} → {m.to_tier} {m.outcome}", style=style))
    return Panel(lines, title="latest completed migrations", title_align="left")


def _tier_style(tier: str) -> str:
    return _TIER_STYLE.get(tier, "yellow")


def _table(rows: list[VolumeRow]) -> Table:
    table = Table(expand=False, header_style="bold")
    table.add_column("volume")
    table.add_column("role", style="dim")
    table.add_column("heat (IOPS)", justify="right")
    table.add_column("tier")
    table.add_column("decision")
    table.add_column("migration", no_wrap=True, min_width=34)
    for row in rows:
        table.add_row(
            row.pv,
            row.role,
            heat_text(row),
            Text(row.tier, style=_tier_style(row.tier)),
            row.decision,
            _migration(row),
        )
    return table


def _migration(row: VolumeRow) -> RenderableType:
    m = row.migration
    if m is None:
        return ""
    if m.outcome is not None:
        style = "green" if m.outcome == "success" else "red"
        return Text(f"{m.from_tier} → {m.to_tier} {m.outcome}", style=style)
    if m.progress is None:
        return Text(f"{m.from_tier} → {m.to_tier}: {m.step}", overflow="ellipsis", no_wrap=True)
    grid = Table.grid()
    grid.add_row(
        Text(f"{m.from_tier} → {m.to_tier} "),
        ProgressBar(total=100, completed=m.progress, width=16),
        Text(f" {m.progress}%"),
    )
    return grid


__all__ = ["LiveView"]
