"""A simulated Kubernetes cluster for image-awaiter's tests and demo (see cluster.py)."""

from tests.simcluster.cluster import SimCluster
from tests.simcluster.faults import Fault

__all__ = ["Fault", "SimCluster"]
