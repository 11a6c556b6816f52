"""The list+watch caches against the simulated API server: pagination, watch resumption,
410 Gone, dropped and silent watches, deletions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from image_awaiter.kube.client import Kube
from image_awaiter.kube.connecting import connect
from image_awaiter.kube.decoding import JsonCodec
from image_awaiter.kube.nodecodec import NodeCodec
from image_awaiter.kube.resources import NODES
from image_awaiter.kube.watching import Informer, WatchTiming
from simcluster.apiserver.listing import request_counts
from simcluster.nodes.factory import node_object


@pytest.fixture
def kube(sim: Any, kubeconfig: Path) -> Kube:
    connection = connect(kubeconfig=str(kubeconfig), context=None, namespace=None)
    return Kube(connection.client)


@pytest.fixture
def informer_factory(kube: Kube) -> Iterator[Any]:
    made: list[Informer[Any]] = []

    def make(timing: WatchTiming | None = None) -> Informer[str]:
        informer: Informer[str] = Informer(
            kube=kube,
            address=NODES.address(),
            name="nodes",
            codec=JsonCodec(lambda raw: raw["metadata"]["labels"].get("color", "")),
            timing=timing or WatchTiming(page_size=3, watch_seconds=30, read_timeout=10),
        )
        made.append(informer)
        return informer

    yield make
    for informer in made:
        informer.stop()


def wait_until(informer: Informer[Any], predicate: Any, timeout: float = 10.0) -> bool:
    """Event-driven: every store change sets the informer's wake event."""
    wake = informer._wake
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not done.is_set():
            if predicate(informer.snapshot()):
                return True
            wake.wait(0.5)
            wake.clear()
        return predicate(informer.snapshot())
    finally:
        deadline.cancel()


def test_the_initial_list_is_one_streaming_watch_served_from_the_watch_cache(
    sim: Any, informer_factory: Any
) -> None:
    for index in range(10):
        sim.add_node(f"n{index}", labels={"color": "red"})
    informer = informer_factory()
    assert informer.list_once() == {f"n{index}": "red" for index in range(10)}
    requests = [r for r in sim.requests if r.path == "/api/v1/nodes"]
    assert request_counts(requests) == {"streaming list": 1}
    [stream] = requests
    assert stream.query["sendInitialEvents"] == "true"
    assert stream.query["resourceVersionMatch"] == "NotOlderThan"
    assert "resourceVersion" not in stream.query  # as fresh as a quorum read
    assert informer.streaming is True


def test_a_server_that_refuses_streaming_lists_is_read_in_pages_from_then_on(
    sim: Any, informer_factory: Any
) -> None:
    sim.watch_list = False
    for index in range(10):
        sim.add_node(f"n{index}", labels={"color": "red"})
    informer = informer_factory()
    assert len(informer.list_once()) == 10
    assert len(informer.list_once()) == 10  # the refusal is remembered
    requests = [r for r in sim.requests if r.path == "/api/v1/nodes"]
    assert request_counts(requests) == {"streaming list": 1, "quorum list page": 8}
    assert requests[0].status == 422
    pages = requests[1:]
    assert [r.query.get("limit") for r in pages] == ["3"] * 8  # 3 + 3 + 3 + 1, twice
    assert informer.streaming is False


def test_a_streaming_list_goes_on_as_the_watch(sim: Any, informer_factory: Any) -> None:
    sim.add_node("n0", labels={"color": "red"})
    informer = informer_factory()
    informer.start()
    assert wait_until(informer, lambda items: items == {"n0": "red"})
    sim.add_node("n1", labels={"color": "blue"})
    assert wait_until(informer, lambda items: items == {"n0": "red", "n1": "blue"})
    requests = [r for r in sim.requests if r.path == "/api/v1/nodes"]
    assert request_counts(requests) == {"streaming list": 1}


