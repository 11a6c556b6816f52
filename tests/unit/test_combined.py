"""Combining pull groups' evaluations into the run's one, and the `--dry-run` plan text."""

from __future__ import annotations

from image_awaiter.core.combined import GroupEvaluation, combine, group_progress
from image_awaiter.core.readiness import Evaluation, NodeStatus, NodeVerdict, PullFailure
from image_awaiter.core.references import parse_image
from image_awaiter.output.plan import plan_text

CUDA = parse_image("quay.io/jupyter/pytorch-notebook:cuda12-2025-01-20")
BASE = parse_image("quay.io/jupyterhub/k8s-singleuser-sample:4.1.0")


def _group(
    name: str, *verdicts: NodeVerdict, excluded: dict[str, str] | None = None
) -> GroupEvaluation:
    return GroupEvaluation(
        name=name,
        images=(CUDA,) if name == "gpu" else (BASE,),
        evaluation=Evaluation(verdicts=verdicts, excluded=excluded or {}, failing_since={}),
    )


def _done(node: str) -> NodeVerdict:
    return NodeVerdict(node=node, status=NodeStatus.DONE)


def _pulling(node: str, image: str) -> NodeVerdict:
    return NodeVerdict(
        node=node, status=NodeStatus.PULLING, missing=(image,), detail=f"pulling {image}"
    )


def test_one_group_is_its_own_evaluation_unchanged() -> None:
    group = _group("default", _done("a"), excluded={"b": "not Ready"})
    assert combine([group]) is group.evaluation


def test_a_node_two_groups_target_is_judged_on_both_and_names_each_waiting_group() -> None:
    gpu = _group("gpu", _pulling("gpu-0", CUDA.original))
    base = _group("base", _done("cpu-0"), _pulling("gpu-0", BASE.original))
    combined = combine([gpu, base])
    verdicts = {v.node: v for v in combined.verdicts}
    assert set(verdicts) == {"gpu-0", "cpu-0"}
    assert verdicts["gpu-0"].status is NodeStatus.PULLING
    assert verdicts["gpu-0"].missing == (CUDA.original, BASE.original)
    assert verdicts["gpu-0"].detail == (
        f"group gpu: pulling {CUDA.original}; group base: pulling {BASE.original}"
    )
    assert verdicts["cpu-0"].status is NodeStatus.DONE
    assert not combined.done


def test_the_worst_status_of_a_nodes_groups_wins_and_keeps_every_failure() -> None:
    failure = PullFailure(node="arm-0", image=CUDA.original, reason="ErrImagePull", message="x")
    failed = NodeVerdict(
        node="arm-0", status=NodeStatus.FAILED, missing=(CUDA.original,), failures=(failure,)
    )
    combined = combine([_group("gpu", failed), _group("base", _done("arm-0"))])
    assert combined.verdicts[0].status is NodeStatus.FAILED
    assert combined.failures == (failure,)


def test_a_node_is_excluded_only_when_no_group_targets_it_with_every_groups_reason() -> None:
    gpu = _group("gpu", _done("gpu-0"), excluded={"cpu-0": "no gpu", "arm-0": "no gpu"})
    arm = _group("arm", _done("arm-0"), excluded={"cpu-0": "not arm64", "gpu-0": "taint"})
    combined = combine([gpu, arm])
    assert combined.excluded == {"cpu-0": "gpu: no gpu; arm: not arm64"}
    assert combined.done


def test_progress_names_each_groups_done_nodes_of_its_targets() -> None:
    gpu = _group("gpu", _done("gpu-0"), _pulling("gpu-1", CUDA.original))
    base = _group("base", _done("cpu-0"))
    assert group_progress([gpu, base]) == "gpu 1/2, base 1/1"


def test_the_plain_plan_says_per_group_what_each_node_lacks() -> None:
    gpu = _group("gpu", _done("gpu-0"), _pulling("gpu-1", CUDA.original), excluded={"c": "x"})
    assert plan_text([gpu], table=False) == (
        f"group gpu: 1 image ({CUDA.original}); 2 target nodes, 1 lacking images, 1 excluded\n"
        f"  node gpu-1 lacks {CUDA.original}\n"
    )


def test_the_terminal_plan_is_an_aligned_table_with_targets_and_exclusions() -> None:
    gpu = _group("gpu", _pulling("gpu-1", CUDA.original), excluded={"cpu-0": "no gpu label"})
    lines = plan_text([gpu], table=True).splitlines()
    assert lines[0].split() == ["GROUP", "NODE", "ROLE", "LACKS", "/", "REASON"]
    assert lines[1].split() == ["gpu", "gpu-1", "target", CUDA.original]
    assert lines[2].split()[:3] == ["gpu", "cpu-0", "excluded"]
    assert lines[1].index("target") == lines[2].index("excluded") == lines[0].index("ROLE")


def test_a_node_is_listed_in_the_combination_only_when_every_group_found_it_listed() -> None:
    listed = NodeVerdict(node="a", status=NodeStatus.DONE, listed=True)
    both = combine([_group("cpu", listed), _group("gpu", listed)])
    assert both.listed_nodes == ["a"]
    one = combine([_group("cpu", listed), _group("gpu", _done("a"))])
    assert one.done_nodes == ["a"] and one.listed_nodes == []
