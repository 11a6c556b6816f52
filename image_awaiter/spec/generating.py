"""Puller DaemonSets generated from image references: one pod that pulls every image without
running anything inside them, by the pull method the settings name. `PULL_METHODS` holds one
builder of pod spec parts per `--pull-method` (mirrored in the chart by one named template per
method): a new method is one function and one entry.

Pure: image references and settings in, a manifest out.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from image_awaiter.core.references import ImageRef
from image_awaiter.spec.pullers import (
    DEFAULT_NAME,
    HELPER_MOUNT,
    HELPER_PATH,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PullerSettings,
    PullMethod,
)

RESTRICTED_CONTAINER_SECURITY: Mapping[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def generate_daemonset(images: Sequence[ImageRef], settings: PullerSettings) -> dict[str, Any]:
    """A puller DaemonSet that pulls `images` without running anything inside them."""
    labels = {
        "app.kubernetes.io/name": DEFAULT_NAME,
        "app.kubernetes.io/component": "puller",
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": DEFAULT_NAME, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": DEFAULT_NAME}},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "100%"},
            },
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": puller_pod_spec([image.original for image in images], settings),
            },
        },
    }


def puller_pod_spec(images: Sequence[str], settings: PullerSettings) -> dict[str, Any]:
    """The pod: the pull method's containers and volumes (see `PULL_METHODS`), restricted, with
    explicit requests and limits, placed by the settings."""
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 0,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **PULL_METHODS[_method(settings)](images, settings),
    }
    placement = settings.placement
    if placement.node_selector:
        spec["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        spec["tolerations"] = [t.to_dict() for t in placement.tolerations]
    if settings.affinity:
        spec["affinity"] = copy.deepcopy(dict(settings.affinity))
    if placement.priority_class_name:
        spec["priorityClassName"] = placement.priority_class_name
    if placement.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in placement.image_pull_secrets]
    return spec


def _method(settings: PullerSettings) -> PullMethod:
    return "imageVolumes" if settings.method == "imageVolumes" else "initContainers"


def with_pull_method(
    manifest: Mapping[str, Any], images: Sequence[ImageRef], settings: PullerSettings
) -> dict[str, Any]:
    """A generated puller's manifest with the parts its pull method builds (init containers,
    volumes, containers) built again for `settings.method`; its placement is kept."""
    rebuilt = copy.deepcopy(dict(manifest))
    spec = rebuilt["spec"]["template"]["spec"]
    for key in ("initContainers", "volumes", "containers"):
        spec.pop(key, None)
    spec.update(PULL_METHODS[_method(settings)]([image.original for image in images], settings))
    return rebuilt


def _init_containers(images: Sequence[str], settings: PullerSettings) -> dict[str, Any]:
    """Each image an init container running the no-op helper, copied first from the helper
    image into an emptyDir: nothing inside the pulled image runs."""
    install = _container(
        "install-helper",
        settings.helper_image,
        [HELPER_PATH, "install", f"{HELPER_MOUNT}/noop"],
        settings,
    )
    install["volumeMounts"] = [{"name": "helper", "mountPath": HELPER_MOUNT}]
    pulls = []
    for index, image in enumerate(images):
        pull = _container(f"pull-{index}", image, [f"{HELPER_MOUNT}/noop"], settings)
        pull["volumeMounts"] = [{"name": "helper", "mountPath": HELPER_MOUNT, "readOnly": True}]
        pulls.append(pull)
    return {
        "initContainers": [install, *pulls],
        "volumes": [{"name": "helper", "emptyDir": {"sizeLimit": "1Mi"}}],
        "containers": [_container("pause", settings.pause_image, None, settings)],
    }


def _image_volumes(images: Sequence[str], settings: PullerSettings) -> dict[str, Any]:
    """Each image an `image` volume mounted on the pause container (ImageVolume feature)."""
    pause = _container("pause", settings.pause_image, None, settings)
    pause["volumeMounts"] = [
        {"name": f"image-{index}", "mountPath": f"/images/{index}", "readOnly": True}
        for index in range(len(images))
    ]
    return {
        "volumes": [
            {"name": f"image-{index}", "image": {"reference": image, "pullPolicy": "IfNotPresent"}}
            for index, image in enumerate(images)
        ],
        "containers": [pause],
    }


# How a puller pod pulls its images: one builder of pod spec parts per `--pull-method`, mirrored
# in the chart by one named template per method. A new method is one function and one entry.
PULL_METHODS: Mapping[str, Callable[[Sequence[str], PullerSettings], dict[str, Any]]] = {
    "initContainers": _init_containers,
    "imageVolumes": _image_volumes,
}


def _container(
    name: str, image: str, command: list[str] | None, settings: PullerSettings
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}
    if command is not None:
        container["command"] = command
    container["resources"] = copy.deepcopy(dict(settings.resources))
    container["securityContext"] = copy.deepcopy(dict(RESTRICTED_CONTAINER_SECURITY))
    return container
