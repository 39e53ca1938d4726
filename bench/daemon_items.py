"""Items 5 and 6 against the real daemon (`python -m enforcer run`, private pin root).

Storm: one container opens a denied file N times; the daemon's CPU time and peak RSS are
read from /proc, the kernel's per-rule counters and the audit records are compared with N.
Churn: `docker run` to the daemon's "container enforced" log line, and its memory after
start/stop cycles.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import profile
from bench.policies import storm_policy_yaml
from bench.rig import DockerRig, cgroup_id_of
from enforcer.kernel.abi import Abi
from enforcer.kernel.build import ensure_built
from enforcer.kernel.loader import unload
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.pybpf import Map

SECRET = "/bench/secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _ts(iso: str) -> float:
    """ISO timestamp (docker's has nanoseconds) -> epoch seconds."""
    iso = iso.rstrip("Z")
    if "." in iso:
        head, frac = iso.split(".", 1)
        iso = f"{head}.{frac[:6]}"
    return datetime.fromisoformat(iso + "+00:00").timestamp()


@dataclass
class ProcStat:
    pid: int

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0


@dataclass
class DaemonProc:
    workdir: Path
    docker: DockerRig
    pin_root: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.pin_root = Path(f"/sys/fs/bpf/enforcer-bench-daemon-{os.getpid()}")
        self.policies = self.workdir / "policies"
        self.audit_log = self.workdir / "audit.jsonl"
        self.log = self.workdir / "enforcer.log"

    def start(self, timeout: float = 300) -> None:
        self.policies.mkdir(parents=True, exist_ok=True)
        (self.policies / "bench.yaml").write_text(storm_policy_yaml("bench-*"))
        cmd = [
            sys.executable,
            "-m",
            "enforcer",
            "run",
            "--policies",
            str(self.policies),
            "--audit-log",
            str(self.audit_log),
            "--pin-root",
            str(self.pin_root),
            "--docker-host",
            self.docker.daemon.host,
        ]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stderr=log, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"enforcer run exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            if self.find("docker connected"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"enforcer run not connected after {timeout}s: {self.log.read_text()[-3000:]}")

    @property
    def stat(self) -> ProcStat:
        assert self.proc is not None
        return ProcStat(self.proc.pid)

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def find(self, event: str, **match: str) -> dict[str, Any] | None:
        for rec in self.lines():
            if rec.get("event") == event and all(rec.get(k) == v for k, v in match.items()):
                return rec
        return None

    def wait_for(self, event: str, timeout: float = 60, **match: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rec = self.find(event, **match)
            if rec:
                return rec
            time.sleep(0.05)
        raise RuntimeError(f"no {event!r} {match} in the enforcer log after {timeout}s")

    def audit_records(self) -> list[dict[str, Any]]:
        if not self.audit_log.exists():
            return []
        out = []
        for line in self.audit_log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def policy_maps(self) -> PolicyMaps:
        names = ("settings", "counters", "stats")
        maps = {n: Map.open_pinned(self.pin_root / "maps" / n) for n in names}
        return PolicyMaps(Abi.from_object(ensure_built().path("lsm_file")), maps)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self.pin_root.exists():
            unload(self.pin_root)


def start_policed(daemon: DaemonProc, docker: DockerRig, name: str) -> tuple[Any, dict[str, float]]:
    t0 = time.time()
    container = docker.run(name)
    t_run = time.time()
    rec = daemon.wait_for("container enforced", container=name)
    enforced = _ts(rec["timestamp"])
    started = _ts(container.inspect()["State"]["StartedAt"])
    return container, {
        "run_to_enforced_s": round(enforced - t0, 3),
        "docker_run_returned_s": round(t_run - t0, 3),
        "started_to_enforced_s": round(enforced - started, 3),
    }


def run_storm(
    daemon: DaemonProc, docker: DockerRig, opens: int, drain_max_s: float, profile_s: int, say: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, float]]:
    name = f"bench-storm-{int(time.time())}"
    box, latency = start_policed(daemon, docker, name)
    cg = cgroup_id_of(box)
    loop = docker.loop_in(box)
    maps = daemon.policy_maps()
    stats0 = maps.stats()
    st = daemon.stat
    cpu0, wall0 = st.cpu_s(), time.monotonic()
    peak_cores = 0.0
    done = threading.Event()

    def sample() -> None:  # the busiest second of the daemon, not only the average
        nonlocal peak_cores
        c, w = st.cpu_s(), time.monotonic()
        while not done.wait(1.0):
            c2, w2 = st.cpu_s(), time.monotonic()
            peak_cores = max(peak_cores, (c2 - c) / (w2 - w))
            c, w = c2, w2

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    spy_out = daemon.workdir / "storm.pyspy"
    spy = profile.start(st.pid, profile_s, spy_out) if profile_s else None
    try:
        s = loop.run("open", SECRET, opens)
    finally:
        loop.close()
    storm_wall = time.monotonic() - wall0
    say(f"storm: {opens} opens in {storm_wall:.1f}s, {s.errors} denied; waiting for the audit trail")
    # Drained when the records account for every denial not lost in the ring buffer (or
    # accounted by an audit_loss record), or when nothing moved for 5 s (a record is held up
    # to the fold window before it is written).
    last, still_since, drained = -1, time.monotonic(), False
    while True:
        lost = maps.stats()["STAT_EVENTS_LOST"] - stats0["STAT_EVENTS_LOST"]
        records = daemon.audit_records()
        total = sum(r.get("count", 1) for r in records if r.get("target", {}).get("path") == SECRET)
        accounted = sum(r.get("count", 0) for r in records if r.get("hook") == "audit_loss")
        if total + max(lost, accounted) >= opens:
            drained = True
            break
        if total != last:
            last, still_since = total, time.monotonic()
        elif time.monotonic() - still_since > 5 or time.monotonic() - wall0 - storm_wall > drain_max_s:
            break
        time.sleep(0.5)
    drain_wall = time.monotonic() - wall0
    done.set()
    sampler.join()
    if spy is not None:
        spy.wait()
    cpu = st.cpu_s() - cpu0
    counters = sum(maps.counters(cg).values())
    stats1 = maps.stats()
    records = [r for r in daemon.audit_records() if r.get("target", {}).get("path") == SECRET]
    out = {
        "opens": opens,
        "denied_by_loop": s.errors,
        "storm_wall_s": round(storm_wall, 2),
        "ns_per_denied_open": round(s.ns_per_op, 1),
        "drain_wall_s": round(drain_wall, 2),
        "daemon_cpu_s": round(cpu, 2),
        "daemon_cores_avg": round(cpu / drain_wall, 3),
        "daemon_cores_peak_1s": round(peak_cores, 3),
        "daemon_peak_rss_mb": round(st.kb("VmHWM") / 1024, 1),
        "kernel_counter": counters,
        "stat_denied": stats1["STAT_DENIED"] - stats0["STAT_DENIED"],
        "ring_drops": stats1["STAT_EVENTS_LOST"] - stats0["STAT_EVENTS_LOST"],
        "audit_records": len(records),
        "audit_count_sum": sum(r.get("count", 1) for r in records),
        "drained": drained,
        "daemon_profile": profile.summarize(spy_out) if spy is not None else None,
    }
    out["counted_exactly"] = out["kernel_counter"] == opens == out["denied_by_loop"]
    out["audit_accounts_for_all"] = out["audit_count_sum"] == opens - out["ring_drops"]
    # The trail's own account of what it could not itemise (audit_loss records): written
    # once the counters stop moving, a second or two after the storm.
    deadline = time.monotonic() + 10
    while True:
        losses = sum(r.get("count", 0) for r in daemon.audit_records() if r.get("hook") == "audit_loss")
        if out["audit_count_sum"] + losses >= counters or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    out["audit_loss_sum"] = losses
    out["trail_accounts_for_all"] = out["audit_count_sum"] + losses == counters
    box.remove()
    return out, latency


def run_churn(daemon: DaemonProc, docker: DockerRig, cycles: int, say: Callable[[str], None]) -> dict[str, Any]:
    st = daemon.stat
    rss = [st.kb("VmRSS")]
    samples = []
    for i in range(cycles):
        name = f"bench-churn-{i}-{int(time.time())}"
        box, latency = start_policed(daemon, docker, name)
        samples.append(latency)
        box.remove()
        daemon.wait_for("container released", container=name)
        rss.append(st.kb("VmRSS"))
        say(f"churn {i + 1}/{cycles}: {latency}, daemon RSS {rss[-1]} kB")
    return {"cycles": cycles, "samples": samples, "daemon_rss_kb": rss}
