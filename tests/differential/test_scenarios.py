"""The same scenarios against the simulated and the real API server (see conftest.py): what the
awaiter and its users rely on must read the same on both. A difference that cannot be fixed in
the simulator is listed in simcluster/README.md, "Known differences"."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from simcluster.apiclient import Api, Credentials, load_kubeconfig
from simcluster.nodes.factory import KUBERNETES_RELEASE
from simcluster.nodes.kubelet import DEFAULT_AWAITER_IMAGE
from tests.differential.conftest import Backend

PAUSE = "registry.k8s.io/pause:3.10"
FIRST = "quay.io/differential/first:1"
SECOND = "quay.io/differential/second:1"
MISSING = "quay.io/differential/no-such-image:1"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
Json = dict[str, Any]


def _ready(node: Json) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _ready_node(backend: Backend, name: str) -> Json | None:
    node: Json = backend.api.call("GET", f"/api/v1/nodes/{name}")
    return node if _ready(node) else None


def _ready_daemonset(backend: Backend, name: str, ready: int) -> Json | None:
    status: Json = backend.api.call("GET", backend.path("daemonsets", name)).get("status") or {}
    return status if status.get("numberReady") == ready else None


def _puller(*images: str) -> Json:
    return {
        "initContainers": [
            {"name": f"pull-{index}", "image": image} for index, image in enumerate(images)
        ],
        "containers": [{"name": "pause", "image": PAUSE}],
    }


def _kubelet_events(backend: Backend, pod: str) -> list[Json]:
    mine = [
        e
        for e in backend.events()
        if e["involvedObject"]["name"] == pod
        and (e.get("source") or {}).get("component") == "kubelet"
    ]
    return sorted(mine, key=lambda e: e["metadata"]["name"])  # <pod>.<hex nanos>: in order


def _init_state(pod: Json, index: int) -> Json:
    statuses = pod.get("status", {}).get("initContainerStatuses") or []
    return statuses[index]["state"] if len(statuses) > index else {}


def test_registered_nodes_become_ready_and_report_the_release_and_their_lease(
    backend: Backend,
) -> None:
    name = backend.add_node("a", runtime="cri-o")
    node = backend.eventually(lambda: _ready_node(backend, name), what="node Ready")
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == KUBERNETES_RELEASE
    assert info["containerRuntimeVersion"].startswith("cri-o://1.34.")
    assert node["status"]["capacity"]["pods"] == "110"
    assert {"kubernetes.io/os", "kubernetes.io/arch", "kubernetes.io/hostname"} <= set(
        node["metadata"]["labels"]
    )
    lease = backend.api.call("GET", f"{LEASES}/{name}")
    assert (lease["spec"]["holderIdentity"], lease["spec"]["leaseDurationSeconds"]) == (name, 40)
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
    assert backend.api.call("GET", "/version")["gitVersion"] == KUBERNETES_RELEASE


def test_a_pod_bound_while_its_node_registers_is_run(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod bound to a node between the Node's creation and the end of `add_node` (as the
    scheduler binds a DaemonSet's pod to a node joining mid-run) is the kubelets' to run: the
    pod watch counted the node as theirs first (it used to drop such a pod, and the node never
    pulled). The pod is bound inside that gap, and its watch event given time to arrive."""
    backend.world.registry.add(PAUSE, pull_seconds=0.1)
    kubelets = backend.kubelets
    create = kubelets.leases._create_or_get

    def create_then_bind(path: str, body: Json, *, name: str) -> Json:
        created = create(path, body, name=name)
        if path == "/api/v1/nodes":
            pod = {
                "metadata": {"name": "early", "labels": {"app": "early"}},
                "spec": {"nodeName": name, "containers": [{"name": "pause", "image": PAUSE}]},
            }
            backend.api.call("POST", backend.path("pods"), pod)
            time.sleep(1.0)
        return created

    monkeypatch.setattr(kubelets.leases, "_create_or_get", create_then_bind)
    joined = backend.add_node("joining")
    running = backend.eventually(
        lambda: [p for p in backend.pods("early") if p["status"].get("phase") == "Running"],
        what="the pod bound while its node registered Running",
        timeout=15,
    )
    assert [p["spec"]["nodeName"] for p in running] == [joined]


