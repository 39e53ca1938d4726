"""Kernel events -> the SPEC's JSON audit records, one per line, identical repeats folded.

Folding: the first event of a kind is written at once (an operator tailing the log sees a
denial immediately). Identical repeats (Event.fold_key) within the next `window` seconds
are counted and written as one record with `count` = how many, when the window closes.
The sum of `count` over records equals the number of events received: nothing is hidden.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Protocol

import orjson
import structlog

from enforcer.audit.events import Event
from enforcer.audit.losses import Loss
from enforcer.compiler.rules import RuleRef
from enforcer.containers.model import ContainerInfo

log = structlog.get_logger(__name__)

UNRESOLVED = RuleRef("enforcer", "unresolved-path")


def boot_to_wall(ktime_ns: int) -> float:
    """bpf_ktime_get_boot_ns() -> Unix time (both clocks read now, so drift is moot)."""
    return time.time() - (time.clock_gettime_ns(time.CLOCK_BOOTTIME) - ktime_ns) / 1e9


@functools.lru_cache(maxsize=64)
def _second(sec: int) -> str:
    return datetime.fromtimestamp(sec, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _timestamp(ktime_ns: int) -> str:
    """RFC 3339 UTC with microseconds; the date part is formatted once per second."""
    us = round(boot_to_wall(ktime_ns) * 1_000_000)
    sec, frac = divmod(us, 1_000_000)
    return f"{_second(sec)}.{frac:06d}Z"


def encode(record: dict[str, Any]) -> str:
    """One JSON line's text (compact, ASCII as json.dumps writes it). orjson is ~10x faster
    than json; a line it would write with non-ASCII characters, or a value it refuses (a
    path with bytes that are not UTF-8, kept as surrogate escapes), goes through json, so
    the output is byte for byte what json.dumps writes (\\uXXXX escapes) for any input."""
    try:
        line = orjson.dumps(record).decode()
    except TypeError:
        line = ""
    return line if line.isascii() and line else json.dumps(record, separators=(",", ":"))


# Hooks whose denial is not an error return: clone3 into an outside cgroup has no hook left
# that can refuse once its destination is known, so the caller is killed.
_DENIED_BY = {"clone3": ("signal", "SIGKILL")}


@dataclass(slots=True)
class AuditRecord:  # not frozen: built per event, and a frozen dataclass costs ~1.5 us more
    event: Event  # the last of the folded events (its time and pid are reported)
    rule: RuleRef
    container: ContainerInfo | None
    count: int = 1

    def to_json(self) -> dict[str, Any]:
        e = self.event
        record: dict[str, Any] = {"timestamp": _timestamp(e.ktime_ns), "hook": e.hook, "action": e.action}
        if e.action == "deny":
            key, value = _DENIED_BY.get(e.hook, ("errno", "EPERM"))
            record[key] = value
        c = self.container
        record |= {
            "policy": self.rule.policy,
            "rule": self.rule.rule,
            "container": (
                {"id": c.id, "name": c.name, "image": c.image}
                if c
                else {"id": None, "name": None, "image": None, "cgroup_id": e.cgroup_id}
            ),
            "process": {"pid": e.pid, "comm": e.comm, "uid": e.uid},
            "target": e.target(),
            "count": self.count,
        }
        return record


@dataclass(slots=True)
class LossRecord:
    """`count` denials/audits of one (container, rule) the kernel counted but no record
    itemises (enforcer.audit.losses): hook "audit_loss", written like any record."""

    loss: Loss
    rule: RuleRef
    container: ContainerInfo | None
    ktime_ns: int  # when the loss was established

    @property
    def count(self) -> int:
        return self.loss.count

    def to_json(self) -> dict[str, Any]:
        c, loss = self.container, self.loss
        return {
            "timestamp": _timestamp(self.ktime_ns),
            "hook": "audit_loss",
            "action": loss.action,
            "policy": self.rule.policy,
            "rule": self.rule.rule,
            "container": (
                {"id": c.id, "name": c.name, "image": c.image}
                if c
                else {"id": None, "name": None, "image": None, "cgroup_id": loss.cgroup_id}
            ),
            "target": {"counted": loss.counted, "itemised": loss.itemised},
            "count": loss.count,
        }


class Written(Protocol):
    @property
    def count(self) -> int: ...

    def to_json(self) -> dict[str, Any]: ...


class TextSink(Protocol):
    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class AuditWriter:
    """Writes records as JSON lines; thread-safe, flushed per record so tail -f sees them.

    A record that cannot be written (disk full, closed pipe) is counted in `write_errors`
    and logged, never dropped silently; `enforcer status` and the metrics report it.
    """

    def __init__(
        self,
        out: TextSink | IO[str],
        name: str | None = None,
        fmt: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        forward: Sequence[TextSink] = (),
    ) -> None:
        """`fmt` turns the SPEC record into what is written (e.g. OCSF); `forward` also
        gets every line (syslog): a failure there is logged and counted in
        `forward_errors`, the record in `out` stands."""
        self._out = out
        self._fmt = fmt
        self._forward = tuple(forward)
        self.forward_errors = 0
        self._lock = threading.Lock()
        self.name = name or _sink_name(out)
        self.records = 0
        self.events = 0  # sum of counts
        self.losses = 0  # sum of counts of audit_loss records (not itemised, accounted)
        self.write_errors = 0  # records lost to write failures
        self.events_lost = 0  # sum of their counts

    def write(self, record: Written) -> None:
        rec = record.to_json()
        line = encode(self._fmt(rec) if self._fmt else rec)
        with self._lock:
            for sink in self._forward:
                try:
                    sink.write(line)
                except OSError as exc:
                    self.forward_errors += 1
                    log.error(
                        "audit record not forwarded",
                        sink=getattr(sink, "name", "?"),
                        error=str(exc),
                        forward_errors=self.forward_errors,
                    )
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (OSError, ValueError) as exc:  # ValueError: write to a closed file
                self.write_errors += 1
                self.events_lost += record.count
                log.error(
                    "audit record not written",
                    sink=self.name,
                    error=str(exc),
                    record=line,
                    write_errors=self.write_errors,
                )
                return
            self.records += 1
            if isinstance(record, LossRecord):
                self.losses += record.count
            else:
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
