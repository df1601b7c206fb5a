"""The no-data-loss invariant, checked on every replica transition the simulator makes.

For each volume it tracks a *floor*: the number of Synced replicas the volume had when a migration began
(an intent annotation appeared, or ``numReplicas`` went above the number of Synced replicas). Until the volume
is at rest again (no intent, every replica Synced, as many as requested), the count of Synced replicas must
never drop below the floor. At all times, a volume that had a Synced copy must never lose its last one.

Rebuild limits (optional, :attr:`InvariantChecker.max_per_node` with :attr:`InvariantChecker.node_of_pool`):
a migrating volume touches every node one of its replicas has been on since its intent appeared (the
sources it copies from and the target it copies to); no node may be touched by more migrations at once.

A test or the demo calls :meth:`InvariantChecker.assert_clean` (or reads :attr:`violations`) at the end:
violations are facts to fail loudly on, never warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Violation:
    volume: str
    at: float
    synced: int
    floor: int
    what: str

    def __str__(self) -> str:
        return f"t={self.at:.1f}s {self.volume}: {self.what} (synced {self.synced}, floor {self.floor})"


@dataclass
class Transition:
    volume: str
    at: float
    replicas: tuple[tuple[str, str, str, str], ...]  # (uuid, pool, state, syncState)


class InvariantViolation(AssertionError):
    """Raised by :meth:`InvariantChecker.assert_clean`; lists every violation."""


@dataclass
class InvariantChecker:
    violations: list[Violation] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    keep_transitions: bool = True
    max_in_flight: int | None = None  # when set, more volumes with an intent at once is a violation
    max_per_node: int | None = None  # when set, more migrations touching one node at once is a violation
    node_of_pool: dict[str, str] = field(default_factory=dict)
    peak_per_node: int = 0
    _touched: dict[str, set[str]] = field(default_factory=dict)
    _floor: dict[str, int] = field(default_factory=dict)
    _last_synced: dict[str, int] = field(default_factory=dict)
    _intents: set[str] = field(default_factory=set)
    peak_in_flight: int = 0

    def observe(
        self,
        volume: str,
        at: float,
        *,
        num_replicas: int,
        replicas: list[tuple[str, str, str, str]],
        has_intent: bool,
    ) -> None:
        """Record the state of ``volume`` after a change; checks the invariant against it."""
        synced = sum(1 for _, _, state, sync in replicas if state == "Online" and sync == "Synced")
        if self.keep_transitions:
            self.transitions.append(Transition(volume, at, tuple(replicas)))
        before = self._last_synced.get(volume, synced)
        floor = self._floor.get(volume)
        if floor is None and (has_intent or num_replicas > before):
            floor = self._floor[volume] = before
        if floor is not None and synced < floor:
            self.violations.append(
                Violation(volume, at, synced, floor, "fewer Synced replicas than the floor")
            )
        if before > 0 and synced == 0:
            self.violations.append(
                Violation(volume, at, synced, floor or before, "lost its last Synced replica")
            )
        at_rest = not has_intent and synced == len(replicas) == num_replicas
        if at_rest:
            self._floor.pop(volume, None)
        self._last_synced[volume] = synced
        self._track_intent(volume, at, has_intent)
        self._track_nodes(volume, at, has_intent, replicas)

    def _track_nodes(
        self, volume: str, at: float, has_intent: bool, replicas: list[tuple[str, str, str, str]]
    ) -> None:
        if not has_intent:
            self._touched.pop(volume, None)
            return
        if not self.node_of_pool:
            return
        nodes = self._touched.setdefault(volume, set())
        nodes.update(self.node_of_pool[p] for _, p, _, _ in replicas if p in self.node_of_pool)
        for node in sorted(nodes):
            load = sum(1 for touched in self._touched.values() if node in touched)
            self.peak_per_node = max(self.peak_per_node, load)
            if self.max_per_node is not None and load > self.max_per_node:
                self.violations.append(
                    Violation(
                        volume, at, 0, self.max_per_node, f"{load} migrations touch node {node} at once"
                    )
                )

    def _track_intent(self, volume: str, at: float, has_intent: bool) -> None:
        if has_intent:
            self._intents.add(volume)
        else:
            self._intents.discard(volume)
        self.peak_in_flight = max(self.peak_in_flight, len(self._intents))
        if self.max_in_flight is not None and len(self._intents) > self.max_in_flight:
            self.violations.append(
                Violation(
                    volume, at, 0, self.max_in_flight, f"{len(self._intents)} migrations in flight at once"
                )
            )

    def forget(self, volume: str) -> None:
        """The volume was deleted on purpose: stop tracking it."""
        self._floor.pop(volume, None)
        self._last_synced.pop(volume, None)
        self._intents.discard(volume)
        self._touched.pop(volume, None)

    def assert_clean(self) -> None:
        if self.violations:
            lines = "\n".join(f"  {v}" for v in self.violations[:50])
            raise InvariantViolation(f"{len(self.violations)} invariant violation(s):\n{lines}")
