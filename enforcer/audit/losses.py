"""Denials the trail could not itemise, accounted in the trail itself.

The kernel counts every denial and audit exactly, per (container cgroup, rule), in the
`counters` map, before it tries to send the event. An event can still miss the trail: the
ring buffer was full (STAT_EVENTS_LOST), or the program denied without an event (no scratch
slot: STAT_SCRATCH_BUSY; an unreadable mapping). For each (cgroup, rule) the accountant
compares the kernel's counter with the events the daemon received, and writes the
difference as one `audit_loss` record, so that

    sum of `count` over the records + sum of `count` over audit_loss == the kernel counter.

When a difference is certain: the counter is counted before the event is sent, so an event
may be "in flight" for a moment. A (cgroup, rule) is settled when its counter did not move
between two checks and the ring buffer was drained after the second read: every event
counted by then was sent (or lost) long before, and every sent one has been received. Only
settled differences are written; a storm that never pauses is accounted when it pauses or
when the daemon stops (the last check). Counters that existed before this daemon started are
its baseline (an earlier daemon accounted for those), as are events stamped before then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

Key = tuple[int, int]  # (cgroup id, rule id)


@dataclass(frozen=True)
class Loss:
    cgroup_id: int
    rule_id: int
    count: int  # denials/audits the kernel counted that no record itemises
    counted: int  # the kernel counter since this daemon started
    itemised: int  # events received for it (the sum of their records' counts)
    action: str  # of the rule's events received ("deny" | "audit"), "unknown" if none came


class LossAccountant:
    def __init__(self, counters: Callable[[], Mapping[Key, int]], clock_ns: Callable[[], int] | None = None) -> None:
        self._counters = counters
        self._clock_ns = clock_ns or (lambda: time.clock_gettime_ns(time.CLOCK_BOOTTIME))
        self._lock = threading.Lock()
        self._base: dict[Key, int] = dict(counters())
        self._since_ns = self._clock_ns()
        self._seen: dict[Key, int] = {}
        self._accounted: dict[Key, int] = {}
        self._last: dict[Key, int] = {}
        self._actions: dict[Key, str] = {}
        self.clear = True  # at the last check every counter was settled (and its loss accounted)

    def itemised(self, cgroup_id: int, rule_id: int, ktime_ns: int, action: str = "unknown", count: int = 1) -> None:
        """An event arrived (call for every event, decoded or not)."""
        if ktime_ns < self._since_ns:
            return  # counted before our baseline: part of it
        key = (cgroup_id, rule_id)
        with self._lock:
            self._seen[key] = self._seen.get(key, 0) + count
            self._actions[key] = action

    def check(self, drain: Callable[[], object]) -> list[Loss]:
        """Read the counters, drain the ring buffer (`drain` delivers every queued event to
        itemised()), and return the settled differences not yet accounted."""
        now = dict(self._counters())
        drain()
        out: list[Loss] = []
        clear = True
        with self._lock:
            for key in [k for k in self._base if k not in now]:
                self._forget(key)  # the container went away: its counters were removed
            for key, total in now.items():
                if self._last.get(key) != total:  # still moving (or first seen): not settled yet
                    # Not clear even if its events look complete: the drain ran after the
                    # counter was read, so events counted later can hide an earlier loss.
                    clear = False
                    continue
                counted = total - self._base.get(key, 0)
                if counted < 0:  # the counter was reset under us: start again from here
                    self._forget(key)
                    self._base[key] = total
                    continue
                seen = self._seen.get(key, 0)
                gap = counted - seen - self._accounted.get(key, 0)
                if gap > 0:
                    self._accounted[key] = self._accounted.get(key, 0) + gap
                    out.append(Loss(key[0], key[1], gap, counted, seen, self._actions.get(key, "unknown")))
            self._last = now
            self.clear = clear
        return out

    def unsettled(self) -> int:
        """Counted but neither itemised nor accounted yet (moving counters, in-flight events)."""
        now = self._counters()
        with self._lock:
            return sum(
                max(0, v - self._base.get(k, 0) - self._seen.get(k, 0) - self._accounted.get(k, 0))
                for k, v in now.items()
            )

    def _forget(self, key: Key) -> None:
        for d in (self._base, self._seen, self._accounted, self._last, self._actions):
            d.pop(key, None)
