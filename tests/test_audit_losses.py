"""The audit trail accounts for every denial: per container and rule, sum of record counts +
audit_loss counts == the kernel's exact counter == the attempts (issue 17). Identical repeats
are folded in the kernel, so a storm of one denial costs a few events; a flood of distinct
denials that overflows the ring is accounted by audit_loss records. Real cgroup programs on
the host with a 4 KiB ring buffer (about 50 events) flooded by a process in a cgroup this
test creates, in its own network namespace (the connects are refused by the program before
any routing)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from enforcer.audit.events import EventDecoder
from enforcer.audit.losses import LossAccountant
from enforcer.audit.records import AuditWriter
from enforcer.containers.cgroups import CgroupRef, find_cgroup2_mount
from enforcer.containers.model import ContainerInfo
from enforcer.daemon import Daemon, DaemonConfig
from enforcer.kernel.build import ensure_built
from enforcer.kernel.loader import Loaded, load_cgroup, unload
from enforcer.policy.loader import PolicySet, parse_text
from enforcer.pybpf import RingBuffer

pytestmark = pytest.mark.host_bpf

POLICY = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: no-metadata}
spec:
  selector: {containerNames: [flood]}
  network:
    - {action: deny, direction: egress, protocol: tcp, cidrs: [127.0.0.99/32]}
"""
ATTEMPTS = 20_000
# `port` is a Python expression of the attempt number i: one port (identical repeats) or a
# new port each time (distinct denials, which the kernel cannot fold)
FLOOD = """
import errno, socket
denied = 0
for i in range({attempts}):
    s = socket.socket()
    try:
        s.connect(("127.0.0.99", {port}))
    except OSError as e:
        denied += e.errno == errno.EPERM
    s.close()
print(denied)
"""


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Daemon, Loaded, ContainerInfo, io.StringIO]]:
    if not os.path.ismount("/sys/fs/bpf"):
        pytest.fail("bpffs is not mounted at /sys/fs/bpf (scripts/provision mounts it)")
    pin_root = Path(f"/sys/fs/bpf/enforcer-test-losses-{os.getpid()}")
    cid = f"{os.getpid():064x}"
    cgroup = Path(find_cgroup2_mount()) / f"enforcer-test-losses-{cid}"
    cgroup.mkdir()
    loaded = load_cgroup(ensure_built(), pin_root, ring_bytes=4096)
    out = io.StringIO()
    d = None
    try:
        parsed, errors = parse_text(POLICY, "test.yaml")
        assert not errors
        d = Daemon(DaemonConfig(tmp_path, pin_root=pin_root, state_dir=tmp_path / "state"), AuditWriter(out))
        d.use_kernel(loaded, PolicySet(tuple(parsed)))
        info = ContainerInfo(
            id=cid,
            name="flood",
            image="busybox",
            labels={},
            pid=0,
            cgroup=CgroupRef(str(cgroup), os.stat(cgroup).st_ino),
        )
        d.container_started(info)
        yield d, loaded, info, out
    finally:
        if d is not None:
            d.container_stopped(cid)
        loaded.close()
        unload(pin_root)
        if pin_root.exists():
            pin_root.rmdir()
        cgroup.rmdir()


def _flood(cgroup: str, port: str) -> int:
    def enter() -> None:  # in the child, before exec: into the container's cgroup
        Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))

    run = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", FLOOD.format(attempts=ATTEMPTS, port=port)],
        preexec_fn=enter,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return int(run.stdout)


def test_a_flood_of_distinct_denials_that_overflows_the_ring_is_accounted_in_full(
    rig: tuple[Daemon, Loaded, ContainerInfo, io.StringIO],
) -> None:
    d, loaded, info, out = rig
    lost_before = d.kernel_stats()["STAT_EVENTS_LOST"]
    ring = RingBuffer(loaded.maps["events"], d.audit.sink(EventDecoder(loaded.abi)))
    stop = threading.Event()

    def consume() -> None:  # the daemon's ring-buffer thread, loss checks included
        # Nothing reads the ring until it has overflowed, so that never depends on winning
        # a race with the flood (a quiet machine's consumer kept up); then the flood goes on
        # while the daemon's loop consumes.
        while not stop.is_set() and d.kernel_stats()["STAT_EVENTS_LOST"] == lost_before:
            time.sleep(0.001)
        while not stop.is_set():
            ring.poll(50)
            d.audit.account_losses(ring.consume, d.kernel_stats())

    t = threading.Thread(target=consume)
    t.start()
    try:
        denied = _flood(info.cgroup.path, port="1 + i")
    finally:
        stop.set()
        t.join()
    d.audit.final_losses(ring.consume, d.kernel_stats)
    d.audit.folder.flush_all()
    ring.close()

    assert denied == ATTEMPTS  # every connect was refused by the program
    counters = d._maps.counters(info.cgroup.id) if d._maps else {}
    assert sum(counters.values()) == ATTEMPTS
    assert d.kernel_stats()["STAT_EVENTS_LOST"] - lost_before > 0  # the ring really overflowed

    records = [json.loads(line) for line in out.getvalue().splitlines()]
    mine = [r for r in records if r["container"]["name"] == "flood"]
    itemised = sum(r["count"] for r in mine if r["hook"] == "connect")
    losses = [r for r in mine if r["hook"] == "audit_loss"]
    assert losses and all(
        (r["policy"], r["rule"], r["action"]) == ("no-metadata", "network[0]", "deny") for r in losses
    )
    print(
        f"attempts {ATTEMPTS}: itemised {itemised} in {len(mine) - len(losses)} records, "
        f"{sum(r['count'] for r in losses)} accounted in {len(losses)} audit_loss records"
    )
    assert itemised + sum(r["count"] for r in losses) == ATTEMPTS  # 0 unaccounted
    assert d.audit.unsettled() == 0
    assert d.snapshot().audit.losses == sum(r["count"] for r in losses)  # enforcer status shows it


