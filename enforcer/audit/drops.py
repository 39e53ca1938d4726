"""Denials are never dropped silently: watch the kernel's count of events it could not put
in the ring buffer (STAT_EVENTS_LOST) and warn in the daemon's log when it grows.

The operation itself was still decided and counted per rule in the kernel; only its audit
record is missing. `enforcer status` and the metrics show the running total.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger(__name__)

LOST = "STAT_EVENTS_LOST"


class DropWatch:
    def __init__(self, stats: Callable[[], Mapping[str, int]], interval: float = 5.0) -> None:
        self._stats = stats
        self._interval = interval
        self._seen: int | None = None

    def check(self) -> int:
        """Events lost since the last check (the first check only takes the baseline:
        pinned maps outlive daemons, so earlier losses were reported by an earlier run)."""
        total = int(self._stats().get(LOST, 0))
        if self._seen is None:
            self._seen = total
            if total:
                log.warning("audit records were dropped before this daemon started", dropped_total=total)
            return 0
        delta = total - self._seen
        self._seen = total
        if delta > 0:
            log.warning(
                "audit records dropped: the kernel ring buffer was full",
                dropped=delta,
                dropped_total=total,
                hint="the operations were still enforced and counted (enforcer status); "
                "a container is flooding denials, or the daemon is starved of CPU",
            )
        return max(delta, 0)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            try:
                self.check()
            except Exception:  # a failed look at the stats must not end the watch
                log.exception("cannot read kernel stats")
