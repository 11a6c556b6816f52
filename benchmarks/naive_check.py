"""The naive path the awaiter replaces: the official client's typed `list_node()` into models,
then a presence check by exact name. Run by `benchmarks/run.py` as a separate process so its
CPU time and peak memory are measured the same way as the CLI's.

Usage: python benchmarks/naive_check.py KUBECONFIG IMAGE
"""

from __future__ import annotations

import sys

from kubernetes import client, config


def main(kubeconfig: str, image: str) -> int:
    config.load_kube_config(config_file=kubeconfig)
    nodes = client.CoreV1Api().list_node()
    missing = [
        node.metadata.name
        for node in nodes.items
        if not any(image in (i.names or []) for i in node.status.images or [])
    ]
    print(f"{len(nodes.items)} nodes, {len(missing)} missing {image}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
