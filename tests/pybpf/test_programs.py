"""Attaching programs to a cgroup the test created, links and their lifetime, test_run."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import pytest

from enforcer.pybpf import (
    AttachType,
    BpfError,
    BpfObject,
    Btf,
    Link,
    enable_stats,
    kernel_dev,
    num_possible_cpus,
    prog_info_by_id,
    prog_query,
)

from .conftest import CONNECT_PROBE, Cgroup, open_testprog, run_python

pytestmark = pytest.mark.host_bpf


def deny_loopback_9(obj: BpfObject) -> None:
    Rule = Btf.from_elf(obj.path).struct("deny_rule")
    key = struct.pack("=I", 32) + socket.inet_aton("127.0.0.2")
    obj.map("deny_v4").update(key, bytes(Rule(port=9, rule_id=1)))


def test_cgroup_program_denies_inside_its_cgroup_only(obj: BpfObject, cgroup: Cgroup) -> None:
    deny_loopback_9(obj)
    with obj.program("deny_connect4").attach_cgroup(cgroup.path):
        inside = cgroup.run_python(CONNECT_PROBE)
        outside = run_python(CONNECT_PROBE)
    assert inside == {"denied_target": "EPERM", "other_port": "ECONNREFUSED"}
    assert outside == {"denied_target": "ECONNREFUSED", "other_port": "ECONNREFUSED"}
    # the link was destroyed on leaving the with-block: the program no longer applies
    assert cgroup.run_python(CONNECT_PROBE)["denied_target"] == "ECONNREFUSED"


def test_prog_query_lists_link_attached_programs(obj: BpfObject, cgroup: Cgroup) -> None:
    prog = obj.program("deny_connect4")
    other = obj.program("allow_connect4")
    assert prog_query(cgroup.path, AttachType.CGROUP_INET4_CONNECT).prog_ids == ()
    with prog.attach_cgroup(cgroup.path), other.attach_cgroup(cgroup.path):
        ids = prog_query(cgroup.path, AttachType.CGROUP_INET4_CONNECT).prog_ids
        assert set(ids) == {prog.info().id, other.info().id}  # both coexist (multi-attach)
        assert prog_info_by_id(prog.info().id).name == "deny_connect4"
        fd = os.open(cgroup.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert prog_query(fd, AttachType.CGROUP_INET4_CONNECT, effective=True).prog_ids
        finally:
            os.close(fd)
    assert prog_query(cgroup.path, AttachType.CGROUP_INET4_CONNECT).prog_ids == ()


def test_pinned_link_keeps_the_program_attached_after_the_object_is_closed(
    testprog_path: Path, cgroup: Cgroup, pin_dir: Path
) -> None:
    obj = open_testprog(testprog_path).load()
    try:
        deny_loopback_9(obj)
        link = obj.program("deny_connect4").attach_cgroup(cgroup.path)
        link.pin(pin_dir / "connect4")
        assert link.pin_path == str(pin_dir / "connect4")
        link.destroy()
    finally:
        obj.close()
    # no Python handle left, only the pin: still enforced
    assert cgroup.run_python(CONNECT_PROBE)["denied_target"] == "EPERM"
    assert len(prog_query(cgroup.path, AttachType.CGROUP_INET4_CONNECT).prog_ids) == 1

    reopened = Link.open_pinned(pin_dir / "connect4")
    reopened.unpin()
    assert not (pin_dir / "connect4").exists()
    assert cgroup.run_python(CONNECT_PROBE)["denied_target"] == "EPERM"  # our fd still holds it
    reopened.destroy()
    assert cgroup.run_python(CONNECT_PROBE)["denied_target"] == "ECONNREFUSED"
    assert prog_query(cgroup.path, AttachType.CGROUP_INET4_CONNECT).prog_ids == ()


def test_detach_releases_a_pinned_link_at_once(obj: BpfObject, cgroup: Cgroup, pin_dir: Path) -> None:
    deny_loopback_9(obj)
    link = obj.program("deny_connect4").attach_cgroup(cgroup.path)
    try:
        link.pin(pin_dir / "l")
        link.detach()
        assert cgroup.run_python(CONNECT_PROBE)["denied_target"] == "ECONNREFUSED"
        link.unpin()
    finally:
        link.destroy()


def test_update_program_swaps_the_program_behind_a_link(obj: BpfObject, cgroup: Cgroup) -> None:
    deny_loopback_9(obj)
    with obj.program("deny_connect4").attach_cgroup(cgroup.path) as link:
        assert cgroup.run_python(CONNECT_PROBE)["denied_target"] == "EPERM"
        link.update_program(obj.program("allow_connect4"))
        assert cgroup.run_python(CONNECT_PROBE)["denied_target"] == "ECONNREFUSED"
        ids = prog_query(cgroup.path, AttachType.CGROUP_INET4_CONNECT).prog_ids
        assert ids == (obj.program("allow_connect4").info().id,)


def test_update_program_of_another_type_fails_clearly(obj: BpfObject, cgroup: Cgroup) -> None:
    with obj.program("deny_connect4").attach_cgroup(cgroup.path) as link, pytest.raises(BpfError) as info:
        link.update_program(obj.program("deny_raw_socket"))
    assert info.value.errno in (22, 1)  # EINVAL (type mismatch)
    assert "deny_raw_socket" in str(info.value) and "deny_connect4" in str(info.value)


def test_attach_to_a_missing_cgroup_names_it(obj: BpfObject, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        obj.program("deny_connect4").attach_cgroup(tmp_path / "nope")
    with pytest.raises(BpfError) as info:
        obj.program("deny_connect4").attach_cgroup(os.open(tmp_path, os.O_RDONLY))
    assert "deny_connect4" in str(info.value)


def test_destroyed_link_refuses_use(obj: BpfObject, cgroup: Cgroup) -> None:
    link = obj.program("deny_connect4").attach_cgroup(cgroup.path)
    link.destroy()
    link.destroy()  # idempotent
    with pytest.raises(BpfError, match="destroyed"):
        link.pin("/sys/fs/bpf/never")


def test_tp_btf_program_attaches_and_counts_per_cpu(obj: BpfObject) -> None:
    Config = Btf.from_elf(obj.path).struct("test_config")
    obj.map("test_config").update(struct.pack("=I", 0), bytes(Config(watch_tgid=os.getpid())))
    zero = struct.pack("=I", 0)

    def forks_seen() -> int:
        return sum(struct.unpack("=Q", v)[0] for v in obj.map("percpu_counters").lookup_percpu(zero) or [])

    with obj.program("count_forks").attach():
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
        assert forks_seen() == 3
        assert len(obj.map("percpu_counters").lookup_percpu(zero) or []) == num_possible_cpus()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert forks_seen() == 3  # detached


def test_syscall_program_test_run_and_run_time_stats(obj: BpfObject) -> None:
    prog = obj.program("fill_ring")
    with enable_stats():
        before = prog.info()
        result = prog.test_run(struct.pack("=III", 100, 0, 0))
        after = prog.info()
    assert result.retval == 0
    assert struct.unpack("=III", result.ctx)[:2] == (100, 100)  # the program wrote `produced`
    assert after.run_cnt == before.run_cnt + 1
    assert after.run_time_ns > before.run_time_ns
    assert after.type_name == "SYSCALL" and after.name == "fill_ring"


def test_test_run_of_an_unloaded_program_says_so(obj: BpfObject) -> None:
    with pytest.raises(BpfError, match=r"lsm_file_open.*not loaded"):
        obj.program("lsm_file_open").test_run(b"")


def test_kernel_dev_matches_mkdev() -> None:
    st = os.stat("/")
    assert kernel_dev(st.st_dev) == (os.major(st.st_dev) << 20) | os.minor(st.st_dev)
    assert kernel_dev(os.makedev(259, 3)) == (259 << 20) | 3


@pytest.mark.lsm
def test_lsm_program_loads_and_attaches_where_the_kernel_allows_it(testprog_path: Path) -> None:
    """Only on kernels with BPF-LSM active (the test VM). The program allows everything."""
    with BpfObject(testprog_path) as obj:
        obj.map("pinned_by_name").set_pin_path(None)
        obj.load()
        with obj.program("lsm_file_open").attach_lsm() as link:
            assert link.fd >= 0
            assert run_python('import json; open("/etc/hostname").read(); print(json.dumps({}))') == {}
