"""Per-node readiness from node.status.images and puller pod statuses; pull-failure grace."""

from __future__ import annotations

import json
from typing import Any

import pytest

from image_awaiter.core.placement import Placement
from image_awaiter.core.pullerpods import ImagePull, PullerPod, PullState, merge_pods_by_node
from image_awaiter.core.pullerrors import classify_message
from image_awaiter.core.readiness import FailureRules, NodeStatus, evaluate
from image_awaiter.core.references import parse_image
from image_awaiter.core.targeting import NodeState
from image_awaiter.kube.podcodec import PodCodec

NOTEBOOK = parse_image("quay.io/jupyter/base-notebook:1")
HELPER = "ghcr.io/image-awaiter/image-awaiter:0.1.0"


Statuses = list[tuple[str, dict[str, Any]]]


def puller_pod_from_json(raw: dict[str, Any]) -> PullerPod:
    """The pod as the pods cache keeps it: decoded from a watch event by the real codec."""
    record = PodCodec().event(json.dumps({"type": "ADDED", "object": raw}).encode()).record
    assert record is not None
    return record


def pod_json(
    *,
    init: Statuses | None = None,
    containers: Statuses | None = None,
    volumes: list[str] | None = None,
    node: str | None = "n",
    conditions: list[Any] | None = None,
) -> dict[str, Any]:
    init, containers, volumes = init or [], containers or [], volumes or []
    spec: dict[str, Any] = {
        "initContainers": [{"name": f"i{k}", "image": image} for k, (image, _) in enumerate(init)],
        "containers": [{"name": f"c{k}", "image": image} for k, (image, _) in enumerate(containers)]
        or [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}],
        "volumes": [
            {"name": f"v{k}", "image": {"reference": ref}} for k, ref in enumerate(volumes)
        ],
    }
    if node:
        spec["nodeName"] = node
    status: dict[str, Any] = {
        "initContainerStatuses": [{"name": f"i{k}", **s} for k, (_, s) in enumerate(init)],
        "containerStatuses": [{"name": f"c{k}", **s} for k, (_, s) in enumerate(containers)],
        "conditions": list(conditions or []),
    }
    return {"metadata": {"name": "p"}, "spec": spec, "status": status}


def judge(
    node: NodeState,
    pods: list[PullerPod],
    *,
    now: float = 100.0,
    since: dict[tuple[str, str], float] | None = None,
    grace: float = 30.0,
    images: tuple[Any, ...] = (NOTEBOOK,),
) -> Any:
    return evaluate(
        nodes={node.name: node},
        pods=pods,
        images=images,
        placement=Placement(),
        include_cordoned=False,
        now=now,
        failing_since=since or {},
        grace=grace,
    )


N = NodeState(name="n", ready=True)
WAITING = {"state": {"waiting": {"reason": "PodInitializing"}}}


def test_a_node_listing_the_image_is_done_without_any_pod() -> None:
    result = judge(NodeState(name="n", ready=True, images=frozenset({NOTEBOOK.key})), [])
    assert result.done and result.verdicts[0].status is NodeStatus.DONE


def test_only_nodes_whose_status_lists_every_image_may_be_skipped_by_a_daemonset() -> None:
    """Regression (chaos seed 2033): a node done on its puller pod's word alone (its status not
    yet updated, or the image past the kubelet's 50-image cap) was put in a recreated
    DaemonSet's `NotIn` list; its old pod went with the old DaemonSet and the node waited for
    a puller that could never come."""
    pulled = {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    by_pod = judge(N, [puller_pod_from_json(pod_json(init=[(NOTEBOOK.original, pulled)]))])
    assert by_pod.done_nodes == ["n"] and by_pod.listed_nodes == []
    listed = judge(NodeState(name="n", ready=True, images=frozenset({NOTEBOOK.key})), [])
    assert listed.done_nodes == ["n"] and listed.listed_nodes == ["n"]


def test_a_node_without_the_image_and_without_a_pod_is_missing() -> None:
    verdict = judge(N, []).verdicts[0]
    assert verdict.status is NodeStatus.MISSING
    assert verdict.missing == ("quay.io/jupyter/base-notebook:1",)


@pytest.mark.parametrize(
    ("listed", "detail"),
    [
        (frozenset(), "lacks quay.io/jupyter/base-notebook:1, busybox:1.36"),
        (frozenset({NOTEBOOK.key}), "lacks busybox:1.36"),
    ],
)
def test_a_node_without_a_puller_pod_is_said_to_lack_what_it_lacks(
    listed: frozenset[Any], detail: str
) -> None:
    """`check` and `--dry-run` never create a puller pod: "no puller pod on this node" told
    the user nothing (issue 19)."""
    busybox = parse_image("busybox:1.36")
    node = NodeState(name="n", ready=True, images=listed)
    [verdict] = judge(node, [], images=(NOTEBOOK, busybox)).verdicts
    assert verdict.detail == detail


@pytest.mark.parametrize(
    "status",
    [
        {"imageID": "quay.io/jupyter/base-notebook@sha256:" + "a" * 64, **WAITING},
        {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        {"state": {"terminated": {"exitCode": 128, "reason": "StartError"}}},
        {"state": {"running": {}}},
        {
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1}},
        },
    ],
    ids=["imageID", "completed", "start-error", "running", "crashloop"],
)
def test_the_pod_signal_proves_the_pull_when_node_status_hides_the_image(
    status: dict[str, Any],
) -> None:
    pod = puller_pod_from_json(pod_json(init=[(NOTEBOOK.original, status)]))
    assert judge(N, [pod]).verdicts[0].status is NodeStatus.DONE


