"""Per-node, per-image pull facts from the kubelets' events on this run's puller pods.

The events informer keeps a `KubeletEvent` for each event about one of the run's pods; `collect`
folds them, with which node each pod is on, into one `NodeImageFact` per (node, awaited image):
already present, pulled (the `Pulled` event's duration, duration including waiting and size),
failed (the classified cause of the last `Failed`/`BackOff`), or pulling. `summarise` gives, per
image, the nodes that pulled it, the median and slowest pull and the bytes, and the slowest node
of the run. Pure: no client, no clock.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from image_awaiter.core.errors import UsageError
from image_awaiter.core.pullerrors import PullError, classify_event
from image_awaiter.core.references import ImageKey, ImageRef, parse_image

FactState = Literal["present", "pulled", "failed", "pulling"]
# Reasons whose events say something about a pull; the informer keeps no others.
PULL_EVENT_REASONS = frozenset(
    {"Pulling", "Pulled", "Failed", "BackOff", "ErrImageNeverPull", "InspectFailed"}
)


@dataclass(frozen=True, slots=True)
class KubeletEvent:
    """What the awaiter keeps of one core/v1 Event about one of its puller pods."""

    pod: str
    reason: str
    message: str
    last: str = ""  # lastTimestamp (RFC 3339), to order repeated events
    count: int = 1


@dataclass(frozen=True, slots=True)
class NodeImageFact:
    node: str
    image: str  # display text (ImageRef.original)
    state: FactState
    seconds: float | None = None
    seconds_including_waiting: float | None = None
    size_bytes: int | None = None
    error: PullError | None = None
    attempts: int = 0  # failed attempts seen (events' counts)
    source: Literal["event", "container-status", "node-status"] = "event"

    def to_report(self) -> dict[str, Any]:
        fact: dict[str, Any] = {"image": self.image, "state": self.state}
        if self.seconds is not None:
            fact["pullSeconds"] = round(self.seconds, 3)
        if self.seconds_including_waiting is not None:
            fact["pullSecondsIncludingWaiting"] = round(self.seconds_including_waiting, 3)
        if self.size_bytes is not None:
            fact["sizeBytes"] = self.size_bytes
        if self.error is not None:
            fact["errorClass"] = self.error.error_class
            fact["errorKind"] = self.error.kind
            fact["message"] = self.error.message
            fact["advice"] = self.error.advice
        if self.attempts:
            fact["failedAttempts"] = self.attempts
        if self.source != "event":
            fact["source"] = self.source
        return fact


@dataclass(frozen=True)
class PullFacts:
    """The facts of one fold; the views of them are computed once, on first use, since the
    loop asks at every evaluation and a fold happens at most every half second."""

    facts: Mapping[tuple[str, ImageKey], NodeImageFact]

    @functools.cached_property
    def errors(self) -> dict[tuple[str, ImageKey], PullError]:
        """The last classified cause per failing (node, image), for `readiness`."""
        return {
            pair: fact.error
            for pair, fact in self.facts.items()
            if fact.state == "failed" and fact.error is not None
        }

    @functools.cached_property
    def pulled_bytes(self) -> dict[str, dict[str, int]]:
        """node -> image display text -> bytes pulled, for the live view."""
        sizes: dict[str, dict[str, int]] = {}
        for (node, _), fact in self.facts.items():
            if fact.state == "pulled" and fact.size_bytes:
                sizes.setdefault(node, {})[fact.image] = fact.size_bytes
        return sizes

    def for_node(self, node: str, images: Sequence[ImageRef]) -> list[NodeImageFact]:
        return [fact for i in images if (fact := self.facts.get((node, i.key))) is not None]


def with_listed(
    facts: PullFacts | None,
    listed: Mapping[str, frozenset[ImageKey]],
    images: Sequence[ImageRef],
) -> PullFacts:
    """`facts` plus a `present` fact (source `node-status`) for each image a node's own status
    listed when the run began (`listed`: node -> awaited images it listed) and no kubelet event
    spoke of: a node listing every image gets no puller pod, so no event says it had them."""
    merged = dict(facts.facts) if facts is not None else {}
    for node, keys in listed.items():
        for image in images:
            if image.key in keys and (node, image.key) not in merged:
                merged[(node, image.key)] = NodeImageFact(
                    node=node, image=image.original, state="present", source="node-status"
                )
    return PullFacts(merged)


@functools.lru_cache(maxsize=1024)
def _key_of(text: str) -> ImageKey | None:
    try:
        return parse_image(text).key
    except UsageError:
        return None


def collect(
    events: Iterable[KubeletEvent],
    *,
    pod_nodes: Mapping[str, str],
    images: Sequence[ImageRef],
    container_bounds: Mapping[str, Mapping[ImageKey, float]] | None = None,
) -> PullFacts:
    """One fold of `events` (see `Folder.fold`), for a one-off collection."""
    return Folder(images).fold(
        {str(i): event for i, event in enumerate(events)},
        pod_nodes=pod_nodes,
        container_bounds=container_bounds,
    )


class Folder:
    """Folds the events store into facts incrementally: an event is parsed once, when it is
    new or changed (a repeat bumps its `count`), so a fold costs little more than a walk over
    the store's keys even with tens of thousands of events at 5,000 nodes."""

    def __init__(self, images: Sequence[ImageRef]) -> None:
        self._wanted = {image.key: image for image in images}
        self._seen: dict[str, KubeletEvent] = {}  # store key -> the record last folded
        self._facts: dict[tuple[str, ImageKey], NodeImageFact] = {}

    def fold(
        self,
        events: Mapping[str, KubeletEvent | None],
        *,
        pod_nodes: Mapping[str, str],
        container_bounds: Mapping[str, Mapping[ImageKey, float]] | None = None,
    ) -> PullFacts:
        """Facts per (node, awaited image) from the events store (key -> record); `pod_nodes`
        maps each puller pod's name to its node: an event of a pod whose node is not known yet
        waits for a later fold.

        `container_bounds` (node -> image -> seconds, from container state timestamps) fills
        in pulls that no `Pulled` event told of: the events' spam filter dropped it, it
        expired, or RBAC does not allow reading events."""
        changed = [
            (key, event)
            for key, event in events.items()
            if event is not None and self._seen.get(key) is not event
        ]
        changed.sort(key=lambda item: item[1].last)
        for key, event in changed:
            node = pod_nodes.get(event.pod)
            if node is None:
                continue
            previous = self._seen.get(key)
            self._seen[key] = event
            self._apply(node, event, counted=previous.count if previous is not None else 0)
        facts = dict(self._facts)
        for node, bounds in (container_bounds or {}).items():
            for key, seconds in bounds.items():
                before = facts.get((node, key))
                if key in self._wanted and (
                    before is None or before.state not in ("pulled", "present")
                ):
                    facts[(node, key)] = NodeImageFact(
                        node=node,
                        image=self._wanted[key].original,
                        state="pulled",
                        seconds=seconds,
                        attempts=before.attempts if before else 0,
                        source="container-status",
                    )
        return PullFacts(facts)

    def _apply(self, node: str, event: KubeletEvent, *, counted: int) -> None:
        # Imported here, with the first event: start-up time a check never uses.
        from image_awaiter.core.pullevents import AlreadyPresent, Pulled, Pulling, parse_event

        fact = parse_event(event.reason, event.message)
        image_text = getattr(fact, "image", None)
        if image_text is None and event.reason in ("ErrImageNeverPull", "InspectFailed"):
            image_text = _quoted(event.message)
        key = _key_of(image_text) if image_text else None
        if key is None or key not in self._wanted:
            return
        pair, display = (node, key), self._wanted[key].original
        before = self._facts.get(pair)
        if before is not None and before.state in ("pulled", "present"):
            return  # a success is final for this run
        attempts = before.attempts if before else 0
        if isinstance(fact, Pulled):
            self._facts[pair] = NodeImageFact(
                node=node,
                image=display,
                state="pulled",
                seconds=fact.seconds,
                seconds_including_waiting=fact.seconds_including_waiting,
                size_bytes=fact.size_bytes,
                attempts=attempts,
            )
        elif isinstance(fact, AlreadyPresent):
            self._facts[pair] = NodeImageFact(node=node, image=display, state="present")
        elif isinstance(fact, Pulling):
            if before is None:
                self._facts[pair] = NodeImageFact(node=node, image=display, state="pulling")
        else:
            error = classify_event(event.reason, event.message)
            if error is None:
                return
            if event.reason == "Failed":
                attempts += max(0, event.count - counted)
            self._facts[pair] = NodeImageFact(
                node=node, image=display, state="failed", error=error, attempts=attempts
            )


