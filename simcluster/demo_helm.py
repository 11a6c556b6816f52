"""`make demo-helm`: the Helm hook as a user sees it, with the REAL helm and kubectl.

Starts the simulated cluster the way `make sim` does (`python -m simcluster serve`, three
nodes, an audit log), builds the application chart tests/fixtures/charts/hub (image-awaiter as
its `prePuller` dependency) and then:

1. `helm install`: the hook pulls the notebook image onto every node before the release exists;
2. `helm upgrade` adding a multi-GB image: the hook pod's progress, read with `kubectl logs`
   while helm waits, then helm's output;
3. `helm upgrade --reuse-values` (nothing new): the fast path, no puller DaemonSet.

It ends with what the audit log says each step did, stops the cluster, and exits 0 when every
step did what it should (1 otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from simcluster.tools import ROOT, find

NAMESPACE = "jhub"
RELEASE = "hub"
NOTEBOOK = "quay.io/jupyter/base-notebook:2025-06-02"
# About 6 GB for real (CUDA and PyTorch); the simulated registry pulls it in 12 seconds.
PYTORCH = "quay.io/jupyter/pytorch-notebook:cuda12-2025-06-02"
HOOK_SELECTOR = "app.kubernetes.io/component=hook"
POLL_SECONDS = 0.5  # how often the display looks for a new hook pod (display only, not a wait)


class Shell:
    """Runs helm and kubectl as a user's shell would, echoing each command."""

    def __init__(self, home: Path, kubeconfig: str) -> None:
        self.home = home
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBE"))},
            "KUBECONFIG": kubeconfig,
            "HELM_CACHE_HOME": str(home / "helm-cache"),
            "HELM_CONFIG_HOME": str(home / "helm-config"),
            "HELM_DATA_HOME": str(home / "helm-data"),
        }

    def command(self, tool: str, *args: str) -> list[str]:
        binary = find(tool)
        if binary is None:
            raise SystemExit(f"demo-helm: no {tool} binary; run `make helm` first")
        return [binary, *args]

    def run(self, tool: str, *args: str, echo: bool = True) -> subprocess.CompletedProcess[str]:
        if echo:
            print(f"\n$ {tool} {' '.join(args)}", flush=True)
        done = subprocess.run(
            self.command(tool, *args),
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.home,
            timeout=600,
            check=False,
        )
        if echo:
            print((done.stdout + done.stderr).rstrip(), flush=True)
        return done

    def helm_with_progress(self, *args: str) -> int:
        """Run helm in the background; meanwhile follow each hook pod's log with kubectl."""
        print(f"\n$ helm {' '.join(args)}", flush=True)
        helm = subprocess.Popen(
            self.command("helm", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=self.home,
        )
        followers: dict[str, threading.Thread] = {}
        while helm.poll() is None:
            for pod in self._started_hook_pods():
                if pod not in followers:
                    followers[pod] = threading.Thread(target=self._follow, args=(pod,))
                    followers[pod].start()
            time.sleep(POLL_SECONDS)
        for follower in followers.values():
            follower.join(timeout=30)
        output = helm.stdout.read() if helm.stdout else ""
        print(output.rstrip(), flush=True)
        return helm.returncode

    def _started_hook_pods(self) -> list[str]:
        listed = self.run(
            "kubectl",
            "get",
            "pods",
            "-n",
            NAMESPACE,
            "-l",
            HOOK_SELECTOR,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{'\\n'}{end}",
            echo=False,
        )
        rows = [line.split() for line in listed.stdout.splitlines()]
        return [row[0] for row in rows if len(row) == 2 and row[1] != "Pending"]

    def _follow(self, pod: str) -> None:
        print(f"  $ kubectl logs -f -n {NAMESPACE} {pod}   (while helm waits)", flush=True)
        follow = subprocess.Popen(
            self.command("kubectl", "logs", "-f", "-n", NAMESPACE, pod),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env,
        )
        assert follow.stdout is not None
        for line in follow.stdout:
            print(f"  | {readable(line.rstrip())}", flush=True)
        follow.wait()


def readable(line: str) -> str:
    """A JSON log line as `event key=value ...` (other lines as they are)."""
    try:
        record: dict[str, Any] = json.loads(line)
    except ValueError:
        return line
    event = record.pop("event", "")
    for noise in ("timestamp", "level", "logger", "command", "run_id", "namespace", "source"):
        record.pop(noise, None)
    return " ".join([str(event), *(f"{k}={v}" for k, v in record.items())])


def start_cluster(home: Path) -> tuple[subprocess.Popen[str], str]:
    args = [
        sys.executable,
        "-m",
        "simcluster",
        "serve",
        "--nodes",
        "3",
        "--image",
        f"{NOTEBOOK}=3",
        "--image",
        f"{PYTORCH}=12",
        "--present",
        "registry.k8s.io/pause:3.10",
        "--kubeconfig",
        str(home / "kubeconfig"),
        "--audit-log",
        str(home / "audit.jsonl"),
    ]
    print(f"$ python {' '.join(args[1:])}", flush=True)
    server = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert server.stdout is not None
    ready = ""
    for ready in server.stdout:  # it prints one line when ready, naming the kubeconfig
        if "KUBECONFIG=" in ready:
            break
        print(ready.rstrip(), flush=True)
    if "KUBECONFIG=" not in ready:
        server.kill()
        raise SystemExit(f"demo-helm: the simulated cluster did not start: {ready!r}")
    print(ready.rstrip(), flush=True)
    return server, ready.rsplit("KUBECONFIG=", 1)[1].strip()


def app_chart(home: Path, shell: Shell) -> Path:
    chart = home / "hub"
    shutil.copytree(ROOT / "tests" / "fixtures" / "charts" / "hub", chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["dependencies"][0]["repository"] = f"file://{ROOT / 'chart'}"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    built = shell.run("helm", "dependency", "build", str(chart))
    if built.returncode != 0:
        raise SystemExit("demo-helm: helm dependency build failed")
    return chart


def audit(path: Path, start: int) -> tuple[list[dict[str, Any]], int]:
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines[start:]], len(lines)


def summary(step: str, entries: list[dict[str, Any]]) -> tuple[str, int, int]:
    awaiter = [e for e in entries if e["user"].startswith("system:serviceaccount:")]
    created = sum(
        1 for e in awaiter if (e["verb"], e["resource"], e["code"]) == ("create", "daemonsets", 201)
    )
    refused = [f"{e['verb']} {e['resource']} ({e['code']})" for e in awaiter if e["code"] >= 400]
    print(
        f"  {step:<24} {len(awaiter):>3} requests by the hook's ServiceAccount, "
        f"{created} puller DaemonSet(s) created, {len(refused)} refused"
        + (f": {', '.join(refused)}" if refused else ""),
        flush=True,
    )
    return step, created, len(refused)


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="demo-helm-"))
    server, kubeconfig = start_cluster(home)
    try:
        shell = Shell(home, kubeconfig)
        shell.run("kubectl", "get", "nodes", "-o", "wide")
        chart = app_chart(home, shell)
        log = home / "audit.jsonl"
        results = []
        steps = (
            ("install", ["install", RELEASE, str(chart), "-n", NAMESPACE, "--create-namespace"]),
            (
                "upgrade adding PyTorch",
                [
                    "upgrade",
                    RELEASE,
                    str(chart),
                    "-n",
                    NAMESPACE,
                    "--set",
                    f"prePuller.images={{{NOTEBOOK},{PYTORCH}}}",
                ],
            ),
            (
                "upgrade unchanged",
                ["upgrade", RELEASE, str(chart), "-n", NAMESPACE, "--reuse-values"],
            ),
        )
        mark = 0
        codes = []
        for step, args in steps:
            codes.append(shell.helm_with_progress(*args))
            entries, mark = audit(log, mark)
            results.append((step, entries))
        shell.run(
            "kubectl",
            "get",
            "nodes",
            "-o",
            "custom-columns=NODE:.metadata.name,IMAGES:.status.images[*].names[1]",
        )
        print(f"\nWhat the audit log ({log}) says each step did:", flush=True)
        verdicts = [summary(step, entries) for step, entries in results]
        expected = [
            ("install", 1, 0),
            ("upgrade adding PyTorch", 1, 0),
            ("upgrade unchanged", 0, 0),
        ]
        ok = codes == [0, 0, 0] and verdicts == expected
        print(
            "\ndemo-helm: " + ("every step did what it should" if ok else "UNEXPECTED, see above")
        )
        return 0 if ok else 1
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
