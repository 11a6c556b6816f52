"""The DaemonSet controller's events about our DaemonSets, decoded into `FailedCreate` records:
only the fields that say which DaemonSet and why; every other event is dropped as it is decoded.

The run watches them with the field selector `FAILED_CREATE_EVENTS` (the API server selects
events by `involvedObject.kind` and `reason` on equality), in the DaemonSets' namespace."""

from __future__ import annotations

import msgspec

from image_awaiter.core.creation import FAILED_CREATE, FailedCreate
from image_awaiter.kube.decoding import TypedCodec, TypedObject

FAILED_CREATE_EVENTS = f"involvedObject.kind=DaemonSet,reason={FAILED_CREATE}"


class _Involved(msgspec.Struct):
    kind: str = ""
    name: str = ""


class _ControllerEvent(TypedObject):
    involvedObject: _Involved = msgspec.field(default_factory=_Involved)
    reason: str = ""
    message: str = ""


class FailedCreateCodec(TypedCodec[_ControllerEvent, FailedCreate | None]):
    """`FailedCreate` events about the DaemonSets named in `daemonsets` (this run's)."""

    def __init__(self, *, daemonsets: tuple[str, ...]) -> None:
        names = frozenset(daemonsets)

        def compact(event: _ControllerEvent) -> FailedCreate | None:
            involved = event.involvedObject
            if (
                involved.kind != "DaemonSet"
                or involved.name not in names
                or event.reason != FAILED_CREATE
            ):
                return None
            return FailedCreate(daemonset=involved.name, message=event.message)

        super().__init__(_ControllerEvent, compact)
