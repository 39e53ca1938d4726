"""The test rig itself: the VM that runs the `lsm` suite, and scripts/vm-run.

Two halves:

* `lsm`-marked tests run where the LSM suite runs (inside the VM started by scripts/test, or
  natively with ENFORCER_LSM_NATIVE=1) and check that the guest offers what the enforcer
  needs: BPF-LSM active, bpffs, securityfs, pure cgroup v2, a writable /tmp and checkout.
  They are also the first members of the LSM suite, so it is never empty.
* Host-side tests boot the VM through scripts/vm-run (two boots, ~10-20 s each) and check
  that exit codes and both output streams come back. They are not generated when
  ENFORCER_LSM_NATIVE=1: such a host is provisioned without the VM (`--no-vm`).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VM_RUN = REPO / "scripts" / "vm-run"
NATIVE = os.environ.get("ENFORCER_LSM_NATIVE") == "1"


def _mounts() -> dict[str, str]:
    """Mount point -> filesystem type, from /proc/self/mounts (last mount wins)."""
    table: dict[str, str] = {}
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3:
            table[fields[1].replace("\\040", " ")] = fields[2]
    return table


def _active_lsms() -> list[str]:
    return Path("/sys/kernel/security/lsm").read_text().strip().split(",")


# ------------------------------------------------------------------ inside the VM (lsm)


@pytest.mark.lsm
def test_lsm_suite_runs_in_the_vm_or_on_a_declared_native_host() -> None:
    if NATIVE:
        assert os.environ.get("VM_GUEST") != "1"
    else:
        assert os.environ.get("VM_GUEST") == "1", (
            "the lsm suite runs inside scripts/vm-run (VM_GUEST=1) unless ENFORCER_LSM_NATIVE=1"
        )


@pytest.mark.lsm
def test_bpf_is_an_active_lsm() -> None:
    assert "bpf" in _active_lsms()


@pytest.mark.lsm
def test_bpffs_mounted() -> None:
    assert _mounts().get("/sys/fs/bpf") == "bpf"


@pytest.mark.lsm
def test_pure_cgroup_v2_mounted() -> None:
    assert _mounts().get("/sys/fs/cgroup") == "cgroup2"
    assert Path("/sys/fs/cgroup/cgroup.controllers").exists()


@pytest.mark.lsm
def test_tmp_writable() -> None:
    probe = Path("/tmp") / f"vm-rig-{uuid.uuid4().hex}"
    probe.write_text("ok")
    try:
        assert probe.read_text() == "ok"
    finally:
        probe.unlink()


@pytest.mark.lsm
def test_checkout_writable() -> None:
    """Tests in the VM can leave results in the checkout (it is shared read-write)."""
    probe = REPO / f".vm-rig-{uuid.uuid4().hex}"
    probe.write_text("ok")
    try:
        assert probe.read_text() == "ok"
    finally:
        probe.unlink()


# --------------------------------------------------------------- on the host (boots VMs)

if not NATIVE:

    def _vm_run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VM_RUN), "--timeout", "300", "--", *cmd],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=360,
            check=False,
        )

    def test_vm_run_propagates_exit_code_and_keeps_streams_apart() -> None:
        res = _vm_run("sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7")
        assert res.returncode == 7, res.stderr
        assert res.stdout == "to-stdout\n"
        assert "to-stderr" in res.stderr
        assert "to-stdout" not in res.stderr

    def test_vm_run_guest_has_bpf_lsm_and_environment() -> None:
        res = _vm_run("sh", "-c", 'cat /sys/kernel/security/lsm; echo; echo "$VM_GUEST"; pwd')
        assert res.returncode == 0, res.stderr
        lsms, guest, cwd = res.stdout.splitlines()[:3]
        assert "bpf" in lsms.split(",")
        assert guest == "1"
        assert Path(cwd).resolve() == REPO
