"""Ring buffer records -> typed events (layouts from the objects' BTF).

Every record starts with `struct event_hdr`; its `type` says which body follows. Each
event class knows its SPEC audit `hook` and `target`; decoders for more record types
register in EventDecoder.decoders (type number -> function of the raw bytes).
"""

from __future__ import annotations

import socket
import struct as pystruct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from enforcer.kernel.abi import Abi
from enforcer.policy.model import ADDRESS_FAMILIES, SOCKET_TYPES
from enforcer.pybpf.btf import StructLayout

# enum file_op names whose hook is not "path_<name>"
_OP_HOOKS = {
    "FOP_OPEN": "file_open",
    "FOP_EXEC": "exec",
    "FOP_MMAP": "mmap_file",
    "FOP_SETATTR": "inode_setattr",
    "FOP_XATTR": "inode_setxattr",
    "FOP_CGROUP_MOVE": "clone3",  # CLONE_INTO_CGROUP out of the container: the caller is killed
}


@dataclass(slots=True)
class Event:
    """Fields of struct event_hdr, common to every kernel event. Treat as immutable: not
    frozen only because a frozen dataclass costs ~3 us per event to build (the decoder
    builds one per ring-buffer record)."""

    hook: str  # SPEC hook name: file_open, exec, device, connect, ...
    action: str  # "deny" | "audit"
    cgroup_id: int
    pid: int  # tgid, as seen from the host
    uid: int
    comm: str
    rule_id: int
    ktime_ns: int  # bpf_ktime_get_boot_ns()
    # Operations this event stands for: 1 for a kernel event, the repeats taken for one the
    # daemon writes from the folds map; `fold` is the kernel's hash of what identical
    # repeats share (event_hdr.fold).
    count: int = field(default=1, kw_only=True)
    fold: int = field(default=0, kw_only=True)
    ruleset: int = field(default=0, kw_only=True)  # the container's when it was decided (0: unknown)

    def target(self) -> dict[str, Any]:
        raise NotImplementedError

    def fold_key(self) -> tuple[Any, ...]:
        """Events with equal keys are "identical repeats" an audit record may fold: the
        header's identity plus what target() is made of (no pid, no time)."""
        return (self.hook, self.action, self.cgroup_id, self.uid, self.comm, self.rule_id, *self._target_key())

    def _target_key(self) -> tuple[Any, ...]:
        return tuple(sorted((k, str(v)) for k, v in self.target().items()))


@dataclass(slots=True)
class FileEvent(Event):
    path: str
    access: frozenset[str]
    truncated: bool  # path too long/deep to resolve: `path` is its last part

    def target(self) -> dict[str, Any]:
        return {
            "path": ("..." + self.path) if self.truncated else self.path,
            "access": "exec" if self.hook == "exec" else "+".join(sorted(self.access)) or "none",
        }

    def _target_key(self) -> tuple[Any, ...]:
        return (self.path, self.access, self.truncated)


@dataclass(slots=True)
class DeviceEvent(Event):
    type: str  # "char" | "block"
    major: int
    minor: int
    access: frozenset[str]  # read, write, mknod

    def target(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "major": self.major,
            "minor": self.minor,
            "access": "+".join(a for a in ("read", "write", "mknod") if a in self.access),
        }

    def _target_key(self) -> tuple[Any, ...]:
        return (self.type, self.major, self.minor, self.access)


@dataclass(slots=True)
class NetEvent(Event):
    family: str  # "inet" | "inet6": the hook's family (connect/bind to ::ffff:a.b.c.d: inet6;
    # a UDP send to one is sent, and judged, by the IPv4 code: inet)
    protocol: str  # "tcp" | "udp" | "icmp" | "sctp" | ... | the IP protocol number
    address: str
    port: int

    def target(self) -> dict[str, Any]:
        return {"family": self.family, "protocol": self.protocol, "address": self.address, "port": self.port}

    def _target_key(self) -> tuple[Any, ...]:
        return (self.family, self.protocol, self.address, self.port)


@dataclass(slots=True)
class SockEvent(Event):
    family: str  # address family name (inet, inet6, packet, ...)
    type: str  # stream | dgram | raw | seqpacket | the number
    protocol: int

    def target(self) -> dict[str, Any]:
        return {"family": self.family, "type": self.type}

    def _target_key(self) -> tuple[Any, ...]:
        return (self.family, self.type)


_FAMILY_NAMES = {n: name for name, n in reversed(ADDRESS_FAMILIES.items())}
_TYPE_NAMES = {n: name for name, n in SOCKET_TYPES.items()}
_PROTO_NAMES = {
    6: "tcp",
    17: "udp",
    1: "icmp",
    58: "icmpv6",
    33: "dccp",
    132: "sctp",
    136: "udplite",
    0: "unknown",
}  # 0: a packet whose L4 header could not be read
_AF_INET, _AF_INET6 = ADDRESS_FAMILIES["inet"], ADDRESS_FAMILIES["inet6"]
_HDR = (
    "hdr.ktime_ns",
    "hdr.cgroup_id",
    "hdr.fold",
    "hdr.pid",
    "hdr.uid",
    "hdr.rule_id",
    "hdr.ruleset",
    "hdr.action",
    "hdr.comm",
)
_COMM_CACHE_MAX = 4096  # distinct process names kept decoded (a storm repeats a few)

