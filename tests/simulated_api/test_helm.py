"""The real helm (v4, server-side apply by default) installs, upgrades and uninstalls a tiny chart
with a pre-install/pre-upgrade hook on the simulated cluster; the audit log shows how."""

from __future__ import annotations

import json
from pathlib import Path

from tests.simulated_api.conftest import Api

CHART = str(Path(__file__).parent / "tiny-chart")


def test_helm_install_upgrade_and_uninstall_manage_the_release_and_its_hook(api: Api) -> None:
    installed = api.helm("install", "r1", CHART, "--namespace", "default", "--wait")
    assert installed.returncode == 0, installed.stderr
    assert "STATUS: deployed" in installed.stdout
    config = api.sim.store.get("configmaps", "r1-config", "default")
    assert config is not None and config["data"] == {"greeting": "hello"}
    assert api.sim.store.get("configmaps", "r1-hook", "default") is not None
    [release] = api.sim.objects("secrets", "default")
    assert release["metadata"]["labels"]["status"] == "deployed"

    upgraded = api.helm("upgrade", "r1", CHART, "--set", "greeting=bye")
    assert upgraded.returncode == 0, upgraded.stderr
    config = api.sim.store.get("configmaps", "r1-config", "default")
    assert config is not None and config["data"] == {"greeting": "bye"}
    assert {m["manager"] for m in config["metadata"]["managedFields"]} == {"helm"}
    hook = api.sim.store.get("configmaps", "r1-hook", "default")
    assert hook is not None and hook["data"] == {"at": "2"}
    listed = api.helm("list", "-o", "json")
    assert [(r["name"], r["revision"], r["status"]) for r in json.loads(listed.stdout)] == [
        ("r1", "2", "deployed")
    ]

    removed = api.helm("uninstall", "r1")
    assert removed.returncode == 0, removed.stderr
    assert api.sim.store.get("configmaps", "r1-config", "default") is None
    assert api.sim.objects("secrets", "default") == []

    applies = [
        (e.verb, e.name, e.code)
        for e in api.sim.audit.entries
        if e.resource == "configmaps" and e.verb == "patch"
    ]
    assert ("patch", "r1-config", 201) in applies  # server-side apply created it
    assert ("patch", "r1-config", 200) in applies
    assert all(e.code < 400 or e.code == 404 for e in api.sim.audit.entries)


def test_helm_install_of_an_invalid_name_fails_with_the_apiservers_message(api: Api) -> None:
    result = api.helm("install", "r1", CHART, "--set", "nameSuffix=-Spec")
    assert result.returncode == 1
    assert (
        'ConfigMap "r1-config-Spec" is invalid: metadata.name: Invalid value: "r1-config-Spec": '
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"
    ) in result.stderr
    assert api.sim.store.get("configmaps", "r1-config-Spec", "default") is None
