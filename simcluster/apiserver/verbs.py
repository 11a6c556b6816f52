"""The REST verbs on a resource request: server-side dry run, the reviews (create only), watch,
list (JSON or Table, paginated), get (pod logs apart), create (TokenRequest apart), update,
patch, delete and deletecollection, each answered as kube-apiserver answers it. The store's
rules are `rest.py`'s; this module turns a request into a call of them and a response."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from simcluster.apiserver import (
    authentication,
    authorization,
    bodies,
    listing,
    podlogs,
    rest,
    tables,
    watchstream,
)
from simcluster.apiserver.kinds import CREATE_ONLY, Kind
from simcluster.apiserver.responses import RequestRecord, send, send_bytes
from simcluster.apiserver.store import (
    DRY_RUN,
    StoreError,
    parse_field_selector,
    parse_label_selector,
)
from simcluster.apiserver.targets import Target

if TYPE_CHECKING:
    from simcluster.apiserver.server import Handler


@dataclass(frozen=True)
class Call:
    """A resource request as the verbs answer it: its verb, what it names, its query and body,
    and an injected fault's `cut` (a watch ends after so many events)."""

    verb: str
    target: Target
    query: dict[str, str]
    body: bytes
    cut: int | None = None


def serve_resource(handler: Handler, record: RequestRecord, call: Call) -> None:
    verb, query, body = call.verb, call.query, call.body
    if verb == "delete" and body and (options := _decoded(handler, body)).get("dryRun"):
        query = {**query, "dryRun": ",".join(options.pop("dryRun"))}
        body = json.dumps(options).encode()  # kubectl delete says dryRun in DeleteOptions
    if "dryRun" in query and verb in ("create", "update", "patch", "delete"):
        if query["dryRun"] != "All":
            raise StoreError(
                400,
                "BadRequest",
                f'dryRun: Unsupported value: "{query["dryRun"]}": supported values: "All"',
            )
        token = DRY_RUN.set(True)  # answered as if written; the store keeps nothing
        try:
            query = {k: v for k, v in query.items() if k != "dryRun"}
            serve_resource(handler, record, replace(call, query=query, body=body))
        finally:
            DRY_RUN.reset(token)
        return
    if call.target.kind.resource in CREATE_ONLY:
        _review(handler, record, call)
    elif verb in ("watch", "list", "get"):
        _read(handler, record, call)
    else:
        _write(handler, record, call)


def _review(handler: Handler, record: RequestRecord, call: Call) -> None:
    """The reviews, which are only ever created: who am I, may I, what may I."""
    sim, user, body = handler.server.sim, handler.current_user, call.body
    resource = call.target.kind.resource
    if call.verb != "create" or call.target.name:
        raise StoreError(405, "MethodNotAllowed", "the server does not allow this method")
    if resource == "selfsubjectreviews":
        send(handler, record, 201, authentication.who_am_i(user))
    elif resource == "selfsubjectrulesreviews":
        send(handler, record, 201, authorization.rules_review(sim, user, _decoded(handler, body)))
    else:
        send(handler, record, 201, authorization.access_review(sim, user, _decoded(handler, body)))


def _read(handler: Handler, record: RequestRecord, call: Call) -> None:
    sim, target, query = handler.server.sim, call.target, call.query
    kind, ns, name = target.kind, target.namespace, target.name
    if call.verb == "watch":
        if target.watch_path and name:
            query = {**query, "fieldSelector": f"metadata.name={name}"}
        listing.check_watch(sim, query)
        watchstream.serve_watch(
            sim,
            handler,
            record,
            resource=kind.resource,
            namespace=ns,
            query=query,
            cut=call.cut,
            render=_table_renderer(kind, query) if _wants_table(handler) else None,
        )
    elif call.verb == "list":
        _list(handler, record, kind, ns, query)
    elif target.subresource == "log":
        podlogs.serve_log(
            sim, handler, record, kind=kind, namespace=ns, name=name or "", query=query
        )
    else:
        obj = sim.store.get(kind.resource, name or "", ns)
        if obj is None:
            raise rest.not_found(kind, name or "")
        if _wants_table(handler):
            send(handler, record, 200, _table(kind, obj, query))
        else:
            send(handler, record, 200, obj)


