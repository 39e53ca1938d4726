"""Kernel events -> the SPEC's JSON audit records, one per line, identical repeats folded.

Folding: the first event of a kind is written at once (an operator tailing the log sees a
denial immediately). Identical repeats (Event.fold_key) within the next `window` seconds
are counted and written as one record with `count` = how many, when the window closes.
The sum of `count` over records equals the number of events received: nothing is hidden.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any, Protocol

import structlog

from enforcer.audit.events import Event
from enforcer.compiler.rules import RuleRef
from enforcer.containers.model import ContainerInfo

log = structlog.get_logger(__name__)

UNRESOLVED = RuleRef("enforcer", "unresolved-path")


def boot_to_wall(ktime_ns: int) -> float:
    """bpf_ktime_get_boot_ns() -> Unix time (both clocks read now, so drift is moot)."""
    return time.time() - (time.clock_gettime_ns(time.CLOCK_BOOTTIME) - ktime_ns) / 1e9


def _timestamp(ktime_ns: int) -> str:
    wall = datetime.fromtimestamp(boot_to_wall(ktime_ns), tz=timezone.utc)
    return wall.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class AuditRecord:
    event: Event  # the last of the folded events (its time and pid are reported)
    rule: RuleRef
    container: ContainerInfo | None
    count: int = 1

    def to_json(self) -> dict[str, Any]:
        e = self.event
        record: dict[str, Any] = {"timestamp": _timestamp(e.ktime_ns), "hook": e.hook, "action": e.action}
        if e.action == "deny":
            record["errno"] = "EPERM"
        c = self.container
        record |= {
            "policy": self.rule.policy,
            "rule": self.rule.rule,
            "container": (
                {"id": c.id, "name": c.name, "image": c.image}
                if c else {"id": None, "name": None, "image": None, "cgroup_id": e.cgroup_id}
            ),
            "process": {"pid": e.pid, "comm": e.comm, "uid": e.uid},
            "target": e.target(),
            "count": self.count,
        }
        return record


class TextSink(Protocol):
    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class AuditWriter:
    """Writes records as JSON lines; thread-safe, flushed per record so tail -f sees them.

    A record that cannot be written (disk full, closed pipe) is counted in `write_errors`
    and logged, never dropped silently; `enforcer status` and the metrics report it.
    """

    def __init__(self, out: TextSink | IO[str], name: str | None = None) -> None:
        self._out = out
        self._lock = threading.Lock()
        self.name = name or _sink_name(out)
        self.records = 0
        self.events = 0  # sum of counts
        self.write_errors = 0  # records lost to write failures
        self.events_lost = 0  # sum of their counts

    def write(self, record: AuditRecord) -> None:
        line = json.dumps(record.to_json(), separators=(",", ":"))
        with self._lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (OSError, ValueError) as exc:  # ValueError: write to a closed file
                self.write_errors += 1
                self.events_lost += record.count
                log.error("audit record not written", sink=self.name, error=str(exc),
                          record=line, write_errors=self.write_errors)  # fmt: skip
                return
            self.records += 1
            self.events += record.count


def _sink_name(out: object) -> str:
    name = getattr(out, "name", None)
    return "-" if name in (None, "<stdout>") else str(name)


@dataclass
class _Pending:
    record: AuditRecord
    until: float  # monotonic end of the fold window
    repeats: int = 0  # events since the record written at the window's start


class AuditFolder:
    """Folds identical repeats within `window` seconds; call flush_due() periodically."""

    def __init__(self, writer: AuditWriter, window: float = 1.0) -> None:
        self._writer = writer
        self._window = window
        self._pending: dict[tuple[Any, ...], _Pending] = {}
        self._lock = threading.Lock()

    def add(self, record: AuditRecord, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        key = (record.event.fold_key(), record.rule, record.container.id if record.container else None)
        with self._lock:
            pending = self._pending.get(key)
            if pending is not None and now < pending.until:
                pending.repeats += record.count
                pending.record = record
                return
            if pending is not None:
                self._emit(pending)
            self._pending[key] = _Pending(record, now + self._window)
        self._writer.write(record)

    def flush_due(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in [k for k, p in self._pending.items() if p.until <= now]:
                self._emit(self._pending.pop(key))

    def flush_all(self) -> None:
        with self._lock:
            for pending in self._pending.values():
                self._emit(pending)
            self._pending.clear()

    def _emit(self, pending: _Pending) -> None:
        if pending.repeats:
            r = pending.record
            self._writer.write(AuditRecord(r.event, r.rule, r.container, pending.repeats))