def test_a_waiting_init_container_is_still_pulling() -> None:
    pod = puller_pod_from_json(pod_json(init=[(NOTEBOOK.original, WAITING)]))
    verdict = judge(N, [pod]).verdicts[0]
    assert verdict.status is NodeStatus.PULLING
    assert "pulling quay.io/jupyter/base-notebook:1" in verdict.detail


def test_image_volumes_count_as_pulled_once_a_regular_container_was_created() -> None:
    volume = "quay.io/models/llama:1"
    images = (parse_image(volume),)
    pulling = puller_pod_from_json(
        pod_json(
            volumes=[volume],
            containers=[
                (
                    "registry.k8s.io/pause:3.10",
                    {"state": {"waiting": {"reason": "ContainerCreating"}}},
                )
            ],
        )
    )
    running = puller_pod_from_json(
        pod_json(
            volumes=[volume],
            containers=[("registry.k8s.io/pause:3.10", {"state": {"running": {}}, "imageID": "x"})],
        )
    )
    assert judge(N, [pulling], images=images).verdicts[0].status is NodeStatus.PULLING
    assert judge(N, [running], images=images).verdicts[0].status is NodeStatus.DONE


def test_a_failing_image_volume_is_named_by_the_kubelet_message() -> None:
    volume = "quay.io/models/gone:1"
    pod = puller_pod_from_json(
        pod_json(
            volumes=[volume],
            containers=[
                (
                    "registry.k8s.io/pause:3.10",
                    {
                        "state": {
                            "waiting": {
                                "reason": "ErrImagePull",
                                "message": f'failed to pull "{volume}": not found',
                            }
                        }
                    },
                )
            ],
        )
    )
    assert pod.images[parse_image(volume).key].state is PullState.FAILING


@pytest.mark.parametrize("reason", ["InvalidImageName", "ErrImageNeverPull"])
def test_permanent_pull_errors_fail_at_once(reason: str) -> None:
    pod = puller_pod_from_json(
        pod_json(
            init=[(NOTEBOOK.original, {"state": {"waiting": {"reason": reason, "message": "bad"}}})]
        )
    )
    result = judge(N, [pod])
    assert result.verdicts[0].status is NodeStatus.FAILED
    [failure] = result.failures
    assert (failure.node, failure.image, failure.reason) == ("n", NOTEBOOK.original, reason)


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_retrying_pull_errors_fail_only_after_the_grace_period(reason: str) -> None:
    pod = puller_pod_from_json(
        pod_json(
            init=[
                (NOTEBOOK.original, {"state": {"waiting": {"reason": reason, "message": "denied"}}})
            ]
        )
    )
    first = judge(N, [pod], now=100.0)
    assert first.verdicts[0].status is NodeStatus.PULLING
    assert "retrying" in first.verdicts[0].detail
    assert first.failing_since == {("n", NOTEBOOK.key): 100.0}
    still = judge(N, [pod], now=120.0, since=dict(first.failing_since))
    assert still.verdicts[0].status is NodeStatus.PULLING
    late = judge(N, [pod], now=130.0, since=dict(first.failing_since))
    assert late.verdicts[0].status is NodeStatus.FAILED


def test_a_failure_that_clears_forgets_its_first_seen_time() -> None:
    pod = puller_pod_from_json(pod_json(init=[(NOTEBOOK.original, WAITING)]))
    result = judge(N, [pod], since={("n", NOTEBOOK.key): 1.0})
    assert result.failing_since == {}


