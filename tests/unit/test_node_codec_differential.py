"""The compact node codec against the plain path, on seeded random nodes.

`NodeCodec` scans the raw bytes of `status.images` for the awaited repositories and decodes
only the names it finds; the plain path decodes every name with `json` and matches them all with
`node_image_keys`. On randomised nodes (both runtime naming styles, digests, tags, near misses,
`<none>@<none>`, names that look like JSON keys, compact, indented and Go-escaped JSON) the two
must agree exactly, as must the labels kept and the taints.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from image_awaiter.decoding import NodeCodec, awaited_names
from image_awaiter.references import ImageKey, node_image_keys, parse_image

DIGEST = "sha256:" + "3f" * 32
OTHER_DIGEST = "sha256:" + "a1" * 32
# Awaited images, written as a user would; node names below are drawn around them.
REFERENCES = [
    "nginx:1.7.9",
    "library/nginx",
    f"nginx@{DIGEST}",
    f"quay.io/jupyter/base-notebook:2025-01-01@{DIGEST}",
    "quay.io/jupyter/base-notebook:2025-01-01",
    "registry.example.com:5000/team/app:v1",
    "names:latest",  # a repository named like the JSON key around every name
    "sizebytes:1",
    "localhost/x",
    "localhost/10:1",  # a repository of digits, like the sizes around every name
]
NODE_NAMES = [
    # containerd style: fully qualified, the digest form and the tag form
    "docker.io/library/nginx:1.7.9",
    f"docker.io/library/nginx@{DIGEST}",
    # docker style: short names
    "nginx:1.7.9",
    "nginx:latest",
    f"nginx@{DIGEST}",
    "library/nginx:latest",
    # near misses: another tag, repository, registry or digest
    "nginx:1.7.10",
    "nginx-extra:1.7.9",
    "mynginx:1.7.9",
    "quay.io/nginx:1.7.9",
    f"nginx@{OTHER_DIGEST}",
    "quay.io/jupyter/base-notebook:2025-01-01",
    f"quay.io/jupyter/base-notebook@{DIGEST}",
    "quay.io/jupyter/base-notebook:2024-12-01",
    "jupyter/base-notebook:2025-01-01",
    "registry.example.com:5000/team/app:v1",
    "registry.example.com/team/app:v1",
    "names:latest",
    "names",
    "docker.io/library/sizebytes:1",
    "localhost/x:latest",
    "x:latest",
    "localhost/10:1",
    "10:1",
    # what runtimes also report: untagged, bare digests, garbage
    "<none>@<none>",
    "<none>:<none>",
    DIGEST,
    "UPPER/case:1",
    "",
    " nginx:1.7.9",
]
LABEL_KEYS = [
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "topology.kubernetes.io/zone",
    "node.kubernetes.io/instance-type",
    "hub.jupyter.org/node-purpose",
    "nginx",  # a label key that contains an awaited repository
]


def random_node(rng: random.Random, index: int) -> dict[str, Any]:
    images = []
    for _ in range(rng.randint(0, 12)):
        names = rng.sample(NODE_NAMES, rng.randint(0, 5))  # the kubelet's 5-names cap
        entry: dict[str, Any] = {"names": names, "sizeBytes": rng.randint(1, 10**10)}
        if rng.random() < 0.2:
            entry = {"sizeBytes": entry["sizeBytes"], "names": names}  # any key order
        if rng.random() < 0.05:
            entry = {"sizeBytes": entry["sizeBytes"]}
        images.append(entry)
    labels = {key: rng.choice(["a", "b", "nginx:1.7.9"]) for key in rng.sample(LABEL_KEYS, 3)}
    taints = [
        {"key": rng.choice(["dedicated", "gpu"]), "value": "x", "effect": "NoSchedule"}
        for _ in range(rng.randint(0, 2))
    ]
    return {
        "metadata": {"name": f"node-{index}", "labels": labels, "annotations": {"nginx": "1"}},
        "spec": {"taints": taints},
        "status": {
            "conditions": [{"type": "Ready", "status": rng.choice(["True", "False"])}],
            "images": images if rng.random() > 0.05 else None,
        },
    }


def serialised(rng: random.Random, node: dict[str, Any]) -> bytes:
    """The node as some server might write it: compact, indented, or with Go's HTML escapes."""
    style = rng.choice(["compact", "indented", "go"])
    if style == "indented":
        return json.dumps(node, indent=rng.choice([1, 2])).encode()
    text = json.dumps(node, separators=(",", ":"))
    if style == "go":  # encoding/json escapes <, > and & in every string
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode()


