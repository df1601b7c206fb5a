"""The ASGI application: routing, content negotiation, and the HTTP face of :class:`~.core.Cluster`."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import trio
import yaml

from couchestor.endpoints import lifespan
from couchestor.labels import Selector, SelectorError, parse_selector
from couchestor.sim.apiserver import discovery, errors as E, openapi, protobuf, table as tables
from couchestor.sim.apiserver.chaos import Chaos
from couchestor.sim.apiserver.core import Cluster, ListResult, WriteOptions
from couchestor.sim.apiserver.errors import ApiError
from couchestor.sim.apiserver.fieldsel import FieldSelector, parse_field_selector
from couchestor.sim.apiserver.http import (
    Request,
    read_body,
    respond,
    respond_error,
    respond_json,
    warning_headers,
)
from couchestor.sim.apiserver.resources import ResourceType
from couchestor.sim.apiserver.store import decode
from couchestor.sim.apiserver.watch import WatchParams, WatchStream, default_timeout, validate_watch_options

log = logging.getLogger(__name__)
JSON = dict[str, Any]
_encode = msgspec.json.Encoder().encode


class ApiServer:
    """The emulated Kubernetes API server: all state, and the ASGI app itself (``await api(scope, ...)``).

    ``history_limit`` bounds the retained change history (a watch or continue token of a resource whose
    changes after its version were dropped gets 410; a resource not changed since is still served);
    ``bookmark_interval`` is the seconds between BOOKMARK events on watches that allow them (kube-apiserver:
    about a minute, plus one about 2 s before the watch's ``timeoutSeconds``; either only once the resource
    was written since the watch began). Tests lower it to see bookmarks quickly.
    """

    def __init__(self, *, history_limit: int = 20_000, bookmark_interval: float = 60.0) -> None:
        self.cluster = Cluster(history_limit)
        self.chaos = Chaos(on_compact=self.cluster.store.compact)
        self.bookmark_interval = bookmark_interval
        self.server_address = "127.0.0.1:0"
        # The PEM of the self-signed certificate when served with TLS (set by ``serve``).
        self.ca_pem: bytes | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        req = Request.from_scope(scope)
        try:
            await self._dispatch(req, receive, send)
        except ApiError as err:
            await respond_error(send, err)
        except Exception as exc:  # a bug must not take the server down; the client sees a 500
            log.exception("internal error serving %s %s", req.method, req.path)
            await respond_error(send, ApiError(500, "InternalError", f"Internal error occurred: {exc}"))

    async def _dispatch(self, req: Request, receive: Any, send: Any) -> None:
        if req.path.startswith("/_sim/"):
            req.body = await read_body(receive)
            await self._admin(req, send)
            return
        fault = self.chaos.take_fault(req.method, req.path, req.flag("watch"))
        if fault is not None:
            if fault.latency > 0:
                await trio.sleep(fault.latency)
            if fault.status:
                await respond_error(send, _fault_error(fault.status, fault.retry_after))
                return
        parts = [p for p in req.path.split("/") if p]
        if req.method == "GET" and await self._discovery(req, parts, send):
            return
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", details={})
        await self._resource(req, group, version, rest, receive, send)

    # -- discovery ---------------------------------------------------------------------------------------

    async def _discovery(self, req: Request, parts: list[str], send: Any) -> bool:
        registry = self.cluster.registry
        doc: Any = None
        if parts in ([], ["healthz"], ["livez"], ["readyz"]):
            if not parts:
                doc = {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]}
            else:
                await respond(send, 200, b"ok", content_type="text/plain")
                return True
        elif parts == ["version"]:
            doc = discovery.VERSION_INFO
        elif parts == ["api"]:
            doc = discovery.api_versions(self.server_address)
        elif parts == ["api", "v1"]:
            doc = discovery.resource_list(registry, "", "v1")
        elif parts == ["apis"]:
            doc = discovery.group_list(registry)
        elif len(parts) == 2 and parts[0] == "apis":
            doc = discovery.group(registry, parts[1])
            if doc is None:
                raise ApiError(
                    404, "NotFound", "the server could not find the requested resource", details={}
                )
        elif len(parts) == 3 and parts[0] == "apis":
            doc = discovery.resource_list(registry, parts[1], parts[2])
            if doc is None:
                raise ApiError(
                    404, "NotFound", "the server could not find the requested resource", details={}
                )
        elif parts == ["openapi", "v2"]:
            accept = req.headers.get("accept", "")
            if "protobuf" in accept and not any(t in accept for t in ("json", "*/*")):
                raise ApiError(
                    406,
                    "NotAcceptable",
                    "only application/json is served for /openapi/v2; use /openapi/v3",
                    details={},
                )
            doc = openapi.swagger(registry)
        elif parts == ["openapi", "v3"]:
            doc = openapi.index(registry)
        elif parts[:2] == ["openapi", "v3"] and len(parts) in (4, 5):
            gv = parts[2:]
            doc = (
                openapi.group_version_doc(registry, "", gv[1])
                if gv[0] == "api" and len(gv) == 2
                else openapi.group_version_doc(registry, gv[1], gv[2])
                if len(gv) == 3
                else None
            )
            if doc is None:
                raise ApiError(
                    404, "NotFound", "the server could not find the requested resource", details={}
                )
        elif parts and parts[0] == "openapi":
            raise ApiError(404, "NotFound", "the server could not find the requested resource", details={})
        else:
            return False
        await respond_json(send, 200, doc)
        return True

    # -- admin (chaos knobs) -----------------------------------------------------------------------------

    async def _admin(self, req: Request, send: Any) -> None:
        action = req.path[len("/_sim/") :].strip("/")
        if req.method == "POST" and action == "drop-watches":
            self.chaos.drop_watches()
        elif req.method == "POST" and action == "reset-watches":
            self.chaos.reset_watches()
        elif req.method == "POST" and action == "freeze-watches":
            self.chaos.freeze_watches()
        elif req.method == "POST" and action == "compact":
            self.chaos.compact()
        elif req.method == "POST" and action == "gone-next-watch":
            self.chaos.gone_on_next_watch()
        elif req.method == "POST" and action == "history":
            limit = _json_object(req, "history").get("limit")
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise E.bad_request('history body must be {"limit": N} with N >= 1')
            self.cluster.store.history_limit = limit
        elif req.method == "POST" and action == "faults":
            spec = _json_object(req, "fault")
            names = {
                "status": "status",
                "retryAfter": "retry_after",
                "retry_after": "retry_after",
                "latency": "latency",
                "method": "method",
                "pathRegex": "path_regex",
                "path_regex": "path_regex",
                "watch": "watch",
                "count": "count",
            }
            unknown = [k for k in spec if k not in names]
            if unknown:
                raise E.bad_request(f"unknown fault fields: {', '.join(unknown)}")
            try:
                self.chaos.add_fault(**{names[k]: v for k, v in spec.items()})
            except (TypeError, ValueError) as exc:
                raise E.bad_request(f"bad fault: {exc}") from exc
        elif req.method == "DELETE" and action == "faults":
            self.chaos.clear()
        elif req.method == "GET" and action == "state":
            store = self.cluster.store
            await respond_json(
                send,
                200,
                {
                    "resourceVersion": store.rv,
                    "compactedResourceVersion": store.compacted_rv,
                    "historyLimit": store.history_limit,
                    "watches": len(store.watchers()),
                },
            )
            return
        else:
            raise ApiError(404, "NotFound", f"no such emulator control: {req.method} {req.path}", details={})
        await respond_json(send, 200, {"ok": True})

    # -- resources ---------------------------------------------------------------------------------------

    def _route(self, group: str, version: str, rest: list[str]) -> tuple[ResourceType, str | None, str, str]:
        """(type, namespace or None, name, subresource) of a resource path below the group/version."""
        registry = self.cluster.registry
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = registry.get(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", details={})
        rt = registry.get(group, version, rest[0])
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", details={})
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if (
            sub
            and not (sub == "status" and rt.status_subresource)
            and not (sub == "finalize" and rt.plural == "namespaces")
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", details={})
        return rt, namespace, name, sub

    async def _resource(
        self, req: Request, group: str, version: str, rest: list[str], receive: Any, send: Any
    ) -> None:
        rt, namespace, name, sub = self._route(group, version, rest)
        if (
            rt.namespaced
            and namespace is None
            and req.method not in ("GET",)
            and not (req.method == "DELETE" and not name)
        ):
            raise E.method_not_allowed()
        ns = namespace or ""
        cluster = self.cluster
        cluster.warnings = req.warnings
        method = req.method
        if method == "GET":
            if req.flag("watch"):
                await self._watch(req, rt, namespace, name, receive, send)
                return
            if name:
                rec = cluster.get(rt, ns, name)
                if req.wants_table():
                    obj = decode(cluster.serve_raw(rt, rec))
                    doc = tables.table(
                        rt, [obj], req.query.get("includeObject", ""), {"resourceVersion": str(rec.rv)}
                    )
                    await respond_json(send, 200, doc)
                else:
                    await respond(send, 200, cluster.serve_raw(rt, rec))
                return
            await self._list(req, rt, namespace, send)
            return
        req.body = await read_body(receive)
        opts = WriteOptions(
            dry_run=req.query.get("dryRun") == "All",
            field_validation=req.query.get("fieldValidation", ""),
            field_manager=req.query.get("fieldManager", ""),
            force=req.flag("force"),
        )
        if req.query.get("dryRun") not in (None, "", "All"):
            raise E.bad_request(f"dryRun: Unsupported value: {req.query['dryRun']!r}")
        if method == "POST":
            if name:
                raise E.method_not_allowed()
            obj = cluster.create(rt, ns, self._body(req), opts)
            await respond_json(send, 201, obj, warning_headers(req.warnings))
        elif method == "PUT":
            if not name:
                raise E.method_not_allowed()
            if sub == "finalize":
                sub = ""
            obj, created = cluster.update(rt, ns, name, self._body(req), subresource=sub, opts=opts)
            await respond_json(send, 201 if created else 200, obj, warning_headers(req.warnings))
        elif method == "PATCH":
            if not name:
                raise E.method_not_allowed()
            obj, created = cluster.patch(rt, ns, name, req.content_type, req.body, subresource=sub, opts=opts)
            await respond_json(send, 201 if created else 200, obj, warning_headers(req.warnings))
        elif method == "DELETE":
            options = self._delete_options(req)
            if not name:
                labels, fields = self._selectors(req, rt)
                cluster.delete_collection(rt, namespace, labels, fields, options)
                await respond_json(
                    send, 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
                )
                return
            obj, gone = cluster.delete(rt, ns, name, options, dry_run=opts.dry_run)
            if gone and not rt.return_deleted_object:
                details: JSON = {"name": name, "kind": rt.plural, "uid": obj["metadata"].get("uid", "")}
                if rt.group:
                    details = {
                        "name": name,
                        "group": rt.group,
                        "kind": rt.plural,
                        "uid": obj["metadata"].get("uid", ""),
                    }
                await respond_json(
                    send,
                    200,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": details,
                    },
                )
            else:
                await respond_json(send, 200, obj)
        else:
            raise E.method_not_allowed()

    def _body(self, req: Request) -> Any:
        ctype = req.content_type
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
            try:
                return yaml.safe_load(req.body.decode())
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise E.bad_request(f"error decoding YAML: {exc}") from exc
        if ctype == protobuf.MEDIA_TYPE:
            return protobuf.decode_object(req.body)
        if ctype and ctype != "application/json" and not ctype.endswith("+json"):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json, application/yaml, application/vnd.kubernetes.protobuf",
            )
        try:
            return decode(req.body)
        except msgspec.DecodeError as exc:
            raise E.bad_request(f"error decoding request body: {exc}") from exc

    def _delete_options(self, req: Request) -> JSON:
        options: JSON = {}
        if req.body.strip():
            try:
                decoded = decode(req.body)
            except msgspec.DecodeError as exc:
                raise E.bad_request(f"error decoding DeleteOptions: {exc}") from exc
            if isinstance(decoded, dict):
                options = decoded
        if "propagationPolicy" in req.query:
            options["propagationPolicy"] = req.query["propagationPolicy"]
        policy = options.get("propagationPolicy")
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise E.invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                [
                    E.FieldError(
                        "propagationPolicy",
                        "FieldValueNotSupported",
                        'supported values: "Foreground", "Background", "Orphan", "nil"',
                        policy,
                    )
                ],
            )
        return options

    def _selectors(self, req: Request, rt: ResourceType) -> tuple[Selector, FieldSelector]:
        try:
            labels = parse_selector(req.query.get("labelSelector", ""))
        except SelectorError as exc:
            raise E.bad_request(f"unable to parse requirement: {exc}") from exc
        fields = parse_field_selector(req.query.get("fieldSelector", ""), rt.selectable_fields)
        return labels, fields

    async def _list(self, req: Request, rt: ResourceType, namespace: str | None, send: Any) -> None:
        labels, fields = self._selectors(req, rt)
        try:
            limit = int(req.query.get("limit", "0") or 0)
        except ValueError:
            raise E.bad_request(f"invalid limit: {req.query['limit']}") from None
        result = self.cluster.list(
            rt,
            namespace,
            labels=labels,
            fields=fields,
            limit=max(limit, 0),
            continue_token=req.query.get("continue", ""),
            resource_version=req.query.get("resourceVersion", ""),
            resource_version_match=req.query.get("resourceVersionMatch", ""),
        )
        meta = _list_meta(result)
        if req.wants_table():
            objs = [decode(self.cluster.serve_raw(rt, r)) for r in result.records]
            await respond_json(send, 200, tables.table(rt, objs, req.query.get("includeObject", ""), meta))
            return
        head = (
            b'{"kind":"'
            + rt.list_kind.encode()
            + b'","apiVersion":"'
            + rt.api_version.encode()
            + b'","metadata":'
            + _encode(meta)
            + b',"items":['
        )
        body = head + b",".join(self.cluster.list_item(rt, r) for r in result.records) + b"]}"
        await respond(send, 200, body)

    async def _watch(
        self, req: Request, rt: ResourceType, namespace: str | None, name: str, receive: Any, send: Any
    ) -> None:
        labels, fields = self._selectors(req, rt)
        if name:
            fields = (*fields, *parse_field_selector(f"metadata.name={name}", ()))
        send_initial_text = req.query.get("sendInitialEvents")
        validate_watch_options(
            req.query.get("resourceVersionMatch", ""), send_initial_text, req.query.get("resourceVersion", "")
        )
        try:
            timeout = (
                float(req.query["timeoutSeconds"]) if req.query.get("timeoutSeconds") else default_timeout()
            )
        except ValueError:
            raise E.bad_request(f"invalid timeoutSeconds: {req.query['timeoutSeconds']}") from None
        params = WatchParams(
            namespace=namespace if rt.namespaced else None,
            labels=labels,
            fields=fields,
            resource_version=req.query.get("resourceVersion", ""),
            bookmarks=req.flag("allowWatchBookmarks"),
            timeout=timeout,
            send_initial=None if send_initial_text is None else send_initial_text.lower() == "true",
            table=req.wants_table(),
            include_object=req.query.get("includeObject", ""),
        )
        await WatchStream(self.cluster, self.chaos, rt, params, self.bookmark_interval).run(send, receive)


def _list_meta(result: ListResult) -> JSON:
    meta: JSON = {"resourceVersion": str(result.rv)}
    if result.continue_token:
        meta["continue"] = result.continue_token
    if result.remaining is not None:
        meta["remainingItemCount"] = result.remaining
    return meta


def _fault_error(status: int, retry_after: int | None) -> ApiError:
    reasons = {
        429: ("TooManyRequests", "Too many requests, please try again later."),
        500: ("InternalError", "Internal error occurred: injected fault"),
        503: ("ServiceUnavailable", "The server is currently unable to handle the request"),
        504: ("Timeout", "The server was unable to return a response in the time allotted"),
    }
    reason, message = reasons.get(status, ("InternalError", f"injected fault {status}"))
    details: JSON | None = {"retryAfterSeconds": retry_after} if retry_after is not None else None
    return ApiError(status, reason, message, details=details, retry_after=retry_after)


def _json_object(req: Request, what: str) -> dict[str, Any]:
    """The body of a knob request: a JSON object (none: empty). Raises a 400 ApiError otherwise."""
    try:
        spec = decode(req.body or b"{}")
    except msgspec.DecodeError as exc:
        raise E.bad_request(f"{what} body is not JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise E.bad_request(f"{what} body must be a JSON object")
    return spec
