"""OpenAPI v3 documents (``/openapi/v3`` and one per group-version), enough for kubectl.

kubectl reads them to learn that the server validates fields itself (a ``fieldValidation`` query parameter
on each PATCH operation), and ``kubectl explain`` reads the schemas. Custom resources carry their CRD schema;
built-in kinds get a skeleton. PATCH operations deliberately do not list the strategic-merge media type, so
``kubectl apply`` computes strategic merge patches for built-ins from its compiled-in types instead of from
these skeleton schemas.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from couchestor.sim.apiserver.resources import Registry, ResourceType

JSON = dict[str, Any]

_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
_QUERY = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(rt: ResourceType) -> str:
    if not rt.group:
        return f"io.k8s.api.core.{rt.version}.{rt.kind}"
    parts = rt.group.split(".")
    if "." not in rt.group:  # apps, policy, batch: built-in groups without a domain
        return f"io.k8s.api.{rt.group}.{rt.version}.{rt.kind}"
    if rt.group.endswith(".k8s.io"):
        return f"io.k8s.api.{parts[0]}.{rt.version}.{rt.kind}"
    return ".".join(reversed(parts)) + f".{rt.version}.{rt.kind}"


def _gvk(rt: ResourceType) -> JSON:
    return {"group": rt.group, "kind": rt.kind, "version": rt.version}


def _object_schema(rt: ResourceType) -> JSON:
    if rt.schema is not None:
        schema = dict(rt.schema)
    else:
        schema = {
            "type": "object",
            "description": f"{rt.kind} ({rt.api_version}).",
            "properties": {
                "apiVersion": {"type": "string", "description": "APIVersion of this representation."},
                "kind": {"type": "string", "description": "Kind of this object."},
                "metadata": {"type": "object", "description": "Standard object metadata."},
                "spec": {"type": "object", "description": "Desired state."},
                "status": {"type": "object", "description": "Observed state."},
            },
        }
    schema["x-kubernetes-group-version-kind"] = [_gvk(rt)]
    return schema


def group_version_doc(registry: Registry, group: str, version: str) -> JSON | None:
    types = registry.in_version(group, version)
    if not types:
        return None
    paths: JSON = {}
    schemas: JSON = {}
    for rt in types:
        name = _schema_name(rt)
        schemas[name] = _object_schema(rt)
        ref = {"$ref": f"#/components/schemas/{name}"}
        base = "/" + _gv_path(group, version)
        item = (
            f"{base}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
            if rt.namespaced
            else f"{base}/{rt.plural}/{{name}}"
        )
        params = [
            {"name": q, "in": "query", "schema": {"type": "string", "uniqueItems": True}} for q in _QUERY
        ]
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        paths[item] = {
            "get": {
                "operationId": f"read{rt.kind}",
                "responses": ok,
                "x-kubernetes-action": "get",
                "x-kubernetes-group-version-kind": _gvk(rt),
            },
            "put": {
                "operationId": f"replace{rt.kind}",
                "parameters": params,
                "requestBody": {"content": {"application/json": {"schema": ref}}},
                "responses": ok,
                "x-kubernetes-action": "put",
                "x-kubernetes-group-version-kind": _gvk(rt),
            },
            "patch": {
                "operationId": f"patch{rt.kind}",
                "parameters": params,
                "requestBody": {"content": {t: {"schema": {"type": "object"}} for t in _PATCH_TYPES}},
                "responses": ok,
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": _gvk(rt),
            },
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def index(registry: Registry) -> JSON:
    """``/openapi/v3``: every group-version with a content-hash URL (clients cache by it)."""
    gvs = [("", "v1")] + [(g, v) for g, versions in sorted(registry.groups().items()) for v in versions]
    paths: JSON = {}
    for g, v in gvs:
        doc = group_version_doc(registry, g, v)
        if doc is None:
            continue
        digest = hashlib.sha512(msgspec.json.encode(doc)).hexdigest().upper()[:128]
        paths[_gv_path(g, v)] = {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash={digest}"}
    return {"paths": paths}


def swagger(registry: Registry) -> JSON:
    """``/openapi/v2`` as JSON (Swagger 2.0): every served kind's schema under ``definitions`` and its item
    path's get/put/patch operations. Clients that accept only the protobuf form get 406 from the caller;
    kubectl 1.27+ reads ``/openapi/v3`` instead."""
    gvs = [("", "v1")] + [(g, v) for g, versions in sorted(registry.groups().items()) for v in versions]
    definitions: JSON = {}
    paths: JSON = {}
    params = [{"name": q, "in": "query", "type": "string", "uniqueItems": True} for q in _QUERY]
    for g, v in gvs:
        for rt in registry.in_version(g, v):
            name = _schema_name(rt)
            definitions[name] = _object_schema(rt)
            ok = {"200": {"description": "OK", "schema": {"$ref": f"#/definitions/{name}"}}}
            body = {
                "name": "body",
                "in": "body",
                "required": True,
                "schema": {"$ref": f"#/definitions/{name}"},
            }
            patch_body = dict(body, schema={"type": "object"})
            base = "/" + _gv_path(g, v)
            item = (
                f"{base}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
                if rt.namespaced
                else f"{base}/{rt.plural}/{{name}}"
            )
            common = {"produces": ["application/json", "application/yaml"], "responses": ok}
            paths[item] = {
                "get": dict(common, operationId=f"read{rt.kind}", **_v2_extensions(rt, "get")),
                "put": dict(
                    common,
                    operationId=f"replace{rt.kind}",
                    consumes=["*/*"],
                    parameters=[body, *params],
                    **_v2_extensions(rt, "put"),
                ),
                "patch": dict(
                    common,
                    operationId=f"patch{rt.kind}",
                    consumes=list(_PATCH_TYPES),
                    parameters=[patch_body, *params],
                    **_v2_extensions(rt, "patch"),
                ),
            }
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "definitions": definitions,
    }


def _v2_extensions(rt: ResourceType, action: str) -> JSON:
    return {"x-kubernetes-action": action, "x-kubernetes-group-version-kind": _gvk(rt)}
