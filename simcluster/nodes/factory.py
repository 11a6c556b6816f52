"""Node objects as a real kubelet writes them, and a synthetic large-cluster generator."""

from __future__ import annotations

import hashlib
import random
from typing import Any

CONDITION_TYPES = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")
COMMON_IMAGE = "quay.io/jupyter/base-notebook:2025-01-01"
# The release the real control plane is built at (controlplane/kubernetes/go.mod); the simulated
# API server's /version and every simulated kubelet report it too.
KUBERNETES_RELEASE = "v1.36.3"
# what a NotReady node carries (the kubelet registers it so; the node lifecycle controller
# keeps it in step with the Ready condition afterwards)
NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
KUBELET_PORT = 10250  # a kubelet's default --port
# What `containerd --version` etc. report in status.nodeInfo.containerRuntimeVersion, at
# releases that support image volumes (containerd >= 2.0, CRI-O >= 1.30).
RUNTIME_VERSIONS = {
    "containerd": "containerd://2.1.4",
    "cri-o": "cri-o://1.34.1",
    "docker": "docker://28.3.3",
}


def node_object(
    name: str,
    *,
    ready: bool,
    unschedulable: bool,
    taints: list[dict[str, Any]],
    labels: dict[str, str],
    max_pods: int,
    arch: str,
    os: str,
    runtime: str,
    kubelet_port: int = KUBELET_PORT,
    reachable_at: str | None = None,
) -> dict[str, Any]:
    """`reachable_at`: a name the API server resolves to this node's kubelet server, advertised
    as an `InternalDNS` address (the addresses a cloud provider adds; the address the API server
    dials is the first of the types `--kubelet-preferred-address-types` lists)."""
    all_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": os,
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": os,
        "beta.kubernetes.io/arch": arch,
        **labels,
    }
    taints = list(taints)
    if unschedulable:
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    if not ready:
        taints.append(dict(NOT_READY_TAINT))
    # A node's own address and pod /24, derived from its name (kubectl get nodes -o wide).
    slot = int.from_bytes(hashlib.sha256(name.encode()).digest()[:2], "big")  # 0..65535
    cidr = f"10.{244 + slot // 256 % 12}.{slot % 256}.0/24"
    spec: dict[str, Any] = {
        "podCIDR": cidr,
        "podCIDRs": [cidr],
        "providerID": f"sim:///{name}",
    }
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = taints
    stamp = "2026-11-01T00:00:00Z"
    conditions = [
        {
            "type": t,
            "status": "False",
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
            "reason": f"KubeletHasNo{t}",
            "message": f"kubelet has no {t.lower()}",
        }
        for t in CONDITION_TYPES
    ]
    conditions.append(ready_condition(ready))
    runtime_version = RUNTIME_VERSIONS.get(runtime, RUNTIME_VERSIONS["containerd"])
    return {
        "metadata": {
            "name": name,
            "labels": all_labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": spec,
        "status": {
            "capacity": {
                "cpu": "16",
                "memory": "65843132Ki",
                "pods": str(max_pods),
                "ephemeral-storage": "203056560Ki",
            },
            "allocatable": {
                "cpu": "15890m",
                "memory": "63643132Ki",
                "pods": str(max_pods),
                "ephemeral-storage": "187136925387",
            },
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.{slot // 256}.{slot % 256 or 1}"},
                {"type": "Hostname", "address": name},
                *([{"type": "InternalDNS", "address": reachable_at}] if reachable_at else []),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {
                "machineID": hashlib.md5(name.encode()).hexdigest(),
                "systemUUID": hashlib.sha1(name.encode()).hexdigest()[:36],
                "bootID": hashlib.sha256(name.encode()).hexdigest()[:36],
                "kernelVersion": f"6.1.0-26-cloud-{arch}",
                "osImage": "Debian 12",
                "containerRuntimeVersion": runtime_version,
                "kubeletVersion": KUBERNETES_RELEASE,
                # deprecated; kubelets no longer set it (DisableNodeKubeProxyVersion) and the
                # API serialises the empty string (the field has no omitempty)
                "kubeProxyVersion": "",
                "operatingSystem": os,
                "architecture": arch,
            },
            "images": [],
        },
    }


# Instance types as the AWS cloud provider labels them; a pool names its own to override.
INSTANCE_TYPES = {"amd64": "m6i.2xlarge", "arm64": "m7g.2xlarge"}
REGION = "us-east-1"


def pool_labels(
    pool: str, index: int, *, arch: str, instance_type: str | None, zones: tuple[str, ...]
) -> dict[str, str]:
    """The labels a cloud node pool's kubelet and cloud provider put on its nodes (EKS-like):
    instance type, region and zone (round-robin over `zones`), and the pool's name."""
    kind = instance_type or INSTANCE_TYPES.get(arch, "m6i.2xlarge")
    zone = f"{REGION}{zones[index % len(zones)]}"
    return {
        "node.kubernetes.io/instance-type": kind,
        "beta.kubernetes.io/instance-type": kind,
        "topology.kubernetes.io/region": REGION,
        "topology.kubernetes.io/zone": zone,
        "failure-domain.beta.kubernetes.io/region": REGION,
        "failure-domain.beta.kubernetes.io/zone": zone,
        "eks.amazonaws.com/nodegroup": pool,
    }


def pod_ip(pod_cidr: str, uid: str) -> str:
    """A pod's address in its node's /24, derived from the pod's uid."""
    host = 2 + hashlib.sha256(uid.encode()).digest()[0] % 250
    return pod_cidr.rsplit(".", 1)[0] + f".{host}"


def ready_condition(ready: bool) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": "True" if ready else "False",
        "lastHeartbeatTime": "2026-11-01T00:00:00Z",
        "lastTransitionTime": "2026-11-01T00:00:00Z",
        "reason": "KubeletReady" if ready else "KubeletNotReady",
        "message": "kubelet is posting ready status"
        if ready
        else "container runtime network not ready",
    }


def synthetic_images(
    rng: random.Random, count: int, *, pool: int = 400, common: tuple[str, ...] = (COMMON_IMAGE,)
) -> list[dict[str, Any]]:
    """`count` node.status.images entries in containerd style, 2-5 names each; `common` first."""
    entries: list[dict[str, Any]] = []
    chosen = rng.sample(range(pool), count - len(common))
    refs = list(common) + [
        f"registry.example.com/team-{i % 17}/service-{i}:v1.{i % 9}.0" for i in chosen
    ]
    for ref in refs:
        name, _, tag = ref.rpartition(":")
        digest = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
        names = [f"{name}@{digest}", f"{name}:{tag}"]
        extra = rng.randint(0, 3)
        names += [f"{name}:build-{rng.randint(1000, 9999)}" for _ in range(extra)]
        entries.append({"names": names[:5], "sizeBytes": rng.randint(50, 9000) * 1024**2})
    entries.sort(key=lambda e: -e["sizeBytes"])
    return entries
