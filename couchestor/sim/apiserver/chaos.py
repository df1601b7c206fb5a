"""Fault injection for tests: every knob is off until a test turns it on.

The same knobs are reachable over HTTP under ``/_sim/`` (see :mod:`.app`) for a server in another process.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import trio


@dataclass(slots=True)
class Fault:
    """One injected fault: matching requests are delayed by ``latency`` and answered with ``status``."""

    status: int = 0
    retry_after: int | None = None
    latency: float = 0.0
    method: str | None = None
    path_regex: str | None = None
    watch: bool | None = None
    count: int = 1  # -1: until cleared

    def matches(self, method: str, path: str, is_watch: bool) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.watch is not None and self.watch != is_watch:
            return False
        return self.path_regex is None or re.search(self.path_regex, path) is not None


WatchEnd = Literal["close", "reset", "freeze"]


@dataclass(eq=False, slots=True)
class OpenWatch:
    """An open watch stream as the knobs see it: cancelling ``scope`` ends the stream in the way ``end`` says."""

    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    end: WatchEnd = "close"

    def stop(self, end: WatchEnd) -> None:
        self.end = end
        self.scope.cancel()


class Chaos:
    """The Python handle of the fault knobs; :class:`~couchestor.sim.apiserver.ApiServer` consults it."""

    def __init__(self, on_compact: Callable[[], None]) -> None:
        self.faults: list[Fault] = []
        self.gone_next = False
        self._watches: set[OpenWatch] = set()
        self._on_compact = on_compact

    def drop_watches(self) -> None:
        """Close every open watch stream now; clients see the end of the response."""
        self._stop_watches("close")

    def reset_watches(self) -> None:
        """Break every open watch stream now: the connection closes in the middle of the response (no final
        chunk), as when a peer or middlebox resets it; clients see a broken connection, not an end."""
        self._stop_watches("reset")

    def freeze_watches(self) -> None:
        """Freeze every open watch stream now: the connection stays open and carries no byte again (no events,
        no bookmarks, no end at ``timeoutSeconds``), as when a NAT or load balancer silently drops the flow.
        It closes only when the client gives up."""
        self._stop_watches("freeze")

    def _stop_watches(self, end: WatchEnd) -> None:
        for watch in list(self._watches):
            watch.stop(end)

    def compact(self) -> None:
        """Forget all history up to the current resourceVersion (old watch RVs and continue tokens: 410)."""
        self._on_compact()

    def gone_on_next_watch(self) -> None:
        """The next watch request naming a resourceVersion gets an ERROR 410 event."""
        self.gone_next = True

    def add_fault(
        self,
        *,
        status: int = 0,
        retry_after: int | None = None,
        latency: float = 0.0,
        method: str | None = None,
        path_regex: str | None = None,
        watch: bool | None = None,
        count: int = 1,
    ) -> None:
        """Delay and/or fail the next ``count`` matching requests (status 0: latency only; -1: forever)."""
        if path_regex is not None:
            re.compile(path_regex)
        self.faults.append(Fault(status, retry_after, latency, method, path_regex, watch, count))

    def clear(self) -> None:
        """Turn every knob off (open watches stay open)."""
        self.faults.clear()
        self.gone_next = False

    def take_fault(self, method: str, path: str, is_watch: bool) -> Fault | None:
        """The first fault matching this request, consuming one of its uses."""
        for fault in self.faults:
            if fault.matches(method, path, is_watch):
                if fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                return fault
        return None

    def take_gone(self) -> bool:
        if self.gone_next:
            self.gone_next = False
            return True
        return False

    def track_watch(self, watch: OpenWatch) -> None:
        self._watches.add(watch)

    def untrack_watch(self, watch: OpenWatch) -> None:
        self._watches.discard(watch)
