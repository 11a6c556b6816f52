"""A simulated Kubernetes cluster for image-awaiter's tests and demo (see cluster.py)."""

from simcluster.apiserver.faults import Fault
from simcluster.cluster import SimCluster

__all__ = ["Fault", "SimCluster"]