def test_a_storm_of_one_denial_costs_the_ring_a_few_events_and_the_counts_add_up(
    rig: tuple[Daemon, Loaded, ContainerInfo, io.StringIO],
) -> None:
    d, loaded, info, out = rig
    lost_before = d.kernel_stats()["STAT_EVENTS_LOST"]
    sink = d.audit.sink(EventDecoder(loaded.abi))
    received: list[bytes] = []

    def on_raw(raw: bytes) -> None:
        received.append(raw)
        sink(raw)

    ring = RingBuffer(loaded.maps["events"], on_raw)
    stop = threading.Event()
    # the daemon's own ring-buffer loop: loss checks (which take the waiting repeats) each
    # loss_interval, the final ones when it stops
    t = threading.Thread(target=d._poll, args=(ring, stop))
    t.start()
    started = time.monotonic()
    try:
        denied = _flood(info.cgroup.path, port="80")
        time.sleep(d._config.loss_interval)  # a check after the storm
    finally:
        stop.set()
        t.join()
    seconds = time.monotonic() - started
    d.audit.folder.flush_all()
    ring.close()

    assert denied == ATTEMPTS
    assert sum((d._maps.counters(info.cgroup.id) if d._maps else {}).values()) == ATTEMPTS
    assert d.kernel_stats()["STAT_EVENTS_LOST"] == lost_before  # a 4 KiB ring was enough
    # one event per fold window, plus one per loss check that took the waiting repeats
    assert len(received) <= 2 * (seconds / d._config.fold_window + seconds / d._config.loss_interval) + 4
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    mine = [r for r in records if r["container"]["name"] == "flood"]
    assert {(r["hook"], r["target"]["port"]) for r in mine} == {("connect", 80)}  # no audit_loss
    print(f"attempts {ATTEMPTS} in {seconds:.1f} s: {len(received)} events, {len(mine)} records")
    assert sum(r["count"] for r in mine) == ATTEMPTS
    assert d.audit.unsettled() == 0 and d.audit.fold_misses == 0


def test_only_settled_differences_are_accounted() -> None:
    """A counter still moving, or an event still in flight, is never written off as lost."""
    counters = {(1, 7): 0}
    acc = LossAccountant(lambda: dict(counters), clock_ns=lambda: 0)
    counters[(1, 7)] = 5
    assert acc.check(lambda: None) == []  # first sight: not settled
    assert not acc.clear  # ... and ahead of its events: the daemon checks again
    acc.itemised(1, 7, 10, "deny", count=3)  # arrives with the drain
    [loss] = acc.check(lambda: None)  # unchanged since the last check: settled
    assert (loss.count, loss.counted, loss.itemised, loss.action) == (2, 5, 3, "deny")
    counters[(1, 7)] = 9
    assert acc.check(lambda: acc.itemised(1, 7, 11, "deny", count=4)) == []  # moving
    assert acc.check(lambda: None) == []  # settled, and every one of them itemised
    assert acc.unsettled() == 0 and acc.clear


def test_events_counted_after_the_read_never_hide_an_earlier_loss() -> None:
    """The drain runs after the counters are read, so it can bring events the read did not
    count yet; a moving counter is checked again however complete its events look."""
    counters = {(1, 7): 10}  # 10 counted, 2 of them lost from the ring
    acc = LossAccountant(lambda: dict(counters), clock_ns=lambda: 0)
    counters[(1, 7)] = 20

    def drain() -> None:  # 8 of the first 10 arrive, and 12 counted just after the read
        acc.itemised(1, 7, 10, "deny", count=8 + 12)
        counters[(1, 7)] = 32

    assert acc.check(drain) == [] and not acc.clear  # moving: never clear
    assert acc.check(lambda: None) == []  # 20 -> 32: still moving
    [loss] = acc.check(lambda: None)  # settled at 32
    # mypy keeps the `not acc.clear` narrowing above across acc.check(), which sets it again
    assert loss.count == 2 and acc.clear and acc.unsettled() == 0  # type: ignore[unreachable]
