"""Mayastor's published OpenAPI documents as a test oracle: route lookup, request and response validation.

The documents in ``specs/`` are validated with ``openapi-schema-validator`` (OpenAPI 3.0 schema dialect:
``nullable``, ``format: uuid``/``int64``...). Two quirks of the documents are corrected on load, and
:attr:`Spec.quirks` lists them so a test pins them: a ``required`` name that the schema does not declare as a
property (the server never sends it; ``VolumeSpec`` lists ``num_paths`` and ``protocol``) is dropped.

Pool cordon is in neither document. :data:`POOL_CORDON` describes it as the control plane implements it
(OEP 3903): ``PUT``/``DELETE /v0/pools/{pool_id}/cordon`` with a ``PoolCordonReq`` body, answering a ``Pool``;
:class:`Spec` validates calls to it against that description when ``pool_cordon`` is set.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPECS = Path(__file__).parent / "specs"
#: Spec version -> file; "2.7" is release/2.7, "develop" the October 2024 develop branch.
FILES = {"2.7": "v0_api_spec.release-2.7.yaml", "develop": "v0_api_spec.develop-2024-10.yaml"}
#: The simulator's release each spec version is held against.
RELEASE_OF = {"2.7": "2.7", "develop": "2.8+"}
_URN = "urn:mayastor-v0"

POOL_CORDON_REQ = {
    "type": "object",
    "properties": {
        "replicas": {"type": "boolean"},
        "snapshots": {"type": "boolean"},
        "restores": {"type": "boolean"},
        "import": {"type": "boolean"},
    },
    "additionalProperties": False,
}
_POOL_CORDON_OP = {
    "parameters": [{"in": "path", "name": "pool_id", "required": True, "schema": {"type": "string"}}],
    "requestBody": {"content": {"application/json": {"schema": POOL_CORDON_REQ}}},
    "responses": {
        "200": {"content": {"application/json": {"schema": {"$ref": f"{_URN}#/components/schemas/Pool"}}}},
        "4XX": {"$ref": f"{_URN}#/components/responses/ClientError"},
        "5XX": {"$ref": f"{_URN}#/components/responses/ServerError"},
    },
}
#: The pool cordon route, described as implemented upstream (it is absent from both documents).
POOL_CORDON = {"/pools/{pool_id}/cordon": {"put": _POOL_CORDON_OP, "delete": _POOL_CORDON_OP}}
#: Where a release with pool cordon reports it: ``PoolSpec.cordon_drain``, its ``cordoned`` variant.
POOL_CORDON_DRAIN = {
    "type": "object",
    "properties": {
        "cordoned": {**POOL_CORDON_REQ, "required": ["replicas", "snapshots", "restores", "import"]}
    },
    "additionalProperties": False,
}


@dataclass
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    operation: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.method.upper()} /v0{self.template}"


@dataclass
class Spec:
    version: str
    doc: dict[str, Any]
    pool_cordon: bool = False
    quirks: list[str] = field(default_factory=list)
    #: Routes the release played does not have (requests are still held to their description): the only
    #: right answer is the server's bare 404 for an unknown route.
    absent: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.registry: Registry[Any] = Registry().with_resource(
            _URN, Resource.from_contents(self.doc, default_specification=DRAFT4)
        )
        paths = dict(self.doc["paths"])
        if self.pool_cordon:
            paths.update(POOL_CORDON)
        self.routes: list[Route] = []
        for template, item in paths.items():
            regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            for method, op in item.items():
                if method in ("get", "put", "post", "delete", "patch"):
                    self.routes.append(Route(method, template, re.compile(regex + "$"), op))
        # A literal segment wins over a parameter (``/volumes/snapshots`` before ``/volumes/{volume_id}``).
        self.routes.sort(key=lambda r: r.template.count("{"))

    def schema(self, name: str) -> dict[str, Any]:
        return {"$ref": f"{_URN}#/components/schemas/{name}"}

    def errors(self, instance: Any, schema: dict[str, Any]) -> list[str]:
        validator = OAS30Validator(schema, registry=self.registry, format_checker=oas30_format_checker)
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(instance)
        ]

    def route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The operation serving ``method path`` (``path`` with its ``/v0`` prefix), and its path parameters."""
        if not path.startswith("/v0/"):
            return None
        rest = path[3:]
        for route in self.routes:
            if route.method == method.lower():
                match = route.pattern.match(rest)
                if match:
                    return route, {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
        return None

    def check_request(self, method: str, url: httpx.URL, body: bytes) -> list[str]:
        found = self.route(method, url.path)
        if found is None:
            return [f"{method} {url.path}: no such operation in the {self.version} spec"]
        route, path_params = found
        problems: list[str] = []
        params = {(p["in"], p["name"]): p for p in map(self._deref, route.operation.get("parameters", []))}
        query = dict(url.params.multi_items())
        for (where, name), param in params.items():
            value = (
                path_params.get(name) if where == "path" else query.get(name) if where == "query" else None
            )
            if value is None:
                if param.get("required"):
                    problems.append(f"{route.key}: required {where} parameter {name} missing")
                continue
            problems += [
                f"{route.key} {where} {name}: {e}" for e in self.errors(_typed(value, param), param["schema"])
            ]
        for name in query:
            if ("query", name) not in params:
                problems.append(f"{route.key}: undeclared query parameter {name}")
        declared = route.operation.get("requestBody")
        if declared is None:
            if body:
                problems.append(f"{route.key}: a body where the operation takes none")
        elif body:
            schema = declared["content"]["application/json"]["schema"]
            problems += [f"{route.key} body: {e}" for e in self.errors(json.loads(body), schema)]
        elif declared.get("required"):
            problems.append(f"{route.key}: request body required")
        return problems

    def check_response(self, method: str, path: str, status: int, body: bytes) -> list[str]:
        found = self.route(method, path)
        if found is None:
            return [f"{method} {path}: no such operation in the {self.version} spec"]
        route = found[0]
        if route.template in self.absent:
            return (
                []
                if (status, body) == (404, b"")
                else [f"{route.key}: absent, answered {status} {body[:80]!r}"]
            )
        responses = route.operation["responses"]
        declared = (
            responses.get(str(status)) or responses.get(f"{status // 100}XX") or responses.get("default")
        )
        if declared is None:
            return [f"{route.key}: status {status} is not declared"]
        declared = self._deref(declared)
        content = declared.get("content")
        if content is None:
            return [f"{route.key} {status}: a body where none is declared"] if body else []
        try:
            instance = json.loads(body)
        except ValueError:
            return [f"{route.key} {status}: not JSON: {body[:100]!r}"]
        schema = content["application/json"]["schema"]
        return [f"{route.key} {status}: {e}" for e in self.errors(instance, schema)]

    def _deref(self, obj: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in obj:
            obj = self.registry.resolver().lookup(obj["$ref"]).contents
        return obj


def _typed(value: str, param: dict[str, Any]) -> Any:
    """A path or query parameter's text as the JSON value its schema types (so ``minimum`` etc. apply)."""
    kind = param["schema"].get("type")
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            return value
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    return value


def _absolute_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (f"{_URN}{v}" if k == "$ref" and v.startswith("#") else _absolute_refs(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_absolute_refs(v) for v in node]
    return node


def _drop_undeclared_required(node: Any, where: str, quirks: list[str]) -> None:
    if isinstance(node, dict):
        props, required = node.get("properties"), node.get("required")
        if isinstance(props, dict) and isinstance(required, list):
            missing = [r for r in required if r not in props]
            if missing:
                quirks.append(f"{where}: required but undeclared {', '.join(missing)}")
                node["required"] = [r for r in required if r in props]
        for key, value in node.items():
            _drop_undeclared_required(value, f"{where}/{key}", quirks)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _drop_undeclared_required(value, f"{where}/{i}", quirks)


@functools.cache
def _raw(version: str) -> dict[str, Any]:
    with open(SPECS / FILES[version]) as f:
        loaded: dict[str, Any] = yaml.safe_load(f)
    return loaded


def _closed(node: Any) -> None:
    """Declare every object schema closed (no properties beyond those it names)."""
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _closed(value)
    elif isinstance(node, list):
        for value in node:
            _closed(value)


def load(version: str, *, pool_cordon: bool = False, closed: bool = False) -> Spec:
    """The spec ``version``; ``closed``: objects may carry only the properties their schema declares (what the
    simulator sends must be in the document, though the real server's answers may grow new fields)."""
    doc = _absolute_refs(copy.deepcopy(_raw(version)))
    if pool_cordon:
        doc["components"]["schemas"]["PoolSpec"]["properties"]["cordon_drain"] = copy.deepcopy(
            POOL_CORDON_DRAIN
        )
    quirks: list[str] = []
    _drop_undeclared_required(doc["components"]["schemas"], "#/components/schemas", quirks)
    if closed:
        _closed(doc["components"]["schemas"])
    return Spec(version, doc, pool_cordon=pool_cordon, quirks=quirks)


class SpecTransport(httpx.AsyncBaseTransport):
    """An HTTP transport that checks every request and answer against ``spec`` on its way through.

    Problems are collected in :attr:`problems` (a test asserts it empty), never raised, so a check cannot change
    what the code under test sees. :attr:`seen` holds ``(route key, status)`` of every exchange.
    """

    def __init__(self, spec: Spec, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.spec = spec
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.problems: list[str] = []
        self.seen: list[tuple[str, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.problems += self.spec.check_request(request.method, request.url, body)
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        await response.aclose()
        self.problems += self.spec.check_response(
            request.method, request.url.path, response.status_code, content
        )
        found = self.spec.route(request.method, request.url.path)
        self.seen.append(
            (found[0].key if found else f"{request.method} {request.url.path}", response.status_code)
        )
        return httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def instances(spec: Spec, name: str, *, variants: int = 6) -> list[Any]:
    """Instances of the component schema ``name``, generated from the document: for each ``k`` below
    ``variants``, one with every property and one with the required ones only; ``k`` picks the enum value,
    ``oneOf`` branch, number and null-or-not at each choice point, so together they visit every enum value of a
    small enum. Each is validated by the caller (the generator is not trusted blindly)."""
    seen: dict[str, Any] = {}
    for k in range(variants):
        for full in (True, False):
            value = _gen(spec, spec.schema(name), full, k, 0)
            seen.setdefault(json.dumps(value, sort_keys=True), value)
    return list(seen.values())


def _gen(spec: Spec, schema: dict[str, Any], full: bool, k: int, depth: int) -> Any:
    schema = spec._deref(schema)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = _gen(spec, part, full, k, depth)
            if not isinstance(value, dict):
                return value
            merged.update(value)
        return merged
    if "enum" in schema:
        return schema["enum"][k % len(schema["enum"])]
    if schema.get("nullable") and k % 4 == 3:
        return None
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "object":
        return _gen_object(spec, schema, full, k, depth)
    if kind == "array":
        return [_gen(spec, schema["items"], full, k, depth + 1)] if full and depth < 8 else []
    if kind == "integer":
        lo = schema.get("minimum", 0)
        hi = schema.get("maximum", lo + 1000)
        return lo + (k * 37) % (hi - lo + 1)
    if kind == "number":
        return 1.5 + k
    if kind == "boolean":
        return k % 2 == 0
    if schema.get("format") == "uuid":
        return f"00000000-0000-4000-8000-{k:012d}"
    return f"s{k}"


def _gen_object(spec: Spec, schema: dict[str, Any], full: bool, k: int, depth: int) -> dict[str, Any]:
    props: dict[str, Any] = schema.get("properties", {})
    required = list(schema.get("required", []))
    excluded: set[str] = set()
    branches = schema.get("oneOf")
    if branches:  # ``oneOf: [{required: [a]}, {required: [b]}]``: exactly one of them
        chosen = branches[k % len(branches)]
        names = {n for b in branches for n in b.get("required", [])}
        required += chosen.get("required", [])
        excluded = names - set(chosen.get("required", []))
    wanted = [n for n in props if n not in excluded and (n in required or (full and depth < 8))]
    minimum = schema.get("minProperties", 0)
    for name in props:
        if len(wanted) >= minimum:
            break
        if name not in wanted and name not in excluded:
            wanted.append(name)
    out = {n: _gen(spec, props[n], full, k + i, depth + 1) for i, n in enumerate(wanted)}
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and full and not props:
        out[f"key-{k}"] = _gen(spec, extra, full, k, depth + 1)
    return out