def test_a_daemonset_gets_a_pod_on_each_eligible_node_and_none_elsewhere(backend: Backend) -> None:
    backend.world.registry.add(PAUSE, pull_seconds=0.1)
    main = {"pool": "main"}
    eligible = {backend.add_node("a", labels=main), backend.add_node("b", labels=main)}
    gpu_taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    backend.add_node("gpu", labels=main, taints=[gpu_taint])
    backend.add_node("other", labels={"pool": "other"})
    backend.daemonset("placed", {**_puller(), "nodeSelector": main})

    def scheduled() -> set[str] | None:
        pods = backend.pods("placed")
        nodes = {p["spec"].get("nodeName") for p in pods}
        return nodes if len(pods) == 2 and None not in nodes else None

    assert backend.eventually(scheduled, what="two pods bound") == eligible
    status = backend.eventually(lambda: _ready_daemonset(backend, "placed", 2), what="2 ready")
    assert status["desiredNumberScheduled"] == 2
    assert status["currentNumberScheduled"] == 2


def test_init_containers_pull_one_at_a_time_with_image_ids_events_and_node_images(
    backend: Backend,
) -> None:
    for image in (PAUSE, FIRST, SECOND):
        backend.world.registry.add(image, pull_seconds=2.0)
    node = backend.add_node("a")
    backend.daemonset("puller", _puller(FIRST, SECOND))
    pod = backend.eventually(
        lambda: next(
            (p for p in backend.pods("puller") if p["status"].get("phase") == "Running"), None
        ),
        what="pod Running",
    )
    for index, image in enumerate((FIRST, SECOND)):
        terminated = _init_state(pod, index)["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
        image_id = pod["status"]["initContainerStatuses"][index]["imageID"]
        assert image_id.startswith(image.rsplit(":", 1)[0] + "@sha256:")

    def all_said() -> list[Json] | None:  # events are written after statuses, as by kubelets
        events = _kubelet_events(backend, pod["metadata"]["name"])
        last = ("Started", "Started container pause")
        return events if last in [(e["reason"], e["message"]) for e in events] else None

    events = backend.eventually(all_said, what="the pause container's Started event")
    said = [(e["reason"], e["message"]) for e in events]
    first = said.index(("Started", "Started container pull-0"))
    second = said.index(("Pulling", f'Pulling image "{SECOND}"'))
    assert first < second, f"the second pull began before the first container ran: {said}"
    pulled = next(m for r, m in said if r == "Pulled" and FIRST in m)
    assert pulled.startswith(f'Successfully pulled image "{FIRST}" in ')
    assert pulled.endswith("Image size: 10485760 bytes.")
    assert {e["involvedObject"]["fieldPath"] for e in events if e["reason"] == "Pulling"} == {
        "spec.initContainers{pull-0}",
        "spec.initContainers{pull-1}",
        "spec.containers{pause}",
    }

    def listed() -> set[str] | None:
        images = backend.api.call("GET", f"/api/v1/nodes/{node}")["status"].get("images") or []
        names = {name for entry in images for name in entry["names"]}
        return names if {FIRST, SECOND, PAUSE} <= names else None

    names = backend.eventually(listed, what="every pulled image in node.status.images")
    assert any(name.startswith("quay.io/differential/first@sha256:") for name in names)


def test_a_failing_pull_reports_the_runtime_text_then_backs_off(backend: Backend) -> None:
    backend.world.registry.add(PAUSE, pull_seconds=0.1)
    backend.world.fail_pull(MISSING, kind="tag-not-found")
    backend.add_node("a")
    backend.daemonset("failing", _puller(MISSING))
    runtime_text = (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{MISSING}": '
        f'failed to resolve reference "{MISSING}": {MISSING}: not found'
    )
    pod = backend.eventually(
        lambda: next(
            (
                p
                for p in backend.pods("failing")
                if _init_state(p, 0).get("waiting", {}).get("reason") == "ImagePullBackOff"
            ),
            None,
        ),
        what="ImagePullBackOff",
    )
    waiting = _init_state(pod, 0)["waiting"]
    assert waiting["message"] == f'Back-off pulling image "{MISSING}": ErrImagePull: {runtime_text}'
    expected = {
        ("Failed", "Warning", f'Failed to pull image "{MISSING}": {runtime_text}'),
        ("Failed", "Warning", "Error: ErrImagePull"),
        ("BackOff", "Normal", f'Back-off pulling image "{MISSING}"'),
    }

    def said() -> set[tuple[str, str, str]]:
        events = _kubelet_events(backend, pod["metadata"]["name"])
        return {(e["reason"], e["type"], e["message"]) for e in events}

    backend.eventually(lambda: expected <= said(), what=f"the events {expected}")


def test_a_deleted_pod_is_finished_by_its_kubelet_and_replaced_by_the_daemonset(
    backend: Backend,
) -> None:
    backend.world.registry.add(PAUSE, pull_seconds=0.1)
    backend.add_node("a")
    backend.daemonset("replaced", _puller())
    pod = backend.eventually(
        lambda: next(
            (p for p in backend.pods("replaced") if p["status"].get("phase") == "Running"), None
        ),
        what="pod Running",
    )
    old = pod["metadata"]["uid"]
    status, answer = backend.api.request("DELETE", backend.path("pods", pod["metadata"]["name"]))
    assert status == 200
    # bound and running: terminating (gone by now + its grace period), left to its kubelet
    assert answer["metadata"]["deletionGracePeriodSeconds"] == 30
    assert answer["metadata"]["deletionTimestamp"] > pod["metadata"]["creationTimestamp"]
    replacement = backend.eventually(
        lambda: (
            [p for p in backend.pods("replaced") if p["metadata"]["uid"] != old]
            if all(p["metadata"]["uid"] != old for p in backend.pods("replaced"))
            else None
        ),
        timeout=20,  # well inside the 30 s grace period: the kubelet ends it, not the timeout
        what="old pod gone and a new one created",
    )
    assert len(replacement) == 1


def test_a_pod_not_bound_or_deleted_with_no_grace_period_goes_at_once(backend: Backend) -> None:
    backend.world.registry.add(PAUSE, pull_seconds=0.1)
    backend.add_node("a")
    pending = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nowhere"},
        "spec": {
            "nodeSelector": {"differential/no-such-label": "x"},
            "containers": [{"name": "pause", "image": PAUSE}],
        },
    }
    backend.api.call("POST", backend.path("pods"), pending)
    status, answer = backend.api.request("DELETE", backend.path("pods", "nowhere"))
    assert status == 200 and answer["metadata"]["deletionGracePeriodSeconds"] == 0
    assert backend.api.request("GET", backend.path("pods", "nowhere"))[0] == 404
    backend.daemonset("forced", _puller())
    pod = backend.eventually(
        lambda: next(
            (p for p in backend.pods("forced") if p["status"].get("phase") == "Running"), None
        ),
        what="pod Running",
    )
    path = backend.path("pods", pod["metadata"]["name"])
    status, answer = backend.api.request(
        "DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0}
    )
    assert status == 200 and answer["metadata"]["deletionGracePeriodSeconds"] == 0
    assert backend.api.request("GET", path)[0] == 404


