"""The compact node codec against the plain path, on seeded random nodes.

`NodeCodec` scans the raw bytes of `status.images` for the awaited repositories and decodes
only the image entries it finds them in (each distinct entry once, remembered by its bytes), and
decodes only the label keys it keeps; the plain path decodes every name with `json` and matches
them all with `node_image_keys`. On randomised nodes (both runtime naming styles, digests, tags,
near misses, `<none>@<none>`, names that look like JSON keys or hold JSON's own `{}[],"`
characters, entries repeated across nodes, entries without names or sizes, images missing,
null or empty; compact, indented, spaced and Go-escaped JSON, keys in any order) the two must
agree exactly, as must the labels kept and the taints.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from image_awaiter.core.nodeimages import NodeImages
from image_awaiter.core.references import ImageKey, node_image_keys, parse_image
from image_awaiter.kube.nodecodec import NodeCodec

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
    # JSON's own characters inside names: braces, brackets, commas, quotes, backslashes
    "x}{nginx:1.7.9",
    "nginx:1.7.9}",
    "{nginx:1.7.9",
    "[nginx]",
    "nginx:1.7.9,nginx:latest",
    'nginx"1.7.9',
    '{"names":["nginx:1.7.9"]}',
    '"},{"names":["nginx:1.7.9"],"sizeBytes":1',
    "nginx\\1.7.9",
    "nginx:1.7.9 ",
    "docker.io/library/nginx:1.7.9-é",
]
LABEL_KEYS = [
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "topology.kubernetes.io/zone",
    "node.kubernetes.io/instance-type",
    "hub.jupyter.org/node-purpose",
    "nginx",  # a label key that contains an awaited repository
    'odd"key',  # no valid label has one, but a nodeSelector may name it: decoded another way
]


def random_entry(rng: random.Random) -> dict[str, Any]:
    names = rng.sample(NODE_NAMES, rng.randint(0, 5))  # the kubelet's 5-names cap
    entry: dict[str, Any] = {"names": names, "sizeBytes": rng.randint(1, 10**10)}
    roll = rng.random()
    if roll < 0.2:
        entry = {"sizeBytes": entry["sizeBytes"], "names": names}  # any key order
    elif roll < 0.25:
        entry = {"sizeBytes": entry["sizeBytes"]}
    elif roll < 0.3:
        entry = {"names": names}  # sizeBytes is omitempty
    elif roll < 0.33:
        entry = {"names": None, "sizeBytes": 10}
    return entry


def random_node(rng: random.Random, index: int, shared: list[dict[str, Any]]) -> dict[str, Any]:
    """A node; some of its image entries are drawn from `shared`, the same bytes on many nodes
    (as one image is on a real cluster), so remembered entries are found again."""
    images = [
        rng.choice(shared) if rng.random() < 0.5 else random_entry(rng)
        for _ in range(rng.randint(0, 12))
    ]
    labels = {key: rng.choice(["a", "b", "nginx:1.7.9"]) for key in rng.sample(LABEL_KEYS, 3)}
    taints = [
        {"key": rng.choice(["dedicated", "gpu"]), "value": "x", "effect": "NoSchedule"}
        for _ in range(rng.randint(0, 2))
    ]
    node: dict[str, Any] = {
        "metadata": {"name": f"node-{index}", "labels": labels, "annotations": {"nginx": "1"}},
        "spec": {"taints": taints},
        "status": {
            "conditions": [
                {"type": kind, "status": rng.choice(["True", "False", "Unknown"])}
                for kind in rng.sample(
                    ["Ready", "MemoryPressure", "DiskPressure"], rng.randint(0, 3)
                )
            ],
            "images": images,
        },
    }
    if rng.random() < 0.1:  # no labels at all, or null
        node["metadata"]["labels"] = rng.choice([None, {}])
    roll = rng.random()
    if roll < 0.05:
        node["status"]["images"] = None
    elif roll < 0.1:
        del node["status"]["images"]
    elif roll < 0.15:  # images first: other fields after it
        node["status"] = {"images": images, **node["status"]}
    if rng.random() < 0.1:  # status, then spec, then metadata: any order
        node = dict(reversed(node.items()))
    return node


def serialised(rng: random.Random, node: dict[str, Any]) -> bytes:
    """The node as some server might write it: compact, indented, spaced, or with Go's HTML
    escapes."""
    style = rng.choice(["compact", "indented", "spaced", "go"])
    if style == "indented":
        return json.dumps(node, indent=rng.choice([1, 2]), ensure_ascii=rng.random() < 0.5).encode()
    if style == "spaced":
        return json.dumps(node, separators=(" , ", " : "), ensure_ascii=False).encode()
    text = json.dumps(node, separators=(",", ":"))
    if style == "go":  # encoding/json escapes <, > and & in every string
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode()


def plain_keys(node: dict[str, Any], wanted: frozenset[ImageKey]) -> frozenset[ImageKey]:
    """The plain path: every name decoded, every name parsed (no substring filters), the keys
    that are wanted kept."""
    images = node["status"].get("images") or []
    names = [n for image in images for n in image.get("names") or []]
    return node_image_keys(names) & wanted


@pytest.mark.parametrize("seed", range(40))
def test_the_raw_scan_finds_exactly_the_images_the_plain_path_finds(seed: int) -> None:
    rng = random.Random(seed)
    wanted = frozenset(parse_image(r).key for r in rng.sample(REFERENCES, rng.randint(1, 4)))
    keep = frozenset(rng.sample(LABEL_KEYS, 2))
    codec = NodeCodec(wanted=wanted, label_keys=keep)
    shared = [random_entry(rng) for _ in range(6)]
    nodes = [random_node(rng, i, shared) for i in range(60)]
    for node in nodes:
        data = serialised(rng, node)
        event = codec.event(b'{"type":"ADDED","object":' + data + b"}")
        assert event.record is not None
        assert event.record.images == plain_keys(node, wanted), data
        assert event.record.ready == any(
            (c["type"], c["status"]) == ("Ready", "True") for c in node["status"]["conditions"]
        )
        labels = node["metadata"]["labels"] or {}
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


NGINX = frozenset({parse_image("nginx:1").key})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'[{"names":["nginx:1","a/nginx:2"],"sizeBytes":1}]', NGINX),
        (b'[{"names": [ "x" , "nginx:1" ] }]', NGINX),
        (b'[{"sizeBytes":1,"names":["nginx:1"]}]', NGINX),
        (b'[{"nginx":["x"],"names":["nginx:2"]}]', frozenset()),  # a key is never a name
        (b'[{"names":["x"],"sizeBytes":1}]', frozenset()),
        (b'[{"names":["x}nginx:1"]},{"names":["nginx:1"]}]', NGINX),  # a brace in a name
        (b'[{"names":["x{nginx:2"]},{"names":["nginx:2"]}]', frozenset()),
        (b'[{"names":["\\u003cnone\\u003e@nginx"]},{"names":["nginx:1"]}]', NGINX),  # escapes
        (b"null", frozenset()),
        (b"[]", frozenset()),
    ],
)
def test_node_images_are_the_awaited_keys_some_reported_name_matches(
    raw: bytes, expected: frozenset[ImageKey]
) -> None:
    images = NodeImages(NGINX)
    assert images.keys(raw) == expected
    assert images.keys(raw) == expected  # the entries remembered from the first time


def test_a_node_image_entry_is_decoded_once_however_many_nodes_report_it() -> None:
    images = NodeImages(NGINX)
    entry = b'{"names":["docker.io/library/nginx:1","nginx:1"],"sizeBytes":1}'
    first = images.keys(b"[" + entry + b',{"names":["x"]}]')
    second = images.keys(b'[{"names":["y"]},' + entry + b"]")
    assert first == second == NGINX
    assert first is second  # one shared set
    assert list(images._by_entry) == [entry]


def test_a_node_full_of_the_byte_chosen_to_search_for_still_gives_every_match() -> None:
    images = NodeImages(NGINX)
    plain = b'[{"names":["busybox:1","nginx:1"]}]'  # calibrates on a byte rare here
    crowded = (
        b'[{"names":["'
        + b'","'.join(b"%s/x:1" % (bytes([c]) * 40) for c in b"nginx" * 30)
        + b'"]},{"names":["nginx:1"]}]'
    )
    assert images.keys(plain) == NGINX
    assert images.keys(crowded) == NGINX  # many false hits: calibrated again on this node
    assert images.keys(crowded) == NGINX
    assert images.keys(b'[{"names":["' + b"n" * 5000 + b'"]}]') == frozenset()
