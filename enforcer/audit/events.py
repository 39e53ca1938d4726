"""Ring buffer records -> typed events (layouts from the objects' BTF)."""

from __future__ import annotations

from dataclasses import dataclass

from enforcer.kernel.abi import Abi

ACTIONS = {2: "audit", 3: "deny"}


@dataclass(frozen=True)
class FileEvent:
    hook: str           # "file_open" | "exec"
    action: str         # "deny" | "audit"
    cgroup_id: int
    pid: int
    uid: int
    comm: str
    rule_id: int
    path: str
    access: frozenset[str]
    truncated: bool
    ktime_ns: int


class EventDecoder:
    def __init__(self, abi: Abi) -> None:
        self._abi = abi
        self._file = abi.layout("file_event")
        self._path_off = self._file.offsets["path"]
        c = abi.consts
        self._hooks = {c["EV_FILE"]: "file_open", c["EV_EXEC"]: "exec"}
        self._acc = ((c["ACCF_READ"], "read"), (c["ACCF_WRITE"], "write"), (c["ACCF_EXEC"], "exec"))
        self._truncated = c["FEV_TRUNCATED"]

    def decode(self, raw: bytes) -> FileEvent | None:
        """None for record types this decoder does not know (newer objects)."""
        hdr = self._abi.layout("event_hdr").decode(raw)
        hook = self._hooks.get(hdr["type"])
        if hook is None:
            return None
        # The kernel sends only the used part of path[]: pad up to the full layout.
        body = self._file.decode(raw[: self._file.size].ljust(self._file.size, b"\0"))
        n = body["path_len"]
        path = raw[self._path_off : self._path_off + n].decode(errors="surrogateescape") or "/"
        return FileEvent(
            hook=hook,
            action=ACTIONS.get(hdr["action"], str(hdr["action"])),
            cgroup_id=hdr["cgroup_id"],
            pid=hdr["pid"],
            uid=hdr["uid"],
            comm=hdr["comm"],
            rule_id=hdr["rule_id"],
            path=path,
            access=frozenset(name for bit, name in self._acc if body["access"] & bit),
            truncated=bool(body["flags"] & self._truncated),
            ktime_ns=hdr["ktime_ns"],
        )