def test_a_server_dry_run_answers_as_if_written_and_changes_nothing(backend: Backend) -> None:
    node = backend.add_node("a")
    configmap = {"metadata": {"name": "dry"}, "data": {"k": "v"}}
    status, created = backend.api.request(
        "POST", backend.path("configmaps"), configmap, query={"dryRun": "All"}
    )
    assert (status, created["metadata"]["name"]) == (201, "dry")
    assert backend.api.request("GET", backend.path("configmaps", "dry"))[0] == 404
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]}
    status, _ = backend.api.request("DELETE", f"/api/v1/nodes/{node}", options)
    assert status == 200
    assert backend.api.request("GET", f"/api/v1/nodes/{node}")[0] == 200


def test_a_template_naming_a_missing_service_account_gets_failed_create_and_no_pod(
    backend: Backend,
) -> None:
    backend.world.registry.add(PAUSE, pull_seconds=0.1)
    backend.add_node("a")
    backend.daemonset("orphaned", {**_puller(), "serviceAccountName": "deleted-by-helm"})
    expected = (
        'Error creating: pods "orphaned-" is forbidden: error looking up service account '
        f'{backend.namespace}/deleted-by-helm: serviceaccount "deleted-by-helm" not found'
    )
    event = backend.eventually(
        lambda: next((e for e in backend.events() if e["reason"] == "FailedCreate"), None),
        what="FailedCreate",
    )
    assert (event["type"], event["message"]) == ("Warning", expected)
    assert event["involvedObject"]["kind"] == "DaemonSet"
    assert event["source"]["component"] == "daemonset-controller"
    assert backend.pods("orphaned") == []


