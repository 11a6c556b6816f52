"""Build the real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
kubectl) with Go into ~/.cache/image-awaiter/k8s-<version>-<hash>/bin, once per machine.
Prints what it did; does nothing when the binaries are there.

Usage: python scripts/control_plane.py [--print-dir]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simcluster.controlplane.building import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
