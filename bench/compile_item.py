"""Item 4, the Python half, natively: policy text to map entries, timed phase by phase.

Parsing, validation, merging, compiling and building the map keys and values are pure
Python and cost what they cost on the machine's real CPU; under the VM's emulated CPU they
are 10-50 times slower and would misstate the product. So scripts/bench runs this part on
the host itself, with a recording map standing in for the kernel's (the kernel half, the
batch map update, is timed in the VM by the kernel item).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from enforcer.compiler.paths import compile_paths
from enforcer.compiler.rules import RuleTable
from enforcer.kernel.abi import Abi
from enforcer.kernel.build import ensure_built
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.policy.loader import parse_text
from enforcer.policy.merge import merge
from enforcer.pybpf import Map

from bench.measure import Phases
from bench.policies import policy, policy_yaml


class RecordingMap:
    """Just enough of pybpf.Map for PolicyMaps to write into memory."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def lookup(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        self.data[key] = value

    def update_batch(self, keys: Sequence[bytes], values: Sequence[bytes], flags: int = 0) -> int:
        self.data.update(zip(keys, values, strict=True))
        return len(keys)


def run_compile(sizes: Sequence[int], parse_max: int, depths: tuple[int, ...],
                say: Callable[[str], None]) -> list[dict[str, Any]]:  # fmt: skip
    abi = Abi.from_object(ensure_built().path("lsm_file"))
    rows = []
    for n in sizes:
        phases = Phases()
        timed = phases.timed

        if n <= parse_max:
            text = policy_yaml(n, depths)
            loaded, errors = timed("parse_yaml", lambda: parse_text(text, "bench.yaml"))
            assert not errors, errors[:3]
        else:
            timed("validate", lambda: policy(n, depths))
            loaded = None
        pol = loaded[0].policy if loaded else policy(n, depths)
        rules = timed("merge", lambda: merge([pol]))
        compiled = timed("compile", lambda: compile_paths(rules, RuleTable()))
        maps = PolicyMaps(abi, cast(dict[str, Map], {"settings": RecordingMap(), "path_rules": RecordingMap()}))
        timed("build_map_entries", lambda: maps.write_ruleset(1, compiled))
        row = {"rules": n, "entries": len(compiled.entries), "phases_s": phases,
               "python_s": round(sum(phases.values()), 3), "includes_yaml_parse": n <= parse_max}  # fmt: skip
        say(f"compile {n} rules natively: {row['python_s']}s {phases}")
        rows.append(row)
    return rows
