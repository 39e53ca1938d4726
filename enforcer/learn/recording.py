"""Files of recorded operations: a learn recording (written here) or an audit log.

A learn recording is JSON lines (docs/learning.md):
    {"recording": "enforcer-learn/v1", "container": {"id", "name", "image", "labels"},
     "started": "2026-12-02T08:00:00.000000Z"}
    {"hook": "exec", "target": {"path": "/bin/sh", "origin": "image"}, "count": 1,
     "process": {"comm": "sh"}}
    ...
    {"denied": {"hook": "exec", "target": {...}, "count": 1, "policy": "p", "rule": "exec[0]"}}
    {"end": "2026-12-02T08:05:00.000000Z", "operations": 1234, "lost": 0}
The operation lines have the shape of audit records (SPEC "Audit record") without the
decision (action, policy, rule), so one reader takes both; in an audit log each record
names its own container. `lost` counts operations the kernel saw but the recording could
not itemise (ring-buffer losses); an audit log's `audit_loss` records are counted likewise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from enforcer.errors import EnforcerError
from enforcer.learn.operations import BadRecord, Operation, is_truncated, parse_operation, to_target

RECORDING_FORMAT = "enforcer-learn/v1"
MAX_LINE = 1 << 20  # a line longer than this is not a record


@dataclass(frozen=True)
class ContainerFacts:
    """What selects policies for a container; labels None = not known (audit logs)."""

    name: str | None
    image: str | None
    id: str | None = None
    labels: Mapping[str, str] | None = field(default=None, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "image": self.image,
            "labels": dict(self.labels) if self.labels is not None else None,
        }

    @property
    def key(self) -> tuple[Any, ...]:
        labels = tuple(sorted((self.labels or {}).items()))
        return (self.name, self.image, labels)


@dataclass(frozen=True)
class Observed:
    op: Operation
    count: int
    container: ContainerFacts | None
    comm: str | None = None


@dataclass
class Events:
    """Everything a file says: its operations and what it could not itemise."""

    observed: list[Observed] = field(default_factory=list)
    recording: ContainerFacts | None = None  # a learn recording's container
    lost: int = 0  # seen by the kernel, not itemised (ring-buffer losses, audit_loss)
    denied: int = 0  # a recording's operations that existing policies denied: they never ran
    truncated: int = 0  # operations on a path the kernel could not resolve: not decidable
    finished: bool = False  # a recording's end line was read

    @property
    def operations(self) -> int:
        return sum(o.count for o in self.observed)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- reading --------------------------------------------------------------------------------


def _facts(raw: Any, where: str) -> ContainerFacts | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise EnforcerError(f"{where}: container must be an object")
    labels = raw.get("labels")
    if labels is not None and not (isinstance(labels, Mapping) and all(isinstance(v, str) for v in labels.values())):
        raise EnforcerError(f"{where}: container.labels must map names to strings")
    name, image = raw.get("name"), raw.get("image")
    if name is None and image is None:
        return None  # an audit record of a cgroup the daemon could not name
    return ContainerFacts(
        name if isinstance(name, str) else None,
        image if isinstance(image, str) else None,
        raw.get("id") if isinstance(raw.get("id"), str) else None,
        dict(labels) if labels is not None else None,
    )


def _count(raw: Any, where: str) -> int:
    if raw is None:
        return 1
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise EnforcerError(f"{where}: count must be a positive integer, got {raw!r}")
    return raw


def _lines(fh: IO[str]) -> Iterator[tuple[int, str]]:
    for n, line in enumerate(fh, 1):
        if line.strip():
            yield n, line


def read_events(path: str) -> Events:
    """The operations in `path` (a learn recording or an audit log). EnforcerError naming
    FILE:LINE for anything that is not a record: replay must judge every operation or say
    it cannot."""
    try:
        fh = open(path, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    except OSError as exc:
        raise EnforcerError(f"{path}: cannot read: {exc.strerror or exc}") from None
    events = Events()
    with fh:
        try:
            for n, line in _lines(fh):
                _read_line(events, line, f"{os.fspath(path)}:{n}")
        except UnicodeDecodeError as exc:
            raise EnforcerError(f"{path}: cannot read: {exc}") from None
    return events


def _read_line(events: Events, line: str, where: str) -> None:
    if len(line) > MAX_LINE:
        raise EnforcerError(f"{where}: a line longer than {MAX_LINE} bytes is not a record")
    try:
        rec = json.loads(line)
    except ValueError:
        raise EnforcerError(f"{where}: not a JSON object (is this a learn recording or an audit log?)") from None
    if not isinstance(rec, dict):
        raise EnforcerError(f"{where}: not a JSON object")
    if "recording" in rec:
        if rec["recording"] != RECORDING_FORMAT:
            raise EnforcerError(f"{where}: recording format {rec['recording']!r} is not {RECORDING_FORMAT!r}")
        events.recording = _facts(rec.get("container"), where)
        return
    if "end" in rec:
        lost = rec.get("lost", 0)
        if isinstance(lost, bool) or not isinstance(lost, int) or lost < 0:
            raise EnforcerError(f"{where}: lost must be a count (0 or more), got {lost!r}")
        events.lost += lost
        events.finished = True
        return
    if "denied" in rec:  # recorded, but denied by the policies in force: not an operation
        denied = rec["denied"]
        events.denied += _count(denied.get("count") if isinstance(denied, Mapping) else None, where)
        return
    if "hook" not in rec:
        raise EnforcerError(f"{where}: a record needs 'hook' and 'target'")
    count = _count(rec.get("count"), where)
    if rec["hook"] == "audit_loss":
        events.lost += count
        return
    if isinstance(rec.get("target"), Mapping) and is_truncated(rec["target"]):
        events.truncated += count
        return
    try:
        op = parse_operation(rec["hook"], rec.get("target"))
    except BadRecord as exc:
        raise EnforcerError(f"{where}: {exc}") from None
    if op is None:
        return
    container = _facts(rec.get("container"), where) if "container" in rec else events.recording
    process = rec.get("process")
    comm = process.get("comm") if isinstance(process, Mapping) else None
    events.observed.append(Observed(op, count, container, comm if isinstance(comm, str) else None))


# --- writing --------------------------------------------------------------------------------


class RecordingWriter:
    """Writes a learn recording as operations arrive (flushed per line: a recording cut
    short by a crash keeps what was seen; its missing end line says it was cut)."""

    def __init__(self, out: IO[str], container: ContainerFacts) -> None:
        self._out = out
        self.operations = 0
        self._line({"recording": RECORDING_FORMAT, "container": container.to_json(), "started": now_rfc3339()})

    def _line(self, record: Mapping[str, Any]) -> None:
        self._out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._out.flush()

    def observe(self, op: Operation, count: int = 1, comm: str | None = None) -> None:
        rec: dict[str, Any] = {"hook": op.hook, "target": to_target(op), "count": count}
        if comm is not None:
            rec["process"] = {"comm": comm}
        self._line(rec)
        self.operations += count

    def denied(self, op: Operation, count: int, policy: str, rule: str) -> None:
        """An operation the policies in force denied while learning: kept for the reader,
        apart from the operations (it never ran, so it is neither learned nor replayed)."""
        self._line(
            {"denied": {"hook": op.hook, "target": to_target(op), "count": count, "policy": policy, "rule": rule}}
        )

    def end(self, lost: int) -> None:
        self._line({"end": now_rfc3339(), "operations": self.operations, "lost": lost})