@pytest.mark.parametrize(
    "bookmark_interval",
    [0.2, 1000.0],
    ids=["plain bookmarks keep coming", "the stream goes silent"],
)
def test_a_streaming_list_that_never_ends_falls_back_to_pages_within_the_wait(
    sim: Any, informer_factory: Any, bookmark_interval: float
) -> None:
    """A server (or a proxy dropping sendInitialEvents) that sends the objects but never the
    initial-events-end bookmark: pages after `initial_events_wait`, not the same watch again."""
    sim.initial_events_end = False
    sim.bookmark_interval = bookmark_interval
    for index in range(4):
        sim.add_node(f"n{index}", labels={"color": "red"})
    timing = WatchTiming(page_size=3, watch_seconds=30, read_timeout=10, initial_events_wait=1.0)
    informer = informer_factory(timing)
    started = time.monotonic()
    assert informer.list_once() == {f"n{index}": "red" for index in range(4)}
    assert time.monotonic() - started < 1.0 + 2.0
    requests = [r for r in sim.requests if r.path == "/api/v1/nodes"]
    assert request_counts(requests) == {"streaming list": 1, "quorum list page": 2}
    assert informer.streaming is False


def test_after_its_initial_events_a_streaming_list_waits_as_long_as_any_watch(
    sim: Any, informer_factory: Any
) -> None:
    """The short wait is for the initial events only: the watch it goes on as keeps its read
    timeout, so a quiet minute does not restart it."""
    sim.bookmark_interval = 1000.0
    sim.add_node("n0", labels={"color": "red"})
    timing = WatchTiming(page_size=3, watch_seconds=30, read_timeout=10, initial_events_wait=0.5)
    informer = informer_factory(timing)
    informer.start()
    assert wait_until(informer, lambda items: items == {"n0": "red"})
    time.sleep(1.5)  # a quiet spell three times the initial-events wait; nothing to wait on
    sim.add_node("n1", labels={"color": "blue"})
    assert wait_until(informer, lambda items: items == {"n0": "red", "n1": "blue"})
    requests = [r for r in sim.requests if r.path == "/api/v1/nodes"]
    assert request_counts(requests) == {"streaming list": 1}


def test_pagination_is_consistent_when_nodes_change_between_pages(sim: Any, kube: Kube) -> None:
    for index in range(6):
        sim.add_node(f"n{index}")
    first = kube.request("GET", NODES.address(), query={"limit": 3})
    sim.remove_node("n5")
    sim.add_node("n9")
    rest = kube.request(
        "GET", NODES.address(), query={"limit": 3, "continue": first["metadata"]["continue"]}
    )
    names = [n["metadata"]["name"] for n in first["items"] + rest["items"]]
    assert names == [f"n{i}" for i in range(6)]  # one consistent snapshot
    assert not rest["metadata"].get("continue")


def test_an_expired_continue_token_makes_the_informer_relist(
    sim: Any, informer_factory: Any, kube: Kube
) -> None:
    for index in range(6):
        sim.add_node(f"n{index}", labels={"color": "blue"})
    first = kube.request("GET", NODES.address(), query={"limit": 3})
    sim.expire_continues()
    from image_awaiter.core.errors import Gone

    with pytest.raises(Gone):
        kube.request(
            "GET", NODES.address(), query={"limit": 3, "continue": first["metadata"]["continue"]}
        )


def test_watch_events_keep_the_cache_current_including_deletions(
    sim: Any, informer_factory: Any
) -> None:
    sim.add_node("a", labels={"color": "red"})
    informer = informer_factory()
    informer.start()
    assert wait_until(informer, lambda s: s == {"a": "red"})
    sim.add_node("b", labels={"color": "green"})
    sim.remove_node("a")
    assert wait_until(informer, lambda s: s == {"b": "green"})
    assert informer.store.lists == 1 and informer.store.events >= 2


def test_410_gone_on_a_watch_makes_the_informer_relist(sim: Any, informer_factory: Any) -> None:
    from simcluster import Fault

    sim.add_node("a", labels={"color": "red"})
    informer = informer_factory(WatchTiming(page_size=10, watch_seconds=1, read_timeout=10))
    informer.start()
    assert wait_until(informer, lambda s: s == {"a": "red"})
    sim.faults.add(Fault(path="/api/v1/nodes", watch=True, status=0, cut_after_events=0, times=1))
    sim.add_node("b", labels={"color": "x"})
    sim.compact()  # the next watch resumes from a resourceVersion the server no longer has
    assert wait_until(informer, lambda s: s == {"a": "red", "b": "x"} and informer.store.lists >= 2)


