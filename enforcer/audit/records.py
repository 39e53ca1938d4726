"""Kernel events -> the SPEC's JSON audit records, one per line."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any

from enforcer.audit.events import FileEvent
from enforcer.compiler.rules import RuleRef
from enforcer.containers.model import ContainerInfo

UNRESOLVED = RuleRef("enforcer", "unresolved-path")


def boot_to_wall(ktime_ns: int) -> float:
    """bpf_ktime_get_boot_ns() -> Unix time (both clocks read now, so drift is moot)."""
    return time.time() - (time.clock_gettime_ns(time.CLOCK_BOOTTIME) - ktime_ns) / 1e9


def _timestamp(ktime_ns: int) -> str:
    wall = datetime.fromtimestamp(boot_to_wall(ktime_ns), tz=timezone.utc)
    return wall.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class AuditRecord:
    event: FileEvent
    rule: RuleRef
    container: ContainerInfo | None

    def to_json(self) -> dict[str, Any]:
        e = self.event
        record: dict[str, Any] = {
            "timestamp": _timestamp(e.ktime_ns),
            "hook": e.hook,
            "action": e.action,
        }
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
            "target": {
                "path": ("..." + e.path) if e.truncated else e.path,
                "access": "exec" if e.hook == "exec" else "+".join(sorted(e.access)),
            },
            "count": 1,
        }
        return record


class AuditWriter:
    """Writes records as JSON lines; thread-safe, flushed per record so tail -f sees them."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lock = threading.Lock()
        self.written = 0

    def write(self, record: AuditRecord) -> None:
        line = json.dumps(record.to_json(), separators=(",", ":"))
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()
            self.written += 1
