"""Item 4: compile + apply of a policy, phase by phase, and the kernel memory it takes.
Every ruleset the syscall figures use is written this way, so the sizes cost one write.

Phases are the daemon's own steps (parse, merge, compile, write the maps, flip the
container), timed one by one so a miss says where the time goes. Kernel memory: the
path_rules map's memlock figure from bpftool, and the change in the kernel's slab and
per-CPU memory (/proc/meminfo) while the ruleset is in.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

from bench.measure import Phases
from bench.policies import policy, policy_yaml
from bench.rig import KernelRig
from enforcer.policy.loader import parse_text
from enforcer.policy.merge import merge

FAKE_CGROUP = 0xBE4C_0000_0000_0001  # a container entry no process is in: flipped, never hit


def _meminfo_kb() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            if key in ("Slab", "SUnreclaim", "Percpu"):
                out[key] = int(value.split()[0])
    return out


def _memlock(rig: KernelRig) -> int | None:
    path = rig.pin_root / "maps" / "path_rules"
    res = subprocess.run(["bpftool", "-j", "map", "show", "pinned", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        return None
    return int(json.loads(res.stdout).get("bytes_memlock", 0)) or None


def apply_timed(
    rig: KernelRig, rid: int, n: int, depths: tuple[int, ...], parse: bool, say: Callable[[str], None]
) -> dict[str, Any]:
    """Write ruleset `rid` of `n` rules the way the daemon does, phase by phase (it stays
    in, for the syscall figures to use)."""
    phases = Phases()
    timed = phases.timed

    if parse:
        text = policy_yaml(n, depths)
        loaded, errors = timed("parse_yaml", lambda: parse_text(text, "bench.yaml"))
        assert not errors, errors[:3]
        pol = loaded[0].policy
    else:
        pol = timed("validate", lambda: policy(n, depths))
    rules = timed("merge", lambda: merge([pol]))
    mem0, lock0 = _meminfo_kb(), _memlock(rig)
    # compile + map keys/values + the kernel's batch update, for every kind of enforcement
    timed("write_maps", lambda: rig.write(rid, rules))
    timed("flip_container", lambda: rig.police(FAKE_CGROUP, rid))
    mem1, lock1 = _meminfo_kb(), _memlock(rig)
    rig.maps.remove_container(FAKE_CGROUP)
    entries = len(rig.parts[rid]["file"].compiled.entries) if "file" in rig.parts[rid] else 0
    row = {
        "rules": n,
        "path_entries": entries,
        "phases_s": phases,
        "live_s": round(sum(phases.values()), 3),
        "live_includes_yaml_parse": parse,
        "kernel_slab_kb": mem1["Slab"] - mem0["Slab"],
        "kernel_percpu_kb": mem1.get("Percpu", 0) - mem0.get("Percpu", 0),
        "path_rules_memlock_before": lock0,
        "path_rules_memlock_after": lock1,
    }
    say(f"ruleset {rid}: {n} rules live in {row['live_s']}s {phases}, slab +{row['kernel_slab_kb']} kB")
    return row


def delete_timed(rig: KernelRig, rid: int) -> float:
    t0 = time.perf_counter()
    rig.delete(rid)
    return round(time.perf_counter() - t0, 4)
