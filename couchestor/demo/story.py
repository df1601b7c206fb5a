"""The demo run: the embedded cluster, the operator on it, and the story told while it works.

:func:`run_demo` runs in one trio process::

    demo (root nursery)
    ├── embedded cluster: API server emulator, Mayastor simulator (CRD or 2.x REST), workload simulator,
    │   heat source (a real Prometheus scraping the workload, or the workload's query endpoint)
    ├── signal watcher (SIGINT/SIGTERM end the demo early, cleanly)
    └── operator nursery
        ├── the operator (the same Operator ``couchestor run`` builds, on its own API client)
        ├── feed follower (migration steps and outcomes) and the view refresher (plans, tiers)
        ├── the approver: the policy's approval is Manual; it plays the administrator, approving each
        │   TierMigration awaiting approval (``couchestor approve``) and saying so
        └── the story: apply the policy, wait until the cluster is tiered, change two loads, wait again,
            declare the NVMe tier full (``maxTierFillPercent``), wait until its coldest moved down

The story ends when its three acts are complete, or at its bound (``--duration`` when given, else
:data:`STORY_TIMEOUT`); with ``--duration`` the cluster keeps running until then so it can be explored. Every
part is then cancelled; the result says whether the story completed and what the invariant checker saw.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import trio

from couchestor import settings as settings_mod
from couchestor.approvals import answer
from couchestor.demo import scenario
from couchestor.demo.cluster import SCRAPE_STEP, ClusterStartError, EmbeddedCluster, start_cluster
from couchestor.demo.heat_source import QUERY_ENDPOINT, HeatChoice
from couchestor.demo.progress import Migration, Progress, VolumeRow
from couchestor.errors import UserError
from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.kube.errors import KubeError
from couchestor.operator import Operator
from couchestor.sim.populate import GI
from couchestor.tiering.plan import Action
from couchestor.tiering.policy import Tier
from k8s_schemas.annotations import PIN
from k8s_schemas.tier_migration import TierMigration

#: Longest the story may take when no ``--duration`` is given; it needs about a minute.
STORY_TIMEOUT = 180.0
#: How long the tiered cluster is left alone before the loads change: nothing moves back meanwhile.
STEADY_PAUSE = 3.0
#: Seconds after a full sampling window past the change of loads before the third act (score refreshes).
WINDOW_MARGIN = 3.0
#: How often the view is redrawn and the story's conditions checked.
REFRESH_INTERVAL = 0.25
#: Ended migrations a snapshot carries (the views list the latest ones).
FINISHED_SHOWN = 8
#: How often the approver looks for TierMigrations awaiting approval.
APPROVAL_POLL = 0.5


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a view draws, at one moment."""

    elapsed: float
    act: str
    rows: list[VolumeRow]
    running: int
    completed: int
    failed: int
    violations: int
    #: The latest ended migrations, most recent last.
    finished: tuple[Migration, ...] = ()
    #: Where heat comes from and what storage is simulated, in a few words.
    setup: str = ""


@dataclass
class DemoResult:
    url: str = ""
    kubeconfig: str = ""
    elapsed: float = 0.0
    #: Seconds from the start until the story completed (``elapsed`` includes any ``--duration`` beyond).
    story_seconds: float = 0.0
    #: Whether the kubeconfig outlives the demo (``--kubeconfig-out``), so the summary can name it.
    kubeconfig_kept: bool = False
    backend: str = "mayastor-crd"
    #: The line saying where heat scores came from.
    heat_source: str = ""
    story_complete: bool = False
    interrupted: bool = False
    moved_on_apply: int = 0
    moved_on_change: int = 0
    #: The PVs the third act moved down for tier pressure (none when the pools report no size).
    pressed: list[str] = field(default_factory=list)
    completed: int = 0
    failed: int = 0
    transitions: int = 0
    violations: list[str] = field(default_factory=list)
    tiers: dict[str, int] = field(default_factory=dict)
    #: The StoragePolicy's status as the operator wrote it (what ``kubectl get sp`` shows), once the story ends.
    policy_status: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.story_complete and not self.violations and not self.error


