"""Seeded chaos scenarios against the simulated cluster, and the invariants every run must keep.

A scenario is drawn from a seed: a few nodes, an image, an intended outcome (success, a pull that
fails then succeeds, a permanent pull failure, a timeout, a signal at a random moment), faults
(5xx, 429 with Retry-After, connection resets, slow responses, cut watches, 410 Gone), churn
(nodes joining, leaving and flapping NotReady, puller pods evicted, the DaemonSet deleted by
someone else) and 1-4 awaiters running at once with the same spec. After the run the invariants
are checked; a violation names the seed, which replays the run exactly (CHAOS_SEED=N).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcluster import Fault, SimCluster
from simcluster.nodes.registry import parse
from tests.conftest import TOKEN, cli_command, cli_env

MANAGED = "app.kubernetes.io/managed-by"
OUTCOMES = ["success"] * 6 + ["flaky-pull", "permanent-failure", "timeout", "signal"]


@dataclass
class Scenario:
    seed: int
    outcome: str
    image: str
    stable_nodes: list[str]
    churn_nodes: list[str]
    excluded_nodes: dict[str, dict[str, Any]]
    pull_seconds: float
    fault_rate: float
    churn: list[tuple[float, str]]
    awaiters: int
    keep: bool
    on_timeout: str
    signal_name: str | None
    signal_after: float
    faults: list[Fault] = field(default_factory=list)

    @property
    def timeout(self) -> str:
        return "4s" if self.outcome == "timeout" else "60s"


def generate(seed: int) -> Scenario:
    rng = random.Random(seed)
    outcome = rng.choice(OUTCOMES)
    rate = rng.choice([0.0, 0.05, 0.15, 0.25])
    faults = []
    if rate:
        for status in (500, 502, 503, 504):
            faults.append(Fault(status=status, probability=rate / 4, times=None))
        faults.append(
            Fault(status=429, retry_after=rng.choice([0.1, 0.3]), probability=rate / 3, times=None)
        )
        faults.append(Fault(reset=True, status=0, probability=rate / 4, times=None))
        faults.append(
            Fault(status=0, delay=rng.choice([0.05, 0.2]), probability=rate / 3, times=None)
        )
        faults.append(
            Fault(
                watch=True,
                status=0,
                cut_after_events=rng.randint(1, 4),
                probability=0.3,
                times=None,
            )
        )
    actions = ["add-node", "remove-node", "flap-node", "evict-pod", "delete-daemonset", "compact"]
    churn = sorted(
        (round(rng.uniform(0.2, 2.5), 2), rng.choice(actions)) for _ in range(rng.randint(0, 4))
    )
    excluded: dict[str, dict[str, Any]] = {}
    if rng.random() < 0.5:
        excluded["cordoned"] = {"unschedulable": True}
    if rng.random() < 0.5:
        excluded["tainted"] = {
            "taints": ({"key": "dedicated", "value": "core", "effect": "NoSchedule"},)
        }
    if rng.random() < 0.3:
        excluded["windows"] = {"os": "windows"}
    return Scenario(
        seed=seed,
        outcome=outcome,
        image=f"quay.io/chaos/app-{seed}:1",
        stable_nodes=[f"stable-{i}" for i in range(rng.randint(1, 3))],
        churn_nodes=[f"churn-{i}" for i in range(rng.randint(0, 3))],
        excluded_nodes=excluded,
        pull_seconds=rng.uniform(0.3, 2.0),
        fault_rate=rate,
        churn=churn,
        awaiters=rng.choice([1, 1, 1, 2, 3, 4]),
        keep=rng.random() < 0.05,
        on_timeout=rng.choice(["fail", "succeed"]),
        signal_name=rng.choice(["SIGTERM", "SIGINT"]) if outcome == "signal" else None,
        signal_after=rng.uniform(0.0, 2.0),
        faults=faults,
    )


@dataclass
class AwaiterRun:
    code: int
    stderr: str
    stdout: str
    report: dict[str, Any] | None
    signalled: bool


@dataclass
class Result:
    scenario: Scenario
    runs: list[AwaiterRun]
    violations: list[str]
    faults_injected: int


def run(scenario: Scenario, workdir: Path) -> Result:
    with SimCluster(seed=scenario.seed, time_scale=1.0) as sim:
        _build(sim, scenario)
        kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig", token=TOKEN)
        foreign = _foreign_objects(sim)
        procs = _start_awaiters(scenario, kubeconfig, workdir)
        for fault in scenario.faults:
            sim.faults.add(fault)
        stop = threading.Event()
        churner = threading.Thread(target=_churn, args=(sim, scenario, stop), daemon=True)
        churner.start()
        signalled = _maybe_signal(sim, scenario, procs)
        runs = []
        for index, proc in enumerate(procs):
            try:
                code = proc.wait(timeout=150)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = -999
            runs.append(_collect(workdir, index, code, signalled))
        stop.set()
        churner.join(timeout=10)
        sim.faults.clear()
        violations = check(sim, scenario, runs, foreign)
        return Result(scenario, runs, violations, sim.faults.injected)


def _build(sim: SimCluster, scenario: Scenario) -> None:
    sim.registry.add(scenario.image, pull_seconds=scenario.pull_seconds, has_shell=False)
    for name in scenario.stable_nodes + scenario.churn_nodes:
        sim.add_node(name, runtime=random.Random(name).choice(["containerd", "docker"]))
    for name, options in scenario.excluded_nodes.items():
        sim.add_node(name, **options)
    stable = scenario.stable_nodes[0]
    if scenario.outcome == "flaky-pull":
        sim.fail_pull(
            scenario.image, reason="ErrImagePull", message="i/o timeout", nodes=[stable], times=2
        )
    elif scenario.outcome == "permanent-failure":
        sim.fail_pull(
            scenario.image, reason="InvalidImageName", message="invalid reference", nodes=[stable]
        )
    elif scenario.outcome == "timeout":
        sim.fail_pull(scenario.image, reason="ErrImagePull", message="stuck", nodes=[stable])


def _foreign_objects(sim: SimCluster) -> list[dict[str, Any]]:
    labels = {"app": "someone-else"}
    spec = {
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
        },
    }
    return [
        sim.create(
            "daemonsets",
            {"metadata": {"name": name, "labels": labels}, "spec": spec},
            namespace="default",
        )
        for name in ("image-awaiter-puller", "unrelated")
    ]


def _start_awaiters(
    scenario: Scenario,
    kubeconfig: Path,
    workdir: Path,
) -> list[subprocess.Popen[str]]:
    procs = []
    for index in range(scenario.awaiters):
        args = [
            "await",
            "--image",
            scenario.image,
            "--kubeconfig",
            str(kubeconfig),
            "--interval",
            "200ms",
            "--timeout",
            scenario.timeout,
            "--on-timeout",
            scenario.on_timeout,
            "--pull-failure-grace",
            "3s" if scenario.outcome == "timeout" else "60s",
            "--log-format",
            "json",
            "--report",
            str(workdir / f"report-{index}.json"),
            "-v",
        ]
        if scenario.outcome == "timeout":
            args[args.index("--pull-failure-grace") + 1] = "10m"
        if scenario.keep:
            args.append("--keep-daemonset")
        procs.append(
            subprocess.Popen(
                cli_command(args),
                env=cli_env(),
                text=True,
                stdout=(workdir / f"stdout-{index}").open("w"),
                stderr=(workdir / f"stderr-{index}").open("w"),
            )
        )
    return procs


def _churn(sim: SimCluster, scenario: Scenario, stop: threading.Event) -> None:
    rng = random.Random(scenario.seed + 7)
    started = 0.0
    joined = 0
    for at, action in scenario.churn:
        if stop.wait(max(0.0, at - started)):
            return
        started = at
        churnable = [n for n in scenario.churn_nodes if sim.store.get("nodes", n) is not None]
        if action == "add-node":
            sim.add_node(f"joiner-{joined}")
            joined += 1
        elif action == "remove-node" and churnable:
            sim.remove_node(rng.choice(churnable))
        elif action == "flap-node" and churnable:
            name = rng.choice(churnable)
            sim.set_node_ready(name, False)
            stop.wait(0.3)
            sim.set_node_ready(name, True)
        elif action == "evict-pod":
            pods = sim.objects("pods", "default")
            if pods:
                sim.evict_pod(rng.choice(pods)["metadata"]["name"], "default")
        elif action == "delete-daemonset":
            ours = [
                d
                for d in sim.objects("daemonsets", "default")
                if (d["metadata"].get("labels") or {}).get(MANAGED) == "image-awaiter"
            ]
            if ours:
                sim.delete("daemonsets", rng.choice(ours)["metadata"]["name"], "default")
        elif action == "compact":
            sim.compact()


def _maybe_signal(sim: SimCluster, scenario: Scenario, procs: list[subprocess.Popen[str]]) -> bool:
    if scenario.signal_name is None:
        return False
    # Wait until the awaiter talks to the API (its handlers are installed by then).
    if not sim.wait_for(lambda s: len(s.requests) > 0, timeout=30):
        return False
    threading.Event().wait(scenario.signal_after)  # the random moment itself
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(getattr(signal, scenario.signal_name))
    return True


def _collect(workdir: Path, index: int, code: int, signalled: bool) -> AwaiterRun:
    report_path = workdir / f"report-{index}.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return AwaiterRun(
        code=code,
        stderr=(workdir / f"stderr-{index}").read_text(),
        stdout=(workdir / f"stdout-{index}").read_text(),
        report=report,
        signalled=signalled,
    )


# ---------------------------------------------------------------------------- invariants


def expected_codes(scenario: Scenario, run_: AwaiterRun) -> set[int]:
    natural = {
        "success": {0},
        "flaky-pull": {0},
        "signal": {0},
        "permanent-failure": {4},
        "timeout": {0} if scenario.on_timeout == "succeed" else {1},
    }[scenario.outcome]
    if scenario.signal_name is not None and run_.signalled:
        return natural | {143 if scenario.signal_name == "SIGTERM" else 130}
    return natural


def check(
    sim: SimCluster, scenario: Scenario, runs: list[AwaiterRun], foreign: list[dict[str, Any]]
) -> list[str]:
    problems: list[str] = []
    image_key = parse(scenario.image).key if parse(scenario.image) else scenario.image
    for index, run_ in enumerate(runs):
        who = f"awaiter {index}"
        if run_.code not in expected_codes(scenario, run_):
            problems.append(
                f"{who}: exit {run_.code}, expected "
                f"{sorted(expected_codes(scenario, run_))}: "
                f"{run_.stderr.strip().splitlines()[-1:]}"
            )
        if "Traceback" in run_.stderr or "Traceback" in run_.stdout:
            problems.append(f"{who}: traceback in output")
        if TOKEN in run_.stderr + run_.stdout + json.dumps(run_.report):
            problems.append(f"{who}: the bearer token appears in its output")
        if run_.report is None:
            problems.append(f"{who}: no report written")
            continue
        if run_.report["exitCode"] != run_.code:
            problems.append(
                f"{who}: report says exit {run_.report['exitCode']}, process exited {run_.code}"
            )
        if run_.code == 0 and run_.report["result"] == "success":
            for node in run_.report["nodes"]:
                node_sim = sim.node_sims.get(node["name"])
                if node["status"] != "done":
                    problems.append(f"{who}: success but {node['name']} is {node['status']}")
                elif node_sim is not None and image_key not in node_sim.images:
                    problems.append(f"{who}: reported {node['name']} done without the image")
            for name in scenario.stable_nodes:
                if image_key not in sim.node_sims[name].images:
                    problems.append(f"{who}: exit 0 but stable node {name} lacks the image")
        reported = {n["name"] for n in run_.report["nodes"]}
        if reported & set(scenario.excluded_nodes):
            problems.append(
                f"{who}: excluded nodes awaited: {reported & set(scenario.excluded_nodes)}"
            )
    ours = [
        d
        for d in sim.objects("daemonsets", "default")
        if (d["metadata"].get("labels") or {}).get(MANAGED) == "image-awaiter"
    ]
    if scenario.keep:
        for daemonset in ours:
            sim.delete("daemonsets", daemonset["metadata"]["name"], "default")
    elif ours:
        problems.append(f"leaked DaemonSets: {[d['metadata']['name'] for d in ours]}")
    for original in foreign:
        now = sim.store.get("daemonsets", original["metadata"]["name"], "default")
        if now is None or now["metadata"]["uid"] != original["metadata"]["uid"]:
            problems.append(f"foreign DaemonSet {original['metadata']['name']} was deleted")
        elif now["spec"] != original["spec"] or now["metadata"].get("labels") != original[
            "metadata"
        ].get("labels"):
            problems.append(f"foreign DaemonSet {original['metadata']['name']} was modified")
    touched = [
        r
        for r in sim.requests
        if r.method not in ("GET", "POST")
        and r.path.rsplit("/", 1)[-1] in {"image-awaiter-puller", "unrelated"}
    ]
    if touched:
        problems.append(
            f"requests wrote to foreign objects: {[(r.method, r.path) for r in touched]}"
        )
    return problems
