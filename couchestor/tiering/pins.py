"""Pins and opt-outs: where the owner of a claim wants its volume kept, read from the PVC's annotations.

The PVC is the object a user owns, so the annotations live there (the PV's view follows its ``claimRef``):

- ``storage.billyronks.io/pin: hot|warm|cold`` keeps the volume on that tier: it is moved there (within the
  policy's limits: cooldown, dry run, slots, room, windows) and never away from it, whatever its heat;
- ``storage.billyronks.io/pin-until: <RFC 3339>`` (optional, with ``pin``) ends the pin at that moment; from
  then on the volume is tiered by its heat again;
- ``storage.billyronks.io/exclude: "true"`` excludes the volume from tiering: it is never moved (``"false"``
  is the same as no annotation). It wins over a pin.

An annotation that cannot be read (another tier word, a bad timestamp, ``pin-until`` without ``pin``) fails
closed: :func:`read_pin` raises, the view keeps the error, and the volume is not moved until it is fixed.

A volume group (moved all or none) follows its members' pins: members pinned to one tier pin the whole group
there; members pinned to different tiers leave the group unmoved (:func:`group_pinning`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from couchestor.durations import format_time, parse_time
from couchestor.tiering.policy import Tier
from k8s_schemas.annotations import EXCLUDE, PIN, PIN_UNTIL


@dataclass(frozen=True, slots=True)
class Pin:
    """What a claim's annotations ask: a tier to keep the volume on (until ``until``, when set), or, with
    ``tier`` None, no tiering at all."""

    tier: Tier | None
    until: datetime | None = None

    def active(self, now: datetime) -> bool:
        """False once ``until`` has passed: an expired pin is ignored."""
        return self.until is None or now < self.until

    def describe(self) -> str:
        if self.tier is None:
            return f"excluded from tiering ({EXCLUDE})"
        until = "" if self.until is None else f" until {format_time(self.until)}"
        return f"pinned to {self.tier}{until}"


def read_pin(annotations: Mapping[str, str]) -> Pin | None:
    """The pin or opt-out ``annotations`` carry, None when they carry neither; :class:`ValueError` naming the
    annotation when one cannot be read."""
    exclude = annotations.get(EXCLUDE)
    if exclude is not None and exclude not in ("true", "false"):
        raise ValueError(f'annotation {EXCLUDE}: {exclude!r} is neither "true" nor "false"')
    word, until_text = annotations.get(PIN), annotations.get(PIN_UNTIL)
    tier: Tier | None = None
    until: datetime | None = None
    if word is not None:
        if word not in ("hot", "warm", "cold"):
            raise ValueError(f"annotation {PIN}: {word!r} is not hot, warm or cold")
        tier = Tier(word)
    if until_text is not None:
        if word is None:
            raise ValueError(f"annotation {PIN_UNTIL} without {PIN}")
        try:
            until = parse_time(until_text)
        except ValueError as exc:
            raise ValueError(f"annotation {PIN_UNTIL}: {exc}") from None
    if exclude == "true":
        return Pin(None)
    return None if tier is None else Pin(tier, until)


@dataclass(frozen=True, slots=True)
class Pinning:
    """The pin one volume is judged under: its own, or its group's (``why`` says which, in words). With
    ``conflict`` set, the group's members are pinned to different tiers and none of them moves."""

    tier: Tier | None
    why: str
    conflict: str | None = None


def own_pinning(pin: Pin | None, now: datetime) -> Pinning | None:
    """The volume's own pin as a :class:`Pinning`, None when it has none or it expired."""
    if pin is None or not pin.active(now):
        return None
    return Pinning(pin.tier, pin.describe())


def group_pinning(key: str, members: Sequence[tuple[str, Pin | None]], now: datetime) -> Pinning | None:
    """The pin of group ``key`` from its members' (name, pin): the one tier its pinned members agree on, a
    conflict when they name different tiers, None when no member is pinned. Opted-out members do not pin the
    group; they only hold it back (a member that is never moved keeps its group from moving)."""
    by_tier: dict[Tier, list[str]] = {}
    for name, pin in members:
        if pin is not None and pin.tier is not None and pin.active(now):
            by_tier.setdefault(pin.tier, []).append(name)
    if not by_tier:
        return None
    if len(by_tier) > 1:
        named = "; ".join(f"{', '.join(sorted(names))} to {tier}" for tier, names in sorted(by_tier.items()))
        return Pinning(
            None, "", f"group {key} has members pinned to different tiers ({named}); none is moved"
        )
    ((tier, names),) = by_tier.items()
    return Pinning(tier, f"group {key} pinned to {tier} by {', '.join(sorted(names))}")


def refusal(pin: Pin | None, pin_error: str | None, target: Tier, now: datetime) -> str | None:
    """Why a move to ``target`` that the decisions did not plan (a user's TierMigration, say) must not run
    under the claim's pin, or None when it may: an unreadable pin, an opt-out, or a pin to another tier
    refuses it."""
    if pin_error is not None:
        return f"{pin_error}; not moved until it is fixed"
    if pin is None or not pin.active(now):
        return None
    if pin.tier is None:
        return f"{pin.describe()}; never moved"
    if pin.tier is not target:
        return f"{pin.describe()}; never moved away from it"
    return None


__all__ = ["Pin", "Pinning", "group_pinning", "own_pinning", "read_pin", "refusal"]
