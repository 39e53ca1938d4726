"""Map operations on raw bytes, per map type; batches; pins."""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from pathlib import Path

import pytest

from enforcer.pybpf import (
    BPF_EXIST,
    BPF_NOEXIST,
    BpfError,
    BpfObject,
    Btf,
    Map,
    MapFlag,
    MapType,
    num_possible_cpus,
)

from .conftest import open_testprog

pytestmark = pytest.mark.host_bpf

U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")


@pytest.fixture(scope="module")
def btf(testprog_path: Path) -> Btf:
    return Btf.from_elf(str(testprog_path))


def test_key(btf: Btf, i: int) -> bytes:
    Key = btf.struct("test_key")
    return bytes(Key(id=i, port=80, proto=6, ino=1_000_000 + i))


test_key.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def value(btf: Btf, hits: int, flags: int = 0) -> bytes:
    return bytes(btf.struct("test_value")(hits=hits, flags=flags))


def lpm_key(cidr: str) -> bytes:
    net, plen = cidr.split("/")
    return U32.pack(int(plen)) + socket.inet_aton(net)


# ----- CRUD per type ---------------------------------------------------------------------
def test_hash_map_crud_with_update_flags(obj: BpfObject, btf: Btf) -> None:
    m = obj.map("hash_map")
    assert m.type == MapType.HASH
    k, v1, v2 = test_key(btf, 1), value(btf, 1), value(btf, 2)
    assert m.lookup(k) is None
    with pytest.raises(BpfError) as info:
        m.update(k, v1, BPF_EXIST)  # replace-only on a missing key
    assert info.value.errno == errno.ENOENT and "hash_map" in str(info.value)
    m.update(k, v1, BPF_NOEXIST)
    assert m.lookup(k) == v1
    with pytest.raises(BpfError) as info:
        m.update(k, v2, BPF_NOEXIST)  # create-only on an existing key
    assert info.value.errno == errno.EEXIST
    m.update(k, v2, BPF_EXIST)
    assert m[k] == v2 and k in m
    assert list(m.keys()) == [k]
    assert list(m.items()) == [(k, v2)]
    assert m.delete(k) is True
    assert m.delete(k) is False
    assert m.count() == 0


def test_wrong_sizes_are_refused_before_the_syscall(obj: BpfObject) -> None:
    m = obj.map("hash_map")
    with pytest.raises(ValueError, match="hash_map: key must be 16 bytes, got 3"):
        m.lookup(b"abc")
    with pytest.raises(ValueError, match="value must be 16 bytes"):
        m.update(b"\0" * 16, b"x")


def test_lru_hash_evicts_instead_of_failing_when_full(obj: BpfObject) -> None:
    m = obj.map("lru_map")
    assert m.type == MapType.LRU_HASH
    for i in range(1000):
        m.update(U32.pack(i), U64.pack(i))
    assert 0 < m.count() <= m.max_entries == 256
    assert m.lookup(U32.pack(999)) == U64.pack(999)  # the newest survives


def test_pop_takes_a_value_and_its_key_in_one_call(obj: BpfObject) -> None:
    for name in ("hash_map", "lru_map"):
        m = obj.map(name)
        k, v = b"\x07" * m.key_size, b"\x2a" * m.value_size
        m.update(k, v)
        assert m.pop(k) == v
        assert m.lookup(k) is None and m.pop(k) is None  # taken once, by one caller


def test_array_has_every_index_and_cannot_delete(obj: BpfObject, btf: Btf) -> None:
    m = obj.map("array_map")
    assert m.type == MapType.ARRAY
    assert m.count() == 16
    assert m.lookup(U32.pack(3)) == bytes(16)  # zero-initialised
    m.update(U32.pack(3), value(btf, 7))
    assert btf.struct("test_value").from_buffer_copy(m[U32.pack(3)]).hits == 7
    with pytest.raises(BpfError) as info:
        m.delete(U32.pack(3))
    assert info.value.errno == errno.EINVAL
    with pytest.raises(BpfError) as info:
        m.update(U32.pack(16), value(btf, 1))  # out of range
    assert info.value.errno == errno.E2BIG


