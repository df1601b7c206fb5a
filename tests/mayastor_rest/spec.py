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