def test_a_service_account_without_a_role_is_refused_with_the_real_rbac_text(
    backend: Backend,
) -> None:
    namespace = backend.namespace
    backend.api.call("POST", backend.path("serviceaccounts"), {"metadata": {"name": "reader"}})
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    token = backend.api.call("POST", backend.path("serviceaccounts", "reader") + "/token", request)
    admin = load_kubeconfig(backend.kubeconfig)
    reader = Api(
        Credentials(
            server=admin.server,
            ca_data=admin.ca_data,
            token=token["status"]["token"],
            insecure=admin.insecure,
        )
    )
    status, refusal = reader.request("GET", backend.path("pods"))
    assert (status, refusal["reason"]) == (403, "Forbidden")
    assert refusal["message"] == (
        f'pods is forbidden: User "system:serviceaccount:{namespace}:reader" cannot list '
        f'resource "pods" in API group "" in the namespace "{namespace}"'
    )


def test_a_pod_of_the_awaiter_image_runs_the_real_cli_as_its_service_account(
    backend: Backend,
) -> None:
    """The hook Job's pod: a real process, authenticated by its projected ServiceAccount token
    (TokenRequest), refused listing nodes as the account it runs as."""
    awaiter = f"{DEFAULT_AWAITER_IMAGE}:dev"
    backend.world.registry.add(awaiter, pull_seconds=0.1)
    node = backend.add_node("a")
    pod = {
        "metadata": {"name": "awaiter"},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": [
                {"name": "awaiter", "image": awaiter, "args": ["check", "--image", PAUSE]}
            ],
        },
    }
    backend.api.call("POST", backend.path("pods"), pod)
    done = backend.eventually(
        lambda: (
            (p := backend.api.call("GET", backend.path("pods", "awaiter")))
            and p["status"].get("phase") in ("Succeeded", "Failed")
            and p
        ),
        timeout=60,
        what="the awaiter's process ended",
    )
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (done["status"]["phase"], terminated["exitCode"]) == ("Failed", 3)
    account = f"system:serviceaccount:{backend.namespace}:default"
    assert account in terminated["message"], terminated["message"]
    assert "nodes" in terminated["message"]


def test_an_impersonated_service_account_is_decided_and_reported_as_itself(
    backend: Backend,
) -> None:
    """`kubectl auth can-i ... --as=system:serviceaccount:...` and `auth whoami --as=...`."""
    user = f"system:serviceaccount:{backend.namespace}:nobody"
    as_user = {"Impersonate-User": user}
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}},
    }
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    status, decided = backend.api.request("POST", path, review, headers=as_user)
    assert (status, decided["status"]["allowed"]) == (201, False)
    status, admin = backend.api.request("POST", path, review)
    assert (status, admin["status"]["allowed"]) == (201, True)
    whoami = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    status, who = backend.api.request("POST", path, whoami, headers=as_user)
    assert status == 201
    assert who["status"]["userInfo"]["username"] == user
    assert set(who["status"]["userInfo"]["groups"]) == {
        "system:serviceaccounts",
        f"system:serviceaccounts:{backend.namespace}",
        "system:authenticated",
    }


def test_a_running_pod_marked_not_ready_by_a_controller_is_reported_ready_again(
    backend: Backend,
) -> None:
    """The node lifecycle controller marks a lost node's pods not Ready; once the node's
    kubelet is heard again, its status manager writes its own status back."""
    backend.world.registry.add(PAUSE, pull_seconds=0.1)
    backend.add_node("a")
    backend.daemonset("steady", _puller())
    pod = backend.eventually(
        lambda: next(
            (p for p in backend.pods("steady") if p["status"].get("phase") == "Running"), None
        ),
        what="pod Running",
    )
    not_ready = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    path = backend.path("pods", pod["metadata"]["name"]) + "/status"
    status, _ = backend.api.request(
        "PATCH", path, not_ready, content_type="application/strategic-merge-patch+json"
    )
    assert status == 200

    def ready_again() -> bool:
        current = backend.api.call("GET", backend.path("pods", pod["metadata"]["name"]))
        conditions = {c["type"]: c["status"] for c in current["status"]["conditions"]}
        return conditions.get("Ready") == "True"

    backend.eventually(ready_again, timeout=10, what="Ready written back by the kubelet")