class View(Protocol):
    def say(self, line: str) -> None: ...

    def show(self, snapshot: Snapshot) -> None: ...


@dataclass(frozen=True, slots=True)
class DemoOptions:
    kubeconfig: Path
    kubeconfig_kept: bool = False
    duration: float | None = None
    volumes: tuple[scenario.DemoVolume, ...] = scenario.VOLUMES
    #: The simulated storage, as ``couchestor run --backend`` names it.
    backend: str = "mayastor-crd"
    #: Where heat scores come from (``--prometheus``); the query endpoint unless told otherwise.
    heat: HeatChoice = QUERY_ENDPOINT
    #: Tell every migration step and rebuild quarter (a log), or only starts and outcomes (the live view
    #: shows steps in its table).
    narrate_steps: bool = True


async def run_demo(options: DemoOptions, view: View) -> DemoResult:
    """Run the demo until the story completes (or its bound), an interrupt, or ``options.duration``."""
    result = DemoResult(
        kubeconfig=str(options.kubeconfig), kubeconfig_kept=options.kubeconfig_kept, backend=options.backend
    )
    started = trio.current_time()
    bound = options.duration if options.duration is not None else STORY_TIMEOUT
    cluster: EmbeddedCluster | None = None
    with _operator_logs_to(view):
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_end_on_signal, nursery.cancel_scope, result)
                with trio.move_on_after(bound) as bounded:
                    view.say(
                        f"starting the emulated cluster ({len(options.volumes)} volumes; API server, "
                        f"{_STORAGE.get(options.backend, options.backend)} simulator, workload, heat source)"
                    )
                    cluster = await start_cluster(
                        nursery,
                        options.kubeconfig,
                        options.volumes,
                        backend=options.backend,
                        heat=options.heat,
                    )
                    result.url = cluster.url
                    result.heat_source = cluster.heat.description
                    _introduce(view, cluster)
                    await _run_operator(cluster, options, view, result, started)
                if bounded.cancelled_caught and not result.story_complete:
                    result.error = f"the story did not complete within {bound:g}s"
                nursery.cancel_scope.cancel()
        except* ClusterStartError as failed:
            result.error = "; ".join(str(e) for e in failed.exceptions)
        finally:
            if cluster is not None:
                await cluster.client.aclose()
    result.elapsed = trio.current_time() - started
    if cluster is not None:
        result.transitions = len(cluster.checker.transitions)
        result.violations = [str(v) for v in cluster.checker.violations]
        for v in options.volumes:
            tier = cluster.tier_of(v)
            result.tiers[tier] = result.tiers.get(tier, 0) + 1
    if result.interrupted and not result.story_complete:
        result.error = "interrupted before the story completed"
    return result


