"""Items 1, 2, 3 and 7: syscall costs in a policed container and on the host, with the
kernel layer switched on and off between rounds, then per-program run time (bpf_stats).

Driven through the kernel layer directly (KernelRig), not the daemon: a figure then holds
the programs' cost and nothing else, and a ruleset switch is one map update.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.apply_item import apply_timed, delete_timed
from bench.floor import Floor
from bench.loop import LoopClient
from bench.measure import Alternation
from bench.rig import LOOP, TARGETS, DockerRig, KernelRig, container_info, host_loop, target_path
from enforcer.containers.model import ContainerInfo
from enforcer.policy.loader import parse_text
from enforcer.policy.merge import merge, merge_postures
from enforcer.pybpf.stats import enable_stats, prog_stats

# On the guest's tmpfs (/tmp): the VM's root filesystem is 9p, where an open is a round
# trip to QEMU that would drown the figure. Depth 2, like the container's short path.
HOST_FILE = "/tmp/enforcer-bench-host-file"
SUBSAMPLES = 5  # per sample; the sample is their minimum
STATS_PASSES = 3  # bpf_stats: the lowest mean run time of this many passes
LOOPBACK = ("127.0.0.1", 9)  # UDP connect: no packet leaves, the hook still runs
# First opens (the decision cache off, every open walks): this ruleset, these targets. The
# other figures open one file over and over: the repeats the cache answers.
FIRST_OPEN_RULES = 1000
FIRST_OPEN_TARGETS = ("none", "far")
# Rulesets of the posture figure: beyond every id the rule-count rulesets take
POSTURE_ALLOW_RS, POSTURE_DENY_RS = 9_001, 9_002


@dataclass(frozen=True)
class KernelPlan:
    rule_counts: tuple[int, ...]
    depths: tuple[int, ...]
    rounds: int
    seconds: float  # per sample
    exec_rules: int  # the ruleset exec/connect/device run under
    parse_rules_max: int  # rulesets up to this size go through the YAML parser (ruamel is slow)


def run_kernel_items(plan: KernelPlan, docker: DockerRig, rig: KernelRig, say: Callable[[str], None]) -> dict[str, Any]:
    box = docker.run(f"bench-box-{int(time.time())}")
    info = container_info(box)
    loop = docker.loop_in(box)
    Path(HOST_FILE).write_text("opened by the host-process figure\n")
    host = host_loop()
    try:
        return _run(plan, rig, info, loop, host, say)
    finally:
        loop.close()
        host.close()
        Path(HOST_FILE).unlink(missing_ok=True)
        if info.cgroup.id in rig.containers:
            rig.remove_container(info.cgroup.id)
        box.remove()


def _run(
    plan: KernelPlan,
    rig: KernelRig,
    info: ContainerInfo,
    loop: LoopClient,
    host: LoopClient,
    say: Callable[[str], None],
) -> dict[str, Any]:
    applied = [
        apply_timed(rig, i, n, plan.depths, n <= plan.parse_rules_max, say)
        for i, n in enumerate(plan.rule_counts, start=1)
    ]
    ruleset = {n: i for i, n in enumerate(plan.rule_counts, start=1)}
    cg = info.cgroup.id
    rig.add_container(info, ruleset[plan.rule_counts[-1]])
    ops = [0]  # operations measured so far: bpf_stats' run time per operation

    def ops_done() -> int:
        return ops[0]

    def sized(client: LoopClient, *words: str | int) -> Callable[[], float]:
        n = client.calibrate(plan.seconds / SUBSAMPLES, *words)

        def measure() -> float:
            # The fastest of a few short runs: a neighbour's load only ever adds time.
            best = float("inf")
            for _ in range(SUBSAMPLES):
                s = client.run(*words, n)
                if s.errors:
                    raise RuntimeError(f"{' '.join(map(str, words))}: {s.errors} of {s.n} failed")
                best = min(best, s.ns_per_op)
                ops[0] += s.n
            return best

        return measure

    def policed(rules: int, measure: Callable[[], float]) -> Callable[[], float]:
        def run() -> float:
            rig.police(cg, ruleset[rules])
            return measure()

        return run

    def first(rules: int, measure: Callable[[], float]) -> Callable[[], float]:
        """Every open as a first open: the decision cache off while it runs."""

        def run() -> float:
            rig.police(cg, ruleset[rules])
            rig.cache(False)
            try:
                return measure()
            finally:
                rig.cache(True)

        return run

    alt = Alternation(lambda on: rig.on() if on else rig.off())
    for depth in plan.depths:
        for target in TARGETS:
            m = sized(loop, "open", target_path(depth, target))
            for n in plan.rule_counts:
                alt.add(("open", n, depth, target), ("open", depth, target), policed(n, m), m)
            if FIRST_OPEN_RULES in plan.rule_counts and target in FIRST_OPEN_TARGETS:
                key = ("open_first", FIRST_OPEN_RULES, depth, target)
                alt.add(key, ("open", depth, target), first(FIRST_OPEN_RULES, m))
    alt.add(("host_open",), ("host_open",), sized(host, "open", HOST_FILE), sized(host, "open", HOST_FILE))
    extra = {
        "exec": ("exec", LOOP),
        "connect": ("connect", *LOOPBACK),
        # a SYN out and a RST back (cgroup_skb egress judges the SYN; ingress leaves at the
        # containers lookup: the policy has no ingress rule), and a UDP packet per send
        "tcp_connect": ("tcpconnect", *LOOPBACK),
        "udp_send": ("sendto", *LOOPBACK),
        "device_open": ("open", "/dev/null"),
    }
    for name, words in extra.items():
        m = sized(loop, *words)
        alt.add((name,), (name,), policed(plan.exec_rules, m), m)
    say(f"{len(alt.on_cases)} cases x {plan.rounds} rounds, {plan.seconds}s per sample")
    alt.run(plan.rounds, say)
    floor = _floor(plan, rig, loop, host, sized, say)
    rig.on()
    postures = _postures(plan, rig, cg, ruleset[plan.rule_counts[-1]], loop, sized, say)

    open_figs, first_figs = [], []
    for depth in plan.depths:
        for target in TARGETS:
            for n in plan.rule_counts:
                fig = alt.figure(("open", n, depth, target))
                open_figs.append({"rules": n, "depth": depth, "target": target, **fig.to_json()})
                if ("open_first", n, depth, target) in alt.on_cases:
                    fig = alt.figure(("open_first", n, depth, target))
                    first_figs.append({"rules": n, "depth": depth, "target": target, **fig.to_json()})
    out: dict[str, Any] = {
        "apply": applied,
        "open_close": open_figs,  # the same file over and over: repeats, from the cache
        "open_first": first_figs,  # the cache off: every open walks, as a first open does
        "host_open": {"path": HOST_FILE, **alt.figure(("host_open",)).to_json()},
        "container_ops": {name: {"rules": plan.exec_rules, **alt.figure((name,)).to_json()} for name in extra},
        "floor": floor,
        "postures": postures,
    }
    out["bpf_stats"] = _bpf_stats(rig, alt, ops_done, say)
    for row, rid in zip(applied, range(1, len(applied) + 1), strict=True):
        row["phases_s"]["delete_ruleset"] = delete_timed(rig, rid)
    return out


def _floor(
    plan: KernelPlan,
    rig: KernelRig,
    loop: LoopClient,
    host: LoopClient,
    sized: Callable[..., Callable[[], float]],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The same open()+close() figures with only an empty LSM program on file_open (the
    enforcer off): the share of the cost any BPF-LSM program pays on this machine."""
    rig.off()
    floor = Floor()
    try:
        alt = Alternation(floor.switch)
        cases = {
            "host_open": sized(host, "open", HOST_FILE),
            "container_open_depth2": sized(loop, "open", target_path(2, "none")),
        }
        for name, m in cases.items():
            alt.add((name,), (name,), m, m)
        alt.run(plan.rounds, lambda msg: say(f"floor: {msg}"))
        return {name: alt.figure((name,)).to_json() for name in cases}
    finally:
        floor.close()


