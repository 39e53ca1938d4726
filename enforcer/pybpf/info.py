"""Kernel-side facts about a program or map fd (bpf_obj_get_info_by_fd)."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from .constants import MapType, ProgType
from .libbpf import BpfMapInfo, BpfProgInfo, check_int, lib


@dataclass(frozen=True, slots=True)
class MapInfo:
    id: int
    type: int
    name: str
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int

    @property
    def type_name(self) -> str:
        try:
            return MapType(self.type).name
        except ValueError:
            return str(self.type)


@dataclass(frozen=True, slots=True)
class ProgInfo:
    id: int
    type: int
    name: str
    tag: str
    run_time_ns: int  # cumulative; counts only while bpf stats are enabled (stats.enable_stats)
    run_cnt: int
    recursion_misses: int
    verified_insns: int
    load_time_ns: int  # since boot

    @property
    def type_name(self) -> str:
        try:
            return ProgType(self.type).name
        except ValueError:
            return str(self.type)

    @property
    def avg_run_ns(self) -> float:
        return self.run_time_ns / self.run_cnt if self.run_cnt else 0.0


def map_info(fd: int, what: str = "map") -> MapInfo:
    raw = BpfMapInfo()
    size = ctypes.c_uint32(ctypes.sizeof(raw))
    check_int(
        lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(raw), ctypes.byref(size)),
        "get map info",
        what,
    )
    return MapInfo(
        id=raw.id,
        type=raw.type,
        name=raw.name.decode(errors="replace"),
        key_size=raw.key_size,
        value_size=raw.value_size,
        max_entries=raw.max_entries,
        map_flags=raw.map_flags,
        btf_id=raw.btf_id,
        btf_key_type_id=raw.btf_key_type_id,
        btf_value_type_id=raw.btf_value_type_id,
    )


def prog_info(fd: int, what: str = "program") -> ProgInfo:
    raw = BpfProgInfo()
    size = ctypes.c_uint32(ctypes.sizeof(raw))
    check_int(
        lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(raw), ctypes.byref(size)),
        "get program info",
        what,
    )
    return ProgInfo(
        id=raw.id,
        type=raw.type,
        name=raw.name.decode(errors="replace"),
        tag=bytes(raw.tag).hex(),
        run_time_ns=raw.run_time_ns,
        run_cnt=raw.run_cnt,
        recursion_misses=raw.recursion_misses,
        verified_insns=raw.verified_insns,
        load_time_ns=raw.load_time,
    )
