"""A small subset of CEL, enough for ``x-kubernetes-validations`` rules of the forms CRDs commonly use.

Supported: literals (int, double, string, bool, null, lists), ``self`` / ``oldSelf`` and field access,
``has(x.f)``, ``size()``, ``x in list``, string methods ``startsWith``/``endsWith``/``contains``/``matches``,
arithmetic, comparison, ``!``, ``&&``, ``||`` (with CEL's error absorption), and ``c ? a : b``.
:func:`compile_rule` raises :class:`CelError` for anything outside that subset, so an unsupported rule is
reported instead of silently passing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

Env = Mapping[str, Any]
Expr = Callable[[Env], Any]


class CelError(ValueError):
    """A rule outside the supported subset, or a runtime error (e.g. ``no such key``)."""


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d+|\d+)|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!?:.,()\[\]])|(?P<id>[A-Za-z_][A-Za-z0-9_]*))"
)


def _tokenize(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise CelError(f"unsupported syntax at {text[pos:]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    out.append(("end", ""))
    return out


_MISSING = object()

_BINARY = {
    "||": 1,
    "&&": 2,
    "==": 3,
    "!=": 3,
    "<": 3,
    "<=": 3,
    ">": 3,
    ">=": 3,
    "in": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i]

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.toks[self.i]
        if value is not None and tok[1] != value:
            raise CelError(f"expected {value!r}, found {tok[1] or 'end'!r}")
        self.i += 1
        return tok

    def parse(self) -> Expr:
        expr = self.ternary()
        if self.peek()[0] != "end":
            raise CelError(f"unexpected {self.peek()[1]!r}")
        return expr

    def ternary(self) -> Expr:
        cond = self.binary(1)
        if self.peek()[1] == "?":
            self.take("?")
            a = self.ternary()
            self.take(":")
            b = self.ternary()
            return lambda env: a(env) if _truth(cond(env)) else b(env)
        return cond

    def binary(self, min_prec: int) -> Expr:
        left = self.unary()
        while True:
            op = self.peek()[1]
            prec = _BINARY.get(op)
            if prec is None or prec < min_prec or self.peek()[0] == "str":
                return left
            self.take()
            right = self.binary(prec + 1)
            left = _make_binary(op, left, right)

    def unary(self) -> Expr:
        tok = self.peek()
        if tok[1] == "!":
            self.take()
            inner = self.unary()
            return lambda env: not _truth(inner(env))
        if tok[1] == "-":
            self.take()
            inner = self.unary()
            return lambda env: -inner(env)
        return self.postfix(self.primary())

    def primary(self) -> Expr:
        kind, text = self.take()
        if kind == "num":
            value: Any = float(text) if "." in text else int(text)
            return lambda env: value
        if kind == "str":
            s = bytes(text[1:-1], "utf-8").decode("unicode_escape")
            return lambda env: s
        if text == "(":
            inner = self.ternary()
            self.take(")")
            return inner
        if text == "[":
            items: list[Expr] = []
            while self.peek()[1] != "]":
                items.append(self.ternary())
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("]")
            return lambda env: [e(env) for e in items]
        if kind == "id":
            if text in ("true", "false"):
                b = text == "true"
                return lambda env: b
            if text == "null":
                return lambda env: None
            if text == "has":
                return self.has()
            if self.peek()[1] == "(":
                args = self.args()
                return _function(text, None, args)
            name = text
            return lambda env: _lookup_var(env, name)
        raise CelError(f"unexpected {text or 'end'!r}")

    def has(self) -> Expr:
        self.take("(")
        target = self.postfix(self.primary(), stop_at_last_field=True)
        self.take(")")
        return target

    def args(self) -> list[Expr]:
        self.take("(")
        out: list[Expr] = []
        while self.peek()[1] != ")":
            out.append(self.ternary())
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return out

    def postfix(self, expr: Expr, stop_at_last_field: bool = False) -> Expr:
        while True:
            tok = self.peek()[1]
            if tok == ".":
                self.take(".")
                name = self.take()[1]
                if self.peek()[1] == "(":
                    expr = _function(name, expr, self.args())
                    continue
                if stop_at_last_field and self.peek()[1] == ")":
                    base = expr
                    return lambda env: _has_field(base(env), name)
                expr = _field(expr, name)
            elif tok == "[":
                self.take("[")
                index = self.ternary()
                self.take("]")
                expr = _indexed(expr, index)
            else:
                return expr


def _lookup_var(env: Env, name: str) -> Any:
    if name not in env:
        raise CelError(f"undeclared reference to {name!r}")
    return env[name]


def _has_field(obj: Any, name: str) -> bool:
    if not isinstance(obj, Mapping):
        raise CelError(f"has() applied to a non-object ({name})")
    return name in obj


def _field(base: Expr, name: str) -> Expr:
    def get(env: Env) -> Any:
        obj = base(env)
        if not isinstance(obj, Mapping) or name not in obj:
            raise CelError(f"no such key: {name}")
        return obj[name]

    return get


def _indexed(base: Expr, index: Expr) -> Expr:
    def get(env: Env) -> Any:
        obj, i = base(env), index(env)
        try:
            return obj[i]
        except (KeyError, IndexError, TypeError) as exc:
            raise CelError(f"no such key: {i}") from exc

    return get


def _truth(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CelError("no such overload: expected a bool")
    return value


def _make_binary(op: str, left: Expr, right: Expr) -> Expr:
    if op in ("&&", "||"):
        want = op == "||"

        def logic(env: Env) -> bool:
            # CEL absorbs an error on one side when the other side decides the result.
            err: CelError | None = None
            for side in (left, right):
                try:
                    if _truth(side(env)) == want:
                        return want
                except CelError as exc:
                    err = exc
            if err is not None:
                raise err
            return not want

        return logic

    def arith(env: Env) -> Any:
        a, b = left(env), right(env)
        try:
            if op == "==":
                return a == b
            if op == "!=":
                return a != b
            if op == "in":
                return a in b
            if isinstance(a, bool) or isinstance(b, bool):
                raise CelError(f"no such overload for {op} on bool")
            if op == "<":
                return a < b
            if op == "<=":
                return a <= b
            if op == ">":
                return a > b
            if op == ">=":
                return a >= b
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "/":
                return a // b if isinstance(a, int) and isinstance(b, int) else a / b
            return a % b
        except (TypeError, ZeroDivisionError) as exc:
            raise CelError(f"no such overload for {op}: {exc}") from exc

    return arith


_FUNCTIONS = frozenset({"size", "startsWith", "endsWith", "contains", "matches", "int", "string"})


def _function(name: str, target: Expr | None, args: list[Expr]) -> Expr:
    if name not in _FUNCTIONS:
        raise CelError(f"unsupported function {name}()")

    def call(env: Env) -> Any:
        values = [a(env) for a in args]
        if target is not None:
            values.insert(0, target(env))
        try:
            if name == "size" and len(values) == 1:
                return len(values[0])
            if name == "startsWith":
                return values[0].startswith(values[1])
            if name == "endsWith":
                return values[0].endswith(values[1])
            if name == "contains":
                return values[1] in values[0]
            if name == "matches":
                return re.search(values[1], values[0]) is not None
            if name == "int":
                return int(values[0])
            if name == "string":
                return str(values[0])
        except (TypeError, AttributeError, IndexError) as exc:
            raise CelError(f"no matching overload for {name}") from exc
        raise CelError(f"unsupported function {name}()")

    return call


def compile_rule(rule: str) -> Expr:
    """Compile a rule; evaluating the result with ``{"self": ..., "oldSelf": ...}`` gives its value."""
    return _Parser(rule).parse()


@functools.lru_cache(maxsize=512)
def _compiled(rule: str) -> Expr:
    return compile_rule(rule)


def evaluate(rule: str, env: Env) -> bool:
    """True when ``rule`` holds; CelError when it cannot be compiled or evaluated."""
    return _truth(_compiled(rule)(env))
