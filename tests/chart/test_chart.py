"""The Helm chart with the real helm binary: lint, render every values file and as a subchart,
validate every manifest against the Kubernetes schemas, and check hooks, RBAC and pods."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from image_awaiter.core.durations import parse_duration
from image_awaiter.core.placement import Placement, Toleration
from image_awaiter.core.references import parse_image
from image_awaiter.spec.generating import puller_pod_spec
from image_awaiter.spec.groups import apply_placement
from image_awaiter.spec.podtemplates import pod_placement
from image_awaiter.spec.pullers import PullerSettings, parse_manifest
from image_awaiter.spec.settings import Settings, resolve_job
from tests.chart.conftest import (
    CHART,
    Render,
    by_kind,
    gate_daemonsets,
    hook_daemonset,
    hook_daemonsets,
    one,
    parent_chart,
    pod_specs,
    run_helm,
)

VALUES_FILES = sorted(p.name for p in (CHART / "ci").glob("*.yaml"))
HELM_HOOK_TIMEOUT = 300
KUBERNETES_VERSION = "1.33"


@pytest.mark.parametrize("values", VALUES_FILES)
def test_helm_lint_strict_passes(helm: Path, values: str) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(CHART / "ci" / values))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", VALUES_FILES)
def test_every_rendered_manifest_is_valid_kubernetes(render: Render, values: str) -> None:
    objects = render(values)
    if by_kind(objects, "ConfigMap"):
        objects += hook_daemonsets(objects) + gate_daemonsets(objects)
    invalid = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            invalid.append(f"{obj['kind']} {obj['metadata']['name']}: {error.message}")
    assert invalid == []


def test_everything_the_job_needs_is_a_hook_with_a_lower_weight(render: Render) -> None:
    objects = render("everything-values.yaml")
    job = one(objects, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    job_weight = int(annotations["helm.sh/hook-weight"])
    needed = [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "PriorityClass",
    ]
    for kind in needed:
        obj = one(objects, kind)
        hook = obj["metadata"]["annotations"]
        assert hook["helm.sh/hook"] == "pre-install,pre-upgrade", kind
        assert int(hook["helm.sh/hook-weight"]) < job_weight, kind
        assert "before-hook-creation" in hook["helm.sh/hook-delete-policy"], kind
    assert int(one(objects, "Role")["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        one(objects, "RoleBinding")["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    continuous = [d for d in by_kind(objects, "DaemonSet")]
    assert continuous and "annotations" not in continuous[0]["metadata"]  # a release resource


def test_a_created_pull_secret_exists_before_the_job_and_reaches_every_puller(
    render: Render,
) -> None:
    """z2jh #871: a pull secret created after the pre-pull hook never reached the pullers."""
    objects = render("everything-values.yaml")
    job_weight = int(one(objects, "Job")["metadata"]["annotations"]["helm.sh/hook-weight"])
    secrets = {s["metadata"]["name"]: s for s in by_kind(objects, "Secret")}
    assert set(secrets) == {
        "jupyterhub-prepuller-hook-pull-secret",
        "jupyterhub-prepuller-pull-secret",
    }
    hook_secret = secrets["jupyterhub-prepuller-hook-pull-secret"]
    assert hook_secret["type"] == "kubernetes.io/dockerconfigjson"
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < job_weight
    assert "annotations" not in secrets["jupyterhub-prepuller-pull-secret"]["metadata"]
    config = json.loads(base64.b64decode(hook_secret["data"][".dockerconfigjson"]))
    entry = config["auths"]["quay.io"]
    assert base64.b64decode(entry["auth"]).decode() == "robot:not-a-secret"
    hook_pod = hook_daemonset(objects)["spec"]["template"]["spec"]
    [continuous] = by_kind(objects, "DaemonSet")
    assert hook_pod["imagePullSecrets"] == [
        {"name": "regcred"},
        {"name": "jupyterhub-prepuller-hook-pull-secret"},
    ]
    assert continuous["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "regcred"},
        {"name": "jupyterhub-prepuller-pull-secret"},
    ]


def test_no_pull_secret_is_created_unless_asked(render: Render) -> None:
    assert by_kind(render("default-values.yaml"), "Secret") == []


def test_rbac_is_least_privilege_with_no_wildcards(render: Render) -> None:
    objects = render("default-values.yaml")
    role, cluster_role = one(objects, "Role"), one(objects, "ClusterRole")
    rules = {
        (tuple(r["apiGroups"]), tuple(r["resources"])): sorted(r["verbs"]) for r in role["rules"]
    }
    assert rules == {
        (("apps",), ("daemonsets",)): ["create", "delete", "get", "list", "watch"],
        (("",), ("pods",)): ["get", "list", "watch"],
        (("",), ("events",)): ["create", "get", "list", "patch", "watch"],
    }
    assert cluster_role["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}
    ]
    assert "*" not in json.dumps([role["rules"], cluster_role["rules"]])
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == "jhub"
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]


