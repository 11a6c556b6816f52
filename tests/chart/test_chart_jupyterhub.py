"""The chart derives JupyterHub's user images from z2jh's own values (`jupyterhub.singleuser`,
`scheduling`, `prePuller`), the template twin of what `--from-manifests` derives from z2jh's
rendered hub Secret: given the same values (tests/fixtures/apps/z2jh-values.yaml), both must
pull each image with the same placements, and so plan it on the same nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from image_awaiter.core.placement import Placement
from image_awaiter.spec.manifests import read_manifests
from image_awaiter.spec.podtemplates import pod_placement
from image_awaiter.spec.pullers import awaited_images
from tests.chart.conftest import CHART, Render, hook_daemonsets, run_helm
from tests.integration.helpers import jupyterhub_pools, planned_nodes

APPS = Path(__file__).parent.parent / "fixtures" / "apps"

OS_LINUX = ("kubernetes.io/os", "linux")  # the chart's puller default, not the user pods'


def chart_values(tmp_path: Path) -> str:
    """The z2jh fixture's values as a parent chart passes them to this chart: the same
    `singleuser` and `prePuller` blocks (network-tools' image, a z2jh default, given)."""
    z2jh = yaml.safe_load((APPS / "z2jh-values.yaml").read_text())
    singleuser = z2jh["singleuser"]
    singleuser["networkTools"] = {
        "image": {"name": "quay.io/jupyterhub/k8s-network-tools", "tag": "4.4.0"}
    }
    path = tmp_path / "jupyterhub-values.yaml"
    path.write_text(
        yaml.safe_dump({"jupyterhub": {"singleuser": singleuser, "prePuller": z2jh["prePuller"]}})
    )
    return str(path)


def placements_by_image(
    pods: list[tuple[tuple[str, ...], Placement]],
) -> dict[str, set[Placement]]:
    found: dict[str, set[Placement]] = {}
    for images, placement in pods:
        for image in images:
            found.setdefault(image, set()).add(placement)
    return found


def test_the_charts_profile_groups_pull_each_image_where_the_cli_derives_it_from_z2jh(
    render: Render, tmp_path: Path
) -> None:
    daemonsets = hook_daemonsets(render(chart_values(tmp_path)))
    chart = []
    for daemonset in daemonsets:
        spec = daemonset["spec"]["template"]["spec"]
        placement = pod_placement(spec, label="chart")
        selector = tuple(p for p in placement.node_selector if p != OS_LINUX)
        placement = Placement(
            node_selector=selector,
            required_terms=placement.required_terms,
            tolerations=placement.tolerations,
        )
        chart.append((tuple(awaited_images(spec)), placement))
    derived = [
        (w.images, w.placement)
        for w in read_manifests([str(APPS / "z2jh-4.4.0.yaml")]).workloads
        if w.kind == "Secret"
    ]
    assert placements_by_image(chart) == placements_by_image(derived)
    assert len(daemonsets) == 3  # default user nodes, the GPU pool, arm64


def test_the_hook_plans_every_profile_image_on_the_nodes_the_cli_plans_it_from_z2jh(
    render: Render,
    tmp_path: Path,
    sim: Any,
    run_cli: Any,
) -> None:
    pools = jupyterhub_pools(sim)
    spec = tmp_path / "daemonset.yaml"
    spec.write_text(yaml.safe_dump_all(hook_daemonsets(render(chart_values(tmp_path)))))
    hook = run_cli("check", "--daemonset-spec", str(spec))
    cli = run_cli("await", "--from-manifests", str(APPS / "z2jh-4.4.0.yaml"), "--dry-run")
    assert hook.code == cli.code == 1, hook.output + cli.output
    assert hook.report is not None and cli.report is not None
    from_hook = planned_nodes(hook.report)
    from_cli = planned_nodes(cli.report)
    assert from_hook == {image: from_cli[image] for image in from_hook}
    assert from_hook["quay.io/jupyter/pytorch-notebook:cuda12-2025-06-02"] == pools["gpu"]
    # Only the user's images are counted: not the chart's helper and pause images.
    assert len(hook.report["images"]) == 9


@pytest.mark.parametrize("values", ["jupyterhub-values.yaml"])
def test_the_readme_parent_chart_example_renders_the_gpu_profile_on_the_gpu_pool(
    render: Render, values: str
) -> None:
    daemonsets = hook_daemonsets(render(values))
    gpu = [
        d["spec"]["template"]["spec"]
        for d in daemonsets
        if "nvidia.com/gpu.present" in d["spec"]["template"]["spec"].get("nodeSelector", {})
    ]
    assert len(gpu) == 1
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu[0][
        "tolerations"
    ]
    assert "quay.io/jupyter/pytorch-notebook:cuda12-2025-06-02" in awaited_images(gpu[0])


def test_a_chart_with_neither_images_nor_jupyterhub_profiles_fails_to_render(helm: Path) -> None:
    result = run_helm(helm, "template", "hub", str(CHART))
    assert result.returncode != 0
    assert "give images to pull: `images`, or JupyterHub's profiles" in result.stderr
