"""Ring buffer records -> typed events (layouts from the objects' BTF).

Every record starts with `struct event_hdr`; its `type` says which body follows. Each
event class knows its SPEC audit `hook` and `target`; decoders for more record types
register in EventDecoder.decoders (type number -> function of (header, raw bytes)).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from enforcer.kernel.abi import Abi
from enforcer.policy.model import ADDRESS_FAMILIES, SOCKET_TYPES

ACTIONS = {2: "audit", 3: "deny"}
# enum file_op names whose hook is not "path_<name>"
_OP_HOOKS = {"FOP_OPEN": "file_open", "FOP_EXEC": "exec", "FOP_MMAP": "mmap_file"}


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


@dataclass(frozen=True)
class DeviceEvent(Event):
    type: str  # "char" | "block"
    major: int
    minor: int
    access: frozenset[str]  # read, write, mknod

    def target(self) -> dict[str, Any]:
        return {"type": self.type, "major": self.major, "minor": self.minor,
                "access": "+".join(a for a in ("read", "write", "mknod") if a in self.access)}  # fmt: skip


@dataclass(frozen=True)
class NetEvent(Event):
    family: str  # "inet" | "inet6": the hook's family (connect/bind to ::ffff:a.b.c.d: inet6;
    # a UDP send to one is sent, and judged, by the IPv4 code: inet)
    protocol: str  # "tcp" | "udp" | the IP protocol number
    address: str
    port: int

    def target(self) -> dict[str, Any]:
        return {"family": self.family, "protocol": self.protocol, "address": self.address,
                "port": self.port}  # fmt: skip


@dataclass(frozen=True)
class SockEvent(Event):
    family: str  # address family name (inet, inet6, packet, ...)
    type: str  # stream | dgram | raw | seqpacket | the number
    protocol: int

    def target(self) -> dict[str, Any]:
        return {"family": self.family, "type": self.type}


Decode = Callable[[dict[str, Any], bytes], Event]
_FAMILY_NAMES = {n: name for name, n in reversed(ADDRESS_FAMILIES.items())}
_TYPE_NAMES = {n: name for name, n in SOCKET_TYPES.items()}
_PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}
_AF_INET, _AF_INET6 = ADDRESS_FAMILIES["inet"], ADDRESS_FAMILIES["inet6"]


class EventDecoder:
    def __init__(self, abi: Abi) -> None:
        self._abi = abi
        self._hdr = abi.layout("event_hdr")
        self._file = abi.layout("file_event")
        self._path_off = self._file.offsets["path"]
        c = abi.consts
        self._acc = ((c["ACCF_READ"], "read"), (c["ACCF_WRITE"], "write"), (c["ACCF_EXEC"], "exec"))
        self._truncated = c["FEV_TRUNCATED"]
        # file_event.op -> SPEC hook name: the LSM hook that judged it (FOP_OPEN -> file_open,
        # FOP_UNLINK -> path_unlink, FOP_MMAP -> mmap_file); exec keeps its SPEC name.
        self._ops = {
            v: _OP_HOOKS.get(name, "path_" + name[4:].lower())
            for name, v in abi.btf.enum("file_op").items()
        }
        self.decoders: dict[int, Decode] = {
            c["EV_FILE"]: lambda h, raw: self._file_event("file_open", h, raw),
            c["EV_EXEC"]: lambda h, raw: self._file_event("exec", h, raw),
            c["EV_DEVICE"]: self._device_event,
            c["EV_CONNECT"]: lambda h, raw: self._net_event("connect", h, raw),
            c["EV_SENDMSG"]: lambda h, raw: self._net_event("sendmsg", h, raw),
            c["EV_BIND"]: lambda h, raw: self._net_event("bind", h, raw),
            c["EV_SOCK_CREATE"]: self._sock_event,
        }
        self._dev_types = {c["DEV_TYPE_CHAR"]: "char", c["DEV_TYPE_BLOCK"]: "block"}
        self._dev_acc = ((c["ACCF_READ"], "read"), (c["ACCF_WRITE"], "write"), (c["ACCF_MKNOD"], "mknod"))

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
        hook = self._ops.get(body["op"], hook)
        n = body["path_len"]
        path = raw[self._path_off : self._path_off + n].decode(errors="surrogateescape") or "/"
        return FileEvent(
            **self.header_fields(hook, hdr),
            path=path,
            access=frozenset(name for bit, name in self._acc if body["access"] & bit),
            truncated=bool(body["flags"] & self._truncated),
        )

    def _body(self, layout: str, raw: bytes) -> dict[str, Any]:
        lay = self._abi.layout(layout)
        return lay.decode(raw[: lay.size].ljust(lay.size, b"\0"))

    def _device_event(self, hdr: dict[str, Any], raw: bytes) -> DeviceEvent:
        body = self._body("device_event", raw)
        return DeviceEvent(
            **self.header_fields("device", hdr),
            type=self._dev_types.get(body["dev_type"], str(body["dev_type"])),
            major=body["major"], minor=body["minor"],
            access=frozenset(name for bit, name in self._dev_acc if body["access"] & bit),
        )  # fmt: skip

    def _net_event(self, hook: str, hdr: dict[str, Any], raw: bytes) -> NetEvent:
        body = self._body("net_event", raw)
        words = b"".join(body[f"addr[{i}]"].to_bytes(4, "little") for i in range(4))  # as in memory
        ip = ipaddress.ip_address(words if body["family"] == _AF_INET6 else words[:4])
        mapped = getattr(ip, "ipv4_mapped", None)
        address = f"::ffff:{mapped}" if mapped else str(ip)  # as people write it
        return NetEvent(
            **self.header_fields(hook, hdr),
            family=_FAMILY_NAMES.get(body["family"], str(body["family"])),
            protocol=_PROTO_NAMES.get(body["protocol"], str(body["protocol"])),
            address=address, port=body["port"],
        )  # fmt: skip

    def _sock_event(self, hdr: dict[str, Any], raw: bytes) -> SockEvent:
        body = self._body("sock_event", raw)
        return SockEvent(
            **self.header_fields("sock_create", hdr),
            family=_FAMILY_NAMES.get(body["family"], str(body["family"])),
            type=_TYPE_NAMES.get(body["sock_type"], str(body["sock_type"])),
            protocol=body["protocol"],
        )  # fmt: skip