def test_lpm_trie_returns_the_longest_matching_prefix(obj: BpfObject, btf: Btf) -> None:
    m = obj.map("deny_v4")
    assert m.type == MapType.LPM_TRIE
    assert m.map_flags & MapFlag.NO_PREALLOC
    Rule = btf.struct("deny_rule")
    m.update(lpm_key("127.0.0.0/8"), bytes(Rule(port=0, rule_id=8)))
    m.update(lpm_key("127.0.0.0/24"), bytes(Rule(port=0, rule_id=24)))
    m.update(lpm_key("127.0.0.2/32"), bytes(Rule(port=9, rule_id=32)))

    def rule_for(ip: str) -> int | None:
        raw = m.lookup(lpm_key(f"{ip}/32"))
        return None if raw is None else Rule.from_buffer_copy(raw).rule_id

    assert rule_for("127.0.0.2") == 32
    assert rule_for("127.0.0.3") == 24
    assert rule_for("127.1.2.3") == 8
    assert rule_for("10.0.0.1") is None
    assert sorted(m.keys()) == sorted(lpm_key(c) for c in ("127.0.0.0/8", "127.0.0.0/24", "127.0.0.2/32"))
    assert m.delete(lpm_key("127.0.0.2/32"))
    assert rule_for("127.0.0.2") == 24


def test_lpm_trie_batch_update_works_with_or_without_kernel_batch_support(obj: BpfObject) -> None:
    m = obj.map("deny_v4")
    keys = [lpm_key(f"127.{i}.0.0/16") for i in range(200)]
    assert m.update_batch(keys, [b"\0" * 4] * 200) == 200
    assert m.count() == 200
    assert m.delete_batch(keys) == 200
    assert m.count() == 0


