"""Pull facts from kubelet events: the events codec keeps only this run's pods' pull events,
`collect` folds them per node and image, `summarise` per image and for the run. Messages are
the kubelet's own formats (see image_awaiter/core/pullevents.py for their sources)."""

from __future__ import annotations

import json

from image_awaiter.core.pullfacts import KubeletEvent, collect, summarise, with_listed
from image_awaiter.core.references import parse_image
from image_awaiter.kube.podcodec import EventCodec

APP = parse_image("quay.io/org/app:1")
BASE = parse_image("docker.io/library/busybox:1.36")
PODS = {"puller-abc-x1": "n1", "puller-abc-x2": "n2", "puller-abc-x3": "n3"}


def pulled(pod: str, image: str, took: str, waited: str, size: int, at: str) -> KubeletEvent:
    message = (
        f'Successfully pulled image "{image}" in {took} ({waited} including waiting). '
        f"Image size: {size} bytes."
    )
    return KubeletEvent(pod=pod, reason="Pulled", message=message, last=at)


def failed(pod: str, image: str, error: str, at: str, count: int = 1) -> KubeletEvent:
    message = f'Failed to pull image "{image}": {error}'
    return KubeletEvent(pod=pod, reason="Failed", message=message, last=at, count=count)


NOT_FOUND = (
    'rpc error: code = NotFound desc = failed to pull and unpack image "quay.io/org/app:1": '
    'failed to resolve reference "quay.io/org/app:1": quay.io/org/app:1: not found'
)


def test_a_pulled_event_gives_duration_waiting_and_size_per_node_and_image() -> None:
    events = [
        KubeletEvent("puller-abc-x1", "Pulling", 'Pulling image "quay.io/org/app:1"', "t1"),
        pulled("puller-abc-x1", "quay.io/org/app:1", "3.2s", "4.5s", 734003200, "t2"),
    ]
    facts = collect(events, pod_nodes=PODS, images=(APP,))
    fact = facts.facts[("n1", APP.key)]
    assert (fact.state, fact.seconds, fact.seconds_including_waiting, fact.size_bytes) == (
        "pulled",
        3.2,
        4.5,
        734003200,
    )
    assert facts.pulled_bytes == {"n1": {APP.original: 734003200}}


def test_already_present_and_short_names_match_the_awaited_reference() -> None:
    message = 'Container image "busybox:1.36" already present on machine'
    facts = collect(
        [KubeletEvent("puller-abc-x2", "Pulled", message, "t1")], pod_nodes=PODS, images=(BASE,)
    )
    assert facts.facts[("n2", BASE.key)].state == "present"


def test_a_failure_is_classified_and_a_later_success_wins() -> None:
    first = failed("puller-abc-x1", "quay.io/org/app:1", NOT_FOUND, "t1", count=2)
    facts = collect([first], pod_nodes=PODS, images=(APP,))
    fact = facts.facts[("n1", APP.key)]
    assert (fact.state, fact.error and fact.error.kind, fact.attempts) == ("failed", "not-found", 2)
    assert facts.errors[("n1", APP.key)].error_class == "permanent"
    healed = pulled("puller-abc-x1", "quay.io/org/app:1", "1s", "1s", 10, "t2")
    assert (
        collect([healed, first], pod_nodes=PODS, images=(APP,)).facts[("n1", APP.key)].state
        == "pulled"
    )


def test_events_of_other_images_and_unbound_pods_are_ignored() -> None:
    events = [
        pulled("puller-abc-x1", "registry.k8s.io/pause:3.10", "1s", "1s", 1, "t1"),
        pulled("someone-else", "quay.io/org/app:1", "1s", "1s", 1, "t1"),
    ]
    assert collect(events, pod_nodes=PODS, images=(APP,)).facts == {}


def test_the_summary_has_median_slowest_bytes_and_the_slowest_node() -> None:
    events = [
        pulled("puller-abc-x1", "quay.io/org/app:1", "2s", "2s", 100, "t1"),
        pulled("puller-abc-x2", "quay.io/org/app:1", "4s", "9s", 100, "t1"),
        pulled("puller-abc-x3", "quay.io/org/app:1", "1m0s", "1m0s", 100, "t1"),
    ]
    summary = summarise(collect(events, pod_nodes=PODS, images=(APP,)), (APP,))
    [image] = summary["images"]
    assert image["pulledOn"] == 3 and image["totalBytes"] == 300
    assert image["medianPullSeconds"] == 4.0
    assert image["slowestPull"] == {"node": "n3", "seconds": 60.0}
    assert summary["slowestNode"] == {"node": "n3", "pullSeconds": 60.0}


def watch_line(involved: str, reason: str, kind: str = "Pod") -> bytes:
    event = {
        "metadata": {"name": f"{involved}.1", "namespace": "ns", "resourceVersion": "7"},
        "involvedObject": {"kind": kind, "name": involved},
        "reason": reason,
        "message": 'Pulling image "x"',
        "count": 3,
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }
    return json.dumps({"type": "ADDED", "object": event}).encode()


