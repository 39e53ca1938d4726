"""The reference model of the kernel's decisions: what the merged rules and postures of
one container decide for one operation. replay decides recorded operations with it, the
compiler shares its notion of specificity, and the tests hold the BPF side to it.

`decide_file` / `decide_exec` (and decide_device / decide_network / decide_socket, whose
docstrings say what "most specific" means for them) are the executable form of the SPEC
semantics, so they favour obviousness over speed:
1. a rule is a candidate if one of its `paths` equals the path or one of its `dirs` is the
   path or an ancestor of it (a dir covers itself and everything below; /a does not
   cover /ab), and (files) its access includes the requested access bit;
2. the most specific candidate wins: an exact path beats every directory, a deeper
   directory beats a shallower one;
3. on a tie, deny beats audit beats allow; among equal actions the first rule in merge
   order is reported;
4. a request for several access bits (read+write) is decided per bit; the most severe
   outcome wins (deny > audit > allow > no match), ties reported for the first bit in
   (read, write) order. So read+write is denied if either read or write is denied.
None means no rule matched and the posture of the operation's class is allow (the default):
nothing to record.

Postures: every decide_* takes merge_postures()'s result as `postures=`; when no rule
matches, the class's posture decides, reported as rule "posture.<class>" of the policy that
set it. A matching rule, of any action, always beats a posture. Files are decided per access
bit (read -> fileRead, write -> fileWrite), so read+write takes the stricter of the two.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from enforcer.policy.merge import SEVERITY, EffectiveRule, Postures, of_kind, posture_rule_id
from enforcer.policy.model import (
    ADDRESS_FAMILIES,
    SOCKET_TYPES,
    Action,
    DeviceRule,
    ExecRule,
    FileRule,
    NetworkRule,
    PostureAction,
    SocketRule,
)
from enforcer.policy.paths import depth, is_under, normalize_path

FILE_ACCESS_ORDER = ("read", "write")
POSTURE_MATCHED = "*"  # Decision.matched of a posture decision: it covers whatever no rule did


@dataclass(frozen=True)
class Decision:
    action: Action  # deny | audit | allow
    policy: str
    rule_id: str
    matched: str  # what in the rule matched: a path, dir, cidr, "char 1:*", "packet/raw"...
    access: str | None = None  # the access bit that decided (file/device), else None


def _posture(postures: Postures | None, posture_class: str, access: str | None = None) -> Decision | None:
    """The decision of the class's posture for an operation no rule matched (None: allow)."""
    if postures is None:
        return None
    p = postures.get(posture_class)
    if p is None or p.action == "allow":
        return None
    action: PostureAction = "deny" if p.action == "deny" else "audit"
    return Decision(action, p.policy, posture_rule_id(posture_class), POSTURE_MATCHED, access)


def _or_posture(
    decision: Decision | None,
    postures: Postures | None,
    posture_class: str,
    access: str | None = None,
) -> Decision | None:
    return decision if decision is not None else _posture(postures, posture_class, access)


# --- shared selection ---------------------------------------------------------------------

Specificity = tuple[Any, ...]


def pick(
    rules: Iterable[EffectiveRule],
    match: Callable[[EffectiveRule], tuple[Specificity, str] | None],
    access: str | None = None,
) -> Decision | None:
    """Most specific match wins; ties: deny > audit > allow; then first in order."""
    best: tuple[Specificity, int] | None = None
    chosen: Decision | None = None
    for r in rules:
        m = match(r)
        if m is None:
            continue
        spec, matched = m
        key = (spec, SEVERITY[r.action])
        if best is None or key > best:  # strict '>' keeps the first rule on a full tie
            best = key
            chosen = Decision(r.action, r.policy, r.rule_id, matched, access)
    return chosen


def combine(decisions: Iterable[Decision | None]) -> Decision | None:
    """Per-bit decisions -> one: the most severe; the first one on a tie."""
    chosen: Decision | None = None
    for d in decisions:
        if d is not None and (chosen is None or SEVERITY[d.action] > SEVERITY[chosen.action]):
            chosen = d
    return chosen