def test_batch_falls_back_to_one_by_one_where_the_kernel_has_no_batch_op(
    obj: BpfObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Older kernels answer ENOTSUPP for batch ops on LPM tries; simulate that answer."""
    from enforcer.pybpf.libbpf import lib

    calls = []

    def no_batch(*args: object) -> int:
        calls.append(args)
        return -524  # ENOTSUPP, nothing processed

    monkeypatch.setattr(lib(), "bpf_map_update_batch", no_batch)
    monkeypatch.setattr(lib(), "bpf_map_delete_batch", no_batch)
    m = obj.map("deny_v4")
    keys = [lpm_key(f"127.{i}.0.0/16") for i in range(20)]
    assert m.update_batch(keys, [b"\0" * 4] * 20) == 20
    assert m.batch_supported is False
    assert m.count() == 20
    assert m.delete_batch([*keys[:5], lpm_key("127.250.0.0/16")]) == 5  # missing key skipped
    assert m.count() == 15
    assert len(calls) == 1  # learnt once, not retried per call


def test_percpu_values_have_one_slot_per_possible_cpu(obj: BpfObject) -> None:
    m = obj.map("percpu_hash")
    ncpus = num_possible_cpus()
    assert m.is_percpu and m.value_size == 4
    assert m.value_stride == 8  # rounded up to 8 bytes per CPU
    assert m.value_buffer_size == 8 * ncpus
    per_cpu = [U32.pack(100 + cpu) for cpu in range(ncpus)]
    m.update_percpu(U32.pack(1), per_cpu)
    assert m.lookup_percpu(U32.pack(1)) == per_cpu
    m.update(U32.pack(2), U32.pack(5))  # a single value is written to every CPU
    assert m.lookup_percpu(U32.pack(2)) == [U32.pack(5)] * ncpus
    assert len(m.lookup(U32.pack(2)) or b"") == 8 * ncpus
    keys = [U32.pack(i) for i in range(10, 20)]
    assert m.update_batch(keys, [U32.pack(7)] * 10) == 10
    assert m.lookup_percpu(U32.pack(15)) == [U32.pack(7)] * ncpus


def test_percpu_array(obj: BpfObject) -> None:
    m = obj.map("percpu_counters")
    assert m.type == MapType.PERCPU_ARRAY
    ncpus = num_possible_cpus()
    assert m.lookup_percpu(U32.pack(0)) == [bytes(8)] * ncpus
    m.update_percpu(U32.pack(1), [U64.pack(c) for c in range(ncpus)])
    assert sum(U64.unpack(v)[0] for v in m.lookup_percpu(U32.pack(1)) or []) == sum(range(ncpus))


# ----- batches ---------------------------------------------------------------------------
def test_batch_update_of_100k_entries(obj: BpfObject, btf: Btf) -> None:
    m = obj.map("hash_map")
    n = 100_000
    keys = [test_key(btf, i) for i in range(n)]
    vals = [value(btf, i) for i in range(n)]

    t0 = time.perf_counter()
    for k, v in zip(keys, vals, strict=True):
        m.update(k, v)
    one_by_one = time.perf_counter() - t0
    assert m.count() == n
    assert m.delete_batch(keys) == n
    assert m.count() == 0

    t0 = time.perf_counter()
    assert m.update_batch(keys, vals) == n
    batched = time.perf_counter() - t0
    assert m.count() == n
    assert m.lookup(keys[12345]) == vals[12345]

    t0 = time.perf_counter()
    assert m.delete_batch(keys) == n
    batch_delete = time.perf_counter() - t0
    assert m.count() == 0
    print(
        f"\n[measure] 100k hash updates: one by one {one_by_one:.3f}s, "
        f"batched {batched:.3f}s, batch delete {batch_delete:.3f}s"
    )


def test_batch_update_reports_partial_failure(obj: BpfObject, btf: Btf) -> None:
    m = obj.map("array_map")
    with pytest.raises(BpfError) as info:
        m.update_batch([U32.pack(0), U32.pack(1), U32.pack(16)], [value(btf, 1)] * 3)
    assert info.value.errno == errno.E2BIG  # index 16 is past the end
    assert "2 of 3 entries written" in str(info.value)
    assert m.lookup(U32.pack(1)) == value(btf, 1)


def test_batch_with_create_only_flag_goes_one_by_one(obj: BpfObject) -> None:
    m = obj.map("lru_map")
    m.update(U32.pack(1), U64.pack(1))
    with pytest.raises(BpfError) as info:
        m.update_batch([U32.pack(0), U32.pack(1)], [U64.pack(0)] * 2, BPF_NOEXIST)
    assert info.value.errno == errno.EEXIST
    assert m.lookup(U32.pack(0)) == U64.pack(0)


# ----- pins and reuse --------------------------------------------------------------------
def test_pin_reopen_same_contents_unpin(obj: BpfObject, btf: Btf, pin_dir: Path) -> None:
    m = obj.map("hash_map")
    entries = {test_key(btf, i): value(btf, i) for i in range(50)}
    m.update_batch(list(entries), list(entries.values()))
    path = pin_dir / "hash_map"
    m.pin(path)
    assert path.exists()
    with Map.open_pinned(path) as reopened:
        assert reopened.name == "hash_map"
        assert reopened.type == MapType.HASH
        assert (reopened.key_size, reopened.value_size) == (16, 16)
        assert reopened.max_entries == 131072
        assert dict(reopened.items()) == entries
        reopened.update(test_key(btf, 999), value(btf, 999))  # same kernel map
        assert m.lookup(test_key(btf, 999)) == value(btf, 999)
        fd = reopened.fd
    with pytest.raises(OSError):
        os.fstat(fd)  # the reopened map's fd was closed with it
    m.unpin(path)
    assert not path.exists()


def test_open_pinned_missing_path_names_it(pin_dir: Path) -> None:
    with pytest.raises(BpfError) as info:
        Map.open_pinned(pin_dir / "absent")
    assert info.value.errno == errno.ENOENT
    assert str(pin_dir / "absent") in str(info.value)


def test_pin_root_path_pins_by_name_and_a_second_load_reuses_the_map(testprog_path: Path, pin_dir: Path) -> None:
    with open_testprog(testprog_path, pin_root_path=pin_dir) as first:
        first.load()
        assert first.map("pinned_by_name").pin_path == str(pin_dir / "pinned_by_name")
        first.map("pinned_by_name").update(U32.pack(1), U64.pack(42))
    assert (pin_dir / "pinned_by_name").exists()  # survives the object
    with open_testprog(testprog_path, pin_root_path=pin_dir) as second:
        second.load()
        assert second.map("pinned_by_name").lookup(U32.pack(1)) == U64.pack(42)
        second.map("pinned_by_name").unpin()
    assert not (pin_dir / "pinned_by_name").exists()


def test_reuse_fd_shares_an_existing_map(testprog_path: Path, obj: BpfObject, pin_dir: Path) -> None:
    obj.map("lru_map").update(U32.pack(5), U64.pack(55))
    obj.map("lru_map").pin(pin_dir / "lru")
    with Map.open_pinned(pin_dir / "lru") as existing, open_testprog(testprog_path) as other:
        other.map("lru_map").reuse_fd(existing.fd)
        other.load()
        assert other.map("lru_map").lookup(U32.pack(5)) == U64.pack(55)
        assert other.map("lru_map").info().id == obj.map("lru_map").info().id
    obj.map("lru_map").unpin(pin_dir / "lru")


def test_map_info_from_the_kernel(obj: BpfObject, btf: Btf) -> None:
    info = obj.map("deny_v4").info()
    assert info.type_name == "LPM_TRIE"
    assert info.name == "deny_v4" and info.id > 0
    assert (info.key_size, info.value_size) == (8, 4)
