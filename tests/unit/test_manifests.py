"""Walking workload manifests: every pod template's images and placement, and bad input."""

from __future__ import annotations

import io
import os
import textwrap
from pathlib import Path

import pytest

from image_awaiter.core.errors import ExitCode, UsageError
from image_awaiter.core.placement import Placement, Term, Toleration
from image_awaiter.core.selectors import Requirement
from image_awaiter.spec.manifests import Workload, parse_manifests, read_manifests

FIXTURES = Path(__file__).parent.parent / "fixtures" / "manifests" / "jupyterhub"

POD_SPEC = """
      containers:
        - name: main
          image: nginx:1.27
"""


def doc(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def only(text: str) -> Workload:
    found = parse_manifests(doc(text), source="app.yaml")
    assert len(found.workloads) == 1, found
    return found.workloads[0]


def usage_error(text: str) -> str:
    with pytest.raises(UsageError) as caught:
        parse_manifests(doc(text), source="app.yaml")
    assert caught.value.exit_code is ExitCode.USAGE
    line = caught.value.one_line()
    assert "\n" not in line
    return line


# ---------------------------------------------------------------------------- every kind


def _controller(kind: str, api_version: str) -> str:
    return f"""
apiVersion: {api_version}
kind: {kind}
metadata: {{name: w, namespace: apps}}
spec:
  selector: {{matchLabels: {{a: b}}}}
  template:
    metadata: {{labels: {{a: b}}}}
    spec:
      containers:
        - name: main
          image: nginx:1.27
"""


WORKLOAD_TEXTS = {
    "Pod": """
apiVersion: v1
kind: Pod
metadata: {name: w, namespace: apps}
spec:
  containers:
    - name: main
      image: nginx:1.27
""",
    "Deployment": _controller("Deployment", "apps/v1"),
    "StatefulSet": _controller("StatefulSet", "apps/v1"),
    "DaemonSet": _controller("DaemonSet", "apps/v1"),
    "ReplicaSet": _controller("ReplicaSet", "apps/v1"),
    "ReplicationController": _controller("ReplicationController", "v1"),
    "Job": _controller("Job", "batch/v1"),
    "CronJob": """
apiVersion: batch/v1
kind: CronJob
metadata: {name: w, namespace: apps}
spec:
  schedule: "@hourly"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: main
              image: nginx:1.27
""",
}


@pytest.mark.parametrize("kind", sorted(WORKLOAD_TEXTS))
def test_every_workload_kind_contributes_its_pod_template(kind: str) -> None:
    workload = only(WORKLOAD_TEXTS[kind])
    assert (workload.kind, workload.namespace, workload.name) == (kind, "apps", "w")
    assert workload.images == ("nginx:1.27",)
    assert workload.ref == f"{kind}/apps/w"
    assert workload.source == "app.yaml: document 1"


def test_a_workload_without_a_namespace_is_named_without_one() -> None:
    workload = only(WORKLOAD_TEXTS["Deployment"].replace(", namespace: apps", ""))
    assert (workload.namespace, workload.ref) == ("", "Deployment/w")


def test_images_come_from_init_sidecar_and_regular_containers_and_image_volumes() -> None:
    """Not from ephemeral containers: the API refuses them in pod templates and on pod
    creation (they are added to a running pod to debug it), so no pod starts with them."""
    workload = only(
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: all-the-images}
        spec:
          initContainers:
            - {name: migrate, image: "ghcr.io/org/migrate:2"}
            - {name: log-shipper, image: "fluent/fluent-bit:3.1", restartPolicy: Always}
          containers:
            - {name: app, image: "ghcr.io/org/app:2"}
            - {name: again, image: "ghcr.io/org/app:2"}
            - {name: no-image-yet}
          ephemeralContainers:
            - {name: debugger, image: "busybox:1.36"}
          volumes:
            - {name: data, emptyDir: {}}
            - name: model
              image: {reference: "quay.io/org/model:v1", pullPolicy: IfNotPresent}
        """
    )
    assert workload.images == (
        "ghcr.io/org/migrate:2",
        "fluent/fluent-bit:3.1",
        "ghcr.io/org/app:2",
        "quay.io/org/model:v1",
    )


# ---------------------------------------------------------------------------- documents


def test_lists_of_any_kind_are_walked_item_by_item() -> None:
    found = parse_manifests(
        doc(
            """
            apiVersion: apps/v1
            kind: DeploymentList
            items:
              - apiVersion: apps/v1
                kind: Deployment
                metadata: {name: a}
                spec: {template: {spec: {containers: [{name: c, image: "a:1"}]}}}
              - null
              - apiVersion: v1
                kind: List
                items:
                  - apiVersion: v1
                    kind: Pod
                    metadata: {name: b}
                    spec: {containers: [{name: c, image: "b:1"}]}
                  - {apiVersion: v1, kind: Service, metadata: {name: s}}
            """
        ),
        source="list.yaml",
    )
    assert [(w.name, w.source) for w in found.workloads] == [
        ("a", "list.yaml: document 1, item 1"),
        ("b", "list.yaml: document 1, item 3, item 1"),
    ]


def test_helm_output_with_separators_comments_and_empty_documents_is_read_in_order() -> None:
    text = doc(
        """
        ---
        # Source: app/templates/empty-when-disabled.yaml
        ---
        # Source: app/templates/a.yaml
        apiVersion: v1
        kind: Pod
        metadata: {name: a}  # a trailing comment
        spec: {containers: [{name: c, image: "a:1"}]}
        ---

        ---
        # Source: app/templates/b.yaml
        apiVersion: v1
        kind: Pod
        metadata: {name: b}
        spec: {containers: [{name: c, image: "b:1"}]}
        ...
        """
    )
    found = parse_manifests(text, source="helm.yaml")
    assert [(w.name, w.source) for w in found.workloads] == [
        ("a", "helm.yaml: document 2"),
        ("b", "helm.yaml: document 4"),
    ]


def test_json_manifests_are_read() -> None:
    text = (
        '{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Pod",'
        '\t"metadata": {"name": "j"}, "spec": {"containers": [{"name": "c", "image": "j:1"}]}}]}'
    )
    [workload] = parse_manifests(text, source="list.json").workloads
    assert (workload.name, workload.images) == ("j", ("j:1",))


def test_non_workload_documents_are_ignored() -> None:
    found = parse_manifests(
        doc(
            """
            {apiVersion: v1, kind: ConfigMap, metadata: {name: c}, data: {image: "not:pulled"}}
            ---
            {apiVersion: v1, kind: Service, metadata: {name: s}}
            ---
            {apiVersion: rbac.authorization.k8s.io/v1, kind: Role, metadata: {name: r}}
            """
        ),
        source="plain.yaml",
    )
    assert found.workloads == () and found.skipped == ()


def test_custom_resources_naming_images_are_reported_as_skipped() -> None:
    found = parse_manifests(
        doc(
            """
            apiVersion: argoproj.io/v1alpha1
            kind: Rollout
            metadata: {name: canary}
            spec:
              template:
                spec:
                  containers: [{name: c, image: "ghcr.io/org/app:3"}]
                  initContainers: [{name: i, image: "ghcr.io/org/app:3"}]
            ---
            apiVersion: cert-manager.io/v1
            kind: Certificate
            metadata: {name: no-images}
            spec: {secretName: tls}
            ---
            apiVersion: apps.kruise.io/v1beta1
            kind: StatefulSet
            metadata: {name: advanced}
            spec: {template: {spec: {containers: [{name: c, image: "k:1"}]}}}
            """
        ),
        source="crs.yaml",
    )
    assert found.workloads == ()
    assert [(s.ref, s.images, s.source) for s in found.skipped] == [
        ("Rollout/canary", ("ghcr.io/org/app:3",), "crs.yaml: document 1"),
        ("StatefulSet/advanced", ("k:1",), "crs.yaml: document 3"),
    ]


# ---------------------------------------------------------------------------- placement


def test_placement_is_read_and_canonicalised() -> None:
    workload = only(
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          nodeSelector: {pool: gpu, kubernetes.io/os: linux}
          affinity:
            nodeAffinity:
              requiredDuringSchedulingIgnoredDuringExecution:
                nodeSelectorTerms:
                  - matchExpressions:
                      - {key: zone, operator: In, values: [b, a, b]}
                      - {key: kubernetes.io/arch, operator: In, values: [arm64, amd64]}
                  - matchFields:
                      - {key: metadata.name, operator: In, values: [n1]}
              preferredDuringSchedulingIgnoredDuringExecution:
                - weight: 1
                  preference: {matchExpressions: [{key: x, operator: Exists}]}
          tolerations:
            - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
            - {key: dedicated, value: gpu, effect: NoSchedule, tolerationSeconds: 30}
          imagePullSecrets: [{name: regcred-b}, {name: regcred-a}]
          runtimeClassName: nvidia
          priorityClassName: high
          containers: [{name: c, image: "c:1"}]
        """
    )
    assert workload.placement == Placement(
        node_selector=(("kubernetes.io/os", "linux"), ("pool", "gpu")),
        required_terms=(
            Term(fields=(Requirement("metadata.name", "In", ("n1",)),)),
            Term(
                expressions=(
                    Requirement("kubernetes.io/arch", "In", ("amd64", "arm64")),
                    Requirement("zone", "In", ("a", "b")),
                )
            ),
        ),
        tolerations=(
            Toleration(key="dedicated", operator="Equal", value="gpu", effect="NoSchedule"),
            Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),
        ),
        image_pull_secrets=("regcred-a", "regcred-b"),
        runtime_class_name="nvidia",
        priority_class_name="high",
    )
    assert workload.placement.os == ("linux",)
    assert workload.placement.arch == ()  # the matchFields term leaves the arch open


