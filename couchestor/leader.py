"""Leader election on a ``coordination.k8s.io/v1`` Lease, with fencing by trio deadlines.

Semantics follow client-go's ``leaderelection``: a candidate takes the Lease when it is free or has not been
renewed for ``lease_duration`` *as observed locally* (the holder's clock is never trusted), renews it every
``retry_period``, and gives up leadership when it could not renew for ``renew_deadline``.

Fencing: the leader's work runs inside a cancel scope whose deadline is always ``start of the last successful
renewal + renew_deadline``. Every renewal pushes the deadline on; a missed one lets trio cancel the work at that
instant, so no write is started after the deadline, even while the renewal request itself hangs. Another
candidate can only take over ``lease_duration`` > ``renew_deadline`` after it saw that renewal, so the two never
act at once. A renewal that finds another holder in the Lease (it was taken over or deleted and re-created)
cancels the work at once instead of waiting for the deadline.

Clean-ups that must survive a cancellation run in :func:`fenced_cleanup`: shielded, yet closed by the same
deadline, so no write of any kind leaves a leader after its fence; and ``leading`` turns False as soon as the
work has stopped, never later than the fence plus the time to unwind.

Release: when ``run`` ends for any reason (``lead`` returned or raised, or ``run`` was cancelled for a clean
shutdown), after the work has stopped, the Lease is handed back (empty holder) so a standby takes over at once
instead of waiting for it to expire. The release is shielded from cancellation and bounded by ``retry_period``;
it carries the last seen ``resourceVersion``, so it can never clear a Lease another instance holds.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import trio

from couchestor.kube import resources
from couchestor.kube.client import KubeClient
from couchestor.kube.errors import KubeError, NotFound
from k8s_schemas.core import Lease, LeaseSpec
from k8s_schemas.meta import ObjectMeta

log = logging.getLogger("couchestor.leader")


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}"


def micro_time(moment: datetime) -> str:
    """``metav1.MicroTime`` as the API server writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Observation:
    """The Lease record as last seen, and when (local monotonic time) it was last seen to change."""

    holder: str
    renew_time: str
    transitions: int
    observed_at: float


def may_acquire(obs: Observation | None, identity: str, now: float, lease_duration: float) -> bool:
    """True when ``identity`` may write itself into the Lease now.

    Free (no holder), already ours, or not seen to change for ``lease_duration`` (measured on our own clock).
    """
    if obs is None or not obs.holder or obs.holder == identity:
        return True
    return now - obs.observed_at >= lease_duration


def next_spec(
    obs: Observation | None, identity: str, wall: datetime, lease_duration: float, acquired_at: str | None
) -> LeaseSpec:
    """The spec that acquires the Lease (new holder: transitions + 1, acquireTime now) or renews it.

    ``acquired_at`` is the Lease's current acquireTime, kept when we renew our own Lease.
    """
    stamp = micro_time(wall)
    ours = obs is not None and obs.holder == identity
    # Like client-go: any change of holder (a released Lease included) counts as a transition.
    transitions = 0 if obs is None else obs.transitions + (0 if ours else 1)
    return LeaseSpec(
        holder_identity=identity,
        lease_duration_seconds=max(1, round(lease_duration)),
        acquire_time=acquired_at if ours and acquired_at else stamp,
        renew_time=stamp,
        lease_transitions=transitions,
    )


@contextmanager
def fenced_cleanup(limit: float) -> Iterator[trio.CancelScope]:
    """A scope for the clean-up after work that may be cancelled: shielded, so a cancellation of the work
    cannot skip it, but never open past the deadline of the scopes around it, the leader's fence included.

    Work already cancelled (fenced, stopping) gets no time at all: whatever its clean-up would have written is
    left to the recovery of the next leader, which cannot start before this one's fence. Otherwise the
    clean-up has at most ``limit`` seconds, and no more than the fence allows.
    """
    deadline = min(trio.current_effective_deadline(), trio.current_time() + limit)
    with trio.CancelScope(shield=True, deadline=deadline) as scope:
        yield scope


