"""Pull states from what the API says of a puller pod's containers: pure decisions over plain
facts (the pod codec decodes, these decide)."""

from __future__ import annotations

import pytest

from image_awaiter.core.pullerpods import (
    ContainerSeen,
    ImagePull,
    PullState,
    container_pull,
    pod_pulls,
)
from image_awaiter.core.references import ImageKey

PULLED, PULLING, FAILING = PullState.PULLED, PullState.PULLING, PullState.FAILING
A, B, V = ImageKey("docker.io/library/a:1"), ImageKey("docker.io/library/b:1"), ImageKey("v:1")


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        pytest.param(ContainerSeen("c", image_id="sha256:1"), ImagePull(PULLED), id="image-id"),
        pytest.param(ContainerSeen("c", ran=True), ImagePull(PULLED), id="ran"),
        pytest.param(
            ContainerSeen("c", waiting_reason="ErrImagePull", waiting_message="denied"),
            ImagePull(FAILING, "ErrImagePull", "denied"),
            id="err-image-pull-is-failing",
        ),
        pytest.param(
            ContainerSeen("c", waiting_reason="InvalidImageName", waiting_message="bad"),
            ImagePull(FAILING, "InvalidImageName", "bad"),
            id="invalid-name-is-failing",
        ),
        pytest.param(
            ContainerSeen("c", waiting_reason="CreateContainerConfigError", waiting_message="x"),
            ImagePull(PULLED, "CreateContainerConfigError", "x"),
            id="stuck-after-the-pull-had-it",
        ),
        pytest.param(
            ContainerSeen("c", waiting_reason="PodInitializing", waiting_message="x"),
            ImagePull(PULLING, "PodInitializing"),
            id="anything-else-is-pulling",
        ),
        pytest.param(ContainerSeen("c"), ImagePull(PULLING), id="no-status-yet"),
    ],
)
def test_a_containers_status_gives_its_images_pull_state(seen, expected):
    assert container_pull(seen) == expected


def pulls(*seen: ContainerSeen, volumes: tuple[tuple[str, ImageKey], ...] = ()):
    return pod_pulls(
        containers={"init-a": A, "pause": B},
        regular={"pause"},
        volumes=volumes,
        seen=seen,
    )


@pytest.mark.parametrize(
    ("seen", "volumes", "expected"),
    [
        pytest.param((), (), {A: PULLING, B: PULLING}, id="nothing-seen-all-pulling"),
        pytest.param(
            (ContainerSeen("init-a", image_id="x"),), (), {A: PULLED, B: PULLING}, id="one-pulled"
        ),
        pytest.param(
            (ContainerSeen("init-a", waiting_reason="ErrImagePull", waiting_message="v:1: no"),),
            (("v:1", V),),
            {A: PULLING, B: PULLING, V: FAILING},
            id="a-failure-naming-a-volume-is-the-volumes",
        ),
        pytest.param(
            (ContainerSeen("pause", ran=True),),
            (("v:1", V),),
            {A: PULLING, B: PULLED, V: PULLED},
            id="a-regular-container-ran-so-volumes-were-mounted",
        ),
        pytest.param(
            (ContainerSeen("init-a", ran=True), ContainerSeen("other", ran=True)),
            (),
            {A: PULLED, B: PULLING},
            id="unknown-containers-are-ignored",
        ),
    ],
)
def test_a_pods_pull_states_per_image(seen, volumes, expected):
    assert {key: pull.state for key, pull in pulls(*seen, volumes=volumes).items()} == expected


def test_a_pulled_image_stays_pulled_whatever_a_later_container_says():
    states = pod_pulls(
        containers={"first": A, "second": A},
        regular=set(),
        volumes=(),
        seen=[
            ContainerSeen("first", image_id="x"),
            ContainerSeen("second", waiting_reason="ErrImagePull"),
        ],
    )
    assert states[A].state is PULLED
