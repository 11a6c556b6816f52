"""The gate's node codec: only nodes that carry the gate taint are kept (a `GateNode`), every
other node decodes to None, so the store of a 65,000-node cluster holds the few nodes joining.

A watch event whose bytes do not contain the taint's key cannot be about a gated node: only its
name and resourceVersion are decoded (to drop it if it was gated before). A gated node is read
twice: by `NodeCodec` for the state that readiness judges, and by a small struct for what the
gate writes against (its creation time, its taints exactly as read, its condition).
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime

import msgspec

from image_awaiter.core.gating import GateNode, GateTaint
from image_awaiter.core.references import ImageKey
from image_awaiter.kube.chunked import Line
from image_awaiter.kube.decoding import Event, Page, generic_event
from image_awaiter.kube.nodecodec import NodeCodec

_NULL = msgspec.Raw(b"null")


class _Meta(msgspec.Struct, gc=False):
    name: str = ""
    resourceVersion: str = ""
    creationTimestamp: str = ""


class _Spec(msgspec.Struct, gc=False):
    taints: msgspec.Raw = msgspec.field(default=_NULL)


class _Condition(msgspec.Struct, gc=False):
    type: str = ""
    status: str = ""
    reason: str = ""


class _Status(msgspec.Struct, gc=False):
    conditions: list[_Condition] | None = None


class _Node(msgspec.Struct, gc=False):
    metadata: _Meta = msgspec.field(default_factory=_Meta)
    spec: _Spec = msgspec.field(default_factory=_Spec)
    status: _Status = msgspec.field(default_factory=_Status)


class _Taint(msgspec.Struct, gc=False):
    key: str = ""
    effect: str = ""


class _NodeEvent(msgspec.Struct, gc=False):
    type: str = ""
    object: _Node = msgspec.field(default_factory=_Node)


class _NameOnly(msgspec.Struct, gc=False):
    metadata: _Meta = msgspec.field(default_factory=_Meta)


class _NameEvent(msgspec.Struct, gc=False):
    type: str = ""
    object: _NameOnly = msgspec.field(default_factory=_NameOnly)


class _NodeList(msgspec.Struct, gc=False):
    items: list[_Node] | None = None


_event = msgspec.json.Decoder(_NodeEvent)
_name_event = msgspec.json.Decoder(_NameEvent)
_list = msgspec.json.Decoder(_NodeList)
_taints = msgspec.json.Decoder(list[_Taint] | None)


class GateNodeCodec:
    """Nodes carrying `gate`, as `GateNode`s; `condition` is the condition type the gate
    writes (read back so that it is never rewritten unchanged)."""

    def __init__(
        self,
        *,
        gate: GateTaint,
        condition: str,
        wanted: frozenset[ImageKey],
        label_keys: frozenset[str],
    ) -> None:
        self._gate = gate
        self._key = gate.key.encode()
        self._condition = condition
        self._nodes = NodeCodec(wanted=wanted, label_keys=label_keys)

    def page(self, data: bytes) -> Page[GateNode]:
        states = self._nodes.page(data)
        try:
            extras = _list.decode(data).items or []
        except msgspec.DecodeError as error:
            raise ValueError(str(error)) from None
        items = [
            (key, None if state is None else self._gated(state, node))
            for (key, state), node in zip(states.items, extras, strict=True)
        ]
        return Page(items, states.resource_version, states.continue_token)

    def event(self, line: Line) -> Event[GateNode]:
        raw = line if isinstance(line, bytes) else bytes(line)  # `in` on a view tests items
        if self._key not in raw:  # cannot carry the taint: the name is enough to drop it
            try:
                named = _name_event.decode(line)
            except msgspec.DecodeError:
                return Event("ERROR", "", None, "", json.loads(raw).get("object"))  # a Status
            if named.type in ("ERROR", "BOOKMARK"):
                return generic_event(line)
            meta = named.object.metadata
            return Event(named.type, meta.name, None, meta.resourceVersion)
        event = self._nodes.event(line)
        if event.record is None:
            return Event(event.type, event.key, None, event.resource_version, event.status)
        try:
            node = _event.decode(line).object
        except msgspec.DecodeError as error:
            raise ValueError(str(error)) from None
        return Event(event.type, event.key, self._gated(event.record, node), event.resource_version)

    def _gated(self, state: object, node: _Node) -> GateNode | None:
        from image_awaiter.core.targeting import NodeState

        assert isinstance(state, NodeState)
        if not self._gate.on(state):
            return None
        condition = next(
            (c for c in node.status.conditions or () if c.type == self._condition), None
        )
        return GateNode(
            state=state,
            created=_epoch(node.metadata.creationTimestamp),
            taints=bytes(node.spec.taints),
            condition=f"{condition.status}/{condition.reason}" if condition else "",
        )


def _epoch(text: str) -> float:
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    return 0.0