def test_rbac_off_renders_no_rbac_and_uses_the_given_service_account(render: Render) -> None:
    objects = render("no-rbac-values.yaml")
    kinds = {o["kind"] for o in objects}
    assert not kinds & {
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "ServiceAccount",
    }
    job = one(objects, "Job")
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "prepared-by-the-cluster-admin"


def test_events_off_leaves_only_reading_the_kubelets_events(render: Render) -> None:
    objects = render("default-values.yaml", sets=("awaiter.events=false",))
    [events] = [r for r in one(objects, "Role")["rules"] if r["resources"] == ["events"]]
    assert events["verbs"] == ["get", "list", "watch"]
    args = one(objects, "Job")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--no-pod-events" in args and "--fail-fast" in args


def test_read_nodes_off_drops_only_the_cluster_role(render: Render) -> None:
    objects = render("default-values.yaml", sets=("rbac.readNodes=false",))
    assert not by_kind(objects, "ClusterRole") and not by_kind(objects, "ClusterRoleBinding")
    assert by_kind(objects, "Role")


@pytest.mark.parametrize("values", VALUES_FILES)
def test_every_pod_is_restricted_with_requests_and_limits(render: Render, values: str) -> None:
    for spec in pod_specs(render(values)):
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec.get("initContainers", []) + spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert security["runAsNonRoot"] is True
            assert "privileged" not in security
            assert set(container["resources"]) == {"requests", "limits"}
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        assert not any("hostPath" in v for v in spec.get("volumes", []))


def test_the_hook_job_has_its_own_deadline_below_helms(render: Render) -> None:
    job = one(render("default-values.yaml"), "Job")
    spec = job["spec"]
    container = spec["template"]["spec"]["containers"][0]
    args = container["args"]
    timeout = parse_duration(args[args.index("--timeout") + 1])
    assert timeout < spec["activeDeadlineSeconds"] < HELM_HOOK_TIMEOUT
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] > 0
    assert args[:3] == ["await", "--daemonset-spec", "/etc/image-awaiter/daemonset.yaml"]
    assert container["resources"]["limits"]["memory"] == "256Mi"
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {
        "POD_NAME": "metadata.name",
        "POD_UID": "metadata.uid",
        "POD_NAMESPACE": "metadata.namespace",
    }
    # Issue 9: the awaiter's final line (or the log's tail) becomes terminated.message, which
    # `kubectl describe pod` and the pod's status show.
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


@pytest.mark.parametrize(
    ("timeout", "deadline"),
    [("4m", 285), ("90s", 135), ("90", 135), ("500ms", 46), ("1h30m", 5445), ("1.5h", 5445)],
)
def test_the_job_deadline_is_the_awaiters_timeout_plus_cleanup(
    render: Render, timeout: str, deadline: int
) -> None:
    job = one(render("default-values.yaml", sets=(f"awaiter.timeout={timeout}",)), "Job")
    assert job["spec"]["activeDeadlineSeconds"] == deadline
    assert deadline == math.ceil(parse_duration(timeout)) + 45


def test_a_given_job_deadline_is_kept_when_above_the_timeout(render: Render) -> None:
    objects = render("default-values.yaml", sets=("job.activeDeadlineSeconds=290",))
    assert one(objects, "Job")["spec"]["activeDeadlineSeconds"] == 290


def test_a_job_deadline_not_above_the_timeout_fails_the_render(helm: Path) -> None:
    result = run_helm(
        helm,
        "template",
        "hub",
        str(CHART),
        "-f",
        str(CHART / "ci" / "default-values.yaml"),
        "--set",
        "job.activeDeadlineSeconds=240",
    )
    assert result.returncode != 0
    assert "job.activeDeadlineSeconds (240) must be above awaiter.timeout (4m = 240s)" in (
        result.stderr
    )


