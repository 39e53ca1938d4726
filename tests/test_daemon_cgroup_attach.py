"""A cgroup program attach that fails midway (EPERM on the fifth program) leaves
nothing attached or pinned, no ruleset in the maps, and the container shown NOT ENFORCED;
the retry then attaches all of them (issue 13 item 4). Real cgroup programs on a cgroup v2
directory this test creates on the host (empty: nothing else is judged), removed at the end."""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from enforcer.audit.records import AuditWriter
from enforcer.containers.cgroups import CgroupRef, find_cgroup2_mount
from enforcer.containers.model import ContainerInfo
from enforcer.daemon import Daemon, DaemonConfig
from enforcer.kernel.build import ensure_built
from enforcer.kernel.cgroup_enforcement import CGROUP_PROGRAMS, cgroup_links_dir
from enforcer.kernel.loader import Loaded, load_cgroup, unload
from enforcer.policy.loader import PolicySet, parse_text
from enforcer.pybpf import BpfError

pytestmark = pytest.mark.host_bpf

POLICY = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: no-null}
spec:
  selector: {containerNames: [web]}   # not an every-container policy: no starting entry shares it
  device:
    - {action: deny, type: char, major: 1, minor: 3}
  network:
    - {action: deny, direction: egress, protocol: tcp, cidrs: [127.0.0.99/32]}
"""


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Daemon, Loaded, ContainerInfo]]:
    if not os.path.ismount("/sys/fs/bpf"):
        pytest.fail("bpffs is not mounted at /sys/fs/bpf (scripts/provision mounts it)")
    pin_root = Path(f"/sys/fs/bpf/enforcer-test-attach-{os.getpid()}")
    cid = f"{os.getpid():064x}"
    cgroup = Path(find_cgroup2_mount()) / f"enforcer-test-{cid}"
    cgroup.mkdir()
    loaded = load_cgroup(ensure_built(), pin_root)
    try:
        parsed, errors = parse_text(POLICY, "test.yaml")
        assert not errors
        d = Daemon(DaemonConfig(tmp_path, pin_root=pin_root, state_dir=tmp_path / "state"), AuditWriter(io.StringIO()))
        d.use_kernel(loaded, PolicySet(tuple(parsed)))
        info = ContainerInfo(
            id=cid, name="web", image="busybox", labels={}, pid=0, cgroup=CgroupRef(str(cgroup), os.stat(cgroup).st_ino)
        )
        yield d, loaded, info
    finally:
        loaded.close()
        unload(pin_root)
        if pin_root.exists():
            pin_root.rmdir()
        cgroup.rmdir()


def _rules(loaded: Loaded) -> int:
    return sum(1 for name in ("dev_rules", "net4_rules", "net6_rules", "sock_rules") for _ in loaded.maps[name].keys())


def test_an_attach_refused_midway_leaves_nothing_and_the_retry_attaches_everything(
    rig: tuple[Daemon, Loaded, ContainerInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    d, loaded, info = rig
    fifth = loaded.program(CGROUP_PROGRAMS[4])

    def refused(*_a: object) -> NoReturn:
        raise BpfError(errno.EPERM, "attach cgroup program", info.cgroup.path)

    monkeypatch.setattr(fifth, "attach_cgroup", refused)
    d.container_started(info)

    links = cgroup_links_dir(d._config.pin_root, info.cgroup.id)
    assert not links.exists()  # the four attached before the failure are detached and unpinned
    assert sum(1 for _ in loaded.maps["containers"].keys()) == 0
    assert _rules(loaded) == 0  # the ruleset written for it is gone again
    [c] = d.snapshot().containers
    assert not c.enforced and "EPERM" in (c.error or "")

    monkeypatch.undo()  # the kernel allows it again
    d._clock = lambda: float("inf")  # the backoff has run out
    d.retry_failed()
    [c] = d.snapshot().containers
    assert c.enforced and c.error is None
    assert sorted(p.name for p in links.iterdir()) == sorted(CGROUP_PROGRAMS)
    assert _rules(loaded) > 0
    d.container_stopped(info.id)
    assert not links.exists()