@pytest.mark.parametrize(
    ("spec", "os_", "arch"),
    [
        ("nodeSelector: {kubernetes.io/arch: arm64}", (), ("arm64",)),
        (
            "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: "
            "{nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/arch, operator: In, "
            "values: [arm64]}]}, {matchExpressions: [{key: kubernetes.io/arch, operator: In, "
            "values: [amd64]}, {key: kubernetes.io/os, operator: In, values: [linux]}]}]}}}",
            (),
            ("amd64", "arm64"),
        ),
        ("nodeSelector: {kubernetes.io/os: windows}", ("windows",), ()),
        ("nodeSelector: {}", (), ()),
    ],
)
def test_os_and_arch_are_taken_from_selector_and_affinity_as_they_are(
    spec: str, os_: tuple[str, ...], arch: tuple[str, ...]
) -> None:
    workload = only(
        f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: p}}
        spec:
          {spec}
          containers: [{{name: c, image: "c:1"}}]
        """
    )
    assert (workload.placement.os, workload.placement.arch) == (os_, arch)


def test_the_pod_spec_fragment_is_ready_to_apply_to_a_puller_template() -> None:
    placement = Placement(
        node_selector=(("nvidia.com/gpu.present", "true"),),
        required_terms=(Term(expressions=(Requirement("zone", "In", ("a",)),)),),
        tolerations=(Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),),
        image_pull_secrets=("regcred",),
        runtime_class_name="nvidia",
        priority_class_name="high",
        node_name="gpu-1",
    )
    assert placement.to_pod_spec() == {
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "zone", "operator": "In", "values": ["a"]}
                            ],
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": ["gpu-1"]}
                            ],
                        }
                    ]
                }
            }
        },
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "imagePullSecrets": [{"name": "regcred"}],
        "runtimeClassName": "nvidia",
        "priorityClassName": "high",
    }
    assert Placement().to_pod_spec() == {}


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kind: ConfigMap\n---\n---\n# Source: app/templates/web.yaml\nkind: Deployment\n"
            "metadata:\n  name: web\n   bad: 1\n",
            # libyaml and pure-Python PyYAML word the problem differently after this
            "app.yaml: document 3 (app/templates/web.yaml): not valid YAML at line 8: "
            "mapping values are not allowed",
        ),
        (
            "kind: ConfigMap\n---\nkind: Service\nports: [80, 443\n",
            "app.yaml: document 2: not valid YAML at line 5: ",
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n",
            'app.yaml: document 1 (Deployment "web"): no spec.template',
        ),
        (
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\n"
            "spec: {jobTemplate: {spec: {}}}\n",
            'app.yaml: document 1 (CronJob "nightly"): no spec.jobTemplate.spec.template',
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
            'app.yaml: document 1 (Pod "p"): no spec',
        ),
        (
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\n"
            "spec: {template: {spec: {containers: []}}}\n",
            'app.yaml: document 1 (DaemonSet "d"): spec.template.spec.containers must list',
        ),
        ("just a string\n", "app.yaml: document 1: not a Kubernetes object (a string"),
        ("metadata: {name: x}\n", "app.yaml: document 1: not a Kubernetes object (no kind)"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
            "spec: {containers: [{name: c, image: Not/Valid}]}\n",
            'app.yaml: document 1 (Pod "p"): containers[0].image: invalid image reference',
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
            "spec: {nodeSelector: {gpu: true}, containers: [{name: c, image: c}]}\n",
            'app.yaml: document 1 (Pod "p"): nodeSelector.gpu: expected a string, found boolean '
            "(quote it in YAML)",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
            "spec: {tolerations: {key: a}, containers: [{name: c, image: c}]}\n",
            'app.yaml: document 1 (Pod "p"): tolerations must be a list, found mapping',
        ),
    ],
)
def test_bad_manifests_are_one_line_usage_errors_naming_the_document(
    text: str, expected: str
) -> None:
    assert usage_error(text).startswith(expected)


# ---------------------------------------------------------------------------- reading paths


def test_a_directory_is_read_recursively_in_sorted_order() -> None:
    found = read_manifests([str(FIXTURES)])
    assert [s.rsplit("jupyterhub/", 1)[1] for s in found.sources] == [
        "extras/culler-cronjob.yaml",
        "extras/monitoring.yaml",
        "rendered.yaml",
    ]
    assert [w.ref for w in found.workloads] == [
        "CronJob/idle-culler",
        "Secret/hub: the user pod",
        "Deployment/hub",
        "Deployment/proxy",
        "Deployment/user-scheduler",
        "StatefulSet/user-placeholder",
        "StatefulSet/gpu-placeholder",
        "Deployment/arm-tools",
    ]
    assert [s.ref for s in found.skipped] == [
        "Prometheus/hub-metrics",
        "DaemonSet/continuous-image-puller",
    ]


def test_files_outside_the_manifest_suffixes_are_not_read_from_directories(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("not: [yaml")
    (tmp_path / "a.yml").write_text(WORKLOAD_TEXTS["Pod"])
    (tmp_path / "b.json").write_text('{"kind": "List", "apiVersion": "v1", "items": []}')
    found = read_manifests([str(tmp_path)])
    assert [Path(s).name for s in found.sources] == ["a.yml", "b.json"]


def test_stdin_is_read_for_a_dash() -> None:
    found = read_manifests(["-"], stdin=io.StringIO(WORKLOAD_TEXTS["Job"]))
    assert [(w.ref, w.source) for w in found.workloads] == [("Job/apps/w", "stdin: document 1")]


def test_paths_are_read_in_the_order_given() -> None:
    found = read_manifests(
        [str(FIXTURES / "rendered.yaml"), "-"], stdin=io.StringIO(WORKLOAD_TEXTS["Pod"])
    )
    assert found.workloads[-1].source == "stdin: document 1"
    assert found.workloads[0].name == "hub"


def _read_error(paths: list[str], stdin: str = "") -> str:
    with pytest.raises(UsageError) as caught:
        read_manifests(paths, stdin=io.StringIO(stdin))
    assert caught.value.exit_code is ExitCode.USAGE
    return caught.value.one_line()


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert (
        _read_error([str(missing)])
        == f"--from-manifests: file not found: {missing}; check the path"
    )


def test_a_file_that_is_not_text_is_a_usage_error(tmp_path: Path) -> None:
    binary = tmp_path / "image.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert (
        _read_error([str(binary)])
        == f"--from-manifests: {binary} is not UTF-8 text; give YAML or JSON text"
    )


def test_a_directory_without_manifests_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# nothing here")
    assert _read_error([str(tmp_path)]) == (
        f"--from-manifests: no *.yaml, *.yml, *.json files under {tmp_path}; "
        "give a directory holding manifests, or the files themselves"
    )


def test_a_directory_the_system_refuses_to_list_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root (CI containers) chmod cannot make a directory unreadable, so the operating
    # system's refusal (EACCES from scandir) is produced at the os boundary instead.
    real_scandir = os.scandir
    locked = tmp_path / "locked"
    locked.mkdir()
    (tmp_path / "a.yaml").write_text(WORKLOAD_TEXTS["Pod"])

    def scandir(path: str) -> object:
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert _read_error([str(tmp_path)]) == (
        f"--from-manifests: cannot read directory {locked}: Permission denied; "
        "check the directory's permissions"
    )


def test_manifests_without_any_pod_template_are_a_usage_error_naming_skipped_ones() -> None:
    line = _read_error(
        ["-"],
        stdin=doc(
            """
            {apiVersion: v1, kind: Service, metadata: {name: s}}
            ---
            {apiVersion: example.com/v1, kind: Notebook, metadata: {name: nb},
             spec: {template: {image: "jupyter/base:1"}}}
            """
        ),
    )
    assert line.startswith("no pod templates found in -; skipped custom resources: Notebook/nb;")