async def _run_operator(
    cluster: EmbeddedCluster, options: DemoOptions, view: View, result: DemoResult, started: float
) -> None:
    """Run the operator and the story; returns when the story is over and ``duration`` (if any) has passed."""
    progress = Progress(
        scenario.POLICY_NAME,
        narrate_steps=options.narrate_steps,
        pins={v.pv: v.pin for v in cluster.volumes if v.pin is not None},
    )
    # The operator is a separate client of the emulator, throttled like ``couchestor run``.
    async with KubeClient(load_kubeconfig([cluster.kubeconfig])) as client, trio.open_nursery() as nursery:
        operator = Operator(operator_settings(cluster), client)
        feed = operator.feed.subscribe()
        await nursery.start(operator.run)
        view.say(f"operator started (--backend {cluster.backend}); {cluster.heat.description}")
        act = _Act("waiting for a policy")
        version = cluster.heat.prometheus_version
        setup = (
            f"heat from {f'Prometheus {version}' if version else 'the query endpoint'} · "
            f"--backend {cluster.backend}"
        )

        def snapshot() -> Snapshot:
            return Snapshot(
                trio.current_time() - started,
                act.name,
                progress.rows(cluster.volumes, cluster.tier_of),
                len(progress.migrations),
                progress.completed,
                progress.failed,
                len(cluster.checker.violations),
                tuple(progress.finished[-FINISHED_SHOWN:]),
                setup,
            )

        redrawn = _Pulse()
        nursery.start_soon(_follow_feed, operator, feed, progress, view)
        nursery.start_soon(_refresh, operator, progress, view, snapshot, redrawn)
        nursery.start_soon(
            _approve_moves, cluster.client, view, {v.pv for v in cluster.volumes if v.featured}
        )
        try:
            await _tell_story(cluster, operator, progress, view, result, act, redrawn)
            result.story_seconds = trio.current_time() - started
            result.policy_status = await _policy_status(cluster.client)
            view.show(snapshot())
            if options.duration is not None:
                left = options.duration - (trio.current_time() - started)
                if left > 0:
                    act.name = "complete; exploring until --duration ends"
                    more = "until interrupted" if left == float("inf") else f"for {left:.0f}s more"
                    view.say(f"story complete; the cluster keeps running {more} (--duration)")
                    await trio.sleep(left)
        finally:
            # Also when interrupted or out of time: the summary counts what did happen.
            result.completed, result.failed = progress.completed, progress.failed
        nursery.cancel_scope.cancel()


async def _tell_story(
    cluster: EmbeddedCluster,
    operator: Operator,
    progress: Progress,
    view: View,
    result: DemoResult,
    act: _Act,
    redrawn: _Pulse,
) -> None:
    volumes = cluster.volumes
    first, second = scenario.moves(volumes, changed=False), scenario.moves(volumes, changed=True)
    act.name = "policy applied: tiering"
    view.say(
        f"applying StoragePolicy {scenario.POLICY_NAME}: above {scenario.HIGH_IOPS} IOPS to NVMe, below "
        f"{scenario.LOW_IOPS} IOPS to SATA, averaged over {scenario.SAMPLING_WINDOW_SECONDS}s; expecting "
        f"{_count(first, 'move')}: {_names(first)}"
    )
    for v in volumes:
        if v.pin is not None:
            view.say(f"{v.pv} ({v.role}): its claim {v.namespace}/{v.name} is pinned to {v.pin} ({PIN})")
    # The simulator's checker also flags more volumes migrating at once than the policy allows.
    cluster.checker.max_in_flight = scenario.MAX_CONCURRENT_MIGRATIONS
    await cluster.client.create(resources.STORAGE_POLICY, scenario.policy_body(), type=dict)
    await _until_tiered(cluster, operator, progress, redrawn, changed=False, moves=len(first))
    result.moved_on_apply = progress.completed
    act.name = "tiered; holding steady"
    view.say(
        f"cluster tiered: {progress.completed} migrations completed; watching {STEADY_PAUSE:g}s: "
        "nothing moves back"
    )
    await trio.sleep(STEADY_PAUSE)
    act.name = "loads changed: re-tiering"
    changing = [(v, later) for v in volumes if (later := v.later_iops) is not None]
    for v, later in changing:
        if v.featured:
            view.say(f"{v.pv} ({v.role}): load {v.iops:g} -> {later:g} IOPS")
    background = [(v, later) for v, later in changing if not v.featured]
    if background:
        hotter = sum(1 for v, later in background if later > v.iops)
        view.say(
            f"{_plural(len(background), 'background volume')} change load too: {hotter} heat up, "
            f"{len(background) - hotter} cool down; expecting {_count(second, 'move')}: {_names(second)}"
        )
    for v, later in changing:
        cluster.set_load(v, later)
    changed_at = trio.current_time()
    await _until_tiered(cluster, operator, progress, redrawn, changed=True, moves=len(first) + len(second))
    result.moved_on_change = progress.completed - result.moved_on_apply
    view.say(f"re-tiered: {_names(second)} moved after their load changed")
    # The third act picks the coldest volumes: wait until every window has seen only the new loads.
    await trio.sleep_until(changed_at + scenario.SAMPLING_WINDOW_SECONDS + WINDOW_MARGIN)
    await _fill_up(cluster, operator, progress, view, result, act, redrawn, {v.pv for v in first + second})
    result.story_complete = True
    act.name = "story complete"
    view.say("story complete")


