"""Fixtures for pybpf tests on the host kernel.

Safety rules (shared machine): programs are attached only to cgroups these fixtures create;
every fixture detaches/unpins/rmdirs at teardown even when the test failed; only processes
the tests started are touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from enforcer.pybpf import BpfObject

from .build import BuildUnavailable, build_testprog

BPFFS = "/sys/fs/bpf"


@pytest.fixture(scope="session")
def testprog_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return build_testprog(tmp_path_factory.mktemp("pybpf-build"))
    except BuildUnavailable as e:
        pytest.skip(str(e))
    except subprocess.CalledProcessError as e:
        pytest.fail(f"building testprog.bpf.o failed:\n{e.stderr}")


def open_testprog(path: Path, pin_root_path: Path | None = None) -> BpfObject:
    """Open the test object with the LSM program off (this host refuses LSM programs).

    Without pin_root_path the map declared with LIBBPF_PIN_BY_NAME is not auto-pinned
    (libbpf would otherwise pin it in the shared /sys/fs/bpf root).
    """
    obj = BpfObject(path, pin_root_path=pin_root_path)
    obj.program("lsm_file_open").autoload = False
    if pin_root_path is None:
        obj.map("pinned_by_name").set_pin_path(None)
    return obj


@pytest.fixture
def obj(testprog_path: Path) -> Iterator[BpfObject]:
    o = open_testprog(testprog_path)
    try:
        o.load()
        yield o
    finally:
        o.close()


@pytest.fixture(scope="session")
def bpffs() -> str:
    if subprocess.run(["mountpoint", "-q", BPFFS]).returncode != 0:
        subprocess.run(["mount", "-t", "bpf", "bpf", BPFFS], check=True)
    return BPFFS


@pytest.fixture
def pin_dir(bpffs: str) -> Iterator[Path]:
    d = Path(bpffs) / f"pybpf-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    try:
        yield d
    finally:
        for p in sorted(d.rglob("*"), reverse=True):  # pins are files; subdirs are dirs
            (p.rmdir if p.is_dir() else p.unlink)()
        d.rmdir()


def cgroup2_root() -> str:
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "cgroup2":
                return parts[1]
    raise RuntimeError("no cgroup2 mount in /proc/mounts")


@dataclass(frozen=True)
class Cgroup:
    path: str

    @property
    def id(self) -> int:
        # kernfs inode number == bpf_get_current_cgroup_id() on 64-bit kernels
        return os.stat(self.path).st_ino

    def run_python(self, code: str, timeout: float = 30) -> dict[str, object]:
        """Run `code` in a fresh python moved into this cgroup before it starts; the code
        prints one JSON object."""
        return run_python(code, cgroup=self.path, timeout=timeout)


def run_python(code: str, cgroup: str | None = None, timeout: float = 30) -> dict[str, object]:
    argv = [sys.executable, "-c", code]
    if cgroup:
        # The shell joins the cgroup, then exec()s python: the whole process runs inside.
        argv = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, *argv]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"child failed ({p.returncode}): {p.stderr[-2000:]}")
    result: dict[str, object] = json.loads(p.stdout)
    return result


@pytest.fixture
def cgroup() -> Iterator[Cgroup]:
    root = cgroup2_root()
    path = os.path.join(root, f"pybpf-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    try:
        yield Cgroup(path)
    finally:
        # Children exit before we get here; if one lingers it is ours: move it out first.
        with open(os.path.join(path, "cgroup.procs")) as f:
            left = list(f.read().split())
        for pid in left:
            with open(os.path.join(root, "cgroup.procs"), "w") as f:
                f.write(pid)
        os.rmdir(path)


CONNECT_PROBE = r"""
import errno, json, socket
def connect(addr, port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((addr, port))
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
print(json.dumps({"denied_target": connect("127.0.0.2", 9), "other_port": connect("127.0.0.2", 10)}))
"""

RAW_SOCKET_PROBE = r"""
import errno, json, socket
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    r = "ok"
except OSError as e:
    r = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps({"raw": r}))
"""
