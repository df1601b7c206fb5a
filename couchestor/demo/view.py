"""The plain-text side of the demo: the headless view (one line per event) and the closing summary.

Nothing here imports ``rich``; the live view is :mod:`couchestor.demo.live`.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from couchestor.demo.progress import VolumeRow, overview, table_rows
from couchestor.demo.story import DemoResult, Snapshot


class HeadlessView:
    """Prints each narrated line with the seconds since the demo started; draws no table while running."""

    narrate_steps = True

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._started = time.monotonic()
        self.last: Snapshot | None = None

    def __enter__(self) -> HeadlessView:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass

    def say(self, line: str) -> None:
        print(f"[{time.monotonic() - self._started:5.1f}s] {line}", file=self.out, flush=True)

    def show(self, snapshot: Snapshot) -> None:
        self.last = snapshot

    def finish(self, result: DemoResult) -> None:
        if self.last is not None:
            print(file=self.out)
            shown = table_rows(self.last.rows, finished=True)
            for line in table_lines(shown):
                print(line, file=self.out)
            for line in overview_lines(self.last.rows, shown=len(shown)):
                print(line, file=self.out)
        print(file=self.out)
        for line in summary_lines(result):
            print(line, file=self.out)
        self.out.flush()


def table_lines(rows: list[VolumeRow]) -> list[str]:
    """The volumes as a fixed-width text table: heat, tier, the last decision and the last migration."""
    out = [f"{'VOLUME':<24} {'HEAT (IOPS)':>11}  {'TIER':<9} {'DECISION':<16} MIGRATION"]
    for row in rows:
        out.append(
            f"{row.pv:<24} {heat_text(row):>11}  {row.tier:<9} {row.decision:<16} {migration_text(row)}"
        )
    return out


def overview_lines(rows: list[VolumeRow], *, shown: int) -> list[str]:
    """What the table leaves out when there are more volumes than rows: tiers, decisions, heat extremes."""
    if shown >= len(rows):
        return []
    o = overview(rows)
    return [
        f"(the story's volumes and every one that migrated; {len(rows) - shown} more not shown)",
        f"all {len(rows)} volumes: {count_text(o.tiers)}; decisions: {count_text(o.decisions)}",
        "hottest: " + ", ".join(f"{r.pv} {heat_text(r)}" for r in o.hottest),
        "coldest: " + ", ".join(f"{r.pv} {heat_text(r)}" for r in o.coldest),
    ]


def heat_text(row: VolumeRow) -> str:
    return f"{row.heat:,.0f}" if row.heat is not None else "-"


def count_text(counts: dict[str, int]) -> str:
    """``{"stay": 280, "migrating": 3}`` as ``280 stay, 3 migrating`` (largest first)."""
    return ", ".join(f"{n} {what}" for what, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def migration_text(row: VolumeRow) -> str:
    m = row.migration
    if m is None:
        return ""
    if m.outcome is not None:
        return f"{m.from_tier} -> {m.to_tier}: {m.outcome}"
    percent = f" {m.progress}%" if m.progress is not None else ""
    return f"{m.from_tier} -> {m.to_tier}: {m.step}{percent}"


def summary_lines(result: DemoResult) -> list[str]:
    """The closing summary: did the story complete, the migrations, the invariant, how to explore."""
    if result.story_complete:
        story = (
            f"complete in {result.story_seconds:.1f}s: {result.moved_on_apply} volumes tiered when the policy "
            f"was applied, {result.moved_on_change} moved after their load changed"
            + (f", {len(result.pressed)} moved off the full NVMe tier" if result.pressed else "")
        )
    else:
        story = f"NOT complete ({result.error or 'stopped early'}) after {result.elapsed:.1f}s"
    tiers = ", ".join(f"{n} {tier}" for tier, n in sorted(result.tiers.items())) or "none"
    lines = [
        "Summary",
        f"  story:       {story}",
        f"  migrations:  {result.completed} completed, {result.failed} failed",
        f"  no-data-loss invariant: {len(result.violations)} violations "
        f"({result.transitions} replica transitions checked)",
        f"  volumes now: {tiers}",
    ]
    if result.heat_source:
        lines.append(f"  {result.heat_source}; storage: --backend {result.backend}")
    status = result.policy_status
    if status:
        lines.append(
            f"  StoragePolicy status (kubectl get sp): {status.get('phase', '?')}, "
            f"{status.get('watchedVolumes', 0)} watched, {status.get('hotVolumes', 0)} hot, "
            f"{status.get('coldVolumes', 0)} cold, {status.get('totalMigrations', 0)} migrations recorded, "
            f"{status.get('failedMigrations', 0)} failed"
        )
    lines += [f"    violation: {v}" for v in result.violations[:20]]
    if result.error and result.story_complete:
        lines.append(f"  error:       {result.error}")
    kubeconfig = result.kubeconfig if result.kubeconfig_kept else "demo.kubeconfig"
    backend = " --backend mayastor-rest" if result.backend == "mayastor-rest" else ""
    lines += [
        f"Explore: `couchestor demo{backend} --duration 600 --kubeconfig-out {kubeconfig}` keeps the emulated "
        "cluster up",
        "for ten minutes; meanwhile, in another terminal:",
        f"  kubectl --kubeconfig {kubeconfig} get storagepolicies,pv -L storage.billyronks.io/tier",
        f"  kubectl --kubeconfig {kubeconfig} get events -n default",
        f"  kubectl --kubeconfig {kubeconfig} get "
        + ("diskpools" if result.backend == "mayastor-rest" else "mayastorvolumes,diskpools")
        + " -n mayastor",
    ]
    return lines


__all__ = [
    "HeadlessView",
    "count_text",
    "heat_text",
    "migration_text",
    "overview_lines",
    "summary_lines",
    "table_lines",
]