async def _fill_up(
    cluster: EmbeddedCluster,
    operator: Operator,
    progress: Progress,
    view: View,
    result: DemoResult,
    act: _Act,
    redrawn: _Pulse,
    moved: set[str],
) -> None:
    """The third act: the NVMe tier is declared full (``maxTierFillPercent``) just under its fill, so that its
    coldest volumes between the watermarks (none moved yet: a moved one is in its cooldown) move to SATA
    until it is back under. Skipped when the pools report no size."""
    plan = operator.reconciler.last_plan if operator.reconciler is not None else None
    own = plan.policy(scenario.POLICY_NAME) if plan is not None else None
    fill = None if own is None else own.tier_fill.get(Tier.HOT)
    if own is None or fill is None:
        return
    capacity = sum(p.capacity for p in scenario.cluster_spec(cluster.volumes).pools if p.tier == "hot")
    size = {v.pv: v.size_gib * GI for v in cluster.volumes}
    coldest = sorted(
        (d.score, d.volume)
        for d in own.decisions
        if d.action is Action.STAY
        and d.current_tier is Tier.HOT
        and d.score is not None
        and d.score <= scenario.HIGH_IOPS  # (one above it would want to come back: not a story's end)
        and d.volume not in moved
    )
    # The lowest whole mark the tier is over now and under once its coldest few moved.
    used, mark = fill * capacity / 100, None
    for _, pv in coldest:
        used -= size[pv]
        if 1 <= math.ceil(100 * used / capacity) < fill:
            mark = math.ceil(100 * used / capacity)
            break
    if mark is None:
        return
    act.name = "NVMe full: tier pressure"
    view.say(
        f"NVMe pools {fill:.1f}% full; maxTierFillPercent {mark} set on the policy: the coldest NVMe volumes"
        " move to SATA, even between the watermarks, until the tier is back under it"
    )
    on_hot = {v.pv for v in cluster.volumes if cluster.tier_of(v) == "hot"}
    done = progress.completed
    await cluster.client.merge_patch(
        resources.STORAGE_POLICY, scenario.POLICY_NAME, {"spec": {"maxTierFillPercent": mark}}, type=dict
    )

    def relieved() -> bool:
        runner = operator.runner
        latest = operator.reconciler.last_plan if operator.reconciler is not None else None
        policy = latest.policy(scenario.POLICY_NAME) if latest is not None else None
        now = None if policy is None else policy.tier_fill.get(Tier.HOT)
        return (
            runner is not None
            and not runner.in_flight
            and progress.completed > done
            and progress.steady
            and now is not None
            and now <= mark
            and all(cluster.at_rest(v) for v in cluster.volumes)
        )

    while not relieved():
        await redrawn.wait()
    pressed = [v for v in cluster.volumes if v.pv in on_hot and cluster.tier_of(v) == "cold"]
    result.pressed = [v.pv for v in pressed]
    view.say(f"NVMe back under {mark}%, the coldest first; moved to SATA: {', '.join(result.pressed)}")


