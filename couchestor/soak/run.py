"""The soak run itself: a real control plane, two operator processes, simulated Mayastor and load, a real
Prometheus, the seeded faults, and the observations the report is built from.

::

    run_soak (sync: starts and stops the real control plane around trio.run)
    └── _Soak.main (one trio nursery)
        ├── Mayastor simulator (CRD or 2.x REST) + invariant checker     ── client of the real API server
        ├── workload simulator on /metrics ◀── Prometheus (restartable, fixed port, same TSDB)
        ├── operator replica a, operator replica b (``python -m couchestor run``, leader election, JSON logs)
        │   └── per replica: /metrics poller (counters), RSS sampler
        └── the schedule: warm-up, faults one after another (each followed by its recovery probe), quiet period

Everything is started by this module and stopped by it (operators and Prometheus with SIGTERM, then SIGKILL);
components of the control plane restart in place (same ports, same etcd data).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import trio

from couchestor.kube import KubeClient, load_kubeconfig, resources
from couchestor.kube.errors import KubeError
from couchestor.mayastor_rest.backend import CORDON_RECORD, CordonRecord
from couchestor.migration import intent as intent_mod
from couchestor.sim.controlplane import Assets, ControlPlane
from couchestor.sim.mayastor.controller import MayastorSimulator
from couchestor.sim.mayastor.invariant import InvariantChecker
from couchestor.sim.mayastor_rest import RestSimulator
from couchestor.sim.mayastor_rest.cluster import start_rest_cluster
from couchestor.sim.populate import GI, ClusterSpec, PoolSpec, VolumeSpec, populate
from couchestor.sim.prometheus import open_prometheus, stop_process
from couchestor.sim.workload import ExportOptions, Workload, serve_workload
from couchestor.soak import observe
from couchestor.soak.report import RSS_SLOPE_BOUND, RSS_WARMUP, FaultRecord, Report, RssSegment
from couchestor.soak.schedule import QUIET, Fault, FaultKind, Load, make_loads, make_schedule
from k8s_schemas.annotations import MIGRATION_INTENT

log = logging.getLogger("couchestor.soak")

NS = "mayastor"
POLICY = "tiering"
PROBE_POLICY = "soak-probe"
LEASE = "couchestor-leader"
VOLUME_SIZE = 10 * GI
#: Wall seconds a normal rebuild of one volume takes, and a slow one (longer than the migration timeout).
REBUILD_SECONDS = 8.0
SLOW_REBUILD_SECONDS = 150.0
#: The tiering policy, in wall time (the operator's clock): at 720x a 15 s window is 3 simulated hours.
POLICY_SPEC: dict[str, Any] = {
    "storageClassName": "mayastor",
    "highWatermarkIOPS": 5000,
    "lowWatermarkIOPS": 500,
    "samplingWindow": "15s",
    "cooldownPeriod": "30s",
    "migrationTimeout": "60s",
    "maxConcurrentMigrations": 2,
}
#: How long a fault's recovery probe may wait for the operator's store to catch up.
PROBE_TIMEOUT = 180.0
#: How long a replica fault waits for a rebuild in progress to fault.
REPLICA_FAULT_WAIT = 60.0
_POLL = 1.0
_RSS_EVERY = 2.0


@dataclass(frozen=True)
class SoakOptions:
    """One run; ``duration`` is the whole run (warm-up, faults, quiet period), in wall seconds."""

    directory: Path
    assets: Assets
    seed: int = 1
    backend: str = "mayastor-crd"
    duration: float = 1800.0
    warmup: float = 90.0
    quiet: float = 150.0
    faults: int = 21
    kinds: tuple[FaultKind, ...] = tuple(FaultKind)
    volumes: int = 24
    scale: float = 720.0
    rss_bound: float = RSS_SLOPE_BOUND
    rss_warmup: float = RSS_WARMUP
    #: False: a run in which no operator led long enough to judge its RSS is not a failure (short runs).
    rss_required: bool = True
    prometheus: str = "prometheus"

    @property
    def fault_window(self) -> tuple[float, float]:
        return self.warmup, self.duration - self.quiet


def run_soak(options: SoakOptions) -> Report:
    """Run the soak; the control plane lives in ``options.directory / "control-plane"`` for its length."""
    options.directory.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane(options.assets, options.directory / "control-plane", controllers=True)
    with plane:
        return trio.run(_Soak(options, plane).main)


class _Checker(InvariantChecker):
    """The invariant checker, also counting transitions (not keeping them) and migrations begun (an intent
    appearing on a volume that had none)."""

    def __init__(self) -> None:
        super().__init__(keep_transitions=False)
        self.count = 0
        self.started = 0
        self._had_intent: dict[str, bool] = {}

    def observe(
        self,
        volume: str,
        at: float,
        *,
        num_replicas: int,
        replicas: list[tuple[str, str, str, str]],
        has_intent: bool,
    ) -> None:
        self.count += 1
        if has_intent and not self._had_intent.get(volume, False):
            self.started += 1
        self._had_intent[volume] = has_intent
        super().observe(volume, at, num_replicas=num_replicas, replicas=replicas, has_intent=has_intent)


@dataclass
class _Life:
    identity: str
    number: int
    pid: int
    started: float  # run offset
    log_path: Path
    died: float | None = None
    rss: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class _Replica:
    identity: str
    port: int
    lives: list[_Life] = field(default_factory=list)
    process: trio.Process | None = None
    stopping: bool = False
    restart: trio.Event = field(default_factory=trio.Event)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Soak:
    def __init__(self, options: SoakOptions, plane: ControlPlane) -> None:
        self.o = options
        self.plane = plane
        self.report = Report(options.seed, options.backend, options.scale, options.volumes)
        self.checker = _Checker()
        self.counters = observe.Counters()
        self.replicas = [_Replica("soak-a", _free_port()), _Replica("soak-b", _free_port())]
        self.prometheus_port = _free_port()
        self.prometheus_url = f"http://127.0.0.1:{self.prometheus_port}"
        self._prometheus_scope: trio.CancelScope | None = None
        self._prometheus_down = trio.Event()
        self.t0 = 0.0
        self.wall0 = 0.0
        self.writes_at_warmup: dict[str, float] = {}
        self.simulator: Any = None
        self.workload: Workload | None = None
        self.rest_url = ""
        self._probe_n = 0
        self.nursery: trio.Nursery | None = None
        self._workload_url = ""

    # --- clock ----------------------------------------------------------------------------------------------

    def now(self) -> float:
        """Seconds since the run started (trio's clock)."""
        return trio.current_time() - self.t0

    def wall(self, offset: float) -> float:
        return self.wall0 + offset

    # --- the run --------------------------------------------------------------------------------------------

    async def main(self) -> Report:
        self.t0, self.wall0 = trio.current_time(), time.time()
        client = KubeClient(load_kubeconfig([self.plane.kubeconfig]), qps=0)
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                await self._start_cluster(nursery, client)
                for replica in self.replicas:
                    nursery.start_soon(self._keep_running, replica)
                await self._schedule(client)
                await self._finish(client)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await client.aclose()
        self._analyse()
        return self.report

    async def _start_cluster(self, nursery: trio.Nursery, client: KubeClient) -> None:
        o = self.o
        workload = self.workload = Workload(seed=o.seed, scale=o.scale)
        start, end = o.fault_window
        month_end_at = workload.sim_time(workload.origin + start + 0.4 * (end - start))
        loads = make_loads(o.seed, o.volumes, origin=workload.origin, month_end_at=month_end_at)
        spec = _cluster_spec(loads)
        bandwidth = VOLUME_SIZE / (o.scale * REBUILD_SECONDS)
        if o.backend == "mayastor-rest":
            self.simulator = await start_rest_cluster(nursery, client, spec, time_scale=o.scale, tick=0.1)
            self.simulator.checker = self.checker
            self.rest_url = self.simulator.url
        else:
            await populate(client, spec)
            self.simulator = MayastorSimulator(
                client,
                namespace=NS,
                time_scale=o.scale,
                tick=0.1,
                default_bandwidth=bandwidth,
                checker=self.checker,
            )
            await nursery.start(self.simulator.run)
        self._set_bandwidth(bandwidth)
        for load in loads:
            workload.add_volume(f"pvc-{load.name}", load.pattern)
        exported = (
            ExportOptions(gauges=False, counters=True)
            if o.backend == "mayastor-rest"
            else ExportOptions(split_gauges=False)
        )
        url: str = await nursery.start(
            lambda task_status: serve_workload(workload, options=exported, step=1.0, task_status=task_status)
        )
        self._workload_url = url
        await nursery.start(self._serve_prometheus)
        for name, low in ((POLICY, POLICY_SPEC["lowWatermarkIOPS"]), (PROBE_POLICY, 100)):
            spec_ = dict(POLICY_SPEC, lowWatermarkIOPS=low)
            if name == PROBE_POLICY:  # selects no volume: its status answers edits, nothing else
                spec_["volumeSelector"] = {"matchLabels": {"soak-probe": "none"}}
            await client.create(
                resources.STORAGE_POLICY,
                {
                    "apiVersion": "storage.billyronks.io/v1",
                    "kind": "StoragePolicy",
                    "metadata": {"name": name},
                    "spec": spec_,
                },
                type=dict,
            )

    def _model(self) -> Any:
        if isinstance(self.simulator, RestSimulator):
            return self.simulator.plane.cluster
        return self.simulator.cluster

    def _set_bandwidth(self, bytes_per_second: float) -> None:
        for pool in self._model().pools.values():
            pool.rebuild_bandwidth = bytes_per_second

    # --- Prometheus -----------------------------------------------------------------------------------------

    async def _serve_prometheus(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        down = self._prometheus_down = trio.Event()
        try:
            with trio.CancelScope() as scope:
                self._prometheus_scope = scope
                async with open_prometheus(
                    [f"{self._workload_url}/metrics"],
                    binary=self.o.prometheus,
                    home=self.o.directory / "prometheus",
                    scrape_interval=1.0,
                    port=self.prometheus_port,
                ):
                    task_status.started()
                    await trio.sleep_forever()
        finally:
            down.set()

    async def _stop_prometheus(self) -> None:
        assert self._prometheus_scope is not None
        self._prometheus_scope.cancel()
        await self._prometheus_down.wait()

    # --- operators ------------------------------------------------------------------------------------------

    def _operator_env(self, replica: _Replica) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "COUCHESTOR_KUBECONFIG": str(self.plane.kubeconfig),
                "COUCHESTOR_PROMETHEUS_URL": self.prometheus_url,
                "COUCHESTOR_METRICS_ADDR": f"127.0.0.1:{replica.port}",
                "COUCHESTOR_LEADER_ELECTION": "true",
                "COUCHESTOR_IDENTITY": replica.identity,
                "COUCHESTOR_LOG_FORMAT": "json",
                "COUCHESTOR_SCORE_TTL": "5s",
                "COUCHESTOR_RESYNC": "10s",
                "COUCHESTOR_SCRAPE_INTERVAL": "1s",
                "COUCHESTOR_BACKEND": self.o.backend,
            }
        )
        if self.rest_url:
            env["COUCHESTOR_MAYASTOR_REST_URL"] = self.rest_url
            env["COUCHESTOR_MAYASTOR_REST_INTERVAL"] = "2s"
        return env

    async def _keep_running(self, replica: _Replica) -> None:
        """Run ``replica``'s operator process for as long as the soak runs, starting it again after each exit
        (a SIGKILL of the schedule's, after its hold time; any other exit is an error of the report's)."""
        while True:
            number = len(replica.lives) + 1
            path = self.o.directory / f"operator-{replica.identity}-{number}.log"
            with path.open("wb") as out:
                process = await trio.lowlevel.open_process(
                    [sys.executable, "-m", "couchestor", "run"],
                    env=self._operator_env(replica),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            replica.process = process
            life = _Life(replica.identity, number, process.pid, self.now(), path)
            replica.lives.append(life)
            self.report.operator_starts += 1
            try:
                async with trio.open_nursery() as watchers:
                    watchers.start_soon(self._poll_metrics, replica, life)
                    watchers.start_soon(self._sample_rss, life)
                    await process.wait()
                    watchers.cancel_scope.cancel()
            finally:
                if process.poll() is None:
                    with trio.CancelScope(shield=True):
                        await stop_process(process)
                life.died = self.now()
            if not replica.stopping:
                self.report.errors.append(
                    f"operator {replica.identity} exited by itself with status {process.returncode} at"
                    f" {life.died:.0f}s (log {path.name})"
                )
                await trio.sleep(1.0)
                continue
            replica.stopping = False
            await replica.restart.wait()
            replica.restart = trio.Event()

    async def _poll_metrics(self, replica: _Replica, life: _Life) -> None:
        key = f"{life.identity}.{life.number}"
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                try:
                    answer = await http.get(f"http://127.0.0.1:{replica.port}/metrics")
                    if answer.status_code == 200:
                        self.counters.update(key, observe.parse_counters(answer.text))
                except httpx.HTTPError:
                    pass
                await trio.sleep(_POLL)

    async def _sample_rss(self, life: _Life) -> None:
        while True:
            rss = observe.rss_bytes(life.pid)
            if rss is not None:
                life.rss.append((self.now(), rss / 2**20))
            await trio.sleep(_RSS_EVERY)

    async def _kill(self, replica: _Replica, hold: float) -> None:
        """SIGKILL ``replica``'s operator and return; it starts again ``hold`` seconds later (in the background,
        so recovery is timed from the kill: the standby's takeover)."""
        process = replica.process
        assert process is not None
        assert self.nursery is not None
        replica.stopping = True
        process.send_signal(signal.SIGKILL)
        await process.wait()

        async def restart_later() -> None:
            await trio.sleep(hold)
            replica.restart.set()

        self.nursery.start_soon(restart_later)

    # --- schedule -------------------------------------------------------------------------------------------

    async def _schedule(self, client: KubeClient) -> None:
        o = self.o
        start, end = o.fault_window
        faults = make_schedule(o.seed, start=start, end=end, count=o.faults, kinds=o.kinds)
        await trio.sleep_until(self.t0 + o.warmup)
        self.writes_at_warmup = self.counters.by_label("storage_operator_api_writes", "kind")
        self.report.warmup_seconds = self.now()
        for fault in faults:
            await trio.sleep_until(self.t0 + fault.at)
            record = FaultRecord(str(fault.kind), round(self.now(), 1), fault.hold, 0.0)
            self.report.faults.append(record)
            log.info("fault %s at %.0fs (hold %.0fs)", fault.kind, record.at, fault.hold)
            record.detail = await self._inject(client, fault)
            record.ended = round(self.now(), 1)
            record.store_synced_after = await self._probe(client)

    async def _inject(self, client: KubeClient, fault: Fault) -> str:
        kind, hold = fault.kind, fault.hold
        if kind is FaultKind.APISERVER_RESTART:
            await self.plane.stop_component_async("kube-apiserver")
            await trio.sleep(hold)
            await self.plane.start_component_async("kube-apiserver")
            return ""
        if kind is FaultKind.ETCD_RESTART:
            await self.plane.stop_component_async("etcd", kill=True)
            await trio.sleep(hold)
            await self.plane.start_component_async("etcd")
            return ""
        if kind is FaultKind.COMPACTION:
            # The API server's watch caches resume their etcd watches after the restart, find them compacted
            # and relist: every client watch is ended, and each resumes from a revision now too old (410).
            revision = await self._compact()
            await self.plane.stop_component_async("etcd", kill=True)
            await self.plane.start_component_async("etcd")
            return f"compacted at revision {revision}, etcd restarted"
        if kind is FaultKind.PROMETHEUS_GAP:
            await self._stop_prometheus()
            await trio.sleep(hold)
            assert self.nursery is not None
            await self.nursery.start(self._serve_prometheus)
            return ""
        if kind is FaultKind.OPERATOR_KILL:
            holder = await self._lease_holder(client)
            replica = next((r for r in self.replicas if r.identity == holder), None)
            if replica is None or replica.process is None:
                return f"no leader to kill (Lease holder {holder!r})"
            await self._kill(replica, hold)
            return f"killed leader {holder}"
        if kind is FaultKind.REPLICA_FAULT:
            return await self._fault_replica()
        if kind is FaultKind.SLOW_REBUILD:
            self._set_bandwidth(VOLUME_SIZE / (self.o.scale * SLOW_REBUILD_SECONDS))
            await trio.sleep(hold)
            self._set_bandwidth(VOLUME_SIZE / (self.o.scale * REBUILD_SECONDS))
            return ""
        raise AssertionError(kind)

    async def _compact(self) -> int:
        """Compact etcd to its current revision through its JSON gateway; returns the revision."""
        async with httpx.AsyncClient(base_url=self.plane.etcd_url, timeout=10.0) as etcd:
            answer = await etcd.post("/v3/kv/range", json={"key": "AA==", "limit": 1, "keys_only": True})
            answer.raise_for_status()
            revision = int(answer.json()["header"]["revision"])
            done = await etcd.post("/v3/kv/compaction", json={"revision": str(revision), "physical": True})
            done.raise_for_status()
        return revision

    async def _lease_holder(self, client: KubeClient) -> str:
        try:
            lease = await client.get(resources.LEASE, LEASE, "kube-system", type=dict, timeout=5)
        except (KubeError, trio.TooSlowError):
            return ""
        return str((lease.get("spec") or {}).get("holderIdentity") or "")

    async def _fault_replica(self) -> str:
        """Fault the new replica of a migration while it rebuilds (waits up to :data:`REPLICA_FAULT_WAIT`)."""
        with trio.move_on_after(REPLICA_FAULT_WAIT):
            while True:
                for volume in self._model().volumes.values():
                    rebuilding = [r for r in volume.replicas if r.sync_state == "Syncing"]
                    if rebuilding and volume.synced > 0:
                        self.simulator.fault_replica(volume.name, rebuilding[0].pool)
                        return f"faulted the rebuilding replica of {volume.name} on {rebuilding[0].pool}"
                await trio.sleep(0.1)
        return f"no rebuild in progress within {REPLICA_FAULT_WAIT:.0f}s: nothing faulted"

    async def _probe(self, client: KubeClient) -> float | None:
        """Edit the probe policy and wait for its status to show the new generation: the edit reached the
        leader's store through its watch and a reconcile answered it. Seconds taken, or None on timeout."""
        began = self.now()
        self._probe_n += 1
        with trio.move_on_after(PROBE_TIMEOUT):
            generation = None
            delay = 0.5
            while generation is None:
                try:
                    edited = await client.merge_patch(
                        resources.STORAGE_POLICY,
                        PROBE_POLICY,
                        {"spec": {"lowWatermarkIOPS": 100 + self._probe_n % 2}},
                        type=dict,
                        timeout=5,
                    )
                    generation = int(edited["metadata"]["generation"])
                except (KubeError, trio.TooSlowError):
                    await trio.sleep(delay * (1 + random.random() / 5))
                    delay = min(delay * 2, 5.0)
            while True:
                try:
                    policy = await client.get(resources.STORAGE_POLICY, PROBE_POLICY, type=dict, timeout=5)
                    if int((policy.get("status") or {}).get("observedGeneration") or 0) >= generation:
                        return round(self.now() - began, 2)
                except (KubeError, trio.TooSlowError):
                    pass
                await trio.sleep(0.25)
        return None

    # --- the end --------------------------------------------------------------------------------------------

    async def _finish(self, client: KubeClient) -> None:
        """The quiet period: loads between the watermarks and no faults until the end; then look for leftovers
        and stop the operators."""
        assert self.workload is not None
        quiet_from = max(self.now(), self.o.duration - self.o.quiet)
        await trio.sleep_until(self.t0 + quiet_from)
        for info in self.workload.volumes():
            self.workload.set_pattern(info.name, QUIET)
        end = max(self.o.duration, quiet_from + 30)
        # Steady state: the second half of the quiet period, once in-flight migrations have settled.
        settled = (quiet_from + end) / 2
        await trio.sleep_until(self.t0 + settled)
        writes_settled = self.counters.by_label("storage_operator_api_writes", "kind")
        await trio.sleep_until(self.t0 + end)
        quiet_hours = (self.now() - settled) / 3600
        self.report.api_writes_per_hour_quiet = {
            k: round((v - writes_settled.get(k, 0.0)) / quiet_hours, 1)
            for k, v in self.counters.by_label("storage_operator_api_writes", "kind").items()
        }
        self.report.quiet_seconds = round(self.now() - quiet_from, 1)
        await self._leftovers(client)
        self.report.wall_seconds = round(self.now(), 1)
        writes = self.counters.by_label("storage_operator_api_writes", "kind")
        hours = (self.now() - self.report.warmup_seconds) / 3600
        self.report.api_writes_per_hour = {
            k: round((v - self.writes_at_warmup.get(k, 0.0)) / hours, 1) for k, v in writes.items()
        }
        for replica in self.replicas:
            replica.stopping = True
            if replica.process is not None and replica.process.poll() is None:
                with trio.CancelScope(shield=True):
                    await stop_process(replica.process)

    async def _leftovers(self, client: KubeClient) -> None:
        now = datetime.now(UTC)
        objects: list[Any] = []
        pvs = await client.list_all(resources.PERSISTENT_VOLUME, type=dict)
        objects += pvs.items
        if self.o.backend != "mayastor-rest":
            volumes = await client.list_all(resources.MAYASTOR_VOLUME, NS, type=dict)
            objects += volumes.items
        for obj in objects:
            annotations = obj["metadata"].get("annotations") or {}
            name = obj["metadata"]["name"]
            text = annotations.get(MIGRATION_INTENT)
            if text:
                self.report.intents_at_end.append(name)
                try:
                    intent = intent_mod.decode(text)
                    started = datetime.fromisoformat(intent.started_at.replace("Z", "+00:00"))
                    if (now - started).total_seconds() > intent.timeout_seconds:
                        self.report.stale_intents_at_end.append(name)
                except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
                    self.report.stale_intents_at_end.append(f"{name} (unreadable intent)")
            record = annotations.get(CORDON_RECORD)
            if record:
                try:
                    if msgspec.json.decode(record, type=CordonRecord).holds_cordons:
                        self.report.cordons_at_end.append(f"{name} (cordon record)")
                except (msgspec.DecodeError, msgspec.ValidationError):
                    self.report.cordons_at_end.append(f"{name} (unreadable cordon record)")
        if isinstance(self.simulator, RestSimulator):
            plane = self.simulator.plane
            self.report.cordons_at_end += [f"pool {p}" for p in plane.pool_cordons]
            self.report.cordons_at_end += [
                f"node {n}: {sorted(c)}" for n, c in plane.node_cordons.items() if c
            ]

    def _analyse(self) -> None:
        r = self.report
        r.transitions = self.checker.count
        r.violations = [str(v) for v in self.checker.violations]
        r.migrations_started = self.checker.started
        r.migrations = self.counters.by_label("storage_operator_migrations", "status")
        r.events_not_recorded = self.counters.by_label("storage_operator_events_not_recorded", "reason")
        r.watch_restarts = self.counters.by_label("storage_operator_watch_restarts", "reason")
        intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)
        decided: list[float] = []
        for replica in self.replicas:
            for life in replica.lives:
                lines = list(observe.read_log(life.log_path))
                died = self.wall(life.died if life.died is not None else self.now())
                led = observe.leadership(lines, died)
                intervals[replica.identity] += led
                decided += observe.decisions(lines)
                # A standby holds little; a new leader lists everything and fills its caches: warm-up counts
                # from the first time this lifetime led.
                since = min((a for a, _ in led), default=None)
                leading_from = life.started if since is None else max(life.started, since - self.wall0)
                r.rss.append(_rss_segment(life, self.o.rss_warmup, leading_from))
        r.leadership_changes = sum(len(v) for v in intervals.values())
        a, b = (intervals[x.identity] for x in self.replicas)
        r.leader_overlap_seconds = round(max(0.0, observe.longest_overlap(a, b)), 3)
        decided.sort()
        for fault in r.faults:
            after = [t for t in decided if t >= self.wall(fault.ended)]
            fault.decision_after = round(after[0] - self.wall(fault.ended), 2) if after else None
        r.rss_bound_mib_per_hour = self.o.rss_bound
        r.rss_warmup_seconds = self.o.rss_warmup
        r.rss_required = self.o.rss_required


