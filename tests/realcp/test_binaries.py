"""Where the control plane's binaries are looked for: a cache keyed by the pinned release and
the wrapper modules, so that a change to the modules builds anew and nothing else does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from simcluster.controlplane import binaries


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "controlplane"
    shutil.copytree(binaries.MODULES, copy)
    monkeypatch.setattr(binaries, "KUBERNETES_MODULE", copy / "kubernetes")
    monkeypatch.setattr(binaries, "ETCD_MODULE", copy / "etcd")
    monkeypatch.setenv(binaries.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(binaries.BIN_ENV, raising=False)
    return copy


def test_the_cache_directory_names_the_release_and_a_hash_of_the_modules(modules: Path) -> None:
    where = binaries.bin_dir()
    assert where.parent.name == f"k8s-v1.36.3-{binaries.recipe_hash()}"
    assert where.parent.parent == modules.parent / "cache"


@pytest.mark.parametrize("changed", ["kubernetes/go.sum", "etcd/go.mod", "etcd/main.go"])
def test_a_change_to_a_module_moves_the_cache(modules: Path, changed: str) -> None:
    before = binaries.bin_dir()
    with (modules / changed).open("a") as out:
        out.write("\n// changed\n")
    assert binaries.bin_dir() != before


def test_a_note_beside_the_modules_builds_nothing_anew(modules: Path) -> None:
    before = binaries.bin_dir()
    (modules / "kubernetes" / "NOTES.md").write_text("why v1.36.3\n")
    assert binaries.bin_dir() == before


def test_the_version_stamps_name_the_pinned_release() -> None:
    flags = binaries.kubernetes_ldflags()
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.3" in flags
    assert "-X k8s.io/client-go/pkg/version.gitVersion=v1.36.3" in flags
    assert "-X k8s.io/component-base/version.gitMinor=36" in flags
    assert binaries.etcd_version().startswith("v3.6.")


def test_missing_binaries_are_named_with_the_command_that_builds_them(modules: Path) -> None:
    with pytest.raises(binaries.MissingBinaries, match=r"run `make control-plane`") as raised:
        binaries.require()
    assert raised.value.missing == list(binaries.COMMANDS)
