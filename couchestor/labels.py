"""Kubernetes label selectors: parse, render and match, as pure functions.

Two spellings describe the same thing and both end up as a tuple of :class:`Requirement`:

- the string form of LIST/WATCH query parameters (``tier=hot,env!=dev,app in (a,b),!legacy``), parsed by
  :func:`parse_selector`;
- the structured ``metav1.LabelSelector`` (``matchLabels`` + ``matchExpressions``) of custom resources,
  converted by :func:`from_label_selector`.

An empty selector matches every object, as in Kubernetes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from msgspec import UNSET

from k8s_schemas.meta import LabelSelector

Operator = Literal["=", "!=", "in", "notin", "exists", "!"]

# A qualified name with an optional DNS-subdomain prefix, as label keys are (apimachinery validation).
_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


class SelectorError(ValueError):
    """A selector that cannot be parsed or is not valid; the message names the offending part."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """One condition on one label key."""

    key: str
    op: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects that lack the key, as in Kubernetes.
        return not present or labels[self.key] not in self.values

    def render(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{self.values[0]}"
        return f"{self.key} {self.op} ({','.join(self.values)})"


Selector = tuple[Requirement, ...]


def includes(labels: Mapping[str, str], inclusion: Mapping[str, str]) -> bool:
    """True when ``labels`` carry every key of ``inclusion`` with the same value (Mayastor's pool topology
    ``labelled.inclusion``; an empty inclusion is met by any labels)."""
    return all(labels.get(key) == value for key, value in inclusion.items())


def matches(selector: Selector, labels: Mapping[str, str] | None) -> bool:
    """True when ``labels`` satisfy every requirement of ``selector`` (an empty selector matches all)."""
    labels = labels or {}
    return all(req.matches(labels) for req in selector)


def render(selector: Iterable[Requirement]) -> str:
    """The query-parameter form of ``selector``; parses back to the same requirements."""
    return ",".join(req.render() for req in selector)


def check_key(key: str) -> str:
    """``key`` when it is a valid label key, else :class:`SelectorError` saying why."""
    if not _KEY.match(key) or len(key.partition("/")[0 if "/" in key else 2]) > 253:
        raise SelectorError(f"invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if not _VALUE.match(value):
        raise SelectorError(f"invalid label value {value!r}")
    return value


_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|[^\s!=(),]+)")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # pragma: no cover - the pattern accepts any non-space character
            raise SelectorError(f"unexpected character at {pos} in {text!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


def parse_selector(text: str) -> Selector:
    """Parse the string form of a label selector.

    Raises :class:`SelectorError` naming the problem for anything Kubernetes would reject.
    """
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def expect(tok: str) -> None:
        nonlocal i
        if i >= len(toks) or toks[i] != tok:
            got = toks[i] if i < len(toks) else "end of selector"
            raise SelectorError(f"expected {tok!r} but found {got!r} in {text!r}")
        i += 1

    while i < len(toks):
        if toks[i] == "!":
            i += 1
            if i >= len(toks):
                raise SelectorError(f"missing key after '!' in {text!r}")
            reqs.append(Requirement(check_key(toks[i]), "!"))
            i += 1
        else:
            key = check_key(toks[i])
            i += 1
            if i >= len(toks) or toks[i] == ",":
                reqs.append(Requirement(key, "exists"))
            elif toks[i] in ("=", "==", "!="):
                op: Operator = "!=" if toks[i] == "!=" else "="
                i += 1
                value = ""
                if i < len(toks) and toks[i] not in (",", "(", ")", "=", "!=", "=="):
                    value = toks[i]
                    i += 1
                reqs.append(Requirement(key, op, (_check_value(value),)))
            elif toks[i] in ("in", "notin"):
                set_op: Operator = "in" if toks[i] == "in" else "notin"
                i += 1
                expect("(")
                values: list[str] = []
                while i < len(toks) and toks[i] != ")":
                    if toks[i] == ",":
                        i += 1
                        continue
                    values.append(_check_value(toks[i]))
                    i += 1
                expect(")")
                if set_op == "in" and not values:
                    raise SelectorError(f"'in' needs at least one value for key {key!r}")
                reqs.append(Requirement(key, set_op, tuple(sorted(set(values)))))
            else:
                raise SelectorError(f"unexpected {toks[i]!r} after key {key!r} in {text!r}")
        if i < len(toks):
            expect(",")
            if i >= len(toks):
                raise SelectorError(f"trailing ',' in {text!r}")
    return tuple(reqs)


_STRUCT_OPS: dict[str, Operator] = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def from_label_selector(selector: LabelSelector | None) -> Selector:
    """Convert a ``metav1.LabelSelector``; raises :class:`SelectorError` for an invalid one.

    Validation follows apimachinery: ``In``/``NotIn`` need values, ``Exists``/``DoesNotExist`` take none.
    """
    if selector is None:
        return ()
    reqs: list[Requirement] = []
    if selector.match_labels is not UNSET:
        for key, value in sorted(selector.match_labels.items()):
            reqs.append(Requirement(check_key(key), "=", (_check_value(value),)))
    if selector.match_expressions is not UNSET:
        for n, expr in enumerate(selector.match_expressions):
            op = _STRUCT_OPS.get(expr.operator)
            if op is None:
                raise SelectorError(f"matchExpressions[{n}]: unknown operator {expr.operator!r}")
            values = [] if expr.values is UNSET else list(expr.values)
            if op in ("in", "notin") and not values:
                raise SelectorError(f"matchExpressions[{n}]: operator {expr.operator} needs values")
            if op in ("exists", "!") and values:
                raise SelectorError(f"matchExpressions[{n}]: operator {expr.operator} takes no values")
            reqs.append(
                Requirement(check_key(expr.key), op, tuple(sorted({_check_value(v) for v in values})))
            )
    return tuple(reqs)