def _rss_segment(life: _Life, warmup: float, since: float | None = None) -> RssSegment:
    """The lifetime's RSS judged from ``warmup`` seconds after ``since`` (its start by default)."""
    start = life.started if since is None else since
    points = [(t, mib) for t, mib in life.rss if t >= start + warmup]
    late = points[len(points) // 2 :]
    slope, slope_all = observe.slope(late), observe.slope(points)
    return RssSegment(
        life.identity,
        life.number,
        round(points[-1][0] - points[0][0], 1) if points else 0.0,
        round(points[0][1], 1) if points else 0.0,
        round(points[-1][1], 1) if points else 0.0,
        None if slope is None else round(slope * 3600, 2),
        None if slope_all is None else round(slope_all * 3600, 2),
        [(round(t, 1), round(mib, 2)) for t, mib in life.rss],
    )


def _cluster_spec(loads: tuple[Load, ...]) -> ClusterSpec:
    """Two hot and two cold pools on four nodes; one single-replica volume per load, on its starting tier."""
    pools = (
        PoolSpec("pool-hot-1", "node-1", "hot", 2000 * GI),
        PoolSpec("pool-hot-2", "node-2", "hot", 2000 * GI),
        PoolSpec("pool-cold-1", "node-3", "cold", 2000 * GI),
        PoolSpec("pool-cold-2", "node-4", "cold", 2000 * GI),
    )
    volumes = tuple(
        VolumeSpec(
            f"pvc-{x.name}", f"vol-{x.name}", "apps", f"data-{x.name}", VOLUME_SIZE, x.tier, {"app": x.name}
        )
        for x in loads
    )
    return ClusterSpec(pools, volumes)


__all__ = ["SoakOptions", "run_soak"]
