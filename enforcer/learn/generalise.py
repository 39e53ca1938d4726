"""Observed operations -> the policy a person would write for them (SPEC "Learning").

Pure: no daemon, no kernel. The result allows what was seen and denies the rest of each
class that had observations (posture deny), in `mode: audit`, so it only records until a
person promotes it. Generalised the way a person would:
- files: a directory rule where many (DIR_FOLD) files directly under one directory were
  opened with the same access, repeated upwards (never to "/"); temp-like names (random
  suffixes, pids, *.tmp) fold into their directory at once, since the next run picks
  other names;
- exec: executed files exactly (a dir rule would let a copied binary in); files only
  mapped executable (shared libraries) fold like files;
- network: one rule per (direction, protocol, address) with its ports; destination ports
  in the ephemeral range (replies to a client) are one range, not a list; more than
  ADDR_FOLD addresses for one (direction, protocol, ports) become "any address";
- the selector is the container's image, or the labels given.
Every rule carries a comment with the number of operations it covers. The output passes
`enforcer check` and replays clean against the operations it was made from (tests).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from enforcer.learn.operations import DeviceOp, ExecOp, FileOp, NetOp, Operation, SockOp
from enforcer.policy.model import ADDRESS_FAMILIES, SOCKET_TYPES
from enforcer.policy.paths import is_under

DIR_FOLD = 4  # distinct entries under one directory that make it a dir rule
ADDR_FOLD = 8  # distinct addresses for the same ports that make it "any address"
EPHEMERAL = (32768, 65535)  # Linux's default ip_local_port_range starts at 32768
_FAMILY_NAMES = {n: name for name, n in reversed(ADDRESS_FAMILIES.items())}
_TYPE_NAMES = {str(n): name for name, n in SOCKET_TYPES.items()}
_NEVER_FOLD = frozenset({"/"})

# a name the next run will not reuse: mkstemp-style random suffixes, pids, numbered or
# dated temporaries, editor/package-manager leftovers
_TEMP_NAME = re.compile(
    r"""^(?:
        \d+                                   # a pid or counter: /proc/1234, /run/x/42
      | .*\.(?:tmp|temp|swp|part)              # x.tmp, x.swp, x.part (x.pid is stable)
      | (?:tmp|temp)[._-]?[A-Za-z0-9_-]{4,}   # tmpa8f3k2, tmp.XyZ123
      | .*[._-](?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{6,}  # sh-thd.Ab3xQ9
      | [0-9a-f]{16,}                         # a hash or id
    )$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Learned:
    """What a learn session saw of one container."""

    container_name: str
    image: str
    operations: Sequence[tuple[Operation, int]]  # (operation, count), allowed ones only
    labels: Mapping[str, str] | None = None  # selector labels; None: select by image
    lost: int = 0  # operations the kernel saw but could not itemise
    denied: int = 0  # operations existing policies denied while learning (not allowed here)
    seconds: float | None = None


def is_temp_name(name: str) -> bool:
    return bool(_TEMP_NAME.match(name))


def _parent(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


# --- paths ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathSet:
    """Exact paths and directories covering a set of observed paths, with op counts."""

    paths: dict[str, int]
    dirs: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.paths.values()) + sum(self.dirs.values())


def fold_paths(counts: Mapping[str, int], threshold: int = DIR_FOLD) -> PathSet:
    """Exact paths where few were seen, directories where many were (or where the name is
    temp-like); every input path stays covered by exactly one output entry."""
    dirs: set[str] = set()
    for path in counts:
        for part_end in _temp_components(path):
            d = _parent(path[:part_end]) if part_end else _parent(path)
            if d not in _NEVER_FOLD:
                dirs.add(d)
                break
    # bottom-up: a directory with `threshold` distinct entries (files or folded dirs) folds
    while True:
        entries: defaultdict[str, set[str]] = defaultdict(set)
        for path in counts:
            covering = _covering(path, dirs)
            entry = covering if covering is not None else path
            entries[_parent(entry)].add(entry)
        new = {
            d
            for d, es in entries.items()
            if len(es) >= threshold and d not in _NEVER_FOLD and _covering(d, dirs) is None
        }
        if not new:
            break
        dirs |= new
    dirs = {d for d in dirs if _covering(d, dirs - {d}) is None}  # drop dirs inside others
    out_paths: dict[str, int] = {}
    out_dirs: dict[str, int] = dict.fromkeys(sorted(dirs), 0)
    for path, n in counts.items():
        covering = _covering(path, dirs)
        if covering is None:
            out_paths[path] = out_paths.get(path, 0) + n
        else:
            out_dirs[covering] += n
    return PathSet(dict(sorted(out_paths.items())), out_dirs)


def _temp_components(path: str) -> Iterable[int]:
    """End offsets of the path's components that are temp-like names, first first."""
    pos = 0
    for part in path.split("/")[1:]:
        pos += 1 + len(part)
        if part and is_temp_name(part):
            yield pos


def _covering(path: str, dirs: Iterable[str]) -> str | None:
    best = None
    for d in dirs:
        if is_under(path, d) and (best is None or len(d) < len(best)):
            best = d
    return best


# --- rendering helpers ----------------------------------------------------------------------


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


def _ops(n: int) -> str:
    return f"{n} operation{'s' if n != 1 else ''}"


def _list(key: str, items: Mapping[str, int], indent: str = "      ") -> list[str]:
    out = [f"{indent}{key}:"]
    width = max(len(_q(i)) for i in items)
    for item, n in items.items():
        out.append(f"{indent}  - {_q(item).ljust(width)}  # {n}")
    return out


def _policy_name(container: str) -> str:
    base = re.sub(r"[^a-z0-9.-]+", "-", container.lower()).strip("-.") or "container"
    return ("learned-" + base)[:63].rstrip("-.")


# --- per class ------------------------------------------------------------------------------


def _exec_rules(ops: Counter[Operation]) -> tuple[list[str], int]:
    execs: Counter[str] = Counter()
    mapped: Counter[str] = Counter()
    for op, n in ops.items():
        if isinstance(op, ExecOp):
            (execs if op.hook == "exec" else mapped)[op.path] += n
    only_mapped = {p: n for p, n in mapped.items() if p not in execs}
    for p, n in mapped.items():
        if p in execs:
            execs[p] += n  # mapped and executed: the exact path rule covers both
    lines: list[str] = []
    if execs:
        lines += [f"    # executed: {_ops(sum(execs.values()))}", "    - action: allow"]
        lines += _list("paths", dict(sorted(execs.items())))
    if only_mapped:
        folded = fold_paths(only_mapped)
        lines += [f"    # mapped executable (shared libraries, ...): {_ops(folded.total)}", "    - action: allow"]
        if folded.paths:
            lines += _list("paths", folded.paths)
        if folded.dirs:
            lines += _list("dirs", folded.dirs)
    return lines, sum(ops[o] for o in ops if isinstance(o, ExecOp))


def _file_rules(ops: Counter[Operation]) -> tuple[list[str], set[str]]:
    by_access: dict[str, Counter[str]] = {"read": Counter(), "write": Counter()}
    for op, n in ops.items():
        if isinstance(op, FileOp):
            for bit in op.access:
                by_access[bit][op.path] += n
    lines: list[str] = []
    classes = set()
    for bit, counts in by_access.items():
        if not counts:
            continue
        classes.add("fileRead" if bit == "read" else "fileWrite")
        folded = fold_paths(counts)
        lines += [f"    # opened for {bit}: {_ops(folded.total)}", "    - action: allow", f"      access: [{bit}]"]
        if folded.paths:
            lines += _list("paths", folded.paths)
        if folded.dirs:
            lines += _list("dirs", folded.dirs)
    return lines, classes


def _device_rules(ops: Counter[Operation]) -> list[str]:
    by_dev: dict[tuple[str, int, int], Counter[str]] = defaultdict(Counter)
    for op, n in ops.items():
        if isinstance(op, DeviceOp):
            for bit in op.access:
                by_dev[(op.type, op.major, op.minor)][bit] += n
    lines: list[str] = []
    for (dtype, major, minor), bits in sorted(by_dev.items()):
        access = [b for b in ("read", "write", "mknod") if b in bits]
        total = sum(
            n
            for op, n in ops.items()
            if isinstance(op, DeviceOp) and (op.type, op.major, op.minor) == (dtype, major, minor)
        )
        lines += [
            f"    # {_ops(total)}",
            "    - action: allow",
            f"      type: {dtype}",
            f"      major: {major}",
            f"      minor: {minor}",
            f"      access: [{', '.join(access)}]",
        ]
    return lines


def _net_key_protocol(op: NetOp) -> str:
    return op.protocol if op.protocol in ("tcp", "udp") else "any"


def _network_rules(ops: Counter[Operation]) -> tuple[list[str], set[str]]:
    # (direction, protocol, cidr) -> port spec -> count; port spec "" = every port
    groups: dict[tuple[str, str], dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for op, n in ops.items():
        if not isinstance(op, NetOp):
            continue
        ip = ipaddress.ip_address(op.address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        # a bind to the wildcard address is "every local address": no cidrs, both families
        cidr = "" if op.direction == "ingress" and ip.is_unspecified else f"{ip}/{ip.max_prefixlen}"
        proto = _net_key_protocol(op)
        if proto == "any" or op.port == 0:
            port = ""  # no port to name (ICMP, raw; a bind to port 0 takes any free port)
        elif op.direction == "egress" and op.port >= EPHEMERAL[0]:
            port = f"{EPHEMERAL[0]}-{EPHEMERAL[1]}"  # replies to clients' ephemeral ports
        else:
            port = str(op.port)
        groups[(op.direction, proto)][cidr][port] += n
    lines: list[str] = []
    classes = set()
    for (direction, proto), by_cidr in sorted(groups.items()):
        classes.add(direction)
        # cidrs with the same ports are one rule; many addresses for the same ports: any
        by_ports: dict[tuple[str, ...], dict[str, int]] = defaultdict(dict)
        for cidr, counts in by_cidr.items():
            key = () if "" in counts else tuple(sorted(counts, key=lambda p: int(p.split("-")[0])))
            by_ports[key][cidr] = sum(counts.values())
        for ports, cidrs in sorted(by_ports.items()):
            total = sum(cidrs.values())
            what = f"{direction} {proto}"
            if ports:
                what += f" to port{'s' if len(ports) > 1 or '-' in ports[0] else ''} {', '.join(ports)}"
            if any(p.startswith(f"{EPHEMERAL[0]}-") for p in ports):
                what += " (ephemeral ports: replies to clients)"
            lines += [
                f"    # {what}: {_ops(total)}",
                "    - action: allow",
                f"      direction: {direction}",
                f"      protocol: {proto}",
            ]
            if "" in cidrs:
                lines.append("      # bound to the wildcard address: any local address")
            elif len(cidrs) <= ADDR_FOLD:
                lines += _list("cidrs", dict(sorted(cidrs.items())))
            else:
                lines.append(f"      # {len(cidrs)} addresses: any address")
            if ports:
                lines.append(f"      ports: [{', '.join(_q(p) if '-' in p else p for p in ports)}]")
    return lines, classes


def _socket_rules(ops: Counter[Operation]) -> list[str]:
    by_family: dict[str, Counter[str]] = defaultdict(Counter)
    for op, n in ops.items():
        if isinstance(op, SockOp):
            family = _FAMILY_NAMES.get(int(op.family), "") if op.family.isdigit() else op.family
            stype = _TYPE_NAMES.get(op.type, op.type)
            by_family[family][stype if stype in SOCKET_TYPES else "any"] += n
    lines: list[str] = []
    for family, types in sorted(by_family.items()):
        if not family:
            continue  # an address family this version has no name for: cannot be written
        named = sorted(types) if "any" not in types else []
        lines += [f"    # {_ops(sum(types.values()))}", "    - action: allow", f"      families: [{family}]"]
        if named:
            lines.append(f"      types: [{', '.join(named)}]")
    return lines


# --- the policy -----------------------------------------------------------------------------


def generalise(learned: Learned) -> str:
    """The learned policy as YAML text (one document, comments included)."""
    ops: Counter[Operation] = Counter()
    for op, n in learned.operations:
        ops[op] += n
    exec_lines, _ = _exec_rules(ops)
    file_lines, file_classes = _file_rules(ops)
    device_lines = _device_rules(ops)
    net_lines, net_classes = _network_rules(ops)
    socket_lines = _socket_rules(ops)
    classes = set(file_classes) | net_classes
    if exec_lines:
        classes.add("exec")
    if device_lines:
        classes.add("device")
    if socket_lines:
        classes.add("socket")

    total = sum(ops.values())
    over = f" over {learned.seconds:.0f} s" if learned.seconds is not None else ""
    out = [
        f"# Learned by `enforcer learn` from container {learned.container_name} "
        f"(image {learned.image}){over}: {_ops(total)}.",
        "# It allows what was seen and, for each class that had observations, denies the",
        "# rest (posture deny). mode: audit only records what it would deny: replay it",
        "# (enforcer replay) against more traffic, review it, then set mode: enforce.",
        "# Learning cannot see what did not happen while it ran: error paths, rare jobs,",
        "# `docker exec` sessions, paths never exercised (docs/learning.md).",
    ]
    if learned.lost:
        out += [
            f"# WARNING: {_ops(learned.lost)} were seen by the kernel but lost before they",
            "# could be recorded: this policy may miss what they were. Learn again.",
        ]
    if learned.denied:
        out.append(
            f"# {_ops(learned.denied)} were denied by the policies in force while learning; they are not allowed here."
        )
    out += [
        "apiVersion: enforcer/v1",
        "kind: ContainerPolicy",
        "metadata:",
        f"  name: {_policy_name(learned.container_name)}",
        f"  description: {_q(f'learned from container {learned.container_name}')}",
        "spec:",
        "  selector:",
    ]
    if learned.labels:
        out.append("    labels:")
        out += [f"      {_q(k)}: {_q(v)}" for k, v in sorted(learned.labels.items())]
    else:
        out.append(f"    images: [{_q(learned.image)}]")
    out.append("  mode: audit")
    if classes:
        out.append("  posture:")
        order = ("exec", "fileRead", "fileWrite", "egress", "ingress", "device", "socket")
        out += [f"    {c}: deny" for c in order if c in classes]
    for key, lines in (
        ("exec", exec_lines),
        ("file", file_lines),
        ("device", device_lines),
        ("network", net_lines),
        ("socket", socket_lines),
    ):
        if lines:
            out.append(f"  {key}:")
            out += lines
    return "\n".join(out) + "\n"