def summarise(facts: PullFacts, images: Sequence[ImageRef]) -> dict[str, Any]:
    """Per image: nodes that pulled it, already had it, failed; median and slowest pull and
    total bytes. For the run: the slowest node, the one whose longest pull including the wait
    behind its other pulls (the kubelet's "including waiting") took longest: with serialized
    pulls that is when its last image arrived, with parallel pulls its slowest image."""
    per_image: list[dict[str, Any]] = []
    by_node: dict[str, float] = {}
    for image in images:
        mine = [f for (_, key), f in facts.facts.items() if key == image.key]
        pulled = [f for f in mine if f.state == "pulled"]
        times = [f.seconds for f in pulled if f.seconds is not None]
        slowest = max(pulled, key=lambda f: f.seconds or 0.0, default=None)
        entry: dict[str, Any] = {
            "image": image.original,
            "pulledOn": len(pulled),
            "alreadyPresentOn": sorted(f.node for f in mine if f.state == "present"),
            "failedOn": sum(1 for f in mine if f.state == "failed"),
            "totalBytes": sum(f.size_bytes or 0 for f in pulled),
        }
        if times:
            import statistics  # here: it imports fractions, decimal, random at every start

            entry["medianPullSeconds"] = round(statistics.median(times), 3)
        if slowest is not None and slowest.seconds is not None:
            entry["slowestPull"] = {"node": slowest.node, "seconds": round(slowest.seconds, 3)}
        per_image.append(entry)
        for fact in pulled:
            took = fact.seconds_including_waiting or fact.seconds or 0.0
            by_node[fact.node] = max(by_node.get(fact.node, 0.0), took)
    slowest_node = max(by_node.items(), key=lambda item: item[1], default=None)
    return {
        "images": per_image,
        "slowestNode": (
            {"node": slowest_node[0], "pullSeconds": round(slowest_node[1], 3)}
            if slowest_node
            else None
        ),
    }


def _quoted(message: str) -> str | None:
    start = message.find('"')
    end = message.find('"', start + 1)
    return message[start + 1 : end] if 0 <= start < end else None
