"""Finding cgroup v2 and a process's cgroup id, on pure v2, hybrid and v1-only hosts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from enforcer.containers.cgroups import (
    CgroupLayout,
    CgroupRef,
    cgroup2_mount_from,
    cgroup_of_pid,
    container_cgroup_path,
    detect_layout,
    find_cgroup2_mount,
    layout_from,
    parse_mounts,
    parse_proc_cgroup,
)
from enforcer.errors import EnforcerError

CID = "e59b803ad4f153386d0909bfc2a570c0727f571c94abe0790499e782621bf697"

MOUNTS_PURE_V2 = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0
bpf /sys/fs/bpf bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0
"""

MOUNTS_HYBRID = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""

MOUNTS_LEGACY = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
"""

# /proc/PID/cgroup of a container process, per host layout and Docker cgroup driver.
PROC_CGROUP_V2_CGROUPFS = f"0::/docker/{CID}\n"
PROC_CGROUP_V2_SYSTEMD = f"0::/system.slice/docker-{CID}.scope\n"
PROC_CGROUP_HYBRID_CGROUPFS = (
    f"9:name=systemd:/docker/{CID}\n4:memory:/docker/{CID}\n1:cpu:/docker/{CID}\n0::/docker/{CID}\n"
)
PROC_CGROUP_HYBRID_SYSTEMD = (
    f"12:name=systemd:/system.slice/docker-{CID}.scope\n"
    f"4:memory:/system.slice/docker-{CID}.scope\n"
    f"0::/system.slice/docker-{CID}.scope\n"
)
PROC_CGROUP_LEGACY = f"9:name=systemd:/docker/{CID}\n4:memory:/docker/{CID}\n1:cpu,cpuacct:/docker/{CID}\n"


class TestFindingTheCgroup2Mount:
    def test_pure_v2_host_has_cgroup2_at_sys_fs_cgroup(self) -> None:
        mounts = parse_mounts(MOUNTS_PURE_V2)
        assert cgroup2_mount_from(mounts) == "/sys/fs/cgroup"
        assert layout_from(mounts) is CgroupLayout.UNIFIED

    def test_hybrid_host_has_cgroup2_at_unified(self) -> None:
        mounts = parse_mounts(MOUNTS_HYBRID)
        assert cgroup2_mount_from(mounts) == "/sys/fs/cgroup/unified"
        assert layout_from(mounts) is CgroupLayout.HYBRID

    def test_v1_only_host_has_none(self) -> None:
        mounts = parse_mounts(MOUNTS_LEGACY)
        assert cgroup2_mount_from(mounts) is None
        assert layout_from(mounts) is CgroupLayout.LEGACY

    def test_when_mounted_twice_the_shortest_path_wins(self) -> None:
        text = MOUNTS_PURE_V2 + "cgroup2 /var/lib/x/cgroup cgroup2 rw 0 0\n"
        assert cgroup2_mount_from(parse_mounts(text)) == "/sys/fs/cgroup"

    def test_escaped_mount_points_are_decoded(self) -> None:
        (mount,) = parse_mounts("cgroup2 /mnt/with\\040space cgroup2 rw 0 0\n")
        assert mount.mountpoint == "/mnt/with space"

    def test_v1_only_host_is_an_operator_error_with_a_fix(self, tmp_path: Path) -> None:
        (tmp_path / "self").mkdir()
        (tmp_path / "self" / "mounts").write_text(MOUNTS_LEGACY)
        with pytest.raises(EnforcerError) as err:
            find_cgroup2_mount(str(tmp_path))
        assert "cgroup2" in str(err.value) and "unified_cgroup_hierarchy" in str(err.value)


class TestParsingProcPidCgroup:
    @pytest.mark.parametrize(
        "text, path",
        [
            (PROC_CGROUP_V2_CGROUPFS, f"/docker/{CID}"),
            (PROC_CGROUP_V2_SYSTEMD, f"/system.slice/docker-{CID}.scope"),
            (PROC_CGROUP_HYBRID_CGROUPFS, f"/docker/{CID}"),
            (PROC_CGROUP_HYBRID_SYSTEMD, f"/system.slice/docker-{CID}.scope"),
            ("0::/\n", "/"),
            (f"0::/docker/{CID} (deleted)\n", f"/docker/{CID}"),
        ],
        ids=["v2-cgroupfs", "v2-systemd", "hybrid-cgroupfs", "hybrid-systemd", "root", "deleted"],
    )
    def test_the_0_line_gives_the_v2_path(self, text: str, path: str) -> None:
        assert parse_proc_cgroup(text) == path

    def test_v1_only_process_has_no_v2_path(self) -> None:
        assert parse_proc_cgroup(PROC_CGROUP_LEGACY) is None

    def test_name_systemd_v1_line_is_not_mistaken_for_v2(self) -> None:
        # "1:name=systemd:/x" has a non-empty controller field; only "0::" is cgroup v2.
        assert parse_proc_cgroup("1:name=systemd:/x\n") is None


def _fake_proc(tmp_path: Path, pid: int, proc_cgroup: str, mounts: str) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mounts").write_text(mounts)
    (proc / str(pid)).mkdir()
    (proc / str(pid) / "cgroup").write_text(proc_cgroup)
    return proc


class TestCgroupOfPid:
    @pytest.mark.parametrize("proc_cgroup", [PROC_CGROUP_V2_SYSTEMD, PROC_CGROUP_HYBRID_SYSTEMD])
    def test_id_is_the_inode_of_the_directory_on_the_cgroup2_mount(self, tmp_path: Path, proc_cgroup: str) -> None:
        mount = tmp_path / "cg2"
        cgdir = mount / "system.slice" / f"docker-{CID}.scope"
        cgdir.mkdir(parents=True)
        proc = _fake_proc(tmp_path, 42, proc_cgroup, MOUNTS_PURE_V2)

        ref = cgroup_of_pid(42, proc_root=str(proc), mount=str(mount))

        assert ref == CgroupRef(path=str(cgdir), id=os.stat(cgdir).st_ino)

    def test_the_mount_comes_from_proc_mounts_when_not_given(self, tmp_path: Path) -> None:
        mount = tmp_path / "unified"
        (mount / "docker" / CID).mkdir(parents=True)
        mounts = MOUNTS_HYBRID.replace("/sys/fs/cgroup/unified", str(mount))
        proc = _fake_proc(tmp_path, 7, PROC_CGROUP_HYBRID_CGROUPFS, mounts)

        assert cgroup_of_pid(7, proc_root=str(proc)).path == str(mount / "docker" / CID)

    def test_vanished_process_is_a_lookup_error(self, tmp_path: Path) -> None:
        proc = _fake_proc(tmp_path, 1, "0::/\n", MOUNTS_PURE_V2)
        with pytest.raises(ProcessLookupError):
            cgroup_of_pid(999999, proc_root=str(proc), mount=str(tmp_path))

    def test_vanished_cgroup_directory_is_a_lookup_error(self, tmp_path: Path) -> None:
        # The process exited and runc removed its cgroup between our two reads.
        proc = _fake_proc(tmp_path, 5, PROC_CGROUP_V2_CGROUPFS, MOUNTS_PURE_V2)
        with pytest.raises(ProcessLookupError):
            cgroup_of_pid(5, proc_root=str(proc), mount=str(tmp_path / "cg2"))

    def test_process_without_cgroup_v2_is_an_operator_error(self, tmp_path: Path) -> None:
        proc = _fake_proc(tmp_path, 5, PROC_CGROUP_LEGACY, MOUNTS_LEGACY)
        with pytest.raises(EnforcerError, match="no cgroup v2"):
            cgroup_of_pid(5, proc_root=str(proc), mount=str(tmp_path))


class TestTheContainersOwnCgroup:
    @pytest.mark.parametrize(
        "path",
        [
            f"/sys/fs/cgroup/docker/{CID}",
            f"/sys/fs/cgroup/system.slice/docker-{CID}.scope",
            f"/sys/fs/cgroup/my-parent/{CID}",
        ],
    )
    def test_an_init_in_its_container_cgroup_is_in_its_own(self, path: str) -> None:
        assert container_cgroup_path(path, CID) == path

    @pytest.mark.parametrize("child", ["init.scope", "a/b/c", "system.slice/foo.service"])
    def test_an_init_that_moved_into_a_child_cgroup_is_judged_by_the_ancestor(self, child: str) -> None:
        # systemd as pid 1 moves itself to init.scope below the container's cgroup
        own = f"/sys/fs/cgroup/system.slice/docker-{CID}.scope"
        assert container_cgroup_path(f"{own}/{child}", CID) == own

    @pytest.mark.parametrize(
        "path", ["/sys/fs/cgroup", "/sys/fs/cgroup/system.slice", "/sys/fs/cgroup/system.slice/docker-0123.scope/x"]
    )
    def test_a_cgroup_without_the_id_on_its_path_is_never_the_containers(self, path: str) -> None:
        assert container_cgroup_path(path, CID) is None


class TestThisHost:
    def test_the_cgroup2_mount_is_found_and_is_cgroup2(self) -> None:
        mount = find_cgroup2_mount()
        assert detect_layout() in (CgroupLayout.UNIFIED, CgroupLayout.HYBRID)
        assert os.path.exists(os.path.join(mount, "cgroup.procs"))

    def test_our_own_cgroup_is_a_directory_whose_inode_is_the_id(self) -> None:
        ref = cgroup_of_pid(os.getpid())
        assert ref.path.startswith(find_cgroup2_mount())
        assert ref.id == os.stat(ref.path).st_ino
        # We are listed in it: the path really is our cgroup, not a parse artefact.
        procs = Path(ref.path, "cgroup.procs").read_text().split()
        assert str(os.getpid()) in procs