def _posture_policy(posture: str) -> str:
    allowed = target_path(2, "allowed")
    return f"""
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {{name: bench-posture}}
spec:
  {posture}
  exec:
    - {{action: allow, paths: [{LOOP}]}}
    - {{action: deny, paths: [/usr/sbin/enforcer-bench-none]}}
  file:
    - {{action: allow, paths: [{allowed}, {LOOP}], access: [read]}}
    - {{action: deny, paths: [/etc/enforcer-bench-none]}}
"""


def _postures(
    plan: KernelPlan,
    rig: KernelRig,
    cg: int,
    back_to: int,
    loop: LoopClient,
    sized: Callable[..., Callable[[], float]],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The same allowed operations (an open+close an allow rule names, an exec of the loop
    binary) in a container whose postures deny every other exec, read and write, next to
    the same rules with postures all allow: what a posture adds to the decision path. A deny
    rule no case touches keeps the walk and the lookups running in both states (with only
    allow rules and no posture there is nothing to judge, and the walk is skipped). The
    enforcer is on in both states; the switch is the container's ruleset (one map update)."""
    deny = "posture: {exec: deny, fileRead: deny, fileWrite: deny}"
    try:
        for rs, posture in ((POSTURE_ALLOW_RS, ""), (POSTURE_DENY_RS, deny)):
            loaded, errors = parse_text(_posture_policy(posture), "bench-posture.yaml")
            if errors or len(loaded) != 1:
                raise RuntimeError(f"bench posture policy: {errors}")
            rules = merge([loaded[0].policy])
            rig.write(rs, rules, merge_postures([loaded[0].policy]))
        alt = Alternation(lambda strict: rig.police(cg, POSTURE_DENY_RS if strict else POSTURE_ALLOW_RS))
        cases = {
            "open_allowed_depth2": sized(loop, "open", target_path(2, "allowed")),
            "exec": sized(loop, "exec", LOOP),
        }
        for name, m in cases.items():
            alt.add((name,), (name,), m, m)
        alt.run(plan.rounds, lambda msg: say(f"postures: {msg}"))
        return {name: alt.figure((name,)).to_json() for name in cases}
    finally:
        rig.police(cg, back_to)
        for rs in (POSTURE_ALLOW_RS, POSTURE_DENY_RS):
            if rs in rig.parts:
                rig.delete(rs)


def _bpf_stats(
    rig: KernelRig, alt: Alternation, ops_done: Callable[[], int], say: Callable[[str], None]
) -> list[dict[str, Any]]:
    """ns per program run, and per measured operation (an open in a container runs
    file_open twice: overlayfs' inner open leaves at once), per case: more passes of every
    case with run-time stats on (the lowest of STATS_PASSES passes: run time includes the
    program being preempted)."""
    programs = rig.programs()
    best: dict[tuple[str, str], tuple[float, int, float]] = {}
    with enable_stats():
        for _ in range(STATS_PASSES):
            for key, (_, measure) in alt.on_cases.items():
                before = {name: prog_stats(p.fd) for name, p in programs.items()}
                ops_before = ops_done()
                measure()
                ops = ops_done() - ops_before
                after = {name: prog_stats(p.fd) for name, p in programs.items()}
                for name in programs:
                    runs = after[name].run_cnt - before[name].run_cnt
                    ns = after[name].run_time_ns - before[name].run_time_ns
                    k = (_case_name(key), name)
                    if runs and ops and (k not in best or ns / runs < best[k][0]):
                        best[k] = (ns / runs, runs, ns / ops)
    rows = [
        {"case": case, "program": prog, "runs": runs, "ns_per_run": round(ns, 1), "ns_per_op": round(per_op, 1)}
        for (case, prog), (ns, runs, per_op) in best.items()
    ]
    say(f"bpf_stats: {len(rows)} rows")
    return rows


def _case_name(key: Hashable) -> str:
    assert isinstance(key, tuple)
    if key[0] in ("open", "open_first"):
        _, n, depth, target = key
        return f"open {target} depth={depth} rules={n}" + (" first" if key[0] == "open_first" else "")
    return str(key[0])