async def _approve_moves(client: KubeClient, view: View, featured: set[str]) -> None:
    """Play the administrator of the demo's ``approval: Manual`` policy: approve every TierMigration awaiting
    approval, as ``couchestor approve NAME`` does, naming each featured volume's (background ones counted)."""
    answered: set[str] = set()
    while True:
        await trio.sleep(APPROVAL_POLL)
        try:
            listed = await client.list_all(resources.TIER_MIGRATION, type=TierMigration)
        except KubeError:
            continue
        waiting = sorted(
            (tm for tm in listed.items if tm.status and tm.status.phase == "AwaitingApproval"),
            key=lambda tm: str(tm.metadata.name),
        )
        background = 0
        for tm in waiting:
            name = str(tm.metadata.name)
            if name in answered:
                continue
            try:
                await answer(client, name, approved=True)
            except UserError:
                continue  # cancelled or started meanwhile
            answered.add(name)
            if tm.spec.volume in featured:
                preview = tm.status.preview if tm.status else None
                pool = f" on {preview.target_pool}" if preview and preview.target_pool else ""
                view.say(f"approved TierMigration {name}: {tm.spec.volume} to {tm.spec.target_tier}{pool}")
            else:
                background += 1
        if background:
            view.say(f"approved {_plural(background, 'background move')} (couchestor approve)")


async def _until_tiered(
    cluster: EmbeddedCluster,
    operator: Operator,
    progress: Progress,
    redrawn: _Pulse,
    *,
    changed: bool,
    moves: int,
) -> None:
    """Wait until every volume rests on the tier the story expects, ``moves`` migrations succeeded, and the
    operator's latest plan leaves every volume where it is."""

    def tiered() -> bool:
        runner = operator.runner
        return (
            runner is not None
            and not runner.in_flight
            and progress.completed >= moves
            and progress.steady
            and all(
                cluster.at_rest(v) and cluster.tier_of(v) == scenario.expected_tier(v, changed=changed)
                for v in cluster.volumes
            )
        )

    while not tiered():
        await redrawn.wait()


async def _follow_feed(
    operator: Operator, feed: trio.MemoryReceiveChannel[str], progress: Progress, view: View
) -> None:
    """Narrate the operator's feed; resubscribes if the feed dropped this (slow) subscriber."""
    while True:
        async for text in feed:
            # The freshest scores, so a migration is told with the heat that triggered it (or newer).
            if operator.scores is not None:
                progress.on_scores(operator.scores.snapshots.get(scenario.SAMPLING_WINDOW_SECONDS))
            for line in progress.on_feed(text):
                view.say(line)
        feed = operator.feed.subscribe()


async def _policy_status(client: KubeClient) -> dict[str, Any]:
    """The demo policy's status from the API; empty if it cannot be read (the summary then omits it)."""
    try:
        with trio.fail_after(10):
            policy = await client.get(resources.STORAGE_POLICY, scenario.POLICY_NAME, type=dict)
    except (KubeError, trio.TooSlowError):
        return {}
    status = policy.get("status")
    return status if isinstance(status, dict) else {}


@dataclass
class _Act:
    """The part of the story being told, as the view's header shows it."""

    name: str


class _Pulse:
    """Wakes every waiter each time :meth:`pulse` is called (a condition variable without the lock)."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def pulse(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()


async def _refresh(
    operator: Operator,
    progress: Progress,
    view: View,
    snapshot: Callable[[], Snapshot],
    redrawn: _Pulse,
) -> None:
    """Every :data:`REFRESH_INTERVAL`: take the operator's scores and plan, redraw, wake the story."""
    while True:
        if operator.scores is not None:
            progress.on_scores(operator.scores.snapshots.get(scenario.SAMPLING_WINDOW_SECONDS))
        plan = operator.reconciler.last_plan if operator.reconciler is not None else None
        for line in progress.on_plan(plan):
            view.say(line)
        view.show(snapshot())
        redrawn.pulse()
        await trio.sleep(REFRESH_INTERVAL)


