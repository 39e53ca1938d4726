"""`enforcer doctor` where BPF-LSM works (the VM, or a native LSM host): the probe succeeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lsm

ROOT = Path(__file__).resolve().parents[2]


def test_doctor_lsm_checks_pass_in_vm(tmp_path: Path) -> None:
    before = set(os.listdir("/sys/fs/bpf"))
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    proc = subprocess.run(
        [sys.executable, "-m", "enforcer", "doctor", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    doc = json.loads(proc.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["LSM program loads"]["status"] == "OK", checks["LSM program loads"]
    assert checks["bpf in active LSM list"]["status"] == "OK", checks["bpf in active LSM list"]
    assert checks["bpffs"]["status"] == "OK"
    assert checks["decision cache"]["status"] == "OK", checks["decision cache"]  # Debian kernels show the seqlocks
    assert doc["file_enforcement"] is True
    assert checks["Docker"]["status"] == "FAIL"  # no dockerd here: nothing to track, exit 1
    assert proc.returncode == 1
    assert set(os.listdir("/sys/fs/bpf")) == before  # nothing left pinned
