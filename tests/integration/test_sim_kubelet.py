"""The simulated kubelets and registry tell what real ones tell: pod statuses and core/v1 Events
read with the real kubernetes client, checked against the real runtime and kubelet texts in
simcluster/nodes/messages.py and against the product's own classifier and event parser."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config, watch

from image_awaiter.core import pullerrors, pullevents
from simcluster import Fault, SimCluster
from simcluster.nodes import messages
from simcluster.nodes.recording import SPAM_BURST

APP = "quay.io/org/app:1"
RUNTIMES = ("containerd", "cri-o", "docker")
PERMANENT = ("tag-not-found", "repository-not-found", "unauthorized")
TRANSIENT = (
    "rate-limited",
    "timeout",
    "tls",
    "connection-refused",
    "server-error",
    "disk-pressure",
)


@pytest.fixture
def api(kubeconfig: Path) -> Iterator[client.CoreV1Api]:
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield client.CoreV1Api(api_client)
    finally:
        api_client.close()


def start_pod(
    api: client.CoreV1Api,
    node: str,
    image: str,
    *,
    name: str | None = None,
    policy: str = "IfNotPresent",
) -> str:
    """A pod bound to `node` whose one init container pulls `image` (as a puller pod does)."""
    name = name or f"puller-{node}"
    body = {
        "metadata": {"name": name, "labels": {"sim/run": "1"}},
        "spec": {
            "nodeName": node,
            "initContainers": [{"name": "pull", "image": image, "imagePullPolicy": policy}],
            "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}],
        },
    }
    api.create_namespaced_pod("default", body)
    return name


def pod_events(api: client.CoreV1Api, pod: str) -> list[client.CoreV1Event]:
    selector = f"involvedObject.kind=Pod,involvedObject.name={pod}"
    return list(api.list_namespaced_event("default", field_selector=selector).items)


def messages_of(api: client.CoreV1Api, pod: str, reason: str) -> list[str]:
    return [e.message for e in pod_events(api, pod) if e.reason == reason]


def waiting(sim: SimCluster, pod: str) -> tuple[str, str] | None:
    obj = sim.store.get("pods", pod, "default") or {}
    for status in (obj.get("status") or {}).get("initContainerStatuses") or []:
        state = (status.get("state") or {}).get("waiting")
        if state:
            return state.get("reason", ""), state.get("message", "")
    return None


def has_event(sim: SimCluster, pod: str, reason: str, message: str | None = None) -> bool:
    return any(
        e["involvedObject"]["name"] == pod
        and e["reason"] == reason
        and (message is None or e["message"] == message)
        for e in sim.store.items("events", "default")
    )


def running(sim: SimCluster, pod: str) -> bool:
    obj = sim.store.get("pods", pod, "default") or {}
    return (obj.get("status") or {}).get("phase") == "Running"


def real_text(runtime: str, table_kind: str, index: int, image: str, ref: str) -> str:
    rows = [e for e in messages.PULL_ERRORS if e.runtime == runtime and e.kind == table_kind]
    return messages.render(rows[index].text, image=image, ref=ref)


# ------------------------------------------------------------------------- failure classes


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("kind", PERMANENT + TRANSIENT)
def test_each_failure_class_gives_the_runtimes_real_message_in_status_and_events(
    sim: SimCluster, api: client.CoreV1Api, runtime: str, kind: str
) -> None:
    sim.add_node("n", runtime=runtime)
    sim.registry.add(APP)
    sim.fail_pull(APP, kind=kind)
    pod = start_pod(api, "n", APP)
    assert sim.wait_for(lambda s: has_event(s, pod, "Failed", "Error: ErrImagePull"), 10)
    [failed] = [m for m in messages_of(api, pod, "Failed") if m.startswith("Failed to pull")]
    prefix = f'Failed to pull image "{APP}": '
    assert failed.startswith(prefix)
    error = failed.removeprefix(prefix)
    assert error in {messages.render(e.text, image=APP, ref=APP) for e in messages.PULL_ERRORS}, (
        "not one of the real runtime texts"
    )
    assert pullerrors.classify_message(error).error_class == (
        "permanent" if kind in PERMANENT else "transient"
    )
    state = waiting(sim, pod)
    assert state is not None
    assert state in {
        ("ErrImagePull", error),
        ("ImagePullBackOff", f'Back-off pulling image "{APP}": ErrImagePull: {error}'),
    }


def test_each_runtime_says_not_found_in_its_own_words(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    for runtime in RUNTIMES:
        sim.add_node(runtime, runtime=runtime)
    sim.registry.add(APP, missing=True)
    for runtime in RUNTIMES:
        start_pod(api, runtime, APP, name=f"p-{runtime}")
    assert sim.wait_for(
        lambda s: all(has_event(s, f"p-{r}", "Failed", "Error: ErrImagePull") for r in RUNTIMES),
        10,
    )
    ref = "quay.io/org/app:1"
    for runtime in RUNTIMES:
        expected = real_text(runtime, "not-found", 0, APP, ref)
        assert f'Failed to pull image "{APP}": {expected}' in messages_of(
            api, f"p-{runtime}", "Failed"
        )
    # the three texts differ: containerd's NotFound, CRI-O's and Docker's "manifest unknown"
    assert "failed to resolve reference" in messages_of(api, "p-containerd", "Failed")[0]
    assert "reading manifest 1 in quay.io/org/app" in messages_of(api, "p-cri-o", "Failed")[0]
    assert "Error response from daemon" in messages_of(api, "p-docker", "Failed")[0]


def test_a_failing_pull_goes_to_back_off_with_the_last_error_and_aggregates_repeats(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.add_node("n")
    sim.registry.add(APP, denied=True)
    pod = start_pod(api, "n", APP)
    assert sim.wait_for(lambda s: (waiting(s, pod) or ("",))[0] == "ImagePullBackOff", 10)
    assert sim.settle()  # the events that came before that status
    state = waiting(sim, pod)
    assert state is not None
    error = real_text("containerd", "unauthorized", 0, APP, APP)
    assert state[1] == f'Back-off pulling image "{APP}": ErrImagePull: {error}'
    assert messages_of(api, pod, "BackOff") == [f'Back-off pulling image "{APP}"']
    assert "Error: ImagePullBackOff" in messages_of(api, pod, "Failed")
    # the kubelet retries after its back-off (10 s, scaled): the same Failed event counts up
    assert sim.wait_for(
        lambda s: any(
            e["reason"] == "Pulling" and e["count"] >= 2 for e in s.store.items("events", "default")
        ),
        10,
    )
    pulling = [e for e in pod_events(api, pod) if e.reason == "Pulling"]
    assert len(pulling) == 1 and pulling[0].count >= 2
    assert pulling[0].last_timestamp >= pulling[0].first_timestamp


def test_kubelet_events_carry_the_fields_kubectl_and_the_awaiter_read(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.add_node("n")
    pod = start_pod(api, "n", APP)
    assert sim.wait_for(lambda s: running(s, pod), 10)
    assert sim.settle()  # the events that came before that status
    uid = api.read_namespaced_pod(pod, "default").metadata.uid
    events = pod_events(api, pod)
    assert [e.reason for e in events if e.involved_object.field_path.startswith("spec.init")] == [
        "Pulling",
        "Pulled",
        "Created",
        "Started",
    ]
    for event in events:
        assert event.metadata.name.startswith(f"{pod}.")
        assert event.metadata.namespace == "default"
        assert event.involved_object.kind == "Pod" and event.involved_object.uid == uid
        assert event.involved_object.field_path in (
            "spec.initContainers{pull}",
            "spec.containers{pause}",
        )
        assert event.source.component == "kubelet" and event.source.host == "n"
        assert event.reporting_component == "kubelet" and event.reporting_instance == "n"
        assert event.type == "Normal" and event.count == 1 and event.event_time is None
    created = messages_of(api, pod, "Created")
    assert "Created container: pull" in created


def test_a_field_selected_event_watch_streams_only_that_pods_pull_events(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.add_node("n")
    sim.add_node("m")
    start_pod(api, "m", APP, name="other")
    pod = start_pod(api, "n", APP)
    assert sim.wait_for(lambda s: running(s, pod) and running(s, "other"), 10)
    seen = []
    for item in watch.Watch().stream(
        api.list_namespaced_event,
        "default",
        field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod}",
        timeout_seconds=1,
    ):
        seen.append((item["object"].involved_object.name, item["object"].reason))
    assert {name for name, _ in seen} == {pod}
    assert [r for _, r in seen].count("Pulled") == 2  # the image and pause


# ------------------------------------------------------------------------- pulled facts


def test_pulled_events_carry_the_registrys_size_and_the_pull_time_on_that_node(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.registry.add(APP, size_bytes=734_003_200, pull_seconds=30)
    for node in ("fast", "slow-node-7"):
        sim.add_node(node)
        start_pod(api, node, APP)
    assert sim.wait_for(lambda s: running(s, "puller-fast") and running(s, "puller-slow-node-7"))
    for node in ("fast", "slow-node-7"):
        [message] = [m for m in messages_of(api, f"puller-{node}", "Pulled") if f'"{APP}"' in m]
        seconds = sim.expected_pull_seconds(APP, node)
        took = messages.go_duration(seconds)
        assert message == (
            f'Successfully pulled image "{APP}" in {took} ({took} including waiting).'
            " Image size: 734003200 bytes."
        )
        fact = pullevents.parse_event("Pulled", message)
        assert isinstance(fact, pullevents.Pulled)
        assert fact.size_bytes == 734_003_200
        assert fact.seconds == pytest.approx(seconds, abs=0.001)
    assert sim.expected_pull_seconds(APP, "fast") != sim.expected_pull_seconds(APP, "slow-node-7")


def test_the_pull_history_holds_what_the_events_said_per_node_and_image(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.registry.add(APP, size_bytes=5_000, pull_seconds=10, platforms=("linux/amd64",))
    sim.add_node("has", images=(APP,))
    sim.add_node("pulls")
    sim.add_node("arm", arch="arm64")
    for node in ("has", "pulls", "arm"):
        start_pod(api, node, APP)
    assert sim.wait_for(
        lambda s: (
            running(s, "puller-has")
            and running(s, "puller-pulls")
            and has_event(s, "puller-arm", "Failed", "Error: ErrImagePull")
        ),
        10,
    )
    assert sim.settle()  # the events that came before those statuses
    [present] = sim.pull_history(node="has", image=APP)
    assert (present.outcome, present.size_bytes) == ("present", 5_000)
    [pulled] = sim.pull_history(node="pulls", image=APP)
    assert pulled.outcome == "pulled" and pulled.size_bytes == 5_000
    assert pulled.seconds == pytest.approx(sim.expected_pull_seconds(APP, "pulls"))
    [event] = [m for m in messages_of(api, "puller-pulls", "Pulled") if f'"{APP}"' in m]
    assert f"in {messages.go_duration(pulled.seconds or 0)} " in event
    failed = sim.pull_history(node="arm", image=APP)[0]
    assert (failed.outcome, failed.kind) == ("failed", "no-platform-variant")
    assert f'Failed to pull image "{APP}": {failed.message}' in messages_of(
        api, "puller-arm", "Failed"
    )


def test_a_node_pulling_one_image_at_a_time_reports_the_queue_as_waiting(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.add_node("n", serialize_pulls=True)
    first, second = "quay.io/org/first:1", "quay.io/org/second:1"
    sim.registry.add(first, pull_seconds=20, size_bytes=1000)
    sim.registry.add(second, pull_seconds=10, size_bytes=2000)
    sim.registry.add("registry.k8s.io/pause:3.10", pull_seconds=1)
    start_pod(api, "n", first, name="a")
    assert sim.wait_for(lambda s: has_event(s, "a", "Pulling"))
    start_pod(api, "n", second, name="b")
    assert sim.wait_for(lambda s: running(s, "a") and running(s, "b"), 20)
    assert sim.settle()  # the events that came before that status
    [fact] = [
        pullevents.parse_event("Pulled", m)
        for m in messages_of(api, "b", "Pulled")
        if f'"{second}"' in m
    ]
    assert isinstance(fact, pullevents.Pulled)
    assert fact.seconds == pytest.approx(sim.expected_pull_seconds(second, "n"), abs=0.001)
    assert fact.seconds_including_waiting is not None
    assert fact.seconds_including_waiting > fact.seconds + 0.3  # queued behind `first`
    assert fact.size_bytes == 2000


def test_a_present_image_is_already_present_on_machine_and_not_pulled(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.add_node("n", images=(APP,))
    pod = start_pod(api, "n", APP)
    assert sim.wait_for(lambda s: running(s, pod), 10)
    pulled = [e for e in pod_events(api, pod) if e.involved_object.field_path.endswith("{pull}")]
    assert [(e.reason, e.message) for e in pulled][:1] == [
        ("Pulled", f'Container image "{APP}" already present on machine')
    ]
    assert "Pulling" not in [e.reason for e in pulled]


def test_container_states_carry_real_start_times(sim: SimCluster, api: client.CoreV1Api) -> None:
    sim.add_node("n")
    pod = start_pod(api, "n", APP)
    assert sim.wait_for(lambda s: running(s, pod), 10)
    status = api.read_namespaced_pod(pod, "default").status
    terminated = status.init_container_statuses[0].state.terminated
    assert terminated.reason == "Completed" and terminated.started_at is not None
    assert status.container_statuses[0].state.running.started_at >= terminated.started_at
    assert status.start_time is not None


# ------------------------------------------------------------------------- refusals


def test_an_invalid_reference_is_invalid_image_name_with_the_kubelets_text(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.add_node("n")
    bad = "quay.io/org/App:1"  # upper case in a repository path
    pod = start_pod(api, "n", bad)
    assert sim.wait_for(lambda s: has_event(s, pod, "Failed", "Error: InvalidImageName"), 10)
    text = (
        f'Failed to apply default image tag "{bad}": couldn\'t parse image reference "{bad}":'
        " invalid reference format"
    )
    assert waiting(sim, pod) == ("InvalidImageName", text)
    assert messages_of(api, pod, "InspectFailed") == [text]
    assert pullerrors.classify_waiting("InvalidImageName", text) is not None


def test_fail_pull_with_kind_invalid_reference_is_the_kubelets_refusal(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.add_node("n")
    sim.fail_pull(APP, kind="invalid-reference")
    pod = start_pod(api, "n", APP)
    assert sim.wait_for(lambda s: has_event(s, pod, "Failed", "Error: InvalidImageName"), 10)
    state = waiting(sim, pod)
    assert state is not None and state[0] == "InvalidImageName"
    assert state[1].endswith("invalid reference format")
    assert "Pulling" not in [e.reason for e in pod_events(api, pod)]


def test_a_cluster_without_kubelet_events_records_none(tmp_path: Path) -> None:
    with SimCluster(seed=3, time_scale=0.05, kubelet_events=False) as sim:
        sim.add_node("n")
        api_client = config.new_client_from_config(
            config_file=str(sim.write_kubeconfig(tmp_path / "kc"))
        )
        pod = start_pod(client.CoreV1Api(api_client), "n", APP)
        assert sim.wait_for(lambda s: running(s, pod), 10)
        assert sim.objects("events", "default") == []
        assert [r.outcome for r in sim.pull_history(node="n")] == ["pulled", "pulled"]
        api_client.close()


def test_a_missing_image_with_pull_policy_never_is_err_image_never_pull(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.add_node("n")
    pod = start_pod(api, "n", APP, policy="Never")
    assert sim.wait_for(lambda s: has_event(s, pod, "Failed", "Error: ErrImageNeverPull"), 10)
    text = f'Container image "{APP}" is not present with pull policy of Never'
    assert waiting(sim, pod) == ("ErrImageNeverPull", text)
    assert messages_of(api, pod, "ErrImageNeverPull") == [text]


def test_unknown_images_are_missing_when_the_cluster_says_so(tmp_path: Path) -> None:
    with SimCluster(seed=2, time_scale=0.05, unknown_images="missing") as sim:
        sim.registry.add("quay.io/org/app:2")
        sim.registry.add("registry.k8s.io/pause:3.10")  # the pods' main container
        sim.add_node("n")
        api_client = config.new_client_from_config(
            config_file=str(sim.write_kubeconfig(tmp_path / "kc"))
        )
        api = client.CoreV1Api(api_client)
        start_pod(api, "n", APP, name="other-tag")
        start_pod(api, "n", "quay.io/org/nothing:1", name="no-repo")
        start_pod(api, "n", "quay.io/org/app:2", name="known")
        assert sim.wait_for(
            lambda s: (
                running(s, "known")
                and has_event(s, "other-tag", "Failed", "Error: ErrImagePull")
                and has_event(s, "no-repo", "Failed", "Error: ErrImagePull")
            ),
            10,
        )
        other = messages_of(api, "other-tag", "Failed")[0]
        assert other.endswith(f"{APP}: not found")
        none = messages_of(api, "no-repo", "Failed")[0]
        assert "repository does not exist or may require authorization" in none
        assert pullerrors.classify_message(none).error_class == "permanent"
        api_client.close()


def test_unknown_images_are_present_by_default(sim: SimCluster, api: client.CoreV1Api) -> None:
    sim.add_node("n")
    pod = start_pod(api, "n", "registry.example.com/never/added:7")
    assert sim.wait_for(lambda s: running(s, pod), 10)


# ------------------------------------------------------------------------- outages


def test_a_registry_outage_fails_pulls_transiently_and_they_succeed_once_it_ends(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.add_node("n", runtime="cri-o")
    sim.registry_outage("quay.io")
    pod = start_pod(api, "n", APP)
    assert sim.wait_for(lambda s: has_event(s, pod, "Failed", "Error: ErrImagePull"), 10)
    error = messages_of(api, pod, "Failed")[0].removeprefix(f'Failed to pull image "{APP}": ')
    assert error == real_text("cri-o", "server-error", 0, APP, APP)
    assert pullerrors.classify_message(error).error_class == "transient"
    assert not running(sim, pod)
    sim.end_outage("quay.io")
    assert sim.wait_for(lambda s: running(s, pod), 10)
    assert any(m.startswith("Successfully pulled") for m in messages_of(api, pod, "Pulled"))


def test_an_outage_with_an_end_time_heals_by_itself_and_spares_other_registries(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.add_node("n")
    sim.add_node("m")
    sim.registry_outage(APP, until=20, kind="connection-refused")  # 20 s x 0.05 = 1 s
    pod = start_pod(api, "n", APP)
    other = start_pod(api, "m", "docker.io/library/busybox:1.36")
    assert sim.wait_for(lambda s: running(s, other), 10)
    assert sim.wait_for(lambda s: has_event(s, pod, "Failed", "Error: ErrImagePull"), 10)
    assert "connect: connection refused" in messages_of(api, pod, "Failed")[0]
    assert sim.wait_for(lambda s: running(s, pod), 20)


# ------------------------------------------------------------------------- platforms and pools


def test_an_amd64_only_image_fails_on_arm64_nodes_with_the_platform_message(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.registry.add(APP, platforms=("linux/amd64",))
    amd = sim.add_node_pool("cpu", 1)
    arm = sim.add_node_pool("arm", 3, arch="arm64")
    for node in amd + arm:
        start_pod(api, node, APP)
    assert sim.wait_for(
        lambda s: (
            running(s, "puller-cpu-0")
            and all(has_event(s, f"puller-{n}", "Failed", "Error: ErrImagePull") for n in arm)
        ),
        10,
    )
    for node in arm:
        error = messages_of(api, f"puller-{node}", "Failed")[0]
        assert error == (
            f'Failed to pull image "{APP}": rpc error: code = NotFound desc = failed to pull and'
            f' unpack image "{APP}": no match for platform in manifest: not found'
        )
        classified = pullerrors.classify_message(error)
        assert classified.error_class == "platform-mismatch"


@pytest.mark.parametrize(
    ("runtime", "says"),
    [
        ("docker", "no matching manifest for linux/arm64/v8 in the manifest list entries"),
        ("cri-o", "no image found in manifest list for architecture arm64, variant v8, OS linux"),
    ],
)
def test_cri_o_and_docker_name_the_nodes_platform(
    sim: SimCluster, api: client.CoreV1Api, runtime: str, says: str
) -> None:
    sim.registry.add(APP, platforms=("linux/amd64",))
    [node] = sim.add_node_pool("arm", 1, arch="arm64", runtime=runtime)
    pod = start_pod(api, node, APP)
    assert sim.wait_for(lambda s: has_event(s, pod, "Failed", "Error: ErrImagePull"), 10)
    assert messages_of(api, pod, "Failed")[0].endswith(says)


def test_an_arm64_only_image_fails_on_amd64_in_docker_words(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.registry.add(APP, platforms=("linux/arm64/v8",))
    sim.add_node("x86", runtime="docker")
    sim.add_node("graviton", arch="arm64", runtime="docker")
    start_pod(api, "x86", APP)
    start_pod(api, "graviton", APP)
    assert sim.wait_for(lambda s: has_event(s, "puller-x86", "Failed", "Error: ErrImagePull"))
    assert messages_of(api, "puller-x86", "Failed")[0].endswith(
        "no matching manifest for linux/amd64 in the manifest list entries"
    )
    assert sim.wait_for(lambda s: running(s, "puller-graviton"), 10)


def test_node_pools_have_cloud_labels_taints_and_node_info(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    gpu = sim.add_node_pool(
        "gpu",
        2,
        labels={"nvidia.com/gpu.present": "true"},
        taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        instance_type="g5.2xlarge",
    )
    arm = sim.add_node_pool("arm", 2, arch="arm64")
    assert gpu == ["gpu-0", "gpu-1"] and arm == ["arm-0", "arm-1"]
    listed = api.list_node(label_selector="nvidia.com/gpu.present=true").items
    assert sorted(n.metadata.name for n in listed) == gpu
    for node in listed:
        labels = node.metadata.labels
        assert labels["node.kubernetes.io/instance-type"] == "g5.2xlarge"
        assert labels["kubernetes.io/arch"] == "amd64" and labels["kubernetes.io/os"] == "linux"
        assert labels["eks.amazonaws.com/nodegroup"] == "gpu"
        assert node.spec.taints[0].to_dict() == {
            "key": "nvidia.com/gpu",
            "value": "present",
            "effect": "NoSchedule",
            "time_added": None,
        }
    zones = {n.metadata.labels["topology.kubernetes.io/zone"] for n in listed}
    assert zones == {"us-east-1a", "us-east-1b"}
    for node in api.list_node(label_selector="kubernetes.io/arch=arm64").items:
        assert node.status.node_info.architecture == "arm64"
        assert node.metadata.labels["node.kubernetes.io/instance-type"] == "m7g.2xlarge"
        assert node.status.node_info.kernel_version.endswith("arm64")


def test_a_daemonset_lands_only_where_it_tolerates_and_pulls_fail_only_off_platform(
    sim: SimCluster, api: client.CoreV1Api, kubeconfig: Path
) -> None:
    sim.registry.add(APP, platforms=("linux/amd64",))
    sim.add_node_pool("cpu", 2)
    sim.add_node_pool("arm", 1, arch="arm64")
    sim.add_node_pool(
        "gpu",
        1,
        taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    )
    apps = client.AppsV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    labels = {"app": "puller"}
    apps.create_namespaced_daemon_set(
        "default",
        {
            "metadata": {"name": "puller"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "initContainers": [{"name": "pull", "image": APP}],
                        "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}],
                    },
                },
            },
        },
    )

    def by_node(s: SimCluster) -> dict[str, str]:
        return {
            p["spec"]["nodeName"]: (p.get("status") or {}).get("phase", "")
            for p in s.store.items("pods", "default")
        }

    assert sim.wait_for(
        lambda s: (
            by_node(s).get("cpu-0") == "Running"
            and by_node(s).get("cpu-1") == "Running"
            and any(
                e["source"]["host"] == "arm-0" and e["message"] == "Error: ErrImagePull"
                for e in s.store.items("events", "default")
            )
        ),
        10,
    )
    assert "gpu-0" not in by_node(sim)


# ------------------------------------------------------------------------- per node


def test_a_full_disk_on_one_node_fails_every_pull_there_only(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    sim.add_node("full", runtime="docker")
    sim.add_node("fine", runtime="docker")
    sim.fail_pull("*", kind="disk-pressure", nodes=["full"])
    start_pod(api, "full", APP)
    start_pod(api, "fine", APP)
    assert sim.wait_for(lambda s: has_event(s, "puller-full", "Failed", "Error: ErrImagePull"))
    assert sim.wait_for(lambda s: running(s, "puller-fine"), 10)
    error = messages_of(api, "puller-full", "Failed")[0]
    assert error.endswith("no space left on device")
    assert pullerrors.classify_message(error).kind == "disk-pressure"


def test_the_spam_filter_drops_events_past_the_burst_like_client_go(sim: SimCluster) -> None:
    sim.add_node("n")
    pod = {"metadata": {"name": "chatty", "namespace": "default", "uid": "u-1"}}
    for index in range(SPAM_BURST + 5):
        sim.event_recorder.record(pod, host="n", reason="Pulling", message=f"m{index}")
    assert sim.settle()
    recorded = [e for e in sim.store.items("events", "default") if e["reason"] == "Pulling"]
    assert len(recorded) == SPAM_BURST
    assert sim.event_recorder.dropped == 5


def test_unknown_failure_kinds_are_refused_with_the_kinds_that_exist(sim: SimCluster) -> None:
    with pytest.raises(ValueError, match="unknown pull failure kind 'nope'"):
        sim.fail_pull(APP, kind="nope")
    with pytest.raises(ValueError, match="an outage is transient"):
        sim.registry_outage("quay.io", kind="unauthorized")
    with pytest.raises(ValueError, match="refused by the kubelet"):
        sim.registry.add(APP, failure="invalid-reference")


def test_wait_for_sees_a_request_while_a_fault_still_holds_it(
    sim: SimCluster, api: client.CoreV1Api
) -> None:
    """Regression (a racy SIGTERM test): a request held by a delay fault changes nothing in the
    store, so `wait_for` on the request log only woke at the next store change, after the hold.
    Recording a request must wake the waiters itself."""
    sim.faults.add(Fault(method="GET", path="/api/v1/nodes", status=0, delay=20.0, times=1))
    caller = threading.Thread(target=_list_nodes_ignoring_errors, args=(api,), daemon=True)
    started = time.monotonic()
    caller.start()
    assert sim.wait_for(lambda s: any(r.path == "/api/v1/nodes" for r in s.requests), timeout=15)
    assert time.monotonic() - started < 10  # `wait_for` re-checks once at its timeout, too
    assert caller.is_alive()  # seen while the request is still held


def _list_nodes_ignoring_errors(api: client.CoreV1Api) -> None:
    with contextlib.suppress(Exception):  # the server stops before the hold ends
        api.list_node(_request_timeout=30)


# ------------------------------------------------------------------------- faults and kubelets


def test_faults_for_the_awaiter_spare_the_http_kubelets_unless_a_rule_names_them(
    tmp_path: Path,
) -> None:
    """The simulated API server serves its HTTP kubelets too: a fault on every pod request
    (meant for the awaiter) leaves their pod watch and status writes alone, and a rule with
    `agent="^kubelet/"` hits only them."""
    from simcluster.apiclient import Api
    from simcluster.nodes.kubelet import Kubelets
    from simcluster.nodes.world import NodeWorld

    with SimCluster(seed=5) as sim:
        api = Api.from_kubeconfig(sim.write_kubeconfig(tmp_path / "kubeconfig"))
        kubelets = Kubelets(api, world=NodeWorld(time_scale=0.05))
        kubelets.start()
        try:
            kubelets.add_node("http-node")
            for_the_awaiter = sim.faults.add(Fault(path="/pods", status=503, times=None))
            body = {
                "metadata": {"name": "p"},
                "spec": {
                    "nodeName": "http-node",
                    "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}],
                },
            }
            sim.create("pods", body, "default")
            assert sim.wait_for(lambda s: running(s, "p"), timeout=15), kubelets.errors
            status, _ = api.request("GET", "/api/v1/namespaces/default/pods")
            assert status == 503  # any other client still meets the fault
            # their requests are logged apart from the clients' (tests count the awaiter's)
            assert any(r.path.endswith("/pods/p/status") for r in sim.kubelet_requests)
            assert not any(r.path.endswith("/pods/p/status") for r in sim.requests)
            assert for_the_awaiter.agent is None

            sim.faults.clear()
            for_the_nodes = sim.faults.add(
                Fault(method="PATCH", path="/pods/q/status$", status=500, times=None,
                      agent="^kubelet/")
            )  # fmt: skip
            sim.create("pods", {**body, "metadata": {"name": "q"}}, "default")
            assert sim.wait_for(
                lambda s: any("pod status q: 500" in e for e in kubelets.errors), timeout=15
            )
            assert not running(sim, "q")
            assert api.request("GET", "/api/v1/namespaces/default/pods/q")[0] == 200
            for_the_nodes.times = 0
            assert sim.wait_for(lambda s: running(s, "q"), timeout=15)
        finally:
            kubelets.stop()
            kubelets.remove_nodes()
            api.close()
