"""Runs the chosen items in order, sharing one private dockerd, and judges the targets."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.compile_item import run_compile
from bench.daemon_items import DaemonProc, run_churn, run_storm
from bench.decode_item import run_decode
from bench.kernel_items import run_kernel_items
from bench.plan import Plan
from bench.rig import MAX_DEPTH, DockerRig, kernel_rig
from bench.targets import judge


def run_suite(plan: Plan, items: list[str], say: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "compile" in items:
        out["compile"] = run_compile(plan.compile_rules, plan.parse_rules_max, plan.kernel.depths, say)
    if "decode" in items:
        out["decode"] = run_decode(plan.decode_events, 3, say)
    if not set(items) & {"kernel", "storm", "churn"}:
        out["targets"] = judge(out)
        return out
    docker = DockerRig(depths=sorted({*plan.kernel.depths, 2, MAX_DEPTH}))
    workdir = Path(tempfile.mkdtemp(prefix="enforcer-bench-"))
    try:
        docker.start()
        say(f"private dockerd up at {docker.daemon.host}, image built")
        if "kernel" in items:
            with kernel_rig("kernel") as rig:
                out["kernel"] = run_kernel_items(plan.kernel, docker, rig, say)
        if "storm" in items or "churn" in items:
            daemon = DaemonProc(workdir, docker)
            try:
                daemon.start()
                say("enforcer run is up")
                if "storm" in items:
                    out["storm"], first = run_storm(
                        daemon, docker, plan.storm_opens, plan.storm_drain_max_s, plan.storm_profile_s, say
                    )
                if "churn" in items:
                    out["churn"] = run_churn(daemon, docker, plan.churn_cycles, say)
                    if "storm" in items:
                        out["churn"]["samples"].insert(0, first)
            finally:
                daemon.close()
    finally:
        docker.close()
        shutil.rmtree(workdir, ignore_errors=True)
    out["targets"] = judge(out)
    return out