def test_the_events_codec_keeps_only_pull_events_of_this_runs_pods() -> None:
    codec = EventCodec(pod_prefix="puller-abc-")
    kept = codec.event(watch_line("puller-abc-x1", "Pulling")).record
    assert kept == KubeletEvent(
        "puller-abc-x1", "Pulling", 'Pulling image "x"', "2026-01-01T00:00:00Z", 3
    )
    assert codec.event(watch_line("puller-other-x1", "Pulling")).record is None
    assert codec.event(watch_line("puller-abc-x1", "Scheduled")).record is None
    assert codec.event(watch_line("puller-abc-x1", "Pulling", kind="Node")).record is None


def test_container_state_timestamps_stand_in_where_no_pulled_event_came() -> None:
    bounds = {"n1": {APP.key: 12.0}, "n2": {APP.key: 3.0}}
    events = [pulled("puller-abc-x2", "quay.io/org/app:1", "2s", "2s", 100, "t1")]
    facts = collect(events, pod_nodes=PODS, images=(APP,), container_bounds=bounds).facts
    assert (facts[("n1", APP.key)].seconds, facts[("n1", APP.key)].source) == (
        12.0,
        "container-status",
    )
    assert (facts[("n2", APP.key)].seconds, facts[("n2", APP.key)].source) == (2.0, "event")


def test_pull_bounds_come_from_init_container_start_and_finish_times() -> None:
    from image_awaiter.kube.podcodec import PodCodec

    pod = {
        "metadata": {"name": "puller-abc-x1"},
        "spec": {
            "nodeName": "n1",
            "initContainers": [
                {"name": "a", "image": "quay.io/org/app:1"},
                {"name": "b", "image": "busybox:1.36"},
            ],
            "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}],
        },
        "status": {
            "startTime": "2026-01-01T00:00:00Z",
            "initContainerStatuses": [
                {
                    "name": "a",
                    "state": {
                        "terminated": {
                            "startedAt": "2026-01-01T00:00:40Z",
                            "finishedAt": "2026-01-01T00:00:41Z",
                        }
                    },
                },
                {"name": "b", "state": {"running": {"startedAt": "2026-01-01T00:00:44Z"}}},
            ],
        },
    }
    line = json.dumps({"type": "ADDED", "object": pod}).encode()
    record = PodCodec().event(line).record
    assert record is not None
    assert record.pull_seconds == {APP.key: 40.0, BASE.key: 3.0}


def test_a_repeated_failure_counts_its_attempts_once_across_folds() -> None:
    from image_awaiter.core.pullfacts import Folder

    folder = Folder((APP,))
    store = {"e1": failed("puller-abc-x1", "quay.io/org/app:1", NOT_FOUND, "t1", count=1)}
    assert folder.fold(store, pod_nodes=PODS).facts[("n1", APP.key)].attempts == 1
    store["e1"] = failed("puller-abc-x1", "quay.io/org/app:1", NOT_FOUND, "t2", count=3)
    assert folder.fold(store, pod_nodes=PODS).facts[("n1", APP.key)].attempts == 3
    assert folder.fold(dict(store), pod_nodes=PODS).facts[("n1", APP.key)].attempts == 3


def test_an_event_of_a_pod_whose_node_is_not_known_yet_is_folded_later() -> None:
    from image_awaiter.core.pullfacts import Folder

    folder = Folder((APP,))
    store = {"e1": pulled("puller-abc-x9", "quay.io/org/app:1", "1s", "1s", 10, "t1")}
    assert folder.fold(store, pod_nodes=PODS).facts == {}
    later = folder.fold(store, pod_nodes={**PODS, "puller-abc-x9": "n9"})
    assert later.facts[("n9", APP.key)].state == "pulled"


def test_images_a_nodes_own_status_listed_are_present_there_without_any_event() -> None:
    """A node listing every image gets no puller pod, so no kubelet event (issue 19)."""
    events = [pulled("puller-abc-x1", "quay.io/org/app:1", "2s", "2s", 100, "t1")]
    listed = {"n1": frozenset({APP.key}), "n2": frozenset({APP.key, BASE.key})}
    facts = with_listed(collect(events, pod_nodes=PODS, images=(APP, BASE)), listed, (APP, BASE))
    assert facts.facts[("n1", APP.key)].state == "pulled", "an event's word is kept"
    assert [(f.image, f.state, f.source) for f in facts.for_node("n2", (APP, BASE))] == [
        ("quay.io/org/app:1", "present", "node-status"),
        ("docker.io/library/busybox:1.36", "present", "node-status"),
    ]
    summary = {i["image"]: i for i in summarise(facts, (APP, BASE))["images"]}
    assert summary[APP.original]["alreadyPresentOn"] == ["n2"]
    assert summary[BASE.original]["alreadyPresentOn"] == ["n2"]
