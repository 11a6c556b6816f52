"""What the live view shows, as plain data: the snapshot, how to build it, and the ETA.

Pure on purpose: no clock, no terminal, no `rich`. The await loop knows every node; the view
must stay cheap at 5,000 nodes, so `build_snapshot` folds per-node records into a few counts and
a top-N list once per refresh, and the renderer only ever sees that small `Snapshot`.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Sample = tuple[float, int]  # (elapsed seconds, target nodes done at that moment)


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One target node as the await loop sees it at one evaluation.

    `images` holds what the node is meant to get; an empty set means every image of the run.
    `pulled_bytes` has the size the kubelet reported for each image pulled during this run
    (absent when no `Pulled` event said it). `since` is when the node entered `state`, on the
    same clock as `build_snapshot`'s `now`.
    """

    name: str
    done: bool
    state: str = ""  # one line for a person: "pulling", "ErrImagePull: manifest unknown"
    since: float = 0.0
    failing: bool = False
    images: frozenset[str] = frozenset()
    present: frozenset[str] = frozenset()
    pulling: frozenset[str] = frozenset()
    pulled_bytes: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImageLine:
    name: str
    have: int  # target nodes that have the image
    targets: int  # target nodes meant to get it
    pulled_bytes: int  # sum of the sizes the kubelets reported for pulls so far
    pulling: int  # pulls in flight
    group: str = ""


@dataclass(frozen=True, slots=True)
class SlowNode:
    name: str
    state: str
    for_seconds: float
    failing: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one refresh of the live view needs, and nothing more."""

    elapsed: float
    done: int
    total: int
    images: tuple[ImageLine, ...] = ()
    slowest: tuple[SlowNode, ...] = ()  # failing nodes first, then the longest in their state
    excluded: tuple[tuple[str, int], ...] = ()  # (reason, nodes), most nodes first
    groups: tuple[str, ...] = ()

    @property
    def excluded_total(self) -> int:
        return sum(count for _, count in self.excluded)


def build_snapshot(
    *,
    nodes: Iterable[NodeRecord],
    images: Sequence[str],
    excluded: Mapping[str, str],
    elapsed: float,
    now: float,
    groups: Mapping[str, str] | None = None,
    slowest: int = 5,
) -> Snapshot:
    """Fold per-node records into a `Snapshot` in one pass over the nodes.

    `images` gives the display names in display order; `excluded` maps node -> reason;
    `groups` maps an image to its pull group, when the run has groups.
    """
    # Nodes share a handful of distinct image sets, and a frozenset caches its hash: count the
    # sets per node and expand them once, rather than touching every name on every node.
    wanted: Counter[frozenset[str]] = Counter()
    present: Counter[frozenset[str]] = Counter()
    in_flight: Counter[frozenset[str]] = Counter()
    pulled: dict[str, int] = dict.fromkeys(images, 0)
    done = total = 0
    waiting: list[NodeRecord] = []
    every = frozenset(images)
    for node in nodes:
        total += 1
        if node.done:
            done += 1
        else:
            waiting.append(node)
        wanted[node.images or every] += 1
        present[node.present] += 1
        in_flight[node.pulling] += 1
        for name, size in node.pulled_bytes.items():
            pulled[name] = pulled.get(name, 0) + size
    targets, have, pulling = _expand(wanted), _expand(present), _expand(in_flight)
    group_of = groups or {}
    lines = tuple(
        ImageLine(
            name=name,
            have=have[name],
            targets=targets[name],
            pulled_bytes=pulled[name],
            pulling=pulling[name],
            group=group_of.get(name, ""),
        )
        for name in images
    )
    return Snapshot(
        elapsed=elapsed,
        done=done,
        total=total,
        images=lines,
        slowest=slowest_nodes(waiting, now=now, limit=slowest),
        excluded=tuple(Counter(excluded.values()).most_common()),
        groups=tuple(dict.fromkeys(group_of[name] for name in images if name in group_of)),
    )


def _expand(sets: Counter[frozenset[str]]) -> Counter[str]:
    names: Counter[str] = Counter()
    for names_in_set, nodes in sets.items():
        for name in names_in_set:
            names[name] += nodes
    return names


def slowest_nodes(nodes: Iterable[NodeRecord], *, now: float, limit: int) -> tuple[SlowNode, ...]:
    """Failing nodes first, then whoever has been in its state longest; O(n log limit)."""
    chosen = heapq.nsmallest(limit, nodes, key=lambda node: (not node.failing, node.since))
    return tuple(
        SlowNode(
            name=node.name,
            state=node.state,
            for_seconds=max(0.0, now - node.since),
            failing=node.failing,
        )
        for node in chosen
    )


def add_sample(samples: Sequence[Sample], sample: Sample, *, window: float) -> tuple[Sample, ...]:
    """The samples to keep: the new one plus those at most `window` seconds older."""
    at = sample[0]
    return (*(kept for kept in samples if at - window <= kept[0] < at), sample)


def eta(samples: Sequence[Sample], *, total: int) -> float | None:
    """Seconds until `total` at the done-per-second seen across `samples`; None when unknown.

    The rate is taken between the oldest and newest sample, so a sliding window of samples
    gives the recent rate. Zero once everything is done; never negative; None with fewer than
    two samples, no time between them, or no progress (or nodes leaving) across them.
    """
    if not samples:
        return None
    (t0, done0), (t1, done1) = samples[0], samples[-1]
    if done1 >= total:
        return 0.0
    if t1 <= t0 or done1 <= done0:
        return None
    rate = (done1 - done0) / (t1 - t0)
    return (total - done1) / rate


def fit(text: str, width: int) -> str:
    """`text` in at most `width` characters, cut in the middle so both ends stay readable.

    Image references carry their meaning at both ends (registry and repository; tag), so
    `quay.io/jupyter/scipy-notebook:2024-05-01` in 30 becomes `quay.io/jupyte…book:2024-05-01`.
    """
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    tail = (width - 1) // 2 + (width - 1) % 2
    head = width - 1 - tail
    return f"{text[:head]}…{text[-tail:]}"


def duration_text(seconds: float) -> str:
    """`7s`, `2m05s`, `1h02m`: short and fixed in shape, for a line that updates in place."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