def test_a_pod_for_a_node_at_its_pod_limit_stays_pending_as_unschedulable(
    backend: Backend,
) -> None:
    backend.world.registry.add(PAUSE, pull_seconds=0.1)
    backend.add_node("full", max_pods=1)
    backend.daemonset("first", _puller())
    backend.eventually(
        lambda: [p for p in backend.pods("first") if p["status"].get("phase") == "Running"],
        what="the first pod Running",
    )
    backend.daemonset("second", _puller())

    def unschedulable() -> Json | None:
        for pod in backend.pods("second"):
            for condition in pod["status"].get("conditions") or []:
                if condition["type"] == "PodScheduled" and condition["status"] == "False":
                    return dict(condition)
        return None

    condition = backend.eventually(unschedulable, what="PodScheduled False")
    assert condition["reason"] == "Unschedulable"
    assert _own_nodes_view(condition["message"]) == (
        "0/1 nodes are available: 1 Too many pods. no new claims to deallocate, preemption: 0/1 "
        "nodes are available: 1 No preemption victims found for incoming pod."
    )
    assert all(not p["spec"].get("nodeName") for p in backend.pods("second"))


_UNSCHEDULABLE = re.compile(
    r"0/(\d+) nodes are available: (.*?)\. no new claims to deallocate, "
    r"preemption: 0/(\d+) nodes are available: (.*)\."
)


def _own_nodes_view(message: str) -> str:
    """The scheduler's message as it reads with only this test's (full) node: the real control
    plane is shared by the run, so its scheduler also counts other tests' nodes, each under a
    reason of its own (affinity, taints). Their counts must add up; then only the reasons about
    a full node are kept."""
    match = _UNSCHEDULABLE.fullmatch(message)
    assert match, message
    total, reasons, preemption_total, preemption = match.groups()
    assert total == preemption_total, message

    def parsed(text: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for part in text.split(", "):
            count, _, reason = part.partition(" ")
            counts[reason] = int(count)
        assert sum(counts.values()) == int(total), message
        return counts

    ours = {"Too many pods", "No preemption victims found for incoming pod"}
    kept = [
        {reason: n for reason, n in parsed(text).items() if reason in ours}
        for text in (reasons, preemption)
    ]
    own = sum(kept[0].values())

    def joined(counts: dict[str, int]) -> str:
        return ", ".join(f"{n} {reason}" for reason, n in counts.items())

    return (
        f"0/{own} nodes are available: {joined(kept[0])}. no new claims to deallocate, "
        f"preemption: 0/{own} nodes are available: {joined(kept[1])}."
    )


def test_the_rules_review_lists_what_a_service_accounts_role_grants(backend: Backend) -> None:
    """`kubectl auth can-i --list --as=system:serviceaccount:NS:reader`."""
    namespace = backend.namespace
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    rule = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}
    backend.api.call("POST", f"{rbac}/roles", {"metadata": {"name": "reader"}, "rules": [rule]})
    binding = {
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
    }
    backend.api.call("POST", f"{rbac}/rolebindings", binding)
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    as_reader = {"Impersonate-User": f"system:serviceaccount:{namespace}:reader"}

    def reviewed() -> Json | None:
        status, answer = backend.api.request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            review,
            headers=as_reader,
        )
        assert status == 201
        granted: Json = answer["status"]
        return granted if rule in granted["resourceRules"] else None

    # kube-apiserver's RBAC authorizer reads roles from an informer: a binding just written
    # may take a moment to count
    review_status = backend.eventually(reviewed, what="the role's rule in the rules review")
    rules = review_status["resourceRules"]
    assert rule in rules
    assert {
        "verbs": ["create"],
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
    } in rules
    assert not any("*" in r["verbs"] for r in rules), "a plain account gets no wildcard"
    assert review_status["incomplete"] is False
