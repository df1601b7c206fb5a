"""No flapping: random heat histories driven through :func:`decide` pass after pass on a simulated clock, with
migrations that take a few passes and are recorded as the runner records them (first in memory, then on the
PV annotation), and pins that come, change, end and go. Whatever the heat does, no volume starts a move
before its cooldown after the last one finished, and a pinned volume only moves to its tier."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings, strategies as st

from couchestor.tiering.decide import decide
from couchestor.tiering.heat import HeatScore, ScoreSnapshot
from couchestor.tiering.pins import Pin
from couchestor.tiering.plan import DecideOptions
from couchestor.tiering.policy import PolicyRules, Tier, compile_policy
from couchestor.tiering.views import PoolView, ReplicaView, VolumeView
from k8s_schemas.meta import ObjectMeta
from k8s_schemas.storage_policy import StoragePolicy
from tests.unit.test_decisions import NOW, GiB

WINDOW = 600
POOLS = [PoolView(f"{t}-1", f"node-{t}", {"tier": t.value}, "Online", 10_000 * GiB) for t in Tier]
HEAT = st.sampled_from([0.0, 100.0, 499.0, 501.0, 1500.0, 2500.0, 4999.0, 5001.0, 20000.0])


@dataclass
class Vol:
    name: str
    tier: Tier
    group: str | None
    pin: Pin | None = None
    last: datetime | None = None  # the PV annotation
    recent: datetime | None = None  # finished, not yet on the annotation
    flying: int | None = None  # passes left of a running migration, and where to
    to: Tier | None = None
    finishes: list[datetime] = field(default_factory=list)

    def view(self) -> VolumeView:
        return VolumeView(
            name=self.name,
            volume_id=None,
            storage_class="mayastor",
            pvc_labels={"app": self.group} if self.group else {},
            size_bytes=GiB,
            num_replicas=1,
            replicas=(ReplicaView(f"{self.tier.value}-1", f"node-{self.tier.value}", "Online", "Synced"),),
            last_migration=self.last,
            pin=self.pin,
        )


@st.composite
def histories(draw):
    n = draw(st.integers(1, 6))
    spec = {
        "highWatermarkIOPS": 5000,
        "lowWatermarkIOPS": 500,
        "samplingWindow": "10m",
        "cooldownPeriod": draw(st.sampled_from(["5m", "30m", "2h"])),
        "maxConcurrentMigrations": draw(st.integers(1, 3)),
    }
    if draw(st.booleans()):
        spec["warmWatermarkIOPS"] = 2000
    if draw(st.booleans()):
        spec["groupLabel"] = "app"
    policy = compile_policy(StoragePolicy(metadata=ObjectMeta(name="p", generation=1), spec=spec))
    assert isinstance(policy, PolicyRules)
    tiers = [t for t in Tier if t in policy.tiers]
    vols = [
        Vol(f"v{i}", draw(st.sampled_from(tiers)), draw(st.sampled_from([None, None, "g1", "g2"])))
        for i in range(n)
    ]
    pin_change = st.tuples(
        st.integers(0, n - 1),
        st.sampled_from([None, "exclude", *Tier]),
        st.none() | st.sampled_from([60, 600, 3600, 7200]),  # seconds until the pin ends
    )
    passes = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "step": st.sampled_from([10, 60, 120, 300, 900]),
                    "heat": st.lists(HEAT, min_size=n, max_size=n),
                    "pin": st.none() | pin_change,
                    "takes": st.integers(0, 2),  # passes a migration started now stays in flight
                }
            ),
            min_size=5,
            max_size=60,
        )
    )
    return policy, vols, passes


def pins_of(policy: PolicyRules, vols: list[Vol], v: Vol, now: datetime) -> set[Tier | None]:
    """The tiers ``v`` is pinned to now: its own active pin's (None: excluded), else its group's."""
    if v.pin is not None and v.pin.active(now):
        return {v.pin.tier}
    if policy.group_label is None or v.group is None:
        return set()
    return {
        o.pin.tier
        for o in vols
        if o.group == v.group and o.pin is not None and o.pin.tier is not None and o.pin.active(now)
    }


def simulate(policy: PolicyRules, vols: list[Vol], passes: list[dict]) -> list[tuple[datetime, str, Tier]]:
    """Run the passes; check every move as it starts; return the moves (start time, volume, target tier)."""
    by_name = {v.name: v for v in vols}
    now = NOW
    moves: list[tuple[datetime, str, Tier]] = []
    for step in passes:
        now += timedelta(seconds=step["step"])
        # The runner: running migrations end (kept in memory first), and last pass's ends reach the PV.
        for v in vols:
            if v.recent is not None:
                v.last, v.recent = v.recent, None
            if v.flying is not None:
                if v.flying == 0:
                    assert v.to is not None
                    v.tier, v.to, v.flying, v.recent = v.to, None, None, now
                    v.finishes.append(now)
                else:
                    v.flying -= 1
        if step.get("pin") is not None:
            which, word, lasts = step["pin"]
            target = by_name[f"v{which}"]
            until = None if lasts is None else now + timedelta(seconds=lasts)
            target.pin = None if word is None else Pin(None if word == "exclude" else Tier(word), until)
        heat = {
            v.name: HeatScore(v.name, score, None, None, None, 1.0, 60, WINDOW, now, "m")
            for v, score in zip(vols, step["heat"], strict=True)
        }
        plan = decide(
            [policy],
            [v.view() for v in vols],
            POOLS,
            {WINDOW: ScoreSnapshot(WINDOW, True, now, heat)},
            {v.name for v in vols if v.flying is not None},
            {v.name: v.recent for v in vols if v.recent is not None},
            now,
            DecideOptions(),
        )
        for m in plan.migrations:
            v = by_name[m.volume]
            assert v.flying is None, f"{v.name} started while a move of it runs"
            if v.finishes:
                since = (now - v.finishes[-1]).total_seconds()
                assert since >= policy.cooldown_seconds, f"{v.name} moved again {since:.0f}s after the last"
            pinned = pins_of(policy, vols, v, now)
            assert pinned in (set(), {m.to_tier}), f"{v.name} moved to {m.to_tier} while pinned to {pinned}"
            assert m.from_tier is v.tier
            v.flying, v.to = step.get("takes", 0), m.to_tier
            moves.append((now, v.name, m.to_tier))
    return moves


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_no_volume_moves_twice_within_its_cooldown_pins_included(history):
    simulate(*history)


def test_heat_flipping_every_minute_moves_a_volume_once_per_cooldown_and_a_pinned_one_once():
    policy = compile_policy(
        StoragePolicy(
            metadata=ObjectMeta(name="p"),
            spec={
                "highWatermarkIOPS": 5000,
                "lowWatermarkIOPS": 500,
                "cooldownPeriod": "30m",
                "samplingWindow": "10m",
            },
        )
    )
    assert isinstance(policy, PolicyRules)
    vols = [Vol("v0", Tier.COLD, None), Vol("v1", Tier.COLD, None, pin=Pin(Tier.HOT))]
    passes = [{"step": 60, "heat": [20000.0 if i % 2 else 0.0] * 2} for i in range(180)]
    moves = simulate(policy, vols, passes)
    free = [(t, to) for t, name, to in moves if name == "v0"]
    # Three hours of flipping heat, one move per 30 minutes of cooldown at most (and at least every other).
    assert 3 <= len(free) <= 6
    assert {to for _, to in free} == {Tier.HOT, Tier.COLD}
    assert [(name, to) for _, name, to in moves if name == "v1"] == [("v1", Tier.HOT)]
