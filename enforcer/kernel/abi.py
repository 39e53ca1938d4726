"""The kernel/user ABI as the compiled objects define it (bpf/include/enforcer_abi.h).

Layouts and constants are read from the object's BTF, never written down a second time in
Python: a field added to the header is a field Python sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from enforcer.pybpf import Btf
from enforcer.pybpf.btf import StructLayout

_ENUMS = (
    "abi_limits",
    "abi_action",
    "abi_access",
    "abi_path_kind",
    "abi_path_rule_flags",
    "abi_container_flags",
    "abi_rule_ids",
    "abi_event_type",
    "abi_stat",
    "file_event_flags",
    "abi_dev_access",
    "abi_dev_match",
    "abi_net_direction",
    "abi_container_keys",
    "abi_posture",
    "abi_task_flags",
)


@dataclass(frozen=True)
class Abi:
    btf: Btf
    _layouts: dict[str, StructLayout] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_object(cls, path: str | Path) -> Abi:
        return cls(Btf.from_elf(str(path)))

    def layout(self, name: str) -> StructLayout:
        if name not in self._layouts:
            self._layouts[name] = self.btf.layout(name)
        return self._layouts[name]

    @cached_property
    def consts(self) -> dict[str, int]:
        """Every ABI enum constant by name (ACT_DENY, PK_FILE_DIR, EV_FILE, ...)."""
        out: dict[str, int] = {}
        for enum in _ENUMS:
            out.update(self.btf.enum(enum))
        return out

    def const(self, name: str) -> int:
        return self.consts[name]
