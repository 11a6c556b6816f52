"""Images from the applications' own configuration (spec/applications.py, jupyterhub.py, che.py,
core/imagestrings.py), as plain data: z2jh's values read as its `jupyterhub_config.py` reads
them, che's puller configuration as its `cfg/envvars.go` reads it, what is not a workload, and
image references hidden in configuration values."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from image_awaiter.core.errors import ExitCode, UsageError
from image_awaiter.core.imagestrings import image_words, looks_like_image
from image_awaiter.spec.che import CONFIGMAP_KEYS, derive, parse_images
from image_awaiter.spec.jupyterhub import PURPOSE_TERM, spawner_settings
from image_awaiter.spec.manifests import parse_manifests

USER = {"key": "hub.jupyter.org/dedicated", "value": "user", "effect": "NoSchedule"}
EXTRA = {"key": "spot", "operator": "Exists"}


@pytest.mark.parametrize(
    ("word", "counts"),
    [
        ("quay.io/jupyter/r-notebook:2025-06-02", True),
        ("jupyter/base-notebook:latest", True),
        ("localhost:5000/team/tool:1.0", True),
        ("ghcr.io/x/y@sha256:" + "a" * 64, True),
        ("busybox@sha256:" + "b" * 64, True),
        ("python:3.12", False),  # indistinguishable from host:port
        ("quay.io/jupyter/r-notebook", False),  # no tag: z2jh's image name fields
        ("https://example.org/a:b", False),
        ("/usr/local/bin:/usr/bin", False),
        ("sqlite:///jupyterhub.sqlite", False),
        ("hub.jupyter.org/dedicated", False),
        ("node.example.com/gpu:NoSchedule", False),  # a taint, as autoscalers' flags write it
        ("Not/A:Reference!", False),
    ],
)
def test_only_tagged_repository_paths_and_digests_count_as_image_references(
    word: str, counts: bool
) -> None:
    assert looks_like_image(word) is counts


def test_image_words_are_found_in_code_and_lists_but_not_in_comment_lines() -> None:
    text = (
        "# FROM jupyterhub/k8s-hub:v0.4 in a comment\n"
        'c.KubeSpawner.environment = {"IMG": "ghcr.io/dask/dask:2025.5.1"}\n'
        "a=quay.io/x/a:1;b=quay.io/x/b:2.\n"
    )
    assert image_words(text) == ("ghcr.io/dask/dask:2025.5.1", "quay.io/x/a:1", "quay.io/x/b:2")


def _values(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "hub": {},
        "singleuser": {"image": {"name": "quay.io/jupyter/base", "tag": "1"}},
        "scheduling": {"userPods": {"tolerations": [USER], "nodeAffinity": {}}},
    }
    for dotted, value in overrides.items():
        *parents, last = dotted.split("__")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return values


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, {"image": "quay.io/jupyter/base:1", "tolerations": [USER]}),
        (
            {"singleuser__image": {"name": "quay.io/jupyter/base", "tag": ""}},
            {"image": "quay.io/jupyter/base", "tolerations": [USER]},
        ),
        # require adds the node-purpose term after extraNodeAffinity.required; prefer does not.
        (
            {
                "scheduling__userPods__nodeAffinity__matchNodePurpose": "require",
                "singleuser__extraNodeAffinity": {"required": [{"matchFields": []}]},
            },
            {"node_affinity_required": [{"matchFields": []}, PURPOSE_TERM]},
        ),
        ({"scheduling__userPods__nodeAffinity__matchNodePurpose": "prefer"}, {}),
        ({"singleuser__extraTolerations": [EXTRA]}, {"tolerations": [USER, EXTRA]}),
        # network-tools: blockWithIptables, or `enabled: false` of charts before 1.0
        (
            {
                "singleuser__cloudMetadata": {"blockWithIptables": True},
                "singleuser__networkTools": {"image": {"name": "nt", "tag": "4"}},
                "singleuser__initContainers": [{"name": "i", "image": "init:1"}],
            },
            {
                "init_containers": [
                    {"name": "i", "image": "init:1"},
                    {"name": "block-cloud-metadata", "image": "nt:4"},
                ]
            },
        ),
        (
            {
                "singleuser__cloudMetadata": {"enabled": True, "blockWithIptables": True},
                "singleuser__networkTools": {"image": {"name": "nt", "tag": "4"}},
            },
            {"init_containers": None},
        ),
        (
            {
                "imagePullSecret": {"create": True, "automaticReferenceInjection": True},
                "imagePullSecrets": ["shared"],
            },
            {"image_pull_secrets": ["jhub-image-pull-secret", "shared"]},
        ),
        # hub.config.KubeSpawner is loaded last and replaces
        (
            {"hub__config": {"KubeSpawner": {"image": "x/y:2", "tolerations": []}}},
            {"image": "x/y:2", "tolerations": []},
        ),
    ],
)
def test_z2jh_values_become_the_kubespawner_settings_jupyterhub_config_makes(
    overrides: dict[str, Any], expected: dict[str, Any]
) -> None:
    settings = spawner_settings(_values(**overrides), object_name="jhub-hub")
    assert {k: settings.get(k) for k in expected} == expected


def test_che_images_are_name_image_pairs_and_malformed_entries_are_noted() -> None:
    assert parse_images(" a=quay.io/x/a:1; b = c=d ;\n e=quay.io/x/e:2;") == (
        {"a": "quay.io/x/a:1", "e": "quay.io/x/e:2"},
        ("b = c=d",),
    )
    derived = derive(
        {
            "IMAGES": "a=quay.io/x/a:1;oops;",
            "NODE_SELECTOR": '{"pool": "ws"}',
            "TOLERATIONS": '[{"key": "ws", "operator": "Exists"}]',
            "AFFINITY": "{}",
            "IMAGE_PULL_SECRETS": "one; two",
            "KIP_IMAGE": "quay.io/eclipse/kubernetes-image-puller:next",
        },
        keys=CONFIGMAP_KEYS,
    )
    [pod] = derived.pods
    assert pod.group == "kubernetes-image-puller-images"
    assert pod.pod_spec == {
        "containers": [{"name": "a", "image": "quay.io/x/a:1"}],
        "nodeSelector": {"pool": "ws"},
        "tolerations": [{"key": "ws", "operator": "Exists"}],
        "imagePullSecrets": [{"name": "one"}, {"name": "two"}],
    }
    assert [(n.key, n.reason) for n in derived.notes] == [
        ("IMAGES", "entry 'oops' is not name=image; the image puller ignores it too")
    ]
    assert derived.candidates == ()  # its own helper image is not a user image


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("NODE_SELECTOR", "{pool: ws}", "NODE_SELECTOR: not JSON"),
        ("TOLERATIONS", '{"key": "ws"}', "TOLERATIONS: must be JSON a list"),
    ],
)
def test_che_placement_that_is_not_its_json_is_a_usage_error(
    key: str, value: str, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        derive({"IMAGES": "a=quay.io/x/a:1", key: value}, keys=CONFIGMAP_KEYS)
    assert caught.value.exit_code is ExitCode.USAGE
    assert caught.value.message.startswith(message)


def _doc(kind: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, **fields}


def _pod(name: str, image: str, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **metadata},
        "spec": {"containers": [{"name": "c", "image": image}]},
    }


def _found(*documents: dict[str, Any]) -> Any:
    return parse_manifests(yaml.safe_dump_all(documents), source="t.yaml").settled()


def test_hooks_and_z2jh_pullers_are_skipped_with_their_reason_and_never_awaited() -> None:
    hook = _pod("warmup", "quay.io/x/hook:1", annotations={"helm.sh/hook": "pre-install"})
    puller = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": "continuous-image-puller",
            "labels": {"component": "continuous-image-puller"},
        },
        "spec": {"template": {"spec": {"containers": [{"name": "p", "image": "quay.io/x/p:1"}]}}},
    }
    found = _found(hook, puller, _pod("app", "quay.io/x/app:1"))
    assert [w.name for w in found.workloads] == ["app"]
    assert [(s.ref, s.images, s.reason.split(":")[0]) for s in found.skipped] == [
        ("Pod/warmup", ("quay.io/x/hook:1",), "a Helm hook (pre-install)"),
        (
            "DaemonSet/continuous-image-puller",
            ("quay.io/x/p:1",),
            "z2jh's own pre-puller (continuous-image-puller)",
        ),
    ]


def test_image_references_in_values_are_skipped_unless_a_workload_pulls_them() -> None:
    secret = _doc(
        "Secret",
        "tools",
        data={"env": base64.b64encode(b"IMG=quay.io/x/hidden:1 APP=quay.io/x/app:1").decode()},
    )
    config = _doc("ConfigMap", "settings", data={"url": "https://example.org/a:b", "n": "3"})
    found = _found(secret, config, _pod("app", "quay.io/x/app:1"))
    assert [(s.ref, s.images) for s in found.skipped] == [
        ("Secret/tools env", ("quay.io/x/hidden:1",))
    ]


def test_a_z2jh_hub_secret_gives_its_user_pods_and_che_its_puller_pod() -> None:
    values = yaml.safe_dump(
        _values(
            singleuser__profileList=[
                {"display_name": "CPU"},
                {
                    "display_name": "GPU",
                    "kubespawner_override": {
                        "image": "quay.io/x/cuda:1",
                        "node_selector": {"gpu": "y"},
                    },
                },
            ]
        )
    )
    hub = _doc("Secret", "hub", data={"values.yaml": base64.b64encode(values.encode()).decode()})
    che = _doc("ConfigMap", "kip", data={"IMAGES": "ws=quay.io/x/ws:1;", "DAEMONSET_NAME": "kip"})
    found = _found(hub, che)
    assert [(w.ref, w.group, w.images) for w in found.workloads] == [
        ('Secret/hub: profile "CPU"', "cpu", ("quay.io/jupyter/base:1",)),
        ('Secret/hub: profile "GPU"', "gpu", ("quay.io/x/cuda:1",)),
        ("ConfigMap/kip: kubernetes-image-puller", "kip-images", ("quay.io/x/ws:1",)),
    ]
    assert found.workloads[1].placement.node_selector == (("gpu", "y"),)
    assert found.skipped == ()


def test_an_invalid_profile_image_names_the_secret_and_the_profile() -> None:
    values = yaml.safe_dump(
        _values(
            singleuser__profileList=[
                {"display_name": "Bad", "kubespawner_override": {"image": "Bad Image"}}
            ]
        )
    )
    hub = _doc("Secret", "hub", data={"values.yaml": base64.b64encode(values.encode()).decode()})
    with pytest.raises(UsageError) as caught:
        _found(hub)
    assert caught.value.message.startswith(
        't.yaml: document 1 (Secret "hub"), profile "Bad": containers[0].image:'
    )


def test_the_kubernetes_image_puller_resource_gives_the_same_pod_as_its_configmap() -> None:
    # Shaped on che-incubator/kubernetes-image-puller-operator's
    # config/samples/che_v1alpha1_kubernetesimagepuller.yaml, with its placement fields set.
    resource = {
        "apiVersion": "che.eclipse.org/v1alpha1",
        "kind": "KubernetesImagePuller",
        "metadata": {"name": "image-puller"},
        "spec": {
            "daemonsetName": "k8s-image-puller",
            "images": "che-code=quay.io/che-incubator/che-code:next;"
            "base-developer-image=quay.io/devfile/base-developer-image:ubi9-latest",
            "nodeSelector": '{"che.eclipse.org/workspaces": "true"}',
            "tolerations": '[{"key": "che.eclipse.org/workspaces", "operator": "Exists"}]',
        },
    }
    found = _found(resource)
    [workload] = found.workloads
    assert (workload.ref, workload.group) == (
        "KubernetesImagePuller/image-puller: kubernetes-image-puller",
        "k8s-image-puller-images",
    )
    assert workload.images == (
        "quay.io/che-incubator/che-code:next",
        "quay.io/devfile/base-developer-image:ubi9-latest",
    )
    assert workload.placement.node_selector == (("che.eclipse.org/workspaces", "true"),)
    assert [t.key for t in workload.placement.tolerations] == ["che.eclipse.org/workspaces"]
    assert found.skipped == ()