async def _end_on_signal(scope: trio.CancelScope, result: DemoResult) -> None:
    """End the demo on SIGINT/SIGTERM (only possible from the main thread; elsewhere Ctrl-C is trio's)."""
    try:
        receiver = trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
    except RuntimeError:
        return
    with receiver as signals:
        async for _ in signals:
            result.interrupted = True
            scope.cancel()
            return


def operator_settings(cluster: EmbeddedCluster) -> settings_mod.Settings:
    """``couchestor run``'s settings for the demo: fast score refresh and resync, no leader election, the
    cluster's backend, and the metric preset that goes with it (Mayastor 2.x: its io-engine counters)."""
    environ = {
        "COUCHESTOR_PROMETHEUS_URL": cluster.heat.url,
        "COUCHESTOR_METRICS_ADDR": "127.0.0.1:0",
        "COUCHESTOR_SCORE_TTL": "1s",
        "COUCHESTOR_RESYNC": "2s",
        "COUCHESTOR_SCRAPE_INTERVAL": f"{SCRAPE_STEP:g}s",
        "COUCHESTOR_LEADER_ELECTION": "false",
        "COUCHESTOR_IDENTITY": "couchestor-demo",
        "COUCHESTOR_MAYASTOR_NAMESPACE": scenario.MAYASTOR_NAMESPACE,
        "COUCHESTOR_BACKEND": cluster.backend,
    }
    if cluster.backend == "mayastor-rest":
        environ["COUCHESTOR_MAYASTOR_REST_URL"] = cluster.rest_url
        environ["COUCHESTOR_MAYASTOR_REST_INTERVAL"] = "2s"  # as quick as the resync: the story is short
    return settings_mod.resolve(argparse.Namespace(), environ)


#: How the story names each backend's storage.
_STORAGE = {"mayastor-crd": "Mayastor (MayastorVolume resource)", "mayastor-rest": "Mayastor 2.x REST API"}


def _introduce(view: View, cluster: EmbeddedCluster) -> None:
    def on(tier: str) -> str:
        volumes = sum(1 for v in cluster.volumes if v.tier == tier)
        pools = sum(1 for p in scenario.cluster_spec(cluster.volumes).pools if p.tier == tier)
        return f"{volumes} volumes on {pools} {'NVMe' if tier == 'hot' else 'SATA'} pools"

    view.say(
        f"API server emulator on {cluster.url}: {on('hot')}, {on('cold')}; "
        f"{_STORAGE[cluster.backend]} simulator at {scenario.TIME_SCALE:g}x"
        + (f" on {cluster.rest_url}" if cluster.rest_url else "")
    )
    view.say(f"look around while it runs: kubectl --kubeconfig {cluster.kubeconfig} get sp,pv")


def _count(items: list[scenario.DemoVolume], word: str) -> str:
    return _plural(len(items), word)


def _plural(n: int, word: str) -> str:
    return f"{n} {word if n == 1 else word + 's'}"


def _names(volumes: list[scenario.DemoVolume]) -> str:
    """The featured volumes by name, the background ones counted."""
    named = [v.pv for v in volumes if v.featured]
    others = len(volumes) - len(named)
    return ", ".join(named + ([_plural(others, "background volume")] if others else []))


class _ViewHandler(logging.Handler):
    def __init__(self, view: View) -> None:
        super().__init__(logging.WARNING)
        self.view = view

    def emit(self, record: logging.LogRecord) -> None:
        self.view.say(f"{record.levelname.lower()}: {record.name}: {record.getMessage()}")


@contextmanager
def _operator_logs_to(view: View) -> Iterator[None]:
    """Route the operator's warnings and errors to the view for the duration of the demo."""
    logger = logging.getLogger("couchestor")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers[:] = [_ViewHandler(view)]
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:], level, logger.propagate = saved
        logger.setLevel(level)


__all__ = ["STORY_TIMEOUT", "DemoOptions", "DemoResult", "Snapshot", "View", "operator_settings", "run_demo"]
