"""Kubelet image events parsed into facts, from event messages copied from real clusters.

Sources are cited per row: a GitHub issue, or for files found through a code search whose
repository the index did not name, "search id N" (the stored file's id).
The message formats themselves are the kubelet's: kubernetes/kubernetes
pkg/kubelet/images/image_manager.go ("Successfully pulled image %q in %v (%v including
waiting). Image size: %v bytes.").
"""

from __future__ import annotations

import math

import pytest

from image_awaiter.core.pullevents import (
    AlreadyPresent,
    BackingOff,
    Pulled,
    PullFact,
    PullFailed,
    Pulling,
    parse_event,
    parse_go_duration,
)
from simcluster.nodes import messages

REAL_EVENTS = [
    # ------------------------------------------------- Pulled, 1.30+ (with image size)
    pytest.param(  # sash3939/Kubernetes8-Config_Apps README.md
        "Pulled",
        'Successfully pulled image "busybox:1.28" in 5.969s (5.969s including waiting). Image'
        " size: 727869 bytes.",
        Pulled("busybox:1.28", 5.969, 5.969, 727869),
        id="pulled-1.30-seconds",
    ),
    pytest.param(  # search id 6134995736 (kubectl describe on a 1.3x cluster)
        "Pulled",
        'Successfully pulled image "busybox" in 782ms (782ms including waiting). Image size:'
        " 2223685 bytes.",
        Pulled("busybox", 0.782, 0.782, 2223685),
        id="pulled-1.30-milliseconds",
    ),
    pytest.param(  # search id 26825262504 (k3s, kubectl get events)
        "Pulled",
        'Successfully pulled image "rancher/mirrored-library-busybox:1.36.1" in 4.522s (4.522s'
        " including waiting). Image size: 2147340 bytes.",
        Pulled("rancher/mirrored-library-busybox:1.36.1", 4.522, 4.522, 2147340),
        id="pulled-1.30-k3s",
    ),
    pytest.param(  # search id 61577019024 (OpenShift console, internal registry)
        "Pulled",
        'Successfully pulled image "default-route-openshift-image-registry.apps.produtos4.caixa/'
        'build-images-ads/sispl-canal-webhook-pix:2.2.0.10" in 890ms (890ms including waiting).'
        " Image size: 890929878 bytes.",
        Pulled(
            "default-route-openshift-image-registry.apps.produtos4.caixa/build-images-ads/"
            "sispl-canal-webhook-pix:2.2.0.10",
            0.89,
            0.89,
            890929878,
        ),
        id="pulled-1.30-openshift",
    ),
    pytest.param(  # search id 45145160261 (kind)
        "Pulled",
        'Successfully pulled image "nginx" in 44.673s (44.673s including waiting). Image size:'
        " 72324501 bytes.",
        Pulled("nginx", 44.673, 44.673, 72324501),
        id="pulled-1.30-kind",
    ),
    # ----------------------------------------- Pulled, 1.27-1.29 (including waiting)
    pytest.param(  # dandi/dandi-hub#89: queued behind another pull for almost 4 minutes
        "Pulled",
        'Successfully pulled image "alpine" in 1.466729067s (3m53.352084967s including waiting)',
        Pulled("alpine", 1.466729067, 233.352084967, None),
        id="pulled-1.27-waited-minutes",
    ),
    pytest.param(  # dandi/dandi-hub#89
        "Pulled",
        'Successfully pulled image "jupyterhub/k8s-network-tools:2.0.1-0.dev.git.6000.h3053d41b"'
        " in 679.368724ms (679.380164ms including waiting)",
        Pulled(
            "jupyterhub/k8s-network-tools:2.0.1-0.dev.git.6000.h3053d41b",
            0.679368724,
            0.679380164,
            None,
        ),
        id="pulled-1.27-milliseconds",
    ),
    pytest.param(  # search id 36015661556 (k3d)
        "Pulled",
        'Successfully pulled image "nginx:stable" in 17.229833041s (17.229838067s including'
        " waiting)",
        Pulled("nginx:stable", 17.229833041, 17.229838067, None),
        id="pulled-1.27-k3d",
    ),
    # ------------------------------------------- Pulled, 1.20-1.26 (duration only)
    pytest.param(  # search id 25303404761
        "Pulled",
        'Successfully pulled image "nginx" in 2.02130736s',
        Pulled("nginx", 2.02130736, None, None),
        id="pulled-1.20",
    ),
    # ------------------------------------------------------ Pulled, before 1.20
    pytest.param(  # kubernetes/kubernetes#91560
        "Pulled",
        'Successfully pulled image "docker.io/library/fedora:32"',
        Pulled("docker.io/library/fedora:32"),
        id="pulled-old",
    ),
    # --------------------------------------------------------- already present
    pytest.param(  # search id 15707656969 (kubectl get events, 1.30)
        "Pulled",
        'Container image "registry.k8s.io/kube-proxy:v1.30.14" already present on machine',
        AlreadyPresent("registry.k8s.io/kube-proxy:v1.30.14"),
        id="already-present",
    ),
    # search id 62881667899: the KEP-2535 wording (search id 45422234314 shows a 1.33.2 kubelet
    # still printing the old one, so it is newer than that)
    pytest.param(
        "Pulled",
        'Container image "curlimages/curl:8.21.0" already present on machine and can be accessed'
        " by the pod",
        AlreadyPresent("curlimages/curl:8.21.0"),
        id="already-present-kep-2535",
    ),
    pytest.param(  # search id 56675055544 (newer kubectl describe prefixes the field path)
        "Pulled",
        'spec.containers{postgres}: Container image "postgres:15-alpine" already present on'
        " machine and can be accessed by the pod",
        AlreadyPresent("postgres:15-alpine"),
        id="already-present-describe-prefix",
    ),
    # ---------------------------------------------------------------- Pulling
    pytest.param(  # octarinesec/octarine-operator#15
        "Pulling",
        'Pulling image "octarinesec/guardrails-enforcer:20.7"',
        Pulling("octarinesec/guardrails-enforcer:20.7"),
        id="pulling",
    ),
    pytest.param(  # kubernetes/kubernetes#63430 (1.10)
        "Pulling",
        'pulling image "busybox"',
        Pulling("busybox"),
        id="pulling-old-lowercase",
    ),
    pytest.param(  # search id 70162894059 (newer kubectl describe)
        "Pulling",
        'spec.containers{hello}: Pulling image "nginx:1.27-alpine"',
        Pulling("nginx:1.27-alpine"),
        id="pulling-describe-prefix",
    ),
    # ----------------------------------------------------------------- Failed
    pytest.param(  # kubevela/kubevela#981
        "Failed",
        'Failed to pull image "oamdev/vela-core:0.3.1": rpc error: code = Unknown desc = Error'
        " response from daemon: manifest for oamdev/vela-core:0.3.1 not found: manifest unknown:"
        " manifest unknown",
        PullFailed(
            "oamdev/vela-core:0.3.1",
            "rpc error: code = Unknown desc = Error response from daemon: manifest for oamdev/"
            "vela-core:0.3.1 not found: manifest unknown: manifest unknown",
        ),
        id="failed",
    ),
    pytest.param(  # nigelpoulton/ckad#51 (a cause with its own colons and brackets)
        "Failed",
        'Failed to pull image "k8s.gcr.io/busybox": [DEPRECATION NOTICE] Docker Image Format v1'
        " and Docker Image manifest version 2, schema 1 support is disabled by default and will"
        " be removed in an upcoming release.",
        PullFailed(
            "k8s.gcr.io/busybox",
            "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2,"
            " schema 1 support is disabled by default and will be removed in an upcoming release.",
        ),
        id="failed-deprecation",
    ),
    pytest.param(  # octarinesec/octarine-operator#15: the second Failed event names no cause
        "Failed",
        "Error: ErrImagePull",
        None,
        id="failed-reason-only",
    ),
    # ---------------------------------------------------------------- BackOff
    pytest.param(  # octarinesec/octarine-operator#15
        "BackOff",
        'Back-off pulling image "octarinesec/guardrails-enforcer:20.7"',
        BackingOff("octarinesec/guardrails-enforcer:20.7"),
        id="backoff",
    ),
    pytest.param(  # kubernetes/kubernetes#127918 format (1.32 waiting message), error from #41566
        "BackOff",
        'Back-off pulling image "kube-aggregator": ErrImagePull: repository kube-aggregator not'
        " found: does not exist or no pull access",
        BackingOff(
            "kube-aggregator",
            "repository kube-aggregator not found: does not exist or no pull access",
        ),
        id="backoff-with-error",
    ),
    # --------------------------------------------------------- not about images
    pytest.param(  # kubernetes/kubernetes#63430: the other BackOff
        "BackOff",
        "Back-off restarting failed container",
        None,
        id="backoff-restarting",
    ),
    pytest.param(  # search id 56675055544
        "Failed",
        'Error: secret "db-secrets" not found',
        None,
        id="failed-not-a-pull",
    ),
    pytest.param(
        "Scheduled",
        "Successfully assigned default/busybox-probe to minikube",  # nigelpoulton/ckad#51
        None,
        id="scheduled",
    ),
]


