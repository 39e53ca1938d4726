"""Python layouts come from the object's BTF and agree with the C compiler and libbpf."""

from __future__ import annotations

import ctypes
import struct
from enum import IntEnum
from pathlib import Path

import pytest

from enforcer.pybpf import BpfObject, Btf, BtfFormatError

pytestmark = pytest.mark.host_bpf

PROBE_FIELDS = [
    "event_size",
    "off_pid",
    "off_kind",
    "off_proto",
    "off_port",
    "off_addr",
    "off_comm",
    "off_sock_type",
    "off_u",
    "off_tail",
    "key_size",
    "off_key_ino",
    "value_size",
]


@pytest.fixture(scope="module")
def btf(testprog_path: Path) -> Btf:
    return Btf.from_elf(str(testprog_path))


@pytest.fixture
def compiler_says(obj: BpfObject, btf: Btf) -> dict[str, int]:
    """sizeof/offsetof as computed by clang, reported by the layout_probe program."""
    size = ctypes.sizeof(btf.struct("layout_probe"))
    ctx = obj.program("layout_probe").test_run(bytes(size)).ctx
    return dict(zip(PROBE_FIELDS, struct.unpack(f"={len(PROBE_FIELDS)}I", ctx), strict=True))


def test_struct_sizes_equal_the_map_sizes_libbpf_reports(obj: BpfObject, btf: Btf) -> None:
    for map_name, key, value in (
        ("hash_map", "test_key", "test_value"),
        ("deny_v4", "lpm_v4_key", "deny_rule"),
        ("array_map", None, "test_value"),
        ("test_config", None, "test_config"),
    ):
        m = obj.map(map_name)
        if key:
            assert ctypes.sizeof(btf.struct(key)) == m.key_size, map_name
        assert ctypes.sizeof(btf.struct(value)) == m.value_size, map_name
        # libbpf also tells which BTF type describes the value: the same one
        assert btf.resolve(m.btf_value_type_id).name == value


def test_ctypes_offsets_match_the_c_compiler(btf: Btf, compiler_says: dict[str, int]) -> None:
    Event = btf.struct("test_event")
    assert ctypes.sizeof(Event) == compiler_says["event_size"] == 64
    assert Event.pid.offset == compiler_says["off_pid"]
    assert Event.kind.offset == compiler_says["off_kind"]
    assert Event.proto.offset == compiler_says["off_proto"]
    assert Event.port.offset == compiler_says["off_port"] == 18  # a hole after proto
    assert Event.addr.offset == compiler_says["off_addr"]
    assert Event.comm.offset == compiler_says["off_comm"]
    assert Event.sock.offset + type(Event().sock).type.offset == compiler_says["off_sock_type"]
    assert Event.u.offset == compiler_says["off_u"]
    assert Event.tail.offset == compiler_says["off_tail"]
    Key = btf.struct("test_key")
    assert ctypes.sizeof(Key) == compiler_says["key_size"]
    assert Key.ino.offset == compiler_says["off_key_ino"] == 8
    assert ctypes.sizeof(btf.struct("test_value")) == compiler_says["value_size"] == 16


def test_flat_layout_matches_the_c_compiler(btf: Btf, compiler_says: dict[str, int]) -> None:
    layout = btf.layout("test_event")
    assert layout.size == layout.struct.size == compiler_says["event_size"]
    off = layout.offsets
    assert off["port"] == compiler_says["off_port"]
    assert off["comm"] == compiler_says["off_comm"]
    assert off["sock.type"] == compiler_says["off_sock_type"]
    assert off["u"] == compiler_says["off_u"]  # unions stay raw bytes
    assert off["tail"] == compiler_says["off_tail"]
    assert layout.names[:3] == ("cgroup_id", "pid", "kind")


def test_ctypes_and_flat_layout_decode_the_same_record(btf: Btf) -> None:
    Event = btf.struct("test_event")
    e = Event(cgroup_id=7, pid=42, kind=2, proto=6, port=9, addr=0x0200007F, comm=b"cat", tail=5)
    e.sock.family, e.sock.type = 2, 3
    e.u.seq = 123
    raw = bytes(e)
    decoded = btf.layout("test_event").decode(raw)
    assert decoded == {
        "cgroup_id": 7,
        "pid": 42,
        "kind": 2,
        "proto": 6,
        "port": 9,
        "addr": 0x0200007F,
        "comm": "cat",
        "sock.family": 2,
        "sock.type": 3,
        "u": struct.pack("=Q", 123),
        "tail": 5,
    }
    assert btf.layout("test_event").pack(**{**decoded, "comm": "cat"}) == raw
    back = Event.from_buffer_copy(raw)
    assert back.u.words[0] == 123 and back.comm == b"cat"


def test_enums_come_from_btf(btf: Btf) -> None:
    assert btf.enum("test_event_kind") == {"EV_CONNECT4": 1, "EV_SOCK_CREATE": 2, "EV_BENCH": 99}
    Kind = btf.int_enum("test_event_kind")
    assert issubclass(Kind, IntEnum) and Kind(99).name == "EV_BENCH"
    assert btf.enum_constants()["EV_SOCK_CREATE"] == 2


def test_unknown_and_bitfield_types_are_reported(btf: Btf) -> None:
    with pytest.raises(KeyError, match="no struct/union named nope"):
        btf.struct("nope")
    with pytest.raises(NotImplementedError, match="bitfield"):
        btf.struct("task_struct")  # the kernel's task_struct has bitfields


def test_types_nested_in_kernel_structs_build(btf: Btf) -> None:
    # pointers become u64; nested anonymous unions are reachable like in C
    Addr = btf.struct("bpf_sock_addr")
    assert ctypes.sizeof(Addr) == 72
    assert Addr.user_ip4.offset == 4


def test_garbage_is_not_btf() -> None:
    with pytest.raises(BtfFormatError):
        Btf.from_bytes(b"\0" * 32)