def test_a_failing_helper_image_that_is_not_awaited_is_still_reported() -> None:
    pod = puller_pod_from_json(
        pod_json(
            init=[
                (HELPER, {"state": {"waiting": {"reason": "InvalidImageName", "message": "x"}}}),
                (NOTEBOOK.original, WAITING),
            ]
        )
    )
    result = judge(N, [pod])
    assert result.verdicts[0].status is NodeStatus.FAILED
    assert result.failures[0].image == parse_image(HELPER).key


def test_an_unschedulable_puller_is_reported_with_the_scheduler_message() -> None:
    raw = pod_json(
        node=None,
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "message": "0/1 nodes are available: Too many pods",
            }
        ],
    )
    raw["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}
                ]
            }
        }
    }
    pod = puller_pod_from_json(raw)
    assert pod.node == "n"
    verdict = judge(N, [pod]).verdicts[0]
    assert verdict.status is NodeStatus.UNSCHEDULABLE
    assert "Too many pods" in verdict.detail


def test_an_unbound_pod_is_placed_only_by_a_single_name_in_its_affinity() -> None:
    """Our own `metadata.name NotIn [done nodes]` must never be read as the pod's node."""
    raw = pod_json(node=None)
    raw["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchFields": [
                            {"key": "metadata.name", "operator": "NotIn", "values": ["done-1"]},
                            {"key": "metadata.name", "operator": "In", "values": ["n"]},
                        ]
                    }
                ]
            }
        }
    }
    assert puller_pod_from_json(raw).node == "n"
    raw["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ][0]["matchFields"].pop()
    assert puller_pod_from_json(raw).node is None


@pytest.mark.parametrize("reason", ["CreateContainerConfigError", "CreateContainerError"])
def test_a_container_stuck_after_its_pull_has_its_image_and_names_what_blocks_the_rest(
    reason: str,
) -> None:
    """z2jh #1891: pullers stuck in CreateContainerConfigError under restricted pod security.
    The kubelet reports it only after pulling, so that image is present; the images of the init
    containers after it are not, and the verdict says why."""
    stuck = {
        "state": {
            "waiting": {
                "reason": reason,
                "message": "container has runAsNonRoot and image will run as root",
            }
        }
    }
    later = parse_image("quay.io/jupyter/later:1")
    pod = puller_pod_from_json(
        pod_json(init=[(NOTEBOOK.original, stuck), (later.original, WAITING)])
    )
    assert pod.images[NOTEBOOK.key].state is PullState.PULLED
    verdict = judge(N, [pod], images=(NOTEBOOK, later)).verdicts[0]
    assert verdict.status is NodeStatus.PULLING
    assert verdict.missing == (later.original,)
    assert verdict.detail == (
        f"puller pod stuck after a pull: {reason}: "
        "container has runAsNonRoot and image will run as root"
    )


def test_merging_pods_on_one_node_prefers_pulled() -> None:
    old = PullerPod(name="old", node="n", images={"k": ImagePull(PullState.PULLED)})
    new = PullerPod(name="new", node="n", images={"k": ImagePull(PullState.PULLING)})
    assert merge_pods_by_node([new, old])["n"].images["k"].state is PullState.PULLED
    assert merge_pods_by_node([PullerPod(name="x", node=None)]) == {}


def test_zero_targets_is_done() -> None:
    result = judge(NodeState(name="n", ready=False), [])
    assert result.done and result.verdicts == () and result.excluded == {"n": "node not Ready"}


# ---------------------------------------------------------------- classified pull errors (issue 12)

# forcedotcom/salesforcedx-docker#35 (containerd), as in tests/unit/test_pullerrors.py
NOT_FOUND = (
    'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/salesforce/'
    'salesforcedx:latest": failed to resolve reference "docker.io/salesforce/salesforcedx:'
    'latest": docker.io/salesforce/salesforcedx:latest: not found'
)
# kubewarden/adm-controller#1378 (containerd): no variant for the node's platform
NO_VARIANT = (
    'rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/kubewarden/'
    'kubewarden-controller:latest": no match for platform in manifest: not found'
)
TIMEOUT = (
    'rpc error: code = Unknown desc = failed to pull and unpack image "quay.io/x/y:1": '
    "dial tcp 10.0.0.7:443: i/o timeout"
)
ARM = NodeState(name="n", ready=True, labels={"kubernetes.io/arch": "arm64"})


def failing_pod(message: str, reason: str = "ErrImagePull") -> PullerPod:
    waiting = {"state": {"waiting": {"reason": reason, "message": message}}}
    return puller_pod_from_json(pod_json(init=[(NOTEBOOK.original, waiting)]))


def judged(node: NodeState, pod: PullerPod, rules: FailureRules, **kwargs: Any) -> Any:
    return evaluate(
        nodes={node.name: node},
        pods=[pod],
        images=(NOTEBOOK,),
        placement=Placement(),
        include_cordoned=False,
        now=kwargs.pop("now", 100.0),
        failing_since=kwargs.pop("since", {}),
        grace=30.0,
        rules=rules,
        **kwargs,
    )


def test_a_permanent_pull_error_fails_at_once_with_its_class_and_advice() -> None:
    result = judged(N, failing_pod(NOT_FOUND), FailureRules())
    [failure] = result.failures
    assert (failure.error_class, failure.kind) == ("permanent", "not-found")
    assert "fix the tag" in failure.advice and failure.message == NOT_FOUND


def test_without_fail_fast_a_permanent_error_waits_out_the_grace() -> None:
    rules = FailureRules(fail_fast=False)
    assert judged(N, failing_pod(NOT_FOUND), rules).verdicts[0].status is NodeStatus.PULLING
    late = judged(N, failing_pod(NOT_FOUND), rules, now=131.0, since={("n", NOTEBOOK.key): 100.0})
    assert late.verdicts[0].status is NodeStatus.FAILED


def test_a_transient_error_keeps_the_grace_even_with_fail_fast() -> None:
    result = judged(N, failing_pod(TIMEOUT), FailureRules())
    assert result.verdicts[0].status is NodeStatus.PULLING
    assert result.verdicts[0].failures[0].kind == "timeout"


def test_a_backoff_whose_waiting_state_names_no_cause_takes_it_from_the_events() -> None:
    pod = failing_pod(
        'Back-off pulling image "quay.io/jupyter/base-notebook:1"', "ImagePullBackOff"
    )
    alone = judged(N, pod, FailureRules())
    assert alone.verdicts[0].status is NodeStatus.PULLING  # unknown is transient
    told = judged(
        N, pod, FailureRules(), event_errors={("n", NOTEBOOK.key): classify_message(NOT_FOUND)}
    )
    assert told.failures[0].kind == "not-found"


def test_a_platform_mismatch_excludes_the_node_naming_its_platform() -> None:
    result = judged(ARM, failing_pod(NO_VARIANT), FailureRules())
    assert result.verdicts == () and result.done
    assert result.excluded == {"n": "image has no linux/arm64 variant"}
    exclusion = result.platform_excluded[("n", NOTEBOOK.key)]
    assert exclusion.message == NO_VARIANT


def test_a_platform_exclusion_stays_when_the_pod_is_gone() -> None:
    first = judged(ARM, failing_pod(NO_VARIANT), FailureRules())
    later = evaluate(
        nodes={"n": ARM},
        pods=[],
        images=(NOTEBOOK,),
        placement=Placement(),
        include_cordoned=False,
        now=200.0,
        failing_since={},
        grace=30.0,
        platform_excluded=first.platform_excluded,
    )
    assert later.excluded == {"n": "image has no linux/arm64 variant"}


def test_a_node_excluded_for_one_image_is_still_awaited_for_the_others() -> None:
    other = parse_image("quay.io/org/multiarch:1")
    waiting = {"state": {"waiting": {"reason": "ErrImagePull", "message": NO_VARIANT}}}
    pod = puller_pod_from_json(
        pod_json(init=[(NOTEBOOK.original, waiting), (other.original, WAITING)])
    )
    result = evaluate(
        nodes={"n": ARM},
        pods=[pod],
        images=(NOTEBOOK, other),
        placement=Placement(),
        include_cordoned=False,
        now=100.0,
        failing_since={},
        grace=30.0,
    )
    [verdict] = result.verdicts
    assert verdict.status is NodeStatus.PULLING and verdict.missing == (other.original,)
    assert ("n", NOTEBOOK.key) in result.platform_excluded


def test_on_platform_mismatch_fail_fails_the_node_at_once() -> None:
    result = judged(ARM, failing_pod(NO_VARIANT), FailureRules(platform_mismatch="fail"))
    [failure] = result.failures
    assert (failure.error_class, failure.kind) == ("permanent", "no-platform-variant")


def test_the_final_line_names_class_kind_node_image_message_and_advice() -> None:
    from image_awaiter.core.outcomes import pull_failed

    code, _, line = pull_failed(judged(N, failing_pod(NOT_FOUND), FailureRules()))
    assert int(code) == 4
    assert line.startswith(
        f"image {NOTEBOOK.original} cannot be pulled on node n (permanent not-found): "
        f"ErrImagePull: {NOT_FOUND}; fix the tag"
    )