@pytest.mark.parametrize(("reason", "message", "fact"), REAL_EVENTS)
def test_real_kubelet_events_parse_into_facts(
    reason: str, message: str, fact: PullFact | None
) -> None:
    parsed = parse_event(reason, message)
    if isinstance(fact, Pulled) and isinstance(parsed, Pulled):
        assert parsed.image == fact.image
        assert parsed.size_bytes == fact.size_bytes
        for got, want in [
            (parsed.seconds, fact.seconds),
            (parsed.seconds_including_waiting, fact.seconds_including_waiting),
        ]:
            assert (got is None) == (want is None)
            assert got is None or want is None or math.isclose(got, want, rel_tol=1e-12)
    else:
        assert parsed == fact


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3.2s", 3.2),
        ("850ms", 0.85),
        ("1m2.5s", 62.5),
        ("1h2m3.4s", 3723.4),
        ("3m53.352084967s", 233.352084967),
        ("679.368724ms", 0.679368724),
        ("0s", 0.0),
        ("0", 0.0),
        ("1h0m0s", 3600.0),
        ("2m0s", 120.0),
        ("500µs", 0.0005),  # Go prints U+00B5
        ("500μs", 0.0005),  # U+03BC, accepted by time.ParseDuration too
        ("750us", 0.00075),
        ("12ns", 12e-9),
        ("-1.5s", -1.5),
        (".5s", 0.5),
    ],
)
def test_go_durations_parse_to_seconds(text: str, seconds: float) -> None:
    parsed = parse_go_duration(text)
    assert parsed is not None
    assert math.isclose(parsed, seconds, rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize("text", ["", "s", "3.2", "3.2 s", "1m-2s", "1d", "fast", "1.2.3s"])
def test_things_that_are_not_go_durations_give_none(text: str) -> None:
    assert parse_go_duration(text) is None


def test_a_pulled_event_with_an_unreadable_duration_keeps_the_image_and_size() -> None:
    fact = parse_event(
        "Pulled",
        'Successfully pulled image "x:1" in soon (later including waiting). Image size: 12 bytes.',
    )
    assert fact == Pulled("x:1", None, None, 12)


def test_a_size_in_an_unknown_shape_leaves_the_durations_readable() -> None:
    # kubernetes/kubernetes#129904 proposed "Image size: 68.5 MiB"; it was not merged, but a
    # kubelet that prints it must not cost the report its durations.
    fact = parse_event(
        "Pulled",
        'Successfully pulled image "nginx" in 27.88s (27.88s including waiting). Image size:'
        " 65.3 MiB.",
    )
    assert fact == Pulled("nginx", 27.88, 27.88, None)


def test_an_image_with_an_escaped_quote_is_unescaped() -> None:
    # Go's %q escapes a quote; a reference cannot contain one, but an invalid spec can.
    fact = parse_event("Pulling", 'Pulling image "bad\\"name"')
    assert fact == Pulling('bad"name')


# ------------------------------------------------- the simulated kubelet's events


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3.2, "3.2s"),
        (0.85, "850ms"),
        (62.5, "1m2.5s"),
        (3723.4, "1h2m3.4s"),
        (0.0004, "0s"),
        (120, "2m0s"),
        (3600, "1h0m0s"),
        (5.969, "5.969s"),
    ],
)
def test_the_simulated_kubelet_prints_durations_as_go_does(seconds: float, text: str) -> None:
    assert messages.go_duration(seconds) == text


