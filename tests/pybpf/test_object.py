"""Opening, adjusting and loading a BPF object."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from enforcer.pybpf import BpfError, BpfObject, MapType, ObjectClosedError, ProgType

from .conftest import open_testprog

pytestmark = pytest.mark.host_bpf


def test_open_lists_programs_and_maps_by_name_before_load(testprog_path: Path) -> None:
    with BpfObject(testprog_path) as obj:
        assert {"deny_connect4", "deny_raw_socket", "fill_ring", "lsm_file_open"} <= set(obj.programs)
        assert obj.program("deny_connect4").section == "cgroup/connect4"
        assert obj.program("deny_connect4").type == ProgType.CGROUP_SOCK_ADDR
        assert obj.program("fill_ring").type == ProgType.SYSCALL
        assert obj.map("deny_v4").type == MapType.LPM_TRIE
        assert obj.map("hash_map").key_size == 16
        assert not obj.loaded
        assert obj.program("deny_connect4").fd == -1


def test_unknown_names_say_what_exists(obj: BpfObject) -> None:
    with pytest.raises(KeyError, match=r"has no program 'nope'.*deny_connect4"):
        obj.program("nope")
    with pytest.raises(KeyError, match=r"has no map 'nope'.*hash_map"):
        obj.map("nope")


def test_loading_a_program_the_kernel_refuses_fails_with_a_clear_error(testprog_path: Path) -> None:
    """The LSM program is left on: this host's kernel refuses BPF-LSM (EPERM)."""
    with BpfObject(testprog_path) as obj:
        obj.map("pinned_by_name").set_pin_path(None)
        assert obj.program("lsm_file_open").autoload
        try:
            obj.load()
        except BpfError as e:
            assert e.errno == errno.EPERM
            assert e.errno_name == "EPERM"
            assert "lsm_file_open" in str(e)
            assert str(testprog_path) in str(e)
            assert not obj.loaded
        else:  # a kernel with BPF-LSM enabled (the test VM) loads it: autoload was honoured
            assert obj.program("lsm_file_open").fd >= 0


def test_autoload_off_loads_the_rest(testprog_path: Path) -> None:
    with open_testprog(testprog_path) as obj:
        assert not obj.program("lsm_file_open").autoload
        obj.load()
        assert obj.program("lsm_file_open").fd == -1
        assert not obj.program("lsm_file_open").loaded
        assert obj.program("deny_connect4").fd >= 0
        assert obj.program("fill_ring").loaded


def test_question_mark_sections_start_with_autoload_off(testprog_path: Path) -> None:
    with BpfObject(testprog_path) as obj:
        assert not obj.program("verifier_reject").autoload


def test_verifier_rejection_names_the_program_and_carries_the_verifier_log(testprog_path: Path) -> None:
    with open_testprog(testprog_path) as obj:
        obj.program("verifier_reject").autoload = True
        with pytest.raises(BpfError) as info:
            obj.load()
    err = info.value
    assert err.errno == errno.EACCES  # the verifier's "permission denied"
    assert "(program verifier_reject)" in str(err)
    assert any("invalid mem access" in line for line in err.libbpf_log), err.libbpf_log
    assert "libbpf:" in str(err)  # the tail of libbpf's log is part of the message


def test_settings_after_load_are_refused(obj: BpfObject) -> None:
    with pytest.raises(RuntimeError, match="only possible before"):
        obj.program("fill_ring").autoload = False
    with pytest.raises(RuntimeError, match="only possible before"):
        obj.map("lru_map").set_max_entries(10)
    with pytest.raises(RuntimeError, match="only possible before"):
        obj.load()


def test_max_entries_can_be_changed_before_load(testprog_path: Path) -> None:
    with open_testprog(testprog_path) as obj:
        obj.map("lru_map").set_max_entries(512)
        obj.load()
        assert obj.map("lru_map").info().max_entries == 512


def test_using_a_closed_object_raises_instead_of_crashing(testprog_path: Path) -> None:
    obj = open_testprog(testprog_path).load()
    prog, m = obj.program("fill_ring"), obj.map("lru_map")
    obj.close()
    obj.close()  # idempotent
    assert obj.closed
    with pytest.raises(ObjectClosedError):
        _ = prog.fd
    with pytest.raises(ObjectClosedError):
        _ = m.key_size
    with pytest.raises(ObjectClosedError):
        obj.program("fill_ring")


def test_opening_a_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.bpf.o"
    with pytest.raises(BpfError) as info:
        BpfObject(missing)
    assert info.value.errno == errno.ENOENT
    assert str(missing) in str(info.value) and "ENOENT" in str(info.value)