@pytest.mark.parametrize("values", ["default-values.yaml", "everything-values.yaml"])
def test_extra_pod_labels_and_annotations_reach_every_pod_but_never_the_selector(
    render: Render, values: str
) -> None:
    labels = (
        "puller.podLabels.sidecar\\.istio\\.io/inject=false",
        "puller.podLabels.app\\.kubernetes\\.io/component=mine",
        "puller.podAnnotations.example\\.com/note=pre-pull",
        "awaiter.podLabels.sidecar\\.istio\\.io/inject=false",
        "awaiter.podAnnotations.example\\.com/note=hook",
    )
    objects = render(values, sets=("continuous.enabled=true",), string_sets=labels)
    pullers = [hook_daemonset(objects), *by_kind(objects, "DaemonSet")]
    assert len(pullers) == 2
    for daemonset in pullers:
        template = daemonset["spec"]["template"]["metadata"]
        assert template["labels"]["sidecar.istio.io/inject"] == "false"
        assert template["annotations"]["example.com/note"] == "pre-pull"
        selector = daemonset["spec"]["selector"]["matchLabels"]
        assert selector.items() <= template["labels"].items()
        assert selector["app.kubernetes.io/component"].endswith("puller")
    pod = one(objects, "Job")["spec"]["template"]["metadata"]
    assert pod["labels"]["sidecar.istio.io/inject"] == "false"
    assert pod["annotations"]["example.com/note"] == "hook"


def test_hook_off_renders_no_hook(render: Render) -> None:
    objects = render("continuous-values.yaml", sets=("hook.enabled=false",))
    assert [o["kind"] for o in objects] == ["DaemonSet"]


@pytest.mark.parametrize("method", ["initContainers", "imageVolumes"])
def test_the_charts_puller_pod_is_exactly_the_one_the_cli_generates(
    render: Render, method: str
) -> None:
    images = ["quay.io/jupyter/base-notebook:2025-06-02", "gcr.io/distroless/static:nonroot"]
    sets = (
        f"images[0]={images[0]}",
        f"images[1]={images[1]}",
        f"puller.method={method}",
        "puller.helperImage=registry.example.com/ia:1",
        "puller.pauseImage=registry.k8s.io/pause:3.9",
        "puller.nodeSelector.pool=user",
        "puller.tolerations[0].key=gpu",
        "puller.tolerations[0].operator=Exists",
        "puller.priorityClass.name=low",
        "puller.imagePullSecrets[0]=regcred",
    )
    objects = render(sets=sets)
    chart_pod = hook_daemonset(objects)["spec"]["template"]["spec"]
    settings = PullerSettings(
        method=method,  # type: ignore[arg-type]
        helper_image="registry.example.com/ia:1",
        pause_image="registry.k8s.io/pause:3.9",
        placement=Placement(
            node_selector=(("kubernetes.io/os", "linux"), ("pool", "user")),
            tolerations=(Toleration(key="gpu", operator="Exists"),),
            priority_class_name="low",
            image_pull_secrets=("regcred",),
        ),
    )
    assert chart_pod == puller_pod_spec(images, settings)
    continuous = render(sets=(*sets, "continuous.enabled=true"))
    [daemonset] = by_kind(continuous, "DaemonSet")
    assert daemonset["spec"]["template"]["spec"] == chart_pod


def test_the_configmap_daemonset_passes_the_clis_own_loader(render: Render) -> None:
    configmap = one(render("everything-values.yaml"), "ConfigMap")
    manifest = parse_manifest(configmap["data"]["daemonset.yaml"], source="configmap")
    assert manifest["kind"] == "DaemonSet"


GPU = {
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}


def test_image_entries_with_one_placement_share_a_pull_group_and_its_daemonsets(
    render: Render,
) -> None:
    objects = render("groups-values.yaml")
    hook = hook_daemonsets(objects)
    images = [
        [c["image"] for c in d["spec"]["template"]["spec"]["initContainers"][1:]] for d in hook
    ]
    assert images == [
        ["quay.io/jupyterhub/k8s-singleuser-sample:4.1.0"],
        [
            "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-20",
            "quay.io/jupyter/tensorflow-notebook:cuda-2025-01-20",
        ],
        ["ghcr.io/example-org/arm-tools:1.2.0"],
    ]
    assert hook[0]["metadata"]["name"] == "hub-image-awaiter-hook-puller"  # as without groups
    assert len({d["metadata"]["name"] for d in hook}) == 3
    assert all(len(d["metadata"]["name"]) <= 44 for d in hook[1:])
    continuous = by_kind(objects, "DaemonSet")
    assert [d["spec"]["template"]["spec"] for d in continuous] == [
        d["spec"]["template"]["spec"] for d in hook
    ]
    selectors = [json.dumps(d["spec"]["selector"], sort_keys=True) for d in continuous]
    assert len(set(selectors)) == 3  # no DaemonSet selects another group's pods
    gpu = hook[1]["spec"]["template"]["spec"]
    assert gpu["nodeSelector"] == {"kubernetes.io/os": "linux", **GPU["nodeSelector"]}
    assert gpu["tolerations"] == GPU["tolerations"]  # the puller's, once


