"""Repeats the kernel folded: an event stands for `count` operations, and the repeats no
event carried yet are taken from the folds map at each loss check and written as repeats of
their event, so record counts + audit_loss counts == the kernel's counter (issue 17)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from enforcer.audit.events import FileEvent
from enforcer.audit.losses import LossAccountant
from enforcer.audit.records import AuditWriter
from enforcer.audit.routing import AuditRouter, FoldKey
from enforcer.compiler.rules import RuleRef
from enforcer.containers.cgroups import CgroupRef
from enforcer.containers.model import ContainerInfo

WEB = ContainerInfo(
    id="e" * 64, name="web", image="nginx:1.25", labels={}, pid=10, cgroup=CgroupRef("/sys/fs/cgroup/docker/x", 77)
)
RULE = RuleRef("protect-credentials", "file[0]")
SHADOW = 0xABC  # the kernel's fold hash of the /etc/shadow read


class Everyone:
    """No learn session: every event and loss goes to the log under its own name."""

    def route(
        self,
        cgroup_id: int,
        ref: RuleRef,
        action: str,
        hook: str,
        target: Mapping[str, Any],
        comm: str | None,
        count: int = 1,
    ) -> RuleRef | None:
        return ref

    def route_loss(self, cgroup_id: int, ref: RuleRef, count: int) -> RuleRef | None:
        return ref


class Kernel:
    def __init__(self) -> None:
        self.counters: dict[tuple[int, int], int] = {}
        self.waiting: dict[FoldKey, int] = {}
        self.last_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    def deny(self, n: int) -> None:
        self.counters[(77, 1)] = self.counters.get((77, 1), 0) + n

    def take(self) -> Iterable[tuple[FoldKey, int, int]]:
        taken, self.waiting = self.waiting, {}
        return [(key, n, self.last_ns) for key, n in taken.items()]


def _event(count: int, fold: int = SHADOW) -> FileEvent:
    return FileEvent(
        "file_open",
        "deny",
        77,
        1234,
        0,
        "cat",
        1,
        time.clock_gettime_ns(time.CLOCK_BOOTTIME),
        "/etc/shadow",
        frozenset({"read"}),
        False,
        count=count,
        fold=fold,
    )


def _rig() -> tuple[AuditRouter, Kernel, io.StringIO]:
    out = io.StringIO()
    kernel = Kernel()
    router = AuditRouter(AuditWriter(out), 1.0, Everyone(), lambda _cg, _rule, _ruleset: (WEB, RULE))
    router.use_counters(LossAccountant(lambda: dict(kernel.counters), clock_ns=lambda: 0), kernel.take)
    return router, kernel, out


def _check_twice(router: AuditRouter) -> None:
    """Two loss checks: a counter that did not move between them is settled."""
    for _ in range(2):
        router.account_losses(lambda: None, {})
    router.folder.flush_all()


def _records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_waiting_repeats_are_written_as_repeats_of_their_event() -> None:
    router, kernel, out = _rig()
    kernel.deny(10)  # 10 reads of /etc/shadow: one event carrying 3, 7 repeats waiting
    router.received(_event(count=3))
    kernel.waiting[(77, 1, SHADOW)] = 7
    kernel.last_ns += 2_000_000_000  # the latest repeat, 2 s after the event
    _check_twice(router)
    records = _records(out)
    assert [(r["hook"], r["target"]["path"], r["count"]) for r in records] == [
        ("file_open", "/etc/shadow", 3),
        ("file_open", "/etc/shadow", 7),
    ]
    assert records[1]["timestamp"] > records[0]["timestamp"]  # the folded record: the latest repeat's time
    assert router.unsettled() == 0 and router.fold_misses == 0


def test_repeats_whose_event_never_arrived_are_accounted_as_an_audit_loss() -> None:
    router, kernel, out = _rig()
    kernel.deny(5)  # the event was lost in a full ring; its 4 repeats still wait
    kernel.waiting[(77, 1, 0xDEF)] = 4
    _check_twice(router)
    assert router.fold_misses == 4
    assert [(r["hook"], r["count"]) for r in _records(out)] == [("audit_loss", 5)]
    assert router.unsettled() == 0


def test_repeats_left_by_an_earlier_daemon_are_its_baseline_not_this_trail() -> None:
    out = io.StringIO()
    kernel = Kernel()
    kernel.deny(6)
    kernel.waiting[(77, 1, SHADOW)] = 5  # counted before this daemon started
    router = AuditRouter(AuditWriter(out), 1.0, Everyone(), lambda _cg, _rule, _ruleset: (WEB, RULE))
    router.use_counters(LossAccountant(lambda: dict(kernel.counters), clock_ns=lambda: 0), kernel.take)
    assert kernel.waiting == {}  # taken at start, and dropped
    _check_twice(router)
    assert _records(out) == []


def test_a_repeat_lost_as_its_entry_was_taken_is_accounted_though_no_kernel_stat_moved() -> None:
    """A program can add a repeat to the entry the daemon is taking: it is counted but never
    itemised, and no ring-buffer or scratch stat says so. Folding alone must wake the check."""
    router, kernel, out = _rig()
    _check_twice(router)  # a quiet start: nothing moved, nothing pending
    kernel.deny(10)
    router.received(_event(count=1))
    kernel.waiting[(77, 1, SHADOW)] = 8  # the tenth was added as the entry went
    _check_twice(router)
    records = sorted((r["hook"], r["count"]) for r in _records(out))
    assert records == [("audit_loss", 1), ("file_open", 1), ("file_open", 8)]
    assert router.unsettled() == 0
