"""lean.py defers imports at start-up; what it defers must still work, as the real thing, when
used. Each case runs in a fresh interpreter with `lean.install()` first, as the entry point does
(the test process itself has imported these libraries long ago)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT, cli_env


def run_lean(code: str) -> str:
    program = "from image_awaiter import lean\nlean.install()\n" + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_kubernetes_package_runs_its_init_when_anything_else_of_it_is_asked_for() -> None:
    out = run_lean(
        """
        import sys
        from kubernetes.client.api_client import ApiClient
        assert "kubernetes.watch" not in sys.modules
        import kubernetes
        from importlib.metadata import version
        assert kubernetes.__version__ == version("kubernetes"), kubernetes.__version__
        from kubernetes import watch, config
        assert callable(config.load_kube_config) and watch.Watch
        assert "kubernetes.dynamic" in sys.modules
        print(kubernetes.client.ApiClient is ApiClient)
        """
    )
    assert out == "True"


def test_the_client_defers_the_date_parser_and_thread_pool_until_first_used() -> None:
    out = run_lean(
        """
        import sys
        from kubernetes.client import api_client
        assert "dateutil.parser" not in sys.modules and "multiprocessing.pool" not in sys.modules
        assert "pydantic" not in sys.modules
        print(api_client.parse("2026-11-23T10:20:00Z").isoformat())
        client = api_client.ApiClient()
        print(type(client.pool).__module__)
        client.close()
        """
    )
    assert out.splitlines() == ["2026-11-23T10:20:00+00:00", "multiprocessing.pool"]


def test_the_oidc_refresh_gets_the_real_oauth2_session_when_it_first_calls_it() -> None:
    out = run_lean(
        """
        import sys
        from kubernetes.config import kube_config
        assert "requests_oauthlib" not in sys.modules and "oauthlib.oauth2" not in sys.modules
        session = kube_config.OAuth2Session(client_id="awaiter")
        import requests_oauthlib
        print(type(session) is requests_oauthlib.OAuth2Session, sys.modules["oauthlib.oauth2"])
        """
    )
    assert out.startswith("True <module 'oauthlib.oauth2'")


def test_structlog_imports_without_rich_and_rich_still_imports_for_the_live_view() -> None:
    out = run_lean(
        """
        import sys
        import structlog
        assert "rich" not in sys.modules and "asyncio" not in sys.modules
        import rich.console, asyncio
        print(structlog.dev.rich, rich.console.Console.__module__, asyncio.get_running_loop)
        """
    )
    assert out.startswith("None rich.console <built-in function get_running_loop>")


def test_docker_image_compiles_a_pattern_when_first_used_and_parses_as_before() -> None:
    out = run_lean(
        """
        from docker_image import reference, regexp
        assert type(regexp.ImageRegexps.ANCHORED_IDENTIFIER_REGEXP).__name__ == "CompiledOnFirstUse"
        named = reference.Reference.parse_normalized_named("quay.io/jupyter/base-notebook:2025")
        print(named["name"], named["tag"])
        """
    )
    assert out == "quay.io/jupyter/base-notebook 2025"


def test_urllib3_compiles_its_ipv6_patterns_when_first_used_and_parses_as_before() -> None:
    out = run_lean(
        """
        import re, sys
        from urllib3.util import url, ssl_
        assert sys.modules["re"] is re and url.re.sub is re.sub
        assert type(url._IPV6_ADDRZ_RE).__name__ == "CompiledOnFirstUse"
        print(url.parse_url("https://[fe80::1%25eth0]:6443/api").host)
        print(ssl_.is_ipaddress("10.0.0.1"), ssl_.is_ipaddress("::1"), ssl_.is_ipaddress("k8s"))
        """
    )
    assert out.splitlines() == ["[fe80::1%eth0]", "True True False"]


def test_yaml_compiles_its_printable_pattern_when_the_pure_python_loader_first_reads() -> None:
    out = run_lean(
        """
        import yaml
        pattern = yaml.reader.Reader.NON_PRINTABLE
        assert type(pattern).__name__ == "CompiledOnFirstUse" and pattern._compiled is None
        print(yaml.load("a: [1]", Loader=yaml.CSafeLoader), pattern._compiled is None)
        try:
            yaml.safe_load("a: \\x07")
        except yaml.YAMLError as error:
            print(type(error).__name__, error.reason)
        """
    )
    assert out.splitlines() == ["{'a': [1]} True", "ReaderError special characters are not allowed"]


def test_a_kubeconfig_is_read_by_libyaml_and_a_bad_one_fails_with_the_usual_words(
    tmp_path: Path,
) -> None:
    good = tmp_path / "good"
    good.write_text("apiVersion: v1\nkind: Config\nclusters: []\nnames: [a, 'b']\n")
    bad = tmp_path / "bad"
    bad.write_text("kind: [Config\n")
    out = run_lean(
        f"""
        import yaml
        from kubernetes.config import kube_config
        assert kube_config.yaml.safe_load is not yaml.safe_load
        pattern = yaml.reader.Reader.NON_PRINTABLE
        with open({str(good)!r}) as f:
            print(kube_config.yaml.safe_load(f), pattern._compiled is None)
        try:
            with open({str(bad)!r}) as f:
                kube_config.yaml.safe_load(f)
        except yaml.YAMLError as error:
            print(error.problem)
        """
    )
    assert out.splitlines() == [
        "{'apiVersion': 'v1', 'kind': 'Config', 'clusters': [], 'names': ['a', 'b']} True",
        "expected ',' or ']', but got '<stream end>'",
    ]
