"""Kernel events -> the audit trail.

Every raw ring-buffer record is itemised for loss accounting (enforcer.audit.losses), so
the trail accounts for every denial; a decoded one is named (container, policy, rule) by
the daemon, offered to a learn session, and folded into the audit log unless the session
keeps it. A (container, rule) whose kernel counter settles above its itemised events gets
an audit_loss record.

The kernel folds identical repeats (enforcer_abi.h, struct fold_key): it sends one event
per fold window of an operation, and counts its repeats in the `folds` map. Each loss check
takes them (after draining the ring, so their event has arrived) and writes them as repeats
of that event (an Event whose `count` is the repeats), so the trail's counts add up to the
counters. Repeats whose event was never received (the ring was full, or it is no longer
remembered) are not itemised: the loss check accounts for them as audit_loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol

import structlog

from enforcer.audit.events import Event, EventDecoder
from enforcer.audit.losses import LossAccountant
from enforcer.audit.records import AuditFolder, AuditRecord, AuditWriter, LossRecord
from enforcer.compiler.rules import RuleRef
from enforcer.containers.model import ContainerInfo

log = structlog.get_logger(__name__)

# A counted operation goes without an event only when one of these kernel stats grows.
LOSS_STATS = ("STAT_EVENTS_LOST", "STAT_SCRATCH_BUSY", "STAT_UNRESOLVED")

# (cgroup id, rule id, the event's ruleset or None) -> the container and what decided
Namer = Callable[[int, int, int | None], tuple[ContainerInfo | None, RuleRef]]

FoldKey = tuple[int, int, int]  # (cgroup id, rule id, event_hdr.fold)
# Takes (deletes) the kernel's waiting repeats: (FoldKey, repeats sent as no event, boot-time
# ns of the latest)
TakeFolds = Callable[[], Iterable[tuple[FoldKey, int, int]]]
# Events remembered per fold key: the kernel keeps ABI_MAX_FOLDS keys; twice that covers
# keys the kernel evicted and made again while their events are still remembered.
FOLD_EVENTS_MAX = 16384


class Sessions(Protocol):
    """What routing needs of enforcer.learn.session.LearnSessions: None keeps an event
    (or a loss) in the session, a ref sends it to the audit log under that name."""

    def route(
        self,
        cgroup_id: int,
        ref: RuleRef,
        action: str,
        hook: str,
        target: Mapping[str, Any],
        comm: str | None,
        count: int = 1,
    ) -> RuleRef | None: ...

    def route_loss(self, cgroup_id: int, ref: RuleRef, count: int) -> RuleRef | None: ...


class AuditRouter:
    def __init__(self, writer: AuditWriter, fold_window: float, sessions: Sessions, name: Namer) -> None:
        self.writer = writer
        self.folder = AuditFolder(writer, fold_window)
        self._sessions = sessions
        self._name = name
        self._losses: LossAccountant | None = None
        self._marks: tuple[int, ...] | None = None  # LOSS_STATS at the last loss check
        self._take_folds: TakeFolds | None = None
        # the last event received of each fold key, with the container and rule it was named
        # by then (a container may be gone when its last repeats are taken)
        self._folded: dict[FoldKey, tuple[Event, ContainerInfo | None, RuleRef]] = {}
        self.fold_misses = 0  # repeats taken whose event was not received (accounted as losses)

    def use_counters(self, losses: LossAccountant, take_folds: TakeFolds | None = None) -> None:
        """Hold the trail to the kernel's counters; `take_folds` empties the folds map.
        Repeats waiting there now were counted before `losses` took its baseline (an
        earlier daemon's): they are taken and dropped, as that baseline's."""
        self._losses = losses
        self._take_folds = take_folds
        if take_folds is not None:
            for _ in take_folds():
                pass

    def unsettled(self) -> int:
        """Counted operations not yet itemised or accounted (enforcer.audit.losses)."""
        return self._losses.unsettled() if self._losses else 0

    def sink(self, decoder: EventDecoder) -> Callable[[bytes], None]:
        """The ring-buffer callback."""

        def on_raw(raw: bytes) -> None:
            event = decoder.decode(raw)
            if event is not None:
                self.received(event)
            elif self._losses is not None:
                self._losses.itemised(*decoder.identity(raw))

        return on_raw

    def received(self, event: Event) -> None:
        """A kernel event: itemised for the loss checks, then named, routed and folded."""
        if self._losses is not None:
            self._losses.itemised(event.cgroup_id, event.rule_id, event.ktime_ns, event.action, event.count)
        self.event(event)

    def event(self, event: Event | None) -> None:
        if event is None:
            return
        container, rule = self._name(event.cgroup_id, event.rule_id, event.ruleset or None)
        if self._take_folds is not None:
            self._remember(event, container, rule)
        self._route(event, container, rule)

    def _route(self, event: Event, container: ContainerInfo | None, rule: RuleRef) -> None:
        routed = self._sessions.route(
            event.cgroup_id, rule, event.action, event.hook, event.target(), event.comm, event.count
        )
        if routed is None:
            return  # seen only because the container learns: the session's, not the log's
        self.folder.add(AuditRecord(event, routed, container, event.count))

    def _remember(self, event: Event, container: ContainerInfo | None, rule: RuleRef) -> None:
        key = (event.cgroup_id, event.rule_id, event.fold)
        folded = self._folded
        if key not in folded and len(folded) >= FOLD_EVENTS_MAX:
            for old in list(folded)[: FOLD_EVENTS_MAX // 2]:  # the oldest half
                del folded[old]
        folded[key] = (event, container, rule)

    def take_folds(self) -> int:
        """Write the repeats waiting in the kernel as repeats of their keys' last events;
        returns how many operations that itemised. Call after draining the ring."""
        if self._take_folds is None:
            return 0
        taken = 0
        for key, repeats, last_ns in self._take_folds():
            known = self._folded.get(key)
            if known is None:
                self.fold_misses += repeats
                continue
            event, container, rule = known
            repeat = replace(event, ktime_ns=max(last_ns, event.ktime_ns), count=repeats)
            if self._losses is not None:
                self._losses.itemised(repeat.cgroup_id, repeat.rule_id, repeat.ktime_ns, repeat.action, repeats)
            self._route(repeat, container, rule)
            taken += repeats
        return taken

    def account_losses(self, drain: Callable[[], object], stats: Mapping[str, int]) -> int:
        """Write an audit_loss record for every settled (container, rule) whose kernel
        counter exceeds its itemised events; returns their sum. `stats` are the kernel's
        now: while none of LOSS_STATS moved, nothing was pending and no repeats were
        folded, the counters need not be read. (A storm that folds moves no stat, and a
        repeat a program added as the entry was taken is lost without one.)"""
        if self._losses is None:
            return 0
        drain()
        misses = self.fold_misses
        folded = self.take_folds() or self.fold_misses != misses
        marks = tuple(stats.get(k, 0) for k in LOSS_STATS)
        if marks == self._marks and self._losses.clear and not folded:
            return 0
        self._marks = marks
        total = 0
        for loss in self._losses.check(drain):
            container, ref = self._name(loss.cgroup_id, loss.rule_id, None)
            rule = self._sessions.route_loss(loss.cgroup_id, ref, loss.count)
            if rule is None:
                continue  # lost learning events: the learn session reports them
            log.warning(
                "denials not itemised in the audit trail (accounted as an audit_loss record)",
                policy=rule.policy,
                rule=rule.rule,
                cgroup_id=loss.cgroup_id,
                count=loss.count,
            )
            self.writer.write(LossRecord(loss, rule, container, time.clock_gettime_ns(time.CLOCK_BOOTTIME)))
            total += loss.count
        return total

    def final_losses(
        self, drain: Callable[[], object], stats: Callable[[], Mapping[str, int]], settle: float = 0.3
    ) -> None:
        """At stop: account what settles now (two checks `settle` s apart: a counter that
        stopped moving is settled by the second); say in the log what could not be."""
        drain()
        self.account_losses(drain, stats())
        time.sleep(settle)
        self.account_losses(drain, stats())
        left = self.unsettled()
        if left:
            log.warning(
                "denials still arriving at stop are not itemised or accounted in the trail",
                denials=left,
                hint="they are in the kernel counters (enforcer status)",
            )
