"""One operation of a container (an exec, a file open, a connect...), as a learn recording
and an audit record both describe it, and the decision a set of policies makes for it.

The decision is the policy model's reference (enforcer.policy.reference.decide_*), the same
functions the compiler is tested against: replay and learning judge as the kernel does.
A record's `hook` and `target` (SPEC "Audit record") are the whole description:
- exec, mmap_file: {path, origin?}; judged by the exec rules. `origin` ("image" | "other")
  is the daemon's finding for `origin: image`; a record without it is not from the image.
- file_open, path_*, inode_*: {path, access: "read" | "write" | "read+write"}.
- device: {type, major, minor, access: "read+write+mknod" (any of them)}.
- connect, sendmsg, egress (egress) and bind, ingress (ingress): {family, protocol,
  address, port}.
- sock_create: {family, type}.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from enforcer.policy.merge import EffectiveRule, Postures
from enforcer.policy.model import ADDRESS_FAMILIES, SOCKET_TYPES
from enforcer.policy.paths import normalize_path
from enforcer.policy.reference import Decision, decide_device, decide_exec, decide_file, decide_network, decide_socket

EXEC_HOOKS = frozenset({"exec", "mmap_file"})
EGRESS_HOOKS = frozenset({"connect", "sendmsg", "egress"})
INGRESS_HOOKS = frozenset({"bind", "ingress"})
NOT_OPERATIONS = frozenset({"audit_loss"})  # accounting records, not something a process did
IP_PROTOCOL_NUMBERS = {
    "icmp": 1,
    "tcp": 6,
    "udp": 17,
    "dccp": 33,
    "icmpv6": 58,
    "sctp": 132,
    "udplite": 136,
    "unknown": 0,
}


class BadRecord(ValueError):
    """A record that does not describe an operation as the SPEC writes it."""


@dataclass(frozen=True)
class ExecOp:
    hook: str
    path: str
    from_image: bool

    @property
    def classes(self) -> tuple[str, ...]:
        return ("exec",)

    def describe(self) -> str:
        return f"{self.hook} {self.path}" + (" (image)" if self.from_image else "")


@dataclass(frozen=True)
class FileOp:
    hook: str
    path: str
    access: frozenset[str]  # read, write

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(c for bit, c in (("read", "fileRead"), ("write", "fileWrite")) if bit in self.access)

    def describe(self) -> str:
        return f"{self.hook} {self.path} {'+'.join(sorted(self.access))}"


@dataclass(frozen=True)
class DeviceOp:
    hook: str
    type: str
    major: int
    minor: int
    access: frozenset[str]  # read, write, mknod

    @property
    def classes(self) -> tuple[str, ...]:
        return ("device",)

    def describe(self) -> str:
        acc = "+".join(a for a in ("read", "write", "mknod") if a in self.access)
        return f"{self.hook} {self.type} {self.major}:{self.minor} {acc}"


@dataclass(frozen=True)
class NetOp:
    hook: str
    direction: str  # egress | ingress
    family: str
    protocol: str  # tcp, udp, icmp, ... or the number
    address: str
    port: int

    @property
    def classes(self) -> tuple[str, ...]:
        return (self.direction,)

    @property
    def protocol_number(self) -> int:
        return IP_PROTOCOL_NUMBERS.get(self.protocol) or int(self.protocol)

    def describe(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.hook} {self.protocol} {host}:{self.port}"


@dataclass(frozen=True)
class SockOp:
    hook: str
    family: str
    type: str

    @property
    def classes(self) -> tuple[str, ...]:
        return ("socket",)

    def describe(self) -> str:
        return f"{self.hook} {self.family}/{self.type}"


Operation = ExecOp | FileOp | DeviceOp | NetOp | SockOp


# --- from records ---------------------------------------------------------------------------


def _str(target: Mapping[str, Any], key: str) -> str:
    value = target.get(key)
    if not isinstance(value, str) or not value:
        raise BadRecord(f"target.{key} must be a non-empty string, got {value!r}")
    return value


def _int(target: Mapping[str, Any], key: str, lo: int, hi: int) -> int:
    value = target.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadRecord(f"target.{key} must be an integer {lo}..{hi}, got {value!r}")
    return value


def _path(target: Mapping[str, Any]) -> str:
    raw = _str(target, "path")
    try:
        return normalize_path(raw)
    except ValueError as exc:
        raise BadRecord(f"target.path {raw!r}: {exc}") from None


def _bits(target: Mapping[str, Any], allowed: tuple[str, ...]) -> frozenset[str]:
    raw = _str(target, "access")
    bits = frozenset(raw.split("+")) - {"none"}
    if not bits <= set(allowed):
        raise BadRecord(f"target.access {raw!r}: expected {' / '.join(allowed)} joined by '+'")
    return bits


def is_truncated(target: Mapping[str, Any]) -> bool:
    """The kernel could not resolve the whole path: the record has "..." and its last part."""
    path = target.get("path")
    return isinstance(path, str) and path.startswith("...")


def parse_operation(hook: Any, target: Any) -> Operation | None:
    """The operation a record describes; None for records that are not operations
    (audit_loss). BadRecord if the hook or target is not one the SPEC writes."""
    if not isinstance(hook, str) or not hook:
        raise BadRecord(f"hook must be a non-empty string, got {hook!r}")
    if hook in NOT_OPERATIONS:
        return None
    if not isinstance(target, Mapping):
        raise BadRecord(f"target must be an object, got {type(target).__name__}")
    if hook in EXEC_HOOKS:
        return ExecOp(hook, _path(target), target.get("origin") == "image")
    if hook == "file_open" or hook.startswith(("path_", "inode_")):
        return FileOp(hook, _path(target), _bits(target, ("read", "write")))
    if hook == "device":
        dtype = _str(target, "type")
        if dtype not in ("char", "block"):
            raise BadRecord(f"target.type must be char or block, got {dtype!r}")
        return DeviceOp(
            hook,
            dtype,
            _int(target, "major", 0, 4095),
            _int(target, "minor", 0, 1048575),
            _bits(target, ("read", "write", "mknod")),
        )
    if hook in EGRESS_HOOKS or hook in INGRESS_HOOKS:
        protocol = _str(target, "protocol")
        if protocol not in IP_PROTOCOL_NUMBERS and not protocol.isdigit():
            raise BadRecord(f"target.protocol {protocol!r}: expected tcp, udp, ... or a number")
        address = _str(target, "address")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise BadRecord(f"target.address {address!r} is not an IP address") from None
        return NetOp(
            hook,
            "egress" if hook in EGRESS_HOOKS else "ingress",
            _str(target, "family"),
            protocol,
            address,
            _int(target, "port", 0, 65535),
        )
    if hook == "sock_create":
        family, stype = _str(target, "family"), _str(target, "type")
        if family not in ADDRESS_FAMILIES and not family.isdigit():
            raise BadRecord(f"target.family {family!r} is not an address family")
        if stype not in SOCKET_TYPES and not stype.isdigit():
            raise BadRecord(f"target.type {stype!r} is not a socket type")
        return SockOp(hook, family, stype)
    raise BadRecord(f"unknown hook {hook!r}")


def to_target(op: Operation) -> dict[str, Any]:
    """The record `target` of an operation (parse_operation's inverse)."""
    if isinstance(op, ExecOp):
        return {"path": op.path, "origin": "image" if op.from_image else "other"}
    if isinstance(op, FileOp):
        return {"path": op.path, "access": "+".join(sorted(op.access)) or "none"}
    if isinstance(op, DeviceOp):
        return {
            "type": op.type,
            "major": op.major,
            "minor": op.minor,
            "access": "+".join(a for a in ("read", "write", "mknod") if a in op.access),
        }
    if isinstance(op, NetOp):
        return {"family": op.family, "protocol": op.protocol, "address": op.address, "port": op.port}
    return {"family": op.family, "type": op.type}


# --- the decision ---------------------------------------------------------------------------


def _number_or_name(value: str) -> str | int:
    return int(value) if value.isdigit() else value


def decide(op: Operation, rules: Iterable[EffectiveRule], postures: Postures) -> Decision | None:
    """What the policies merged into `rules` / `postures` do to `op` (None: allowed, nothing
    recorded), by the reference the kernel is tested against."""
    if isinstance(op, ExecOp):
        return decide_exec(rules, op.path, postures, from_image=op.from_image)
    if isinstance(op, FileOp):
        return decide_file(rules, op.path, op.access, postures) if op.access else None
    if isinstance(op, DeviceOp):
        return decide_device(rules, op.type, op.major, op.minor, op.access, postures) if op.access else None
    if isinstance(op, NetOp):
        return decide_network(rules, op.direction, op.address, op.port, op.protocol_number, postures)
    return decide_socket(rules, _number_or_name(op.family), _number_or_name(op.type), postures)
