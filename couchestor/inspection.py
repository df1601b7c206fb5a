"""What ``couchestor explain`` and ``couchestor plan`` read: the cluster once and the heat scores once.

Both commands answer from the same inputs the operator decides from, without the operator: one LIST of each
kind (no watch), one refresh of the heat scores per sampling window (the score cache's queries and decoding),
then the pure :func:`~couchestor.tiering.decide.decide`. Everything that cannot be read is a
:class:`~couchestor.errors.UserError` naming what and where, never a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import trio

from couchestor import settings as settings_mod
from couchestor.endpoints import Health
from couchestor.errors import UserError
from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.config import load_config
from couchestor.kube.errors import KubeError, NotFound
from couchestor.mayastor_rest.client import MayastorRestClient, MayastorRestError
from couchestor.mayastor_rest.mirror import to_mayastor_volume
from couchestor.metrics import OperatorMetrics
from couchestor.settings import Settings
from couchestor.tiering.heat import (
    PeakSnapshot,
    ScoreSnapshot,
    build_idle_query,
    build_peaks,
    build_queries,
    build_snapshot,
    metric_source,
)
from couchestor.tiering.plan import DecideOptions
from couchestor.tiering.scores import PrometheusClient, PrometheusUnavailable, ScoreCache
from couchestor.tiering.views import PoolView, VolumeView, build_pool_views, build_volume_views
from k8s_schemas.annotations import MIGRATION_INTENT
from k8s_schemas.core import PersistentVolume, PersistentVolumeClaim
from k8s_schemas.mayastor import DiskPool, MayastorVolume
from k8s_schemas.meta import ObjectList
from k8s_schemas.storage_policy import StoragePolicy

#: The ``couchestor run`` settings these commands share (same flags, same COUCHESTOR_* variables).
FLAGS = (
    "kubeconfig",
    "context",
    "mayastor-namespace",
    "prometheus-url",
    "metric-preset",
    "metric-name",
    "metric-label",
    "metric-selector",
    "min-coverage",
    "scrape-interval",
    "backend",
    "mayastor-rest-url",
    "mayastor-rest-token-file",
    "mayastor-rest-ca",
)
#: Seconds for all reads of one command (the LISTs and the Prometheus queries).
READ_TIMEOUT = 60.0
QUERY_TIMEOUT = 15.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    settings_mod.add_arguments(parser, only=FLAGS)


@dataclass(frozen=True, slots=True)
class ClusterState:
    """Every object the decisions need, as listed once."""

    policies: tuple[StoragePolicy, ...]
    pvs: tuple[PersistentVolume, ...]
    pvcs: tuple[PersistentVolumeClaim, ...]
    volumes: tuple[MayastorVolume, ...]
    pools: tuple[DiskPool, ...]
    #: The kubeconfig context's namespace (as kubectl uses it when no -n is given).
    namespace: str = "default"

    def volume_views(self) -> tuple[VolumeView, ...]:
        return build_volume_views(self.pvs, self.pvcs, self.volumes)

    def pool_views(self) -> tuple[PoolView, ...]:
        return build_pool_views(self.pools)

    def in_flight(self) -> set[str]:
        """PV names with a migration intent on the PV or on its MayastorVolume (a migration under way)."""
        busy = {str(v.metadata.name) for v in self.volumes if v.metadata.annotation(MIGRATION_INTENT)}
        out = {str(pv.metadata.name) for pv in self.pvs if pv.metadata.annotation(MIGRATION_INTENT)}
        for view in self.volume_views():
            if view.backend_name is not None and view.backend_name in busy:
                out.add(view.name)
        return out


def settings_from(args: argparse.Namespace) -> Settings:
    return settings_mod.resolve(args)


async def read_cluster(settings: Settings) -> ClusterState:
    """LIST every kind once, concurrently; a missing CRD or an unreachable server is a UserError."""
    try:
        config = load_config(settings.kubeconfig, settings.context)
    except (KubeError, OSError) as exc:
        raise UserError(f"cannot load the Kubernetes configuration: {exc}") from None
    found: dict[str, tuple[object, ...]] = {}
    ns = settings.mayastor_namespace
    kinds: list[tuple[resources.Resource, type[Any], str | None]] = [
        (resources.STORAGE_POLICY, StoragePolicy, None),
        (resources.PERSISTENT_VOLUME, PersistentVolume, None),
        (resources.PERSISTENT_VOLUME_CLAIM, PersistentVolumeClaim, None),
        (resources.DISK_POOL, DiskPool, ns),
    ]
    if settings.backend == "mayastor-rest":
        found["MayastorVolume"] = await _rest_volumes(settings)
    else:
        kinds.append((resources.MAYASTOR_VOLUME, MayastorVolume, ns))
    failures: list[str] = []
    async with KubeClient(config) as client:

        async def one(res: resources.Resource, tp: type[Any], namespace: str | None) -> None:
            try:
                listed: ObjectList[Any] = await client.list_all(
                    res, namespace, type=tp, timeout=READ_TIMEOUT / 2
                )
            except NotFound:
                failures.append(f"the cluster has no {res.kind} resource: is its CRD installed?")
                return
            except KubeError as exc:
                failures.append(f"cannot list {res.kind}s: {exc}")
                return
            found[res.kind] = tuple(listed.items)

        with trio.move_on_after(READ_TIMEOUT) as scope:
            async with trio.open_nursery() as nursery:
                for res, tp, namespace in kinds:
                    nursery.start_soon(one, res, tp, namespace)
    if scope.cancelled_caught:
        raise UserError(f"the API server did not answer within {READ_TIMEOUT:.0f}s")
    if failures:
        raise UserError(failures[0])
    return ClusterState(
        policies=found["StoragePolicy"],  # type: ignore[arg-type]
        pvs=found["PersistentVolume"],  # type: ignore[arg-type]
        pvcs=found["PersistentVolumeClaim"],  # type: ignore[arg-type]
        volumes=found["MayastorVolume"],  # type: ignore[arg-type]
        pools=found["DiskPool"],  # type: ignore[arg-type]
        namespace=config.namespace,
    )


async def _rest_volumes(settings: Settings) -> tuple[MayastorVolume, ...]:
    """Mayastor 2.x's volumes from its REST API, as the operator's ``--backend mayastor-rest`` mirrors them."""
    try:
        client = MayastorRestClient(
            settings.mayastor_rest_url,
            token_file=settings.mayastor_rest_token_file,
            ca_file=settings.mayastor_rest_ca,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    async with client as rest:
        try:
            with trio.fail_after(READ_TIMEOUT):
                volumes = await rest.list_volumes()
        except MayastorRestError as exc:
            raise UserError(f"cannot list Mayastor volumes: {exc}") from None
        except trio.TooSlowError:
            raise UserError(
                f"Mayastor's REST API at {settings.mayastor_rest_url} did not answer within {READ_TIMEOUT:.0f}s"
            ) from None
    return tuple(to_mayastor_volume(v, settings.mayastor_namespace) for v in volumes)


def decide_options(settings: Settings) -> DecideOptions:
    """The operator's :class:`DecideOptions` for these settings (Mayastor 2.x cannot change a topology)."""
    return DecideOptions(
        min_coverage=settings.min_coverage, fixed_topology=settings.backend == "mayastor-rest"
    )


