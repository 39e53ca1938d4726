"""The ContainerPolicy document (SPEC "Policy files"), as frozen pydantic models.

Principles an operator of a production host relies on:
- Unknown keys are errors (`extra="forbid"`): a typo such as `path:` for `paths:` must not
  turn a deny rule into a rule that matches nothing.
- No silent type coercion where it would change meaning: label values and paths must be
  strings, numbers must be integers (YAML `true` is not 1).
- Values are normalised once, here, so that every consumer (compiler, status, audit) sees one
  spelling: paths, CIDRs (IPv4-mapped IPv6 becomes IPv4), port ranges.
- Every rule knows its id ("file[0]", "network[2]"): audit records name it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from enforcer.policy.glob import validate_glob
from enforcer.policy.paths import normalize_path

API_VERSION = "enforcer/v1"
KIND = "ContainerPolicy"

Action = Literal["deny", "audit", "allow"]
# what happens to an operation no rule matches (SPEC "Postures"); allow is today's behaviour
PostureAction = Literal["allow", "audit", "deny"]
POSTURE_ACTIONS: tuple[PostureAction, ...] = ("allow", "audit", "deny")
Mode = Literal["enforce", "audit"]
RuleKind = Literal["file", "exec", "device", "network", "socket"]
RULE_KINDS: tuple[RuleKind, ...] = ("file", "exec", "device", "network", "socket")

FileAccess = Literal["read", "write", "any"]
DeviceAccess = Literal["read", "write", "mknod"]
DeviceType = Literal["char", "block", "any"]
Direction = Literal["egress", "ingress"]
Protocol = Literal["tcp", "udp", "any"]
SocketType = Literal["stream", "dgram", "raw", "seqpacket", "packet", "any"]

MAX_MAJOR = 4095  # 12 bits in dev_t
MAX_MINOR = 1048575  # 20 bits in dev_t

# Linux address family numbers (include/linux/socket.h). A table rather than the socket
# module: the kernel's numbering is what the BPF programs compare, whatever Python was built with.
ADDRESS_FAMILIES: dict[str, int] = {
    "unspec": 0,
    "unix": 1,
    "local": 1,
    "inet": 2,
    "ax25": 3,
    "ipx": 4,
    "appletalk": 5,
    "netrom": 6,
    "bridge": 7,
    "atmpvc": 8,
    "x25": 9,
    "inet6": 10,
    "rose": 11,
    "decnet": 12,
    "netbeui": 13,
    "security": 14,
    "key": 15,
    "netlink": 16,
    "route": 16,
    "packet": 17,
    "ash": 18,
    "econet": 19,
    "atmsvc": 20,
    "rds": 21,
    "sna": 22,
    "irda": 23,
    "pppox": 24,
    "wanpipe": 25,
    "llc": 26,
    "ib": 27,
    "mpls": 28,
    "can": 29,
    "tipc": 30,
    "bluetooth": 31,
    "iucv": 32,
    "rxrpc": 33,
    "isdn": 34,
    "phonet": 35,
    "ieee802154": 36,
    "caif": 37,
    "alg": 38,
    "nfc": 39,
    "vsock": 40,
    "kcm": 41,
    "qipcrtr": 42,
    "smc": 43,
    "xdp": 44,
    "mctp": 45,
}
# SOCK_* numbers; the kernel passes `type` with SOCK_NONBLOCK/SOCK_CLOEXEC or'ed in: mask them.
# "packet" is the obsolete SOCK_PACKET (10): raw link-level frames, as SOCK_RAW of AF_PACKET.
SOCKET_TYPES: dict[str, int] = {"stream": 1, "dgram": 2, "raw": 3, "seqpacket": 5, "packet": 10}

_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")


def _err(message: str, **ctx: Any) -> PydanticCustomError:
    # a custom error type keeps the message exactly as written (no "Value error, " prefix)
    return PydanticCustomError("policy", message, ctx or None)


# --- leaf types ---------------------------------------------------------------------------


def _path(value: Any) -> str:
    if not isinstance(value, str):
        raise _err("path must be a string")
    try:
        return normalize_path(value)
    except ValueError as exc:
        raise _err(str(exc)) from None


def _glob(value: Any) -> str:
    if not isinstance(value, str):
        raise _err("glob must be a string")
    try:
        return validate_glob(value)
    except ValueError as exc:
        raise _err(str(exc)) from None


def _container_glob(value: str) -> str:
    if value.startswith("/"):
        raise _err(f"container names are written without the leading '/': {value!r}")
    return value


def _label_value(value: Any) -> str:
    if not isinstance(value, str):
        raise _err(
            f'label values are strings; quote it: "{_yaml_scalar(value)}"',
        )
    return value


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _posture_action(value: Any) -> str:
    # a custom message: "allowed:" like an unknown key, rather than pydantic's "Input should be"
    if not isinstance(value, str) or value not in POSTURE_ACTIONS:
        raise _err(f"unknown posture {_yaml_scalar(value)!r} (allowed: {', '.join(POSTURE_ACTIONS)})")
    return value


def _device_number(limit: int) -> Any:
    def check(value: Any) -> int | str:
        if value == "*" and isinstance(value, str):
            return "*"
        if isinstance(value, bool) or not isinstance(value, int):
            raise _err(f'expected an integer 0..{limit} or "*", got {value!r}')
        if not 0 <= value <= limit:
            raise _err(f"out of range: {value} (0..{limit})")
        return value

    return check


def _port(value: Any) -> tuple[int, int]:
    """80 -> (80, 80); "8000-8100" -> (8000, 8100); "443" is accepted as 443."""
    if isinstance(value, bool):
        raise _err('expected a port 1..65535 or a range "A-B"')
    if isinstance(value, int):
        lo = hi = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*(-\s*\d+\s*)?", value):
        lo_s, _, hi_s = value.partition("-")
        lo, hi = int(lo_s), int(hi_s or lo_s)
    else:
        raise _err(f'expected a port 1..65535 or a range "A-B", got {value!r}')
    for p in (lo, hi):
        if not 1 <= p <= 65535:
            raise _err(f"port out of range: {p} (1..65535)")
    if lo > hi:
        raise _err(f"port range {value!r} is reversed (start must be <= end)")
    return (lo, hi)


def _cidr(value: Any) -> str:
    """Strict CIDR: host bits must be zero (10.0.0.1/8 is an error, not 10.0.0.0/8).

    A bare address is a /32 (/128). IPv4-mapped IPv6 (::ffff:a.b.c.d/n, n >= 96) is stored
    as the IPv4 network, so one spelling covers both socket families.
    """
    if not isinstance(value, str):
        raise _err(f"expected a CIDR string such as 10.0.0.0/8, got {value!r}")
    try:
        net = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise _err(f"invalid CIDR {value!r}: {exc}") from None
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None:
        if net.prefixlen < 96:
            raise _err(f"IPv4-mapped CIDR {value!r} needs a prefix length >= 96")
        net = ipaddress.IPv4Network((net.network_address.ipv4_mapped, net.prefixlen - 96), strict=True)
    return net.with_prefixlen


def _family(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in ADDRESS_FAMILIES:
        raise _err(f"unknown address family {value!r} (known: inet, inet6, unix, packet, netlink, ...)")
    return value.lower()


AbsPath = Annotated[str, BeforeValidator(_path)]
Glob = Annotated[str, BeforeValidator(_glob)]
ContainerGlob = Annotated[str, BeforeValidator(_glob), AfterValidator(_container_glob)]
LabelValue = Annotated[str, BeforeValidator(_label_value)]
Major = Annotated[int | str, BeforeValidator(_device_number(MAX_MAJOR))]
Minor = Annotated[int | str, BeforeValidator(_device_number(MAX_MINOR))]
PortRange = Annotated[tuple[int, int], BeforeValidator(_port)]
Cidr = Annotated[str, BeforeValidator(_cidr)]
Family = Annotated[str, BeforeValidator(_family)]
PostureValue = Annotated[PostureAction, BeforeValidator(_posture_action)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=False)


# --- rules --------------------------------------------------------------------------------


class _Rule(_Frozen):
    action: Action
    _rule_id: str = PrivateAttr(default="")

    @property
    def rule_id(self) -> str:
        """ "file[0]", "network[2]": the name audit records use (set by Spec)."""
        return self._rule_id


class FileRule(_Rule):
    """Exact `paths` and/or `dirs` (the directory itself and everything below it).

    `access` any = read and write. Opening for read+write is checked per access bit; the
    request is denied if either bit is denied (see reference.decide_file).
    """

    paths: tuple[AbsPath, ...] = ()
    dirs: tuple[AbsPath, ...] = ()
    access: tuple[FileAccess, ...] = Field(default=("any",), min_length=1)

    @model_validator(mode="after")
    def _needs_target(self) -> FileRule:
        if not self.paths and not self.dirs:
            raise _err("a file rule needs at least one of 'paths' or 'dirs'")
        return self

    @property
    def access_set(self) -> frozenset[str]:
        if "any" in self.access:
            return frozenset({"read", "write"})
        return frozenset(self.access)


class ExecRule(_Rule):
    """Executables by exact path and/or everything below `dirs`, or by `origin: image`: any
    file that came with the container's image, unchanged since the container started (the
    caller of reference.decide_exec establishes that fact).

    An origin rule names no paths: "this path, if from the image" would be a second,
    conjunctive kind of match, and two plain rules say it without one. Being about where a
    file came from rather than which file, it is less specific than any path or dir rule.
    """

    paths: tuple[AbsPath, ...] = ()
    dirs: tuple[AbsPath, ...] = ()
    origin: Literal["image"] | None = None

    @model_validator(mode="after")
    def _needs_target(self) -> ExecRule:
        if self.origin is not None and (self.paths or self.dirs):
            raise _err(
                "'origin' matches every file of the image, not given paths: put "
                "'origin: image' in an exec rule of its own, without 'paths' or 'dirs'"
            )
        if not self.paths and not self.dirs and self.origin is None:
            raise _err("an exec rule needs at least one of 'paths', 'dirs' or 'origin'")
        return self


class DeviceRule(_Rule):
    """A device node by type and major:minor ("*" = any); access defaults to all three."""

    type: DeviceType
    major: Major
    minor: Minor
    access: tuple[DeviceAccess, ...] = Field(default=("read", "write", "mknod"), min_length=1)


def _non_empty_cidrs(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is not None and not value:
        raise _err("an empty cidrs list matches no address; omit the key to match any address")
    return value


class NetworkRule(_Rule):
    """egress = what leaves for the address (connect, sendmsg, any packet sent); ingress =
    what arrives at the local address (bind, connections and datagrams accepted)."""

    direction: Direction
    protocol: Protocol = "any"
    # None (key omitted) = any address, both families
    cidrs: Annotated[tuple[Cidr, ...] | None, AfterValidator(_non_empty_cidrs)] = None
    ports: tuple[PortRange, ...] = ()  # empty = every port

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        if not self.cidrs:
            return (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
        return tuple(ipaddress.ip_network(c) for c in self.cidrs)


class SocketRule(_Rule):
    """socket(2) creation by family name and optional type (empty or "any" = every type)."""

    families: tuple[Family, ...] = Field(min_length=1)
    types: tuple[SocketType, ...] = ()

    @model_validator(mode="after")
    def _packet_type_is_packet_family(self) -> SocketRule:
        # the kernel turns socket(AF_INET, SOCK_PACKET) into AF_PACKET before any hook
        # sees it: such a rule would never match, so say what to write instead
        inet = [f for f in self.families if f in ("inet", "inet6")]
        if "packet" in self.types and inet:
            raise _err(
                f"type 'packet' (SOCK_PACKET) sockets are created as family 'packet', never "
                f"{inet[0]!r}: write families: [packet]"
            )
        return self

    @property
    def family_numbers(self) -> frozenset[int]:
        return frozenset(ADDRESS_FAMILIES[f] for f in self.families)

    @property
    def type_numbers(self) -> frozenset[int] | None:
        """None = every type."""
        if not self.types or "any" in self.types:
            return None
        return frozenset(SOCKET_TYPES[t] for t in self.types)


AnyRule = FileRule | ExecRule | DeviceRule | NetworkRule | SocketRule


# --- policy -------------------------------------------------------------------------------


def _non_empty_list(what: str) -> Any:
    def check(value: tuple[Any, ...]) -> tuple[Any, ...]:
        if not value:
            raise _err(f"an empty {what} list selects no container; omit the key to match all")
        return value

    return check


class Selector(_Frozen):
    """All given keys must match; each list is OR; an omitted key matches everything."""

    containerNames: Annotated[  # camelCase: the YAML spelling
        tuple[ContainerGlob, ...] | None, AfterValidator(_non_empty_list("containerNames"))
    ] = None
    images: Annotated[tuple[Glob, ...] | None, AfterValidator(_non_empty_list("images"))] = None
    labels: dict[StrictStr, LabelValue] | None = None

    def __hash__(self) -> int:  # dict fields are unhashable; hash the canonical dump
        return hash(repr(self.model_dump()))


POSTURE_FIELDS: dict[str, str] = {  # YAML class name -> Posture attribute
    "exec": "exec",
    "fileRead": "file_read",
    "fileWrite": "file_write",
    "egress": "egress",
    "ingress": "ingress",
    "device": "device",
    "socket": "socket",
}


class Posture(_Frozen):
    """Per class, what happens to an operation that no rule of the selecting policies
    matches. allow (every class's default) is the deny-list behaviour; a policy's `mode:
    audit` turns deny into audit (merge.merge_postures)."""

    exec: PostureValue = "allow"
    file_read: PostureValue = Field(default="allow", alias="fileRead")
    file_write: PostureValue = Field(default="allow", alias="fileWrite")
    egress: PostureValue = "allow"
    ingress: PostureValue = "allow"
    device: PostureValue = "allow"
    socket: PostureValue = "allow"

    def of(self, posture_class: str) -> PostureAction:
        """The action for a class by its YAML name ("fileWrite")."""
        action: PostureAction = getattr(self, POSTURE_FIELDS[posture_class])
        return action


class Spec(_Frozen):
    selector: Selector = Selector()
    mode: Mode = "enforce"
    posture: Posture = Posture()
    file: tuple[FileRule, ...] = ()
    exec: tuple[ExecRule, ...] = ()
    device: tuple[DeviceRule, ...] = ()
    network: tuple[NetworkRule, ...] = ()
    socket: tuple[SocketRule, ...] = ()

    @model_validator(mode="after")
    def _number_rules(self) -> Spec:
        for kind in RULE_KINDS:
            for i, rule in enumerate(getattr(self, kind)):
                rule._rule_id = f"{kind}[{i}]"
        return self

    def rules(self, kind: RuleKind) -> tuple[AnyRule, ...]:
        rules: tuple[AnyRule, ...] = getattr(self, kind)
        return rules


def _policy_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise _err(
            f"invalid policy name {value!r}: use 1-63 lowercase letters, digits, "
            "'-' or '.', starting and ending with a letter or digit"
        )
    return value


class Metadata(_Frozen):
    name: Annotated[str, BeforeValidator(_policy_name)]
    description: StrictStr | None = None


class Policy(_Frozen):
    apiVersion: Literal["enforcer/v1"]  # camelCase: the YAML spelling
    kind: Literal["ContainerPolicy"]
    metadata: Metadata
    spec: Spec

    @property
    def name(self) -> str:
        return self.metadata.name

    def __hash__(self) -> int:
        return hash(repr(self.model_dump()))
