"""Python mirrors of the cgroup programs' lookups (bpf/cgroup_*.bpf.c), run over compiled
map entries: compiler + kernel algorithm must give the reference decision (reference.decide_*)."""

from __future__ import annotations

import ipaddress

from enforcer.compiler.devices import CompiledDevices, DeviceKey
from enforcer.compiler.network import PROTO_ANY, CompiledNetwork
from enforcer.compiler.paths import ACTION_CODES, CompiledPaths, PathEntry, Slot
from enforcer.compiler.rules import RuleTable
from enforcer.compiler.sockets import ANY_TYPE, CompiledSockets, SocketKey
from enforcer.policy.model import ADDRESS_FAMILIES, SOCKET_TYPES
from enforcer.policy.reference import DEVICE_ACCESS_ORDER, IP_PROTOCOLS, Decision

ACTION_NAMES = {v: k for k, v in ACTION_CODES.items()}
Outcome = tuple[str, str, str] | None  # (action, policy, rule id)


def outcome(action: int, rule_id: int, table: RuleTable) -> Outcome:
    if not action:
        return None
    ref = table.ref_for(rule_id)
    assert ref is not None
    return ACTION_NAMES[action], ref.policy, ref.rule


def reference(d: Decision | None) -> Outcome:
    return None if d is None else (d.action, d.policy, d.rule_id)


def device(c: CompiledDevices, table: RuleTable, type: str, major: int, minor: int, access: set[str]) -> Outcome:
    need = {i for i, a in enumerate(DEVICE_ACCESS_ORDER) if a in access}
    slot_action, slot_rule = [0, 0, 0], [0, 0, 0]
    for level in range(8):
        if not need or not c.levels & (1 << level):
            continue
        key = DeviceKey("any" if level & 1 else type, None if level & 4 else major, None if level & 2 else minor)
        slots = c.entries.get(key)
        if slots is None:
            continue
        for a in sorted(need):
            if slots[a] is not None:
                slot_action[a], slot_rule[a] = slots[a].action, slots[a].rule_id  # type: ignore[union-attr]
                need.discard(a)
    action = rule = 0
    for a in range(3):
        if slot_action[a] > action:
            action, rule = slot_action[a], slot_rule[a]
    return outcome(action, rule, table)


def network(c: CompiledNetwork, table: RuleTable, direction: str, address: str, port: int, protocol: str) -> Outcome:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    best = None
    for prefix in c.entries:  # the LPM trie: the longest prefix of this direction holding ip
        net = prefix.network
        if (
            prefix.direction == direction
            and net.version == ip.version
            and ip in net
            and (best is None or net.prefixlen > best.network.prefixlen)
        ):
            best = prefix
    if best is None:
        return None
    proto = IP_PROTOCOLS[protocol]
    for e in c.entries[best]:
        if e.port_lo <= port <= e.port_hi and e.protocol in (PROTO_ANY, proto):
            return outcome(e.action, e.rule_id, table)
    return None


def socket(c: CompiledSockets, table: RuleTable, family: str, type: str) -> Outcome:
    fam, typ = ADDRESS_FAMILIES[family], SOCKET_TYPES[type]
    slot = c.entries.get(SocketKey(fam, typ)) or c.entries.get(SocketKey(fam, ANY_TYPE))
    return outcome(slot.action, slot.rule_id, table) if slot else None


# ----- file and exec rules (bpf/lsm_file.bpf.c: descend_step, match_path) -------------------
def _prefixes(path: str) -> list[str]:
    """The path's prefixes by depth: ["/", "/a", "/a/b", ...]."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:d]) for d in range(len(parts) + 1)]


def path_lookup(
    c: CompiledPaths, ns: str, path: str, slots: list[int], lookups: list[str] | None = None
) -> dict[int, tuple[int, int]]:
    """Per access slot, (action, rule id) of the rule the kernel takes, as match_path does
    it: from the root down, the dir-kind entry of each prefix (a deeper rule replaces one
    above it), stopping at a directory with no rule below it (PR_BELOW); at the file itself,
    its exact rule beats them all. Every map lookup's path is appended to `lookups`."""
    seen = lookups if lookups is not None else []
    exact_kind, dir_kind = f"{ns}_exact", f"{ns}_dir"
    prefixes = _prefixes(path)
    taken: dict[int, tuple[int, int]] = {}

    def take(entry_slots: list[Slot | None]) -> None:
        for a in slots:
            s = entry_slots[a]
            if s is not None:
                taken[a] = (s.action, s.rule_id)

    for depth, prefix in enumerate(prefixes):
        seen.append(prefix)
        entry = PathEntry(dir_kind, prefix)  # type: ignore[arg-type]
        if (e := c.entries.get(entry)) is not None:
            take(e)
        if depth == len(prefixes) - 1:
            seen.append(path)
            if (e := c.entries.get(PathEntry(exact_kind, path))) is not None:  # type: ignore[arg-type]
                take(e)
        elif entry not in c.below:
            break
    return taken
