"""Render graded results as a plain-text report: one table per StorageClass, then a summary line.

Plain text on purpose: it reads the same in a terminal, a CI log and a pod log, and needs no terminal library.
"""

from __future__ import annotations

from collections.abc import Sequence

from couchestor.volumes.grading import ClassReport, CriterionResult


def _number(value: float) -> str:
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _row(result: CriterionResult) -> tuple[str, str, str, str, str]:
    measured = "-" if result.measured is None else f"{_number(result.measured)} {result.unit}"
    required = f"{result.comparator} {_number(result.required)} {result.unit}"
    return (result.label, measured, required, str(result.verdict), result.note)


def render_class(report: ClassReport) -> str:
    """The table of one StorageClass."""
    header = ("criterion", "measured", "required", "result", "")
    rows = [header, *(_row(r) for r in report.criteria)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"StorageClass {report.storage_class}: {'PASS' if report.passed else 'FAIL'}"]
    for row in rows:
        cells = [
            row[0].ljust(widths[0]),
            row[1].rjust(widths[1]),
            row[2].rjust(widths[2]),
            row[3].ljust(widths[3]),
        ]
        line = "  " + "  ".join(cells)
        if row[4]:
            line += f"  ({row[4]})"
        lines.append(line.rstrip())
    lines.extend(f"  problem: {problem}" for problem in report.problems)
    lines.extend(f"  note: {note}" for note in report.notes)
    return "\n".join(lines)


def render_report(reports: Sequence[ClassReport], *, thresholds_source: str) -> str:
    """Every class's table and a summary line naming the thresholds used."""
    passed = sum(1 for r in reports if r.passed)
    parts = [render_class(r) for r in reports]
    parts.append(f"{passed} of {len(reports)} StorageClasses passed (criteria: {thresholds_source})")
    return "\n\n".join(parts) + "\n"