Decode = Callable[[bytes], Event]


def picker(
    layout: StructLayout, names: Sequence[str], spans: Mapping[str, int] | None = None, upto: int | None = None
) -> pystruct.Struct:
    """A struct.Struct that unpacks just `names` of `layout`, in that order, from the raw
    record: offsets and codes come from the BTF layout once, here, never per event.

    `spans` reads `n` bytes starting at a field as one bytes value (an array read whole,
    e.g. net_event.addr); `upto` limits the record to its first bytes (file_event without
    its path[], which the kernel sends only in part)."""
    spans = spans or {}
    by_name = {f.name: f for f in layout.fields}
    picked: list[tuple[int, int, str, int]] = []  # (offset, size, code, position in names)
    for i, name in enumerate(names):
        f = by_name.get(name)
        if f is None:
            raise KeyError(f"{layout.name} has no field {name} (objects and decoder disagree)")
        size = spans.get(name, f.size)
        picked.append((f.offset, size, f"{size}s" if name in spans else f.fmt, i))
    picked.sort()
    if [p[3] for p in picked] != list(range(len(names))):
        raise ValueError(f"{layout.name}: pick fields in offset order ({', '.join(names)})")
    fmt, pos = ["="], 0
    for offset, size, code, _ in picked:
        if offset < pos:
            raise ValueError(f"{layout.name}: picked fields overlap at offset {offset}")
        if offset > pos:
            fmt.append(f"{offset - pos}x")
        fmt.append(code)
        pos = offset + size
    end = layout.size if upto is None else upto
    if end < pos:
        raise ValueError(f"{layout.name}: picked fields end after byte {end}")
    if end > pos:
        fmt.append(f"{end - pos}x")
    return pystruct.Struct("".join(fmt))


def _flag_sets(bits: Sequence[tuple[int, str]]) -> tuple[frozenset[str], ...]:
    """Every combination of the flag bits -> its set of names, indexed by the mask."""
    top = max(b for b, _ in bits) * 2
    return tuple(frozenset(n for b, n in bits if m & b) for m in range(top))


