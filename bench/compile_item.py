"""Item 4, natively: policy text to rules live in kernel maps, timed phase by phase.

Parsing, validation, merging, compiling and building the map keys and values are pure
Python and cost what they cost on the machine's real CPU; under the VM's emulated CPU they
are 10-50 times slower and would misstate the product. So scripts/bench runs this part on
the host itself. The host kernel will not load LSM programs but does create their maps: the
rules are batch-written into a real `path_rules` hash map (lsm_file.bpf.o loaded with every
program's autoload off, nothing pinned), so the figure is the whole way to the kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench.measure import Phases
from bench.policies import policy, policy_yaml
from enforcer.compiler.paths import compile_paths
from enforcer.compiler.rules import RuleTable
from enforcer.kernel.abi import Abi
from enforcer.kernel.build import ensure_built
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.policy.loader import parse_text
from enforcer.policy.merge import merge
from enforcer.pybpf import BpfObject


def run_compile(
    sizes: Sequence[int], parse_max: int, depths: tuple[int, ...], say: Callable[[str], None]
) -> list[dict[str, Any]]:
    path = ensure_built().path("lsm_file")
    abi = Abi.from_object(path)
    rows = []
    for n in sizes:
        phases = Phases()
        timed = phases.timed

        if n <= parse_max:
            text = policy_yaml(n, depths)
            loaded, errors = timed("parse_yaml", parse_text, text, "bench.yaml")
            assert not errors, errors[:3]
        else:
            timed("validate", policy, n, depths)
            loaded = None
        pol = loaded[0].policy if loaded else policy(n, depths)
        rules = timed("merge", merge, [pol])
        compiled = timed("compile", compile_paths, rules, RuleTable())
        with BpfObject(path).load_maps_only() as obj:
            maps = PolicyMaps(abi, obj.maps)
            timed("write_maps", maps.write_ruleset, 1, compiled)
            in_kernel = obj.map("path_rules").count()
        assert in_kernel == len(compiled.entries), (in_kernel, len(compiled.entries))
        row = {
            "rules": n,
            "entries": len(compiled.entries),
            "phases_s": phases,
            "live_s": round(sum(phases.values()), 3),
            "includes_yaml_parse": n <= parse_max,
        }
        say(f"{n} rules live natively: {row['live_s']}s {phases}")
        rows.append(row)
    return rows