def _write(handler: Handler, record: RequestRecord, call: Call) -> None:
    sim, verb, target = handler.server.sim, call.verb, call.target
    query, body = call.query, call.body
    kind, ns, name, sub = target.kind, target.namespace, target.name, target.subresource
    if verb == "create" and sub == "token" and name:
        token = authentication.token_request(
            sim,
            kind,
            namespace=ns or "default",
            name=name,
            body=body,
            content_type=handler.headers.get("Content-Type") or "",
        )
        send(handler, record, 201, token)
    elif verb == "create" and not name:
        obj = _decoded(handler, body)
        bodies.check_fields(kind, obj, query)
        created = rest.create(sim, kind, obj, ns, manager=_manager(handler, query))
        send(handler, record, 201, created)
    elif verb == "update" and name:
        obj = _decoded(handler, body)
        bodies.check_fields(kind, obj, query)
        updated = rest.update(
            sim, kind, name, ns, obj, subresource=sub, manager=_manager(handler, query)
        )
        send(handler, record, 200, updated)
    elif verb == "patch" and name:
        content_type = handler.headers.get("Content-Type") or ""
        patched, applied_new = rest.patch(
            sim,
            kind,
            name,
            ns,
            body,
            content_type,
            subresource=sub,
            manager=query.get("fieldManager")
            or ("" if "apply" in content_type else _manager(handler, query)),
            force=query.get("force") in ("true", "1"),
        )
        send(handler, record, 201 if applied_new else 200, patched)
    elif verb == "delete" and name and not sub:
        options = _delete_options(handler, query, body)
        send(handler, record, 200, rest.delete(sim, kind, name, ns, options))
    elif verb == "deletecollection":
        _delete_collection(handler, record, kind, ns, query, body)
    else:
        raise StoreError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )


def _list(
    handler: Handler, record: RequestRecord, kind: Kind, ns: str | None, query: dict[str, str]
) -> None:
    sim = handler.server.sim
    resource = kind.resource
    labels = parse_label_selector(query.get("labelSelector", ""))
    fields = parse_field_selector(query.get("fieldSelector", ""))
    limit = listing.list_limit(query)
    token = query.get("continue")
    if token:
        items, rv, remaining = sim.continues.resume(token, limit)
    else:
        items, rv = sim.store.raw_items(
            resource,
            ns,
            lambda o: labels((o.get("metadata") or {}).get("labels") or {}) and fields(o),
        )
        items, remaining = sim.continues.start(
            listing.list_items(sim, resource, ns, query, items), rv, limit
        )
    meta = {"resourceVersion": str(rv)}
    if remaining:
        meta["continue"] = remaining
    if _wants_table(handler):
        table = tables.table(
            resource,
            [json.loads(i) for i in items],
            resource_version=str(rv),
            include_object=query.get("includeObject", "Metadata"),
        )
        table["metadata"] = meta
        send(handler, record, 200, table)
        return
    head = json.dumps(
        {"kind": kind.kind + "List", "apiVersion": kind.api_version, "metadata": meta}
    )[:-1].encode()
    data = head + b',"items":[' + b",".join(items) + b"]}"
    send_bytes(handler, record, 200, data)


def _delete_options(handler: Handler, query: dict[str, str], body: bytes) -> dict[str, Any]:
    """The DeleteOptions in the body, with kubectl's query parameters over them."""
    options = _decoded(handler, body) if body else {}
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"]
    if (query.get("gracePeriodSeconds") or "").isdigit():  # kubectl --grace-period
        options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
    return options


def _delete_collection(
    handler: Handler,
    record: RequestRecord,
    kind: Kind,
    ns: str | None,
    query: dict[str, str],
    body: bytes,
) -> None:
    sim = handler.server.sim
    labels = parse_label_selector(query.get("labelSelector", ""))
    fields = parse_field_selector(query.get("fieldSelector", ""))
    options = _decoded(handler, body) if body else {}
    deleted = []
    for obj in sim.store.items(kind.resource, ns):
        if labels(obj["metadata"].get("labels") or {}) and fields(obj):
            deleted.append(
                rest.delete(
                    sim,
                    kind,
                    obj["metadata"]["name"],
                    obj["metadata"].get("namespace"),
                    options,
                )
            )
    send(
        handler,
        record,
        200,
        {
            "kind": kind.kind + "List",
            "apiVersion": kind.api_version,
            "metadata": {},
            "items": deleted,
        },
    )


def _table(kind: Kind, obj: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
    """One object as the Table `kubectl get` asks for (`Accept: ...;as=Table`)."""
    return tables.table(
        kind.resource,
        [obj],
        resource_version=obj["metadata"].get("resourceVersion", ""),
        include_object=query.get("includeObject", "Metadata"),
    )


def _table_renderer(kind: Kind, query: dict[str, str]) -> Callable[[bytes], bytes]:
    def render(data: bytes) -> bytes:
        return json.dumps(_table(kind, json.loads(data), query), separators=(",", ":")).encode()

    return render


def _wants_table(handler: Handler) -> bool:
    return "as=Table" in (handler.headers.get("Accept") or "")


def _manager(handler: Handler, query: dict[str, str]) -> str:
    """The field manager: ?fieldManager=, else the user agent's program name."""
    agent = (handler.headers.get("User-Agent") or "unknown").split("/")[0]
    return query.get("fieldManager") or agent


def _decoded(handler: Handler, body: bytes) -> dict[str, Any]:
    return bodies.decode(body, content_type=handler.headers.get("Content-Type") or "")
