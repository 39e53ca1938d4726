"""`enforcer doctor`: unit tests of the checks, and the real command on this host (which
lists bpf as an LSM but refuses BPF-LSM programs)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from enforcer import doctor
from enforcer.containers.tracker import docker_base_url
from enforcer.doctor import FAIL, OK, WARN, Check
from enforcer.pybpf import BpfError

ROOT = Path(__file__).resolve().parent.parent


# ----- pure checks ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("6.1.0-27-amd64", (6, 1)),
        ("6.18.44-fc-v669", (6, 18)),
        ("5.17.0", (5, 17)),
        ("4.19.0-rc1", (4, 19)),
        ("weird", None),
    ],
)
def test_parse_kernel_version(release: str, expected: tuple[int, int] | None) -> None:
    assert doctor.parse_kernel_version(release) == expected


def test_check_kernel() -> None:
    assert doctor.check_kernel("6.1.0-27-amd64").status == OK
    assert doctor.check_kernel("5.17.3").status == OK
    old = doctor.check_kernel("5.15.0-91-generic")
    assert old.status == FAIL and "5.17" in old.finding and "bpf_loop" in old.finding and old.fix
    assert doctor.check_kernel("garbage").status == WARN


def test_parse_lsm_list() -> None:
    assert doctor.parse_lsm_list("lockdown,capability,landlock,bpf\n") == ["lockdown", "capability", "landlock", "bpf"]
    assert doctor.parse_lsm_list("") == []


def test_check_lsm_list(tmp_path: Path) -> None:
    f = tmp_path / "lsm"
    f.write_text("capability,apparmor,bpf")
    assert doctor.check_lsm_list(f).status == OK
    f.write_text("lockdown,capability,yama,apparmor")
    c = doctor.check_lsm_list(f)
    assert c.status == FAIL and c.fix and "lsm=lockdown,capability,yama,apparmor,bpf" in c.fix
    missing = doctor.check_lsm_list(tmp_path / "absent")
    assert missing.status == WARN and "securityfs" in missing.finding
    assert missing.fix and "mount -t securityfs securityfs /sys/kernel/security" in missing.fix


def test_the_decision_cache_check_warns_and_says_what_kernel_it_needs(tmp_path: Path) -> None:
    f = tmp_path / "kallsyms"
    f.write_text("ffffffff82a0b040 D rename_lock\nffffffff82a0c080 D mount_lock\n")
    assert doctor.check_open_cache(f).status == OK
    f.write_text("ffffffff82a0b040 D rename_lock\n")
    c = doctor.check_open_cache(f)
    assert c.status == WARN and "mount_lock not in" in c.finding and "every open is walked" in c.finding
    assert c.fix and "CONFIG_KALLSYMS_ALL=y" in c.fix


def test_check_btf(tmp_path: Path) -> None:
    f = tmp_path / "vmlinux"
    assert doctor.check_btf(f).status == FAIL
    f.write_bytes(b"\x9f\xeb")
    assert doctor.check_btf(f).status == OK


def test_check_bpffs() -> None:
    assert doctor.check_bpffs([("/sys/fs/bpf", "bpf")]).status == OK
    c = doctor.check_bpffs([("/sys/fs/bpf", "sysfs"), ("/proc", "proc")])
    assert c.status == FAIL and c.fix and "mount -t bpf bpf /sys/fs/bpf" in c.fix


def _proc(tmp_path: Path, mounts: str) -> str:
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mounts").write_text(mounts)
    return str(tmp_path)


def test_check_cgroup2_layouts(tmp_path: Path) -> None:
    unified = tmp_path / "u"
    unified.mkdir()
    assert doctor.check_cgroup2(_proc(unified, "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n")).status == OK
    hybrid = tmp_path / "h"
    hybrid.mkdir()
    c = doctor.check_cgroup2(
        _proc(hybrid, "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n")
    )
    assert c.status == WARN and "hybrid" in c.finding and "/sys/fs/cgroup/unified" in c.finding
    legacy = tmp_path / "l"
    legacy.mkdir()
    c = doctor.check_cgroup2(_proc(legacy, "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"))
    assert c.status == FAIL and c.fix and "unified_cgroup_hierarchy" in c.fix


def test_check_lsm_load_explains_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)

    def refuse(path: Path, bpffs_ok: bool) -> None:
        raise BpfError(errno.EPERM, "load BPF object", str(path))

    c = doctor.check_lsm_load(Path("/x.o"), probe=refuse)
    assert c.status == FAIL and "refuses BPF-LSM" in c.finding and "EPERM" in c.finding
    assert c.fix and "scripts/vm-run -- enforcer run" in c.fix and "lsm=" in c.fix
    assert doctor.check_lsm_load(Path("/x.o"), probe=lambda p, b: None).status == OK
    assert doctor.check_lsm_load(None).status == FAIL


def test_check_docker_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/env.sock")
    assert docker_base_url(None) == f"unix://{tmp_path}/env.sock"
    assert docker_base_url("tcp://1.2.3.4:2375") == "tcp://1.2.3.4:2375"
    c = doctor.check_docker(f"unix://{tmp_path}/nothing.sock", timeout=1)
    assert c.status == FAIL and f"{tmp_path}/nothing.sock" in c.finding and c.fix
    assert "--docker-host" in c.fix


def test_without_the_runtime_wrapper_doctor_warns_of_the_start_window_and_says_how_to_close_it() -> None:
    plain = doctor.runtime_check_from("runc")
    assert plain.status == WARN
    assert "default runtime is runc" in plain.finding and "start window" in plain.finding
    assert "policies selecting every container hold from the first instruction" in plain.finding
    assert plain.fix and "enforcer install-runtime" in plain.fix
    assert doctor.runtime_check_from(None).status == WARN
    assert doctor.runtime_check_from("enforcer").status == OK
    assert doctor.exit_code([plain]) == 0  # a warning, not a failure: enforcement still runs


def test_summary_and_exit_code() -> None:
    good = [Check(n, OK, "fine") for n in doctor.ENFORCEMENT_CHECKS] + [Check("Docker", OK, "up")]
    assert doctor.file_enforcement_possible(good) and doctor.exit_code(good) == 0
    assert "possible" in doctor.summary(good) and "NOT" not in doctor.summary(good)
    hybrid = [*good[:-2], Check("cgroup2", WARN, "hybrid"), good[-1]]
    assert doctor.exit_code(hybrid) == 0
    no_docker = [*good[:-1], Check("Docker", FAIL, "down", "start it")]
    assert doctor.file_enforcement_possible(no_docker) and doctor.exit_code(no_docker) == 1
    no_lsm = [Check("LSM program loads", FAIL, "EPERM", "vm"), *good[1:]]
    assert not doctor.file_enforcement_possible(no_lsm) and doctor.exit_code(no_lsm) == 1
    assert "NOT possible" in doctor.summary(no_lsm)
    assert Check("x", FAIL, "bad", "do y").lines() == ["FAIL  x: bad", "    fix: do y"]


# ----- the real command on this host ---------------------------------------------------------
def _pins() -> set[str]:
    return {p.name for p in Path("/sys/fs/bpf").glob("enforcer-doctor-*")}


@pytest.mark.host_bpf
def test_doctor_on_this_host(tmp_path: Path) -> None:
    before = _pins()
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    proc = subprocess.run(
        [sys.executable, "-m", "enforcer", "doctor", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert [c["name"] for c in doc["checks"]] == [
        "kernel version",
        "BTF",
        "BPF objects",
        "bpf in active LSM list",
        "decision cache",
        "LSM program loads",
        "cgroup programs load",
        "bpffs",
        "cgroup2",
        "Docker",
    ]
    assert all(set(c) == {"name", "status", "finding", "fix"} for c in doc["checks"])
    load = checks["LSM program loads"]
    assert load["status"] == FAIL, load
    assert "scripts/vm-run -- enforcer run" in load["fix"]
    assert checks["BPF objects"]["status"] == OK
    assert checks["decision cache"]["status"] in (OK, WARN)  # a warning never fails doctor
    assert checks["Docker"]["status"] == FAIL
    assert doc["file_enforcement"] is False
    # ... but the cgroup programs load here: device, network and socket rules can be enforced
    assert checks["cgroup programs load"]["status"] == OK
    assert doc["cgroup_enforcement"] is True
    assert _pins() == before  # the probe's private pin root is gone


@pytest.mark.host_bpf
def test_doctor_text_output(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    proc = subprocess.run(
        [sys.executable, "-m", "enforcer", "doctor"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert any(ln.startswith("FAIL  LSM program loads: ") for ln in lines)
    assert all(ln.split()[0] in {"OK", "WARN", "FAIL", "fix:", "file/exec", "device/network/socket"} for ln in lines)
    assert lines[-2].startswith("file/exec enforcement: NOT possible")
    assert lines[-1].startswith("device/network/socket enforcement: possible; `enforcer run --allow-missing-lsm`")
    assert "Traceback" not in proc.stderr
