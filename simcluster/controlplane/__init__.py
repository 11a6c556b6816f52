"""The real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler) on loopback, built from the Go module proxy by `make control-plane`, and a
fault-injecting proxy to put in front of it. Nodes stay simulated, as clients of its API."""

from simcluster.controlplane.binaries import MissingBinaries
from simcluster.controlplane.running import ControlPlane, ControlPlaneError

__all__ = ["ControlPlane", "ControlPlaneError", "MissingBinaries"]