def test_the_configmaps_groups_load_as_the_awaiters_pull_groups(
    render: Render, tmp_path: Path
) -> None:
    configmap = one(render("groups-values.yaml"), "ConfigMap")
    spec = tmp_path / "daemonset.yaml"
    spec.write_text(configmap["data"]["daemonset.yaml"])
    job = resolve_job(Settings(command="await", daemonset_specs=(str(spec),)))
    assert [g.name for g in job.groups] == [
        d["metadata"]["name"] for d in hook_daemonsets([configmap])
    ]
    cuda = parse_image("quay.io/jupyter/pytorch-notebook:cuda12-2025-01-20").key
    assert [cuda in g.keys for g in job.groups] == [False, True, False]


@pytest.mark.parametrize("method", ["initContainers", "imageVolumes"])
def test_a_groups_puller_pod_is_exactly_the_one_the_cli_derives_from_a_workload(
    render: Render, method: str, tmp_path: Path
) -> None:
    image = "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-20"
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu"]}]}
                ]
            }
        }
    }
    values = {"images": [{"image": image, **GPU, "affinity": affinity}]}
    values["puller"] = {"method": method, "tolerations": [{"key": "spot", "operator": "Exists"}]}
    (tmp_path / "values.yaml").write_text(json.dumps(values))
    chart_pod = hook_daemonset(render(str(tmp_path / "values.yaml")))["spec"]["template"]["spec"]
    workload = {**GPU, "affinity": affinity}
    settings = PullerSettings(
        method=method,  # type: ignore[arg-type]
        placement=Placement(
            node_selector=(("kubernetes.io/os", "linux"),),
            tolerations=(Toleration(key="spot", operator="Exists"),),
        ),
    )
    cli_pod = apply_placement(
        puller_pod_spec([image], settings), pod_placement(workload, label="gpu"), group="gpu"
    )
    assert chart_pod == cli_pod


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (("images[0]=busybox", "imagez[0]=x"), "imagez"),
        (("images[0]=busybox", "awaiter.timeot=4m"), "timeot"),
        (("images[0]=busybox", "awaiter.timeout=soon"), "timeout"),
        (("images[0]=busybox", "awaiter.timeout=1h30"), "timeout"),
        (("images[0]=busybox", "serviceAccount.name=Prepared"), "name"),
        (("images[0]=busybox", "puller.imagePullSecrets[0]=Reg_Cred"), "imagePullSecrets"),
        (("images[0]=busybox", "puller.method=magic"), "method"),
        (("images[0]=busybox", "rbac.create=maybe"), "create"),
        (("images[0]=busybox", "job.backoffLimit=-1"), "backoffLimit"),
        (("images=",), "images"),
        (("images[0]=busybox", "puller.imagePullSecret.create=true"), "registry"),
        (("images[0]=busybox", "puller.imagePullSecret.user=x"), "user"),
        ((), "images"),
        (("images[0].nodeSelector.a=b",), "image"),
        (("images[0].image=busybox", "images[0].nodeSelectr.a=b"), "nodeSelectr"),
    ],
)
def test_the_values_schema_rejects_typos_and_wrong_types(
    helm: Path, sets: tuple[str, ...], complaint: str
) -> None:
    args = ["template", "hub", str(CHART)]
    for item in sets:
        args += ["--set", item]
    result = run_helm(helm, *args)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_the_chart_works_as_a_dependency_of_an_application_chart(
    render: Render, tmp_path: Path
) -> None:
    parent = parent_chart(tmp_path, alias="prePuller")
    objects = render(chart=parent, release="prod")
    job = one(objects, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert one(objects, "Role")["metadata"]["name"] == "prod-prepuller"
    daemonset = hook_daemonset(objects)
    assert (
        daemonset["spec"]["template"]["spec"]["initContainers"][1]["image"]
        == "quay.io/jupyter/datascience-notebook:2025-06-02"
    )
    disabled = tmp_path / "values-off.yaml"
    disabled.write_text(yaml.safe_dump({"prePuller": {"enabled": False}}))
    off = render(str(disabled), chart=parent, release="prod")
    assert [o["metadata"]["name"] for o in off] == ["hub-config"]


def test_notes_name_the_images_and_how_to_read_a_failure(helm: Path) -> None:
    result = run_helm(
        helm,
        "install",
        "hub",
        str(CHART),
        "--dry-run=client",
        "-f",
        str(CHART / "ci" / "default-values.yaml"),
    )
    assert result.returncode == 0, result.stderr
    assert "quay.io/jupyter/base-notebook:2025-06-02" in result.stdout
    assert "kubectl logs" in result.stdout
    assert (
        "-l app.kubernetes.io/name=image-awaiter,app.kubernetes.io/instance=hub,"
        "app.kubernetes.io/component=hook" in result.stdout
    )
    assert "state.terminated.message" in result.stdout