def access_bits(access: str | Iterable[str], allowed: tuple[str, ...]) -> tuple[str, ...]:
    """ "read" / {"read", "write"} -> bits in canonical order; ValueError if empty or unknown."""
    bits = {access} if isinstance(access, str) else set(access)
    unknown = bits - set(allowed)
    if unknown or not bits:
        raise ValueError(f"access must be a non-empty subset of {allowed}, got {sorted(bits)}")
    return tuple(b for b in allowed if b in bits)


# --- files and exec -----------------------------------------------------------------------


def _path_match(rule: FileRule | ExecRule, path: str) -> tuple[Specificity, str] | None:
    """(specificity, matched) of the rule's best target for `path`; exact = (1, 0)."""
    if path in rule.paths:
        return (1, 0), path
    best: tuple[Specificity, str] | None = None
    for d in rule.dirs:
        if is_under(path, d):
            cand = ((0, depth(d)), d)
            if best is None or cand[0] > best[0]:
                best = cand
    return best


FILE_POSTURE = {"read": "fileRead", "write": "fileWrite"}


def decide_file(
    rules: Iterable[EffectiveRule],
    path: str,
    access: str | Iterable[str],
    postures: Postures | None = None,
) -> Decision | None:
    """The decision for opening `path` (absolute, as resolved in the container) with
    `access` ("read", "write" or both). Non-file rules in `rules` are ignored. A bit no
    rule matches is decided by its posture (read: fileRead, write: fileWrite)."""
    path = normalize_path(path)
    bits = access_bits(access, FILE_ACCESS_ORDER)
    file_rules = of_kind(rules, "file")

    def per_bit(bit: str) -> Decision | None:
        def match(r: EffectiveRule) -> tuple[Specificity, str] | None:
            assert isinstance(r.rule, FileRule)
            return _path_match(r.rule, path) if bit in r.rule.access_set else None

        return _or_posture(pick(file_rules, match, bit), postures, FILE_POSTURE[bit], bit)

    return combine(per_bit(b) for b in bits)


ORIGIN_SPECIFICITY: Specificity = (-1, 0)  # below every dir (0, depth) and exact path (1, 0)


def decide_exec(
    rules: Iterable[EffectiveRule],
    path: str,
    postures: Postures | None = None,
    *,
    from_image: bool = False,
) -> Decision | None:
    """The decision for executing `path` (absolute, resolved). Same specificity rules;
    an `origin: image` rule matches when `from_image` (the caller's finding: the file is
    the image's, unchanged since start, not on a volume/tmpfs/bind mount) and is less
    specific than any path or dir rule. No match: the exec posture decides."""
    path = normalize_path(path)

    def match(r: EffectiveRule) -> tuple[Specificity, str] | None:
        assert isinstance(r.rule, ExecRule)
        if r.rule.origin == "image":
            return (ORIGIN_SPECIFICITY, "origin:image") if from_image else None
        return _path_match(r.rule, path)

    return _or_posture(pick(of_kind(rules, "exec"), match), postures, "exec")


# --- devices ------------------------------------------------------------------------------

DEVICE_ACCESS_ORDER = ("read", "write", "mknod")


def decide_device(
    rules: Iterable[EffectiveRule],
    type: str,
    major: int,
    minor: int,
    access: str | Iterable[str],
    postures: Postures | None = None,
) -> Decision | None:
    """The decision for `access` (read, write, mknod or several) to device `type`
    ("char" | "block") major:minor. A rule matches when its type is the device's or any, its
    major and minor are the device's or "*", and it names the access bit. Most specific: an
    exact major beats "*", then an exact minor beats "*", then an exact type beats any.
    Several bits are decided per bit and combined like files (the most severe wins)."""
    if type not in ("char", "block"):
        raise ValueError(f"device type must be char or block, got {type!r}")
    bits = access_bits(access, DEVICE_ACCESS_ORDER)
    device_rules = of_kind(rules, "device")

    def per_bit(bit: str) -> Decision | None:
        def match(r: EffectiveRule) -> tuple[Specificity, str] | None:
            rule = r.rule
            assert isinstance(rule, DeviceRule)
            if bit not in rule.access or rule.type not in (type, "any"):
                return None
            if rule.major not in (major, "*") or rule.minor not in (minor, "*"):
                return None
            spec = (rule.major != "*", rule.minor != "*", rule.type != "any")
            return spec, f"{rule.type} {rule.major}:{rule.minor}"

        return _or_posture(pick(device_rules, match, bit), postures, "device", bit)

    return combine(per_bit(b) for b in bits)


