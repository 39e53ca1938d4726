"""pybpf: a thin, typed ctypes binding over the system libbpf.so.1.

    with BpfObject("guard.bpf.o", pin_root_path="/sys/fs/bpf/enforcer") as obj:
        obj.program("guard_file_open").autoload = lsm_available
        obj.map("denied_inodes").set_max_entries(1 << 18)
        obj.load()
        link = obj.program("guard_connect4").attach_cgroup("/sys/fs/cgroup/.../ctr")
        link.pin("/sys/fs/bpf/enforcer/links/ctr-connect4")

Importing this package does not load libbpf; the first call does.
"""

from .btf import Btf, BtfFormatError, Field, StructLayout
from .constants import (
    BPF_ANY,
    BPF_EXIST,
    BPF_NOEXIST,
    AttachType,
    MapFlag,
    MapType,
    ProgType,
    QueryFlag,
    StatsType,
    UpdateFlag,
)
from .errors import BpfError, errno_name
from .handle import ObjectClosedError
from .info import MapInfo, ProgInfo, map_info, prog_info
from .links import Link
from .maps import Map, num_possible_cpus
from .object import BpfObject
from .programs import CgroupQuery, Program, TestRunResult, prog_info_by_id, prog_query
from .ringbuf import RingBuffer
from .stats import StatsEnabled, enable_stats, kernel_dev, prog_stats

__all__ = [
    "BPF_ANY",
    "BPF_EXIST",
    "BPF_NOEXIST",
    "AttachType",
    "BpfError",
    "BpfObject",
    "Btf",
    "BtfFormatError",
    "CgroupQuery",
    "Field",
    "Link",
    "Map",
    "MapFlag",
    "MapInfo",
    "MapType",
    "ObjectClosedError",
    "ProgInfo",
    "ProgType",
    "Program",
    "QueryFlag",
    "RingBuffer",
    "StatsEnabled",
    "StatsType",
    "StructLayout",
    "TestRunResult",
    "UpdateFlag",
    "enable_stats",
    "errno_name",
    "kernel_dev",
    "map_info",
    "num_possible_cpus",
    "prog_info",
    "prog_info_by_id",
    "prog_query",
    "prog_stats",
]