def test_a_watch_cut_mid_stream_resumes_without_losing_events(
    sim: Any, informer_factory: Any
) -> None:
    from simcluster import Fault

    sim.faults.add(Fault(path="/api/v1/nodes", watch=True, status=0, cut_after_events=1, times=3))
    informer = informer_factory()
    informer.start()
    assert informer.synced.wait(10)
    for index in range(5):
        sim.add_node(f"n{index}", labels={"color": str(index)})
        assert wait_until(informer, lambda s, n=index: len(s) == n + 1)
    assert informer.watches >= 4
    assert informer.store.lists == 1  # resumed from the last resourceVersion, no relist
    assert sim.faults.injected == 3


def test_a_silent_watch_is_abandoned_and_restarted(sim: Any, informer_factory: Any) -> None:
    sim.bookmark_interval = 3600  # no bookmarks: the stream stays silent
    informer = informer_factory(WatchTiming(page_size=10, watch_seconds=60, read_timeout=0.5))
    informer.start()
    assert wait_until(informer, lambda s: s == {})
    assert wait_until(informer, lambda s: informer.watches >= 3)
    sim.add_node("late", labels={"color": "red"})
    assert wait_until(informer, lambda s: s == {"late": "red"})


def test_an_event_compacted_before_a_watch_sent_it_is_never_skipped(
    sim: Any, informer_factory: Any
) -> None:
    """Regression (chaos seed 2033): the simulated server's watch went on with the events after
    a compaction and silently skipped the ones compacted before it had sent them, so a cache
    never saw a puller pod. A real watch never skips: the stream ends, the client relists."""
    sim.add_node("a", labels={"color": "red"})
    informer = informer_factory()
    informer.start()
    assert wait_until(informer, lambda s: s == {"a": "red"})
    with sim.store.lock:  # the watch cannot send "b" before it is compacted away
        sim.create("nodes", _node("b", color="green"))  # the Node alone: no kubelet request
        sim.compact()
        sim.create("nodes", _node("c", color="blue"))
    assert wait_until(informer, lambda s: s == {"a": "red", "b": "green", "c": "blue"})
    assert informer.store.lists >= 2


def test_the_typed_nodes_cache_relists_after_a_410_on_its_watch(sim: Any, kube: Kube) -> None:
    """Regression (chaos seed 2033): the typed node decoder refused the 410 Status (its
    `status` is a string), so the nodes watch restarted from the expired resourceVersion
    forever: a node removed around an etcd compaction stayed in the cache, and the run waited
    on it until its timeout."""
    sim.add_node("a")
    sim.add_node("b")
    informer = Informer(
        kube=kube,
        address=NODES.address(),
        name="nodes",
        codec=NodeCodec(wanted=frozenset()),
        timing=WatchTiming(page_size=10, watch_seconds=30, read_timeout=10),
    )
    informer.start()
    try:
        assert informer.synced.wait(10)
        with sim.store.lock:  # the watch cannot send the deletion before it is compacted away
            sim.delete("nodes", "b")  # the Node alone: its kubelet's requests would wait here
            sim.compact()
        assert wait_until(informer, lambda s: set(s) == {"a"} and informer.store.lists >= 2)
    finally:
        informer.stop()


def test_an_undecodable_watch_event_makes_the_informer_relist(sim: Any, kube: Kube) -> None:
    """Resuming from the last resourceVersion would replay the same unreadable event forever
    (what the 410 decoding bug above did); the informer relists instead, and the list reads
    the object."""
    seen: list[str] = []

    def compact(raw: dict[str, Any]) -> str:
        name = str(raw["metadata"]["name"])
        seen.append(name)
        if name == "b" and seen.count("b") == 1:  # the watch event, not the relist
            raise ValueError("unreadable")
        return name

    sim.add_node("a")
    informer: Informer[str] = Informer(
        kube=kube,
        address=NODES.address(),
        name="nodes",
        codec=JsonCodec(compact),
        timing=WatchTiming(page_size=10, watch_seconds=30, read_timeout=10),
    )
    informer.start()
    try:
        assert informer.synced.wait(10)
        sim.add_node("b")
        assert wait_until(informer, lambda s: set(s) == {"a", "b"})
        assert informer.store.lists == 2
    finally:
        informer.stop()


def _node(name: str, **labels: str) -> dict[str, Any]:
    return node_object(
        name, ready=True, unschedulable=False, taints=[], labels=labels, max_pods=110,
        arch="amd64", os="linux", runtime="containerd",
    )  # fmt: skip