# --- network ------------------------------------------------------------------------------

IP_PROTOCOLS = {"tcp": 6, "udp": 17}
ALL_PORTS = (0, 65535)  # a rule without ports covers every port, 0 (unspecified) included


def network_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address a rule is matched against: an IPv4-mapped IPv6 address is its IPv4."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def network_specificity(prefixlen: int, ports: tuple[int, int], protocol: str) -> Specificity:
    """Longer prefix first; then the narrower port range; then a named protocol beats any."""
    return (prefixlen, -(ports[1] - ports[0] + 1), protocol != "any")


def decide_network(
    rules: Iterable[EffectiveRule],
    direction: str,
    address: str,
    port: int,
    protocol: str | int,
    postures: Postures | None = None,
) -> Decision | None:
    """The decision for a connect/sendmsg (direction egress) or bind (ingress) to
    address:port over `protocol` ("tcp", "udp" or an IP protocol number). A rule matches when
    its direction is the request's, one of its CIDRs holds the address (IPv4-mapped IPv6 is
    the IPv4 address), one of its port ranges (or every port) holds the port and its protocol
    is the request's or any. Most specific wins (network_specificity), then deny > audit >
    allow, then merge order."""
    ip = network_address(address)
    proto = IP_PROTOCOLS.get(protocol, protocol) if isinstance(protocol, str) else protocol
    if not isinstance(proto, int):
        raise ValueError(f"protocol must be tcp, udp or a number, got {protocol!r}")

    def match(r: EffectiveRule) -> tuple[Specificity, str] | None:
        rule = r.rule
        assert isinstance(rule, NetworkRule)
        if rule.direction != direction:
            return None
        if rule.protocol != "any" and IP_PROTOCOLS[rule.protocol] != proto:
            return None
        best: tuple[Specificity, str] | None = None
        for net in rule.networks:
            if net.version != ip.version or ip not in net:
                continue
            for lo, hi in rule.ports or (ALL_PORTS,):
                if lo <= port <= hi:
                    cand = (network_specificity(net.prefixlen, (lo, hi), rule.protocol), str(net))
                    if best is None or cand[0] > best[0]:
                        best = cand
        return best

    if direction not in ("egress", "ingress"):
        raise ValueError(f"direction must be egress or ingress, got {direction!r}")
    return _or_posture(pick(of_kind(rules, "network"), match), postures, direction)


# --- sockets ------------------------------------------------------------------------------


def decide_socket(
    rules: Iterable[EffectiveRule],
    family: str | int,
    type: str | int,
    postures: Postures | None = None,
) -> Decision | None:
    """The decision for socket(family, type). A rule matches when it names the family and
    the type or every type; one naming the type is more specific than one for every type."""
    fam = ADDRESS_FAMILIES[family] if isinstance(family, str) else family
    typ = SOCKET_TYPES[type] if isinstance(type, str) else type

    def match(r: EffectiveRule) -> tuple[Specificity, str] | None:
        rule = r.rule
        assert isinstance(rule, SocketRule)
        if fam not in rule.family_numbers:
            return None
        types = rule.type_numbers
        if types is not None and typ not in types:
            return None
        return (types is not None,), f"{family}/{type if types is not None else 'any'}"

    return _or_posture(pick(of_kind(rules, "socket"), match), postures, "socket")
