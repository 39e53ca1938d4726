"""Ring buffer records -> typed events (layouts from the objects' BTF).

Every record starts with `struct event_hdr`; its `type` says which body follows. Each
event class knows its SPEC audit `hook` and `target`; decoders for more record types
register in EventDecoder.decoders (type number -> function of (header, raw bytes)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from enforcer.kernel.abi import Abi

ACTIONS = {2: "audit", 3: "deny"}


@dataclass(frozen=True)
class Event:
    """Fields of struct event_hdr, common to every kernel event."""

    hook: str  # SPEC hook name: file_open, exec, device, connect, ...
    action: str  # "deny" | "audit"
    cgroup_id: int
    pid: int  # tgid, as seen from the host
    uid: int
    comm: str
    rule_id: int
    ktime_ns: int  # bpf_ktime_get_boot_ns()

    def target(self) -> dict[str, Any]:
        raise NotImplementedError

    def fold_key(self) -> tuple[Any, ...]:
        """Events with equal keys are "identical repeats" an audit record may fold."""
        target = tuple(sorted((k, str(v)) for k, v in self.target().items()))
        return (self.hook, self.action, self.cgroup_id, self.uid, self.comm, self.rule_id, target)


@dataclass(frozen=True)
class FileEvent(Event):
    path: str
    access: frozenset[str]
    truncated: bool  # path too long/deep to resolve: `path` is its last part

    def target(self) -> dict[str, Any]:
        return {
            "path": ("..." + self.path) if self.truncated else self.path,
            "access": "exec" if self.hook == "exec" else "+".join(sorted(self.access)) or "none",
        }


Decode = Callable[[dict[str, Any], bytes], Event]


class EventDecoder:
    def __init__(self, abi: Abi) -> None:
        self._abi = abi
        self._hdr = abi.layout("event_hdr")
        self._file = abi.layout("file_event")
        self._path_off = self._file.offsets["path"]
        c = abi.consts
        self._acc = ((c["ACCF_READ"], "read"), (c["ACCF_WRITE"], "write"), (c["ACCF_EXEC"], "exec"))
        self._truncated = c["FEV_TRUNCATED"]
        self.decoders: dict[int, Decode] = {
            c["EV_FILE"]: lambda h, raw: self._file_event("file_open", h, raw),
            c["EV_EXEC"]: lambda h, raw: self._file_event("exec", h, raw),
        }

    @staticmethod
    def header_fields(hook: str, hdr: dict[str, Any]) -> dict[str, Any]:
        return {
            "hook": hook,
            "action": ACTIONS.get(hdr["action"], str(hdr["action"])),
            "cgroup_id": hdr["cgroup_id"],
            "pid": hdr["pid"],
            "uid": hdr["uid"],
            "comm": hdr["comm"],
            "rule_id": hdr["rule_id"],
            "ktime_ns": hdr["ktime_ns"],
        }

    def decode(self, raw: bytes) -> Event | None:
        """None for record types this decoder does not know (newer objects)."""
        hdr = self._hdr.decode(raw[: self._hdr.size])
        decode = self.decoders.get(hdr["type"])
        return decode(hdr, raw) if decode else None

    def _file_event(self, hook: str, hdr: dict[str, Any], raw: bytes) -> FileEvent:
        # The kernel sends only the used part of path[]: pad up to the full layout.
        body = self._file.decode(raw[: self._file.size].ljust(self._file.size, b"\0"))
        n = body["path_len"]
        path = raw[self._path_off : self._path_off + n].decode(errors="surrogateescape") or "/"
        return FileEvent(
            **self.header_fields(hook, hdr),
            path=path,
            access=frozenset(name for bit, name in self._acc if body["access"] & bit),
            truncated=bool(body["flags"] & self._truncated),
        )