async def read_scores(
    settings: Settings, windows: Collection[int], at: datetime, periods: Collection[int] = ()
) -> Mapping[int, ScoreSnapshot]:
    """One refresh of every window's heat scores, and of every idle period's peaks (handed out with each
    window's snapshot, as the operator does), with the operator's queries; unreachable is a UserError."""
    try:
        source = metric_source(
            settings.metric_preset,
            metric=settings.metric_name,
            label=settings.metric_label,
            selector=settings.metric_selector or "",
            scrape_interval_seconds=settings.scrape_interval,
        )
    except ValueError as exc:
        raise UserError(f"metric settings: {exc}") from None
    out: dict[int, ScoreSnapshot] = {}
    async with PrometheusClient(settings.prometheus_url, timeout=QUERY_TIMEOUT) as prometheus:
        cache = ScoreCache(prometheus, source, ttl=0.0, metrics=OperatorMetrics(), health=Health())
        for window in sorted(windows):
            try:
                with trio.fail_after(READ_TIMEOUT):
                    results = await cache.query_all(build_queries(source, window), at)
            except PrometheusUnavailable as exc:
                raise UserError(f"Prometheus cannot give heat scores: {exc}") from None
            except trio.TooSlowError:
                raise UserError(
                    f"Prometheus at {settings.prometheus_url} did not answer within {READ_TIMEOUT:.0f}s"
                ) from None
            snapshot = build_snapshot(source, window, results, at)
            if not snapshot.healthy:
                raise UserError(f"Prometheus cannot give heat scores: {snapshot.error}")
            out[window] = snapshot
        peaks: dict[int, PeakSnapshot] = {}
        for period in sorted(set(periods)):
            query = build_idle_query(source, period)
            try:
                with trio.fail_after(READ_TIMEOUT):
                    answer = await cache.query_all([query], at)
            except (PrometheusUnavailable, trio.TooSlowError) as exc:
                # As in the operator: without peaks nothing goes cold by the idle rule, the rest is decided.
                peaks[period] = PeakSnapshot(period, False, at, error=str(exc) or "no answer in time")
                continue
            peaks[period] = build_peaks(source, period, answer.get(query), at)
    return {w: replace(s, peaks=peaks) for w, s in out.items()} if peaks else out