class EventDecoder:
    """Raw ring-buffer records -> Events, one precompiled decoder per event type.

    Built once from the objects' BTF: a struct.Struct per type that unpacks header and body
    fields in one call, tables for flags, names and hooks. Nothing per event walks a layout
    or builds a dict of fields (the daemon's ring-buffer thread decodes every event)."""

    def __init__(self, abi: Abi) -> None:
        self._abi = abi
        c = abi.consts
        hdr = abi.layout("event_hdr")
        self._type_at = hdr.offsets["type"]
        self._type = pystruct.Struct("=H")
        if self._type.size != next(f.size for f in hdr.fields if f.name == "type"):
            raise ValueError("event_hdr.type is not a __u16 (objects and decoder disagree)")
        self._actions = {c["ACT_DENY"]: "deny", c["ACT_AUDIT"]: "audit"}
        self._comms: dict[bytes, str] = {}
        self._truncated = c["FEV_TRUNCATED"]
        # file_event.op -> SPEC hook name: the LSM hook that judged it (FOP_OPEN -> file_open,
        # FOP_UNLINK -> path_unlink, FOP_MMAP -> mmap_file); exec keeps its SPEC name.
        self._ops = {v: _OP_HOOKS.get(name, "path_" + name[4:].lower()) for name, v in abi.btf.enum("file_op").items()}
        self._file_acc = _flag_sets(((c["ACCF_READ"], "read"), (c["ACCF_WRITE"], "write"), (c["ACCF_EXEC"], "exec")))
        self._dev_acc = _flag_sets(((c["ACCF_READ"], "read"), (c["ACCF_WRITE"], "write"), (c["ACCF_MKNOD"], "mknod")))
        self._dev_types = {c["DEV_TYPE_CHAR"]: "char", c["DEV_TYPE_BLOCK"]: "block"}

        self._hdr = picker(hdr, tuple(n.removeprefix("hdr.") for n in _HDR))
        file = abi.layout("file_event")
        self._path_at = file.offsets["path"]
        self._file = picker(file, (*_HDR, "access", "path_len", "flags", "op"), upto=self._path_at)
        dev = abi.layout("device_event")
        self._dev = picker(dev, (*_HDR, "dev_type", "access", "major", "minor"))
        net_lay = abi.layout("net_event")
        addr = [f for f in net_lay.fields if f.name.startswith("addr[")]
        if [f.offset for f in addr] != [addr[0].offset + 4 * i for i in range(4)]:
            raise ValueError("net_event.addr is not 4 contiguous __u32 (objects and decoder disagree)")
        self._net = picker(net_lay, (*_HDR, "family", "protocol", "addr[0]", "port"), spans={"addr[0]": 16})
        self._sock = picker(abi.layout("sock_event"), (*_HDR, "family", "sock_type", "protocol"))
        self._pads = {s.size for s in (self._file, self._dev, self._net, self._sock)}

        def net(hook: str) -> Decode:
            return lambda raw: self._net_event(hook, raw)

        self.decoders: dict[int, Decode] = {
            c["EV_FILE"]: lambda raw: self._file_event("file_open", raw),
            c["EV_EXEC"]: lambda raw: self._file_event("exec", raw),
            c["EV_DEVICE"]: self._device_event,
            c["EV_CONNECT"]: net("connect"),
            c["EV_SENDMSG"]: net("sendmsg"),
            c["EV_BIND"]: net("bind"),
            c["EV_SOCK_CREATE"]: self._sock_event,
            # packets the cgroup_skb programs judged: what left (egress) or arrived (ingress)
            c["EV_EGRESS"]: net("egress"),
            c["EV_INGRESS"]: net("ingress"),
        }

    def identity(self, raw: bytes) -> tuple[int, int, int, str]:
        """(cgroup id, rule id, ktime_ns, action) of any record, known type or not."""
        kt, cg, _fold, _pid, _uid, rule, _ruleset, action, _comm = self._fields(self._hdr, raw)
        return cg, rule, kt, self._action(action)

    def decode(self, raw: bytes) -> Event | None:
        """None for record types this decoder does not know (newer objects)."""
        decode = self.decoders.get(self._type.unpack_from(raw, self._type_at)[0])
        return decode(raw) if decode else None

    def _fields(self, s: pystruct.Struct, raw: bytes) -> tuple[Any, ...]:
        if len(raw) < s.size:  # a shorter record than the layout (older objects): zero the rest
            raw = raw.ljust(s.size, b"\0")
        return s.unpack_from(raw)

    def _comm(self, raw: bytes) -> str:
        name = self._comms.get(raw)
        if name is None:
            if len(self._comms) >= _COMM_CACHE_MAX:
                self._comms.clear()
            name = self._comms[raw] = raw.split(b"\0", 1)[0].decode(errors="replace")
        return name

    def _action(self, action: int) -> str:
        return self._actions.get(action) or str(action)

    # Each record type unpacks and passes the header fields itself, on purpose: a shared
    # helper returning them as a tuple cost 20-25% of decode throughput (bench.decode_item).
    def _file_event(self, hook: str, raw: bytes) -> FileEvent:
        kt, cg, fold, pid, uid, rule, ruleset, action, comm, access, n, flags, op = self._fields(self._file, raw)
        at = self._path_at
        path = raw[at : at + n].decode(errors="surrogateescape") or "/"
        return FileEvent(
            self._ops.get(op, hook),
            self._action(action),
            cg,
            pid,
            uid,
            self._comm(comm),
            rule,
            kt,
            path,
            self._file_acc[access & (len(self._file_acc) - 1)],
            bool(flags & self._truncated),
            fold=fold,
            ruleset=ruleset,
        )

    def _device_event(self, raw: bytes) -> DeviceEvent:
        kt, cg, fold, pid, uid, rule, ruleset, action, comm, dtype, access, major, minor = self._fields(self._dev, raw)
        return DeviceEvent(
            "device",
            self._action(action),
            cg,
            pid,
            uid,
            self._comm(comm),
            rule,
            kt,
            self._dev_types.get(dtype) or str(dtype),
            major,
            minor,
            self._dev_acc[access & (len(self._dev_acc) - 1)],
            fold=fold,
            ruleset=ruleset,
        )

    def _net_event(self, hook: str, raw: bytes) -> NetEvent:
        kt, cg, fold, pid, uid, rule, ruleset, action, comm, family, proto, addr, port = self._fields(self._net, raw)
        if family == _AF_INET6:
            address = socket.inet_ntop(socket.AF_INET6, addr)  # ::ffff:a.b.c.d as people write it
        else:
            address = socket.inet_ntop(socket.AF_INET, addr[:4])
        return NetEvent(
            hook,
            self._action(action),
            cg,
            pid,
            uid,
            self._comm(comm),
            rule,
            kt,
            _FAMILY_NAMES.get(family) or str(family),
            _PROTO_NAMES.get(proto) or str(proto),
            address,
            port,
            fold=fold,
            ruleset=ruleset,
        )

    def _sock_event(self, raw: bytes) -> SockEvent:
        kt, cg, fold, pid, uid, rule, ruleset, action, comm, family, stype, proto = self._fields(self._sock, raw)
        return SockEvent(
            "sock_create",
            self._action(action),
            cg,
            pid,
            uid,
            self._comm(comm),
            rule,
            kt,
            _FAMILY_NAMES.get(family) or str(family),
            _TYPE_NAMES.get(stype) or str(stype),
            proto,
            fold=fold,
            ruleset=ruleset,
        )