class LeaderElector:
    """Runs ``lead()`` only while holding the Lease ``namespace/name``; see the module docstring.

    ``run(lead)`` campaigns, leads until the Lease is lost (``lead`` is cancelled), and campaigns again, for as
    long as it runs. If ``lead`` returns, ``run`` releases the Lease and returns; if ``lead`` raises, ``run``
    releases the Lease and re-raises that exception. ``leading`` is True exactly while ``lead`` may act;
    ``on_change`` is called with the new value each time it flips.
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_change: Callable[[bool], None] | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._on_change = on_change or (lambda leading: None)
        self._wall = wall_clock
        self._rng = rng or random.Random()
        self._obs: Observation | None = None
        self._rv: str | None = None
        # trio time at which the last successful acquire/renew attempt started: the fence counts from here.
        self._renewed_at = 0.0
        self.leading = False

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        try:
            while True:
                await self._campaign()
                if await self._lead(lead):
                    return
        finally:
            await self._release()

    async def _campaign(self) -> None:
        """Return once we hold the Lease."""
        while True:
            if await self._try_acquire_or_renew():
                return
            # client-go's JitterUntil: retry_period plus up to 20 % jitter.
            await trio.sleep(self.retry_period * (1 + 0.2 * self._rng.random()))

    async def _lead(self, lead: Callable[[], Awaitable[None]]) -> bool:
        """Run ``lead`` while renewing; True when ``lead`` returned, False when the Lease was lost.

        An exception from ``lead`` propagates as itself (not wrapped in an exception group).
        """
        self._set_leading(True)
        finished = False
        error: Exception | None = None
        try:
            with trio.CancelScope(deadline=self._renewed_at + self.renew_deadline) as fence:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._renew_loop, fence)

                    async def work() -> None:
                        nonlocal finished, error
                        try:
                            await lead()
                        except Exception as exc:
                            error = exc
                        finished = True
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(work)
        finally:
            self._set_leading(False)
        if error is not None:
            raise error
        if not finished:
            log.warning("lost leadership of Lease %s/%s: stopped acting", self.namespace, self.name)
        return finished

    async def _renew_loop(self, fence: trio.CancelScope) -> None:
        while True:
            await trio.sleep(self.retry_period)
            if await self._try_acquire_or_renew():
                # Fencing: whatever runs under `fence` is cancelled renew_deadline after this renewal
                # *started*, unless a later renewal succeeds first.
                fence.deadline = self._renewed_at + self.renew_deadline
            elif self._obs is None or self._obs.holder != self.identity:
                # Someone else holds the Lease (or it is gone): we are certainly not the leader any more.
                log.warning("Lease %s/%s is no longer ours", self.namespace, self.name)
                fence.cancel()

    async def _try_acquire_or_renew(self) -> bool:
        now = trio.current_time()
        try:
            with trio.fail_after(self.retry_period):
                lease = await self._get()
                self._observe(lease, now)
                if not may_acquire(self._obs, self.identity, now, self.lease_duration):
                    return False
                acquired_at = None
                if lease is not None and isinstance(lease.spec.acquire_time, str):
                    acquired_at = lease.spec.acquire_time
                spec = next_spec(self._obs, self.identity, self._wall(), self.lease_duration, acquired_at)
                if lease is None:
                    body = Lease(metadata=self._meta(None), spec=spec)
                    written = await self.client.create(resources.LEASE, body, self.namespace, type=Lease)
                else:
                    body = Lease(metadata=self._meta(self._rv), spec=spec)
                    written = await self.client.replace(resources.LEASE, body, self.namespace, type=Lease)
        except (KubeError, trio.TooSlowError) as exc:
            log.debug("lease %s/%s: attempt failed: %s", self.namespace, self.name, exc)
            return False
        self._observe(written, trio.current_time())
        self._renewed_at = now
        return True

    def _meta(self, resource_version: str | None) -> ObjectMeta:
        if resource_version is None:
            return ObjectMeta(name=self.name, namespace=self.namespace)
        return ObjectMeta(name=self.name, namespace=self.namespace, resource_version=resource_version)

    async def _get(self) -> Lease | None:
        try:
            return await self.client.get(
                resources.LEASE, self.name, self.namespace, type=Lease, timeout=self.retry_period
            )
        except NotFound:
            return None

    def _observe(self, lease: Lease | None, now: float) -> None:
        if lease is None:
            self._obs, self._rv = None, None
            return
        spec = lease.spec
        holder = spec.holder_identity if isinstance(spec.holder_identity, str) else ""
        renew = spec.renew_time if isinstance(spec.renew_time, str) else ""
        transitions = spec.lease_transitions if isinstance(spec.lease_transitions, int) else 0
        rv = lease.metadata.resource_version if isinstance(lease.metadata.resource_version, str) else None
        if self._obs is None or (self._obs.holder, self._obs.renew_time) != (holder, renew):
            self._obs = Observation(holder, renew, transitions, now)
        self._rv = rv

    async def _release(self) -> None:
        """Hand the Lease back (empty holder) if our last look said we hold it; never raises.

        Runs shielded from cancellation (it is called on shutdown) and gives up after ``retry_period``.
        """
        if self._obs is None or self._obs.holder != self.identity:
            return
        with trio.CancelScope(deadline=trio.current_time() + self.retry_period, shield=True):
            try:
                spec = LeaseSpec(
                    holder_identity="",
                    lease_duration_seconds=1,
                    renew_time=micro_time(self._wall()),
                    lease_transitions=self._obs.transitions,
                )
                body = Lease(metadata=self._meta(self._rv), spec=spec)
                written = await self.client.replace(
                    resources.LEASE, body, self.namespace, type=Lease, timeout=self.retry_period
                )
            except KubeError as exc:
                log.debug("lease %s/%s: release failed: %s", self.namespace, self.name, exc)
                return
            self._observe(written, trio.current_time())
            log.info("released Lease %s/%s", self.namespace, self.name)

    def _set_leading(self, leading: bool) -> None:
        if leading != self.leading:
            self.leading = leading
            log.info(
                "%s leadership of Lease %s/%s as %s",
                "acquired" if leading else "released",
                self.namespace,
                self.name,
                self.identity,
            )
            self._on_change(leading)
