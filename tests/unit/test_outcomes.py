"""The wording of each ending: counts agree with their nouns, and every line that is not a
success says what to do."""

from __future__ import annotations

import pytest

from image_awaiter.core import outcomes
from image_awaiter.core.errors import one_line
from image_awaiter.core.readiness import Evaluation, NodeStatus, NodeVerdict, PullFailure
from image_awaiter.core.references import parse_image


def evaluation(done: int, missing: int = 0) -> Evaluation:
    verdicts = [NodeVerdict(f"d{i}", NodeStatus.DONE) for i in range(done)] + [
        NodeVerdict(f"m{i}", NodeStatus.MISSING, missing=("app:1",), detail="lacks app:1")
        for i in range(missing)
    ]
    return Evaluation(verdicts=tuple(verdicts), excluded={}, failing_since={})


@pytest.mark.parametrize(
    ("nodes", "images", "expected"),
    [
        (1, 1, "the 1 target node has the 1 image"),
        (1, 3, "the 1 target node has all 3 images"),
        (3, 1, "all 3 target nodes have the 1 image"),
        (3, 2, "all 3 target nodes have all 2 images"),
    ],
)
def test_success_counts_agree_with_their_nouns(nodes: int, images: int, expected: str) -> None:
    _, _, message = outcomes.succeeded(evaluation(nodes), images=images)
    assert message == expected


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (1, "dry run: the 1 target node has every image of 1 pull group; nothing would be created"),
        (
            2,
            "dry run: the 1 target node has every image of 2 pull groups; nothing would be created",
        ),
    ],
)
def test_a_plan_with_nothing_missing_counts_its_pull_groups(groups: int, expected: str) -> None:
    _, _, message = outcomes.planned(evaluation(1), groups=groups)
    assert message == expected


def test_a_plan_with_images_missing_says_one_pull_group_and_what_to_do() -> None:
    _, _, message = outcomes.planned(evaluation(0, missing=1), groups=1)
    assert message == (
        "dry run: images missing on 1 of 1 target node (1 pull group); nothing was created: "
        "m0: lacks app:1; run without --dry-run to pull them"
    )


def test_check_with_images_missing_says_how_to_pull_them() -> None:
    _, _, message = outcomes.missing(evaluation(1, missing=1))
    assert message.endswith("; run `image-awaiter await` with the same options to pull them")


@pytest.mark.parametrize(
    ("report", "advice"),
    [
        (False, "; raise --timeout or rerun with --report for each node"),
        (True, "; raise --timeout or see the report for each node"),
    ],
)
def test_a_timeout_points_to_the_report_only_when_one_is_written(report: bool, advice: str) -> None:
    _, _, message = outcomes.timed_out(
        evaluation(0, missing=2), timeout=60, on_timeout="fail", report=report
    )
    assert message == (
        f"timed out after 60s with images missing on 2 of 2 target nodes: "
        f"m0: lacks app:1; m1: lacks app:1{advice}"
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("not found", "not found"),
        ("", ""),
        (
            # cri-o/cri-o#2331: a registry's errors, one per line
            "Error reading manifest 1 in quay.io/org/private: errors:\n"
            "denied: requested access to the resource is denied\n"
            "unauthorized: authentication required\n",
            "Error reading manifest 1 in quay.io/org/private: errors: denied: requested access "
            "to the resource is denied, unauthorized: authentication required",
        ),
        ("first\r\n  second.\n\nthird", "first, second. third"),
    ],
)
def test_runtime_text_is_folded_onto_one_line(text: str, line: str) -> None:
    assert one_line(text) == line


HELPER = parse_image("ghcr.io/image-awaiter/image-awaiter:0.1.0").key
PAUSE = parse_image("registry.k8s.io/pause:3.10").key
DENIED = "pull access denied, repository does not exist or may require authorization"


def failing_on(image: str) -> Evaluation:
    failure = PullFailure(
        node="a",
        image=image,
        reason="ErrImagePull",
        message=DENIED,
        error_class="permanent",
        kind="repository-not-found",
        advice="fix the repository name, or add an imagePullSecret",
    )
    verdict = NodeVerdict("a", NodeStatus.FAILED, failures=(failure,))
    return Evaluation(verdicts=(verdict,), excluded={}, failing_since={})


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (
            "quay.io/org/app:1",
            "image quay.io/org/app:1 cannot be pulled on node a (permanent repository-not-found): "
            f"ErrImagePull: {DENIED}; fix the repository name, or add an imagePullSecret",
        ),
        (
            HELPER,
            "the puller's helper image ghcr.io/image-awaiter/image-awaiter:0.1.0 (not one of your "
            "images) cannot be pulled on node a (permanent repository-not-found): ErrImagePull: "
            f"{DENIED}; push an image with the helper (Dockerfile.distroless) where the nodes can "
            "pull it and pass --helper-image REF, or use --pull-method imageVolumes, which needs "
            "no helper (Kubernetes 1.35+, containerd 2 or CRI-O 1.30+)",
        ),
        (
            PAUSE,
            "the puller's pause image registry.k8s.io/pause:3.10 (not one of your images) cannot "
            f"be pulled on node a (permanent repository-not-found): ErrImagePull: {DENIED}; pass "
            "--pause-image with a pause image the nodes can pull",
        ),
    ],
)
def test_a_failing_puller_image_is_said_not_to_be_the_users(image: str, expected: str) -> None:
    _, _, message = outcomes.pull_failed(failing_on(image), helper=HELPER, pause=PAUSE)
    assert message == expected