def plain_keys(node: dict[str, Any], wanted: frozenset[ImageKey]) -> frozenset[ImageKey]:
    """Today's plain path: every name decoded, every name matched."""
    names = [n for image in node["status"]["images"] or [] for n in image.get("names") or []]
    return node_image_keys(names, wanted=wanted)


@pytest.mark.parametrize("seed", range(40))
def test_the_raw_scan_finds_exactly_the_images_the_plain_path_finds(seed: int) -> None:
    rng = random.Random(seed)
    wanted = frozenset(parse_image(r).key for r in rng.sample(REFERENCES, rng.randint(1, 4)))
    keep = frozenset(rng.sample(LABEL_KEYS, 2))
    codec = NodeCodec(wanted=wanted, label_keys=keep)
    nodes = [random_node(rng, i) for i in range(30)]
    for node in nodes:
        data = serialised(rng, node)
        event = codec.event(b'{"type":"ADDED","object":' + data + b"}")
        assert event.record is not None
        assert event.record.images == plain_keys(node, wanted), data
        labels = node["metadata"]["labels"]
        assert event.record.labels == {k: v for k, v in labels.items() if k in keep}
        assert [(t.key, t.value, t.effect) for t in event.record.taints] == [
            (t["key"], t["value"], t["effect"]) for t in node["spec"]["taints"]
        ]
    page = json.dumps({"metadata": {"resourceVersion": "1"}, "items": nodes}).encode()
    assert {key: state.images for key, state in codec.page(page).items if state} == {
        node["metadata"]["name"]: plain_keys(node, wanted) for node in nodes
    }


def test_equal_labels_taints_and_image_sets_are_shared_between_nodes() -> None:
    wanted = frozenset({parse_image("nginx:1.7.9").key})
    codec = NodeCodec(wanted=wanted, label_keys=frozenset({"zone"}))

    def node(name: str) -> bytes:
        return json.dumps(
            {
                "metadata": {"name": name, "labels": {"zone": "a", "kubernetes.io/hostname": name}},
                "spec": {"taints": [{"key": "gpu", "effect": "NoSchedule"}]},
                "status": {"images": [{"names": ["nginx:1.7.9"]}]},
            }
        ).encode()

    first, second = (codec.event(b'{"type":"ADDED","object":' + node(n) + b"}") for n in "ab")
    assert first.record is not None and second.record is not None
    assert first.record.labels == {"zone": "a"}
    assert first.record.labels is second.record.labels
    assert first.record.taints is second.record.taints
    assert first.record.images is second.record.images


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'[{"names":["nginx:1","a/nginx:2"],"sizeBytes":1}]', ["a/nginx:2", "nginx:1"]),
        (b'[{"names": [ "x" , "nginx:1" ] }]', ["nginx:1"]),
        (b'[{"nginx":["nginx:1"]}]', ["nginx:1"]),  # a key is never a name
        (b'[{"names":["x"],"sizeBytes":1}]', []),
        (b'[{"names":["\\u003cnone\\u003e@nginx"]}]', ["<none>@nginx"]),  # escapes: decoded
        (b"null", []),
    ],
)
def test_awaited_names_are_the_names_that_contain_an_awaited_repository(
    raw: bytes, expected: list[str]
) -> None:
    assert sorted(name.decode() for name in awaited_names(raw, (b"nginx",))) == expected