def test_a_simulated_pulled_event_parses_back_to_its_figures() -> None:
    event = messages.pulled_event(
        image="nginx:1.27", seconds=3.2, seconds_including_waiting=65.25, size_bytes=68507108
    )
    assert (event.reason, event.type) == ("Pulled", "Normal")
    assert event.message == (
        'Successfully pulled image "nginx:1.27" in 3.2s (1m5.25s including waiting). Image size:'
        " 68507108 bytes."
    )
    assert parse_event(event.reason, event.message) == Pulled("nginx:1.27", 3.2, 65.25, 68507108)


@pytest.mark.parametrize(
    "template",
    [
        messages.PULLING,
        messages.PULLING_LOWERCASE,
        messages.ALREADY_PRESENT,
        messages.ALREADY_PRESENT_KEP_2535,
        messages.BACKOFF,
        messages.PULLED_BARE,
    ],
    ids=lambda t: f"{t.reason}-{t.since}",
)
def test_every_simulated_event_template_parses_to_its_image(
    template: messages.EventText,
) -> None:
    message = messages.render(
        template.message, image="nginx:1.27", ref="docker.io/library/nginx:1.27"
    )
    fact = parse_event(template.reason, message)
    assert fact is not None
    assert fact.image == "nginx:1.27"


@pytest.mark.parametrize(
    ("ref", "rendered"),
    [
        (
            "docker.io/library/nginx:1.27",
            "docker.io library/nginx docker.io/library/nginx 1.27 nginx",
        ),
        ("quay.io/org/app:v1", "quay.io org/app quay.io/org/app v1 quay.io/org/app"),
        (
            "registry:5000/team/app",
            "registry:5000 team/app registry:5000/team/app latest registry:5000/team/app",
        ),
        (
            "docker.io/library/busybox@sha256:" + "a" * 64,
            "docker.io library/busybox docker.io/library/busybox sha256:" + "a" * 64 + " busybox",
        ),
    ],
)
def test_templates_are_filled_from_the_normalised_reference(ref: str, rendered: str) -> None:
    text = messages.render("{host} {path} {repo} {tag} {short_repo}", image="x", ref=ref)
    assert text == rendered
