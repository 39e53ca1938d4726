"""Typed writes of compiled device, network and socket rules into their pinned maps
(dev_rules, net4_rules, net6_rules, sock_rules), keyed by ruleset like path_rules."""

from __future__ import annotations

from collections.abc import Mapping

from enforcer.compiler.devices import DeviceKey
from enforcer.compiler.network import NetEntry, NetPrefix
from enforcer.compiler.paths import Slot
from enforcer.compiler.ruleset import CompiledRuleset
from enforcer.compiler.sockets import SocketKey
from enforcer.kernel.abi import Abi
from enforcer.pybpf import BpfError, Map

_DEV_TYPES = {"any": "DEV_TYPE_ANY", "block": "DEV_TYPE_BLOCK", "char": "DEV_TYPE_CHAR"}
_DIRECTIONS = {"egress": "NET_EGRESS", "ingress": "NET_INGRESS"}
_KEY_LAYOUTS = {"dev_rules": "dev_key", "net4_rules": "net4_key", "net6_rules": "net6_key", "sock_rules": "sock_key"}


class CgroupMaps:
    def __init__(self, abi: Abi, maps: Mapping[str, Map]) -> None:
        self._abi = abi
        self._maps = maps

    # ----- keys and values ------------------------------------------------------------------
    def dev_key(self, ruleset: int, key: DeviceKey) -> bytes:
        any_num = self._abi.const("DEV_NUM_ANY")
        return self._abi.layout("dev_key").pack(
            ruleset=ruleset,
            type=self._abi.const(_DEV_TYPES[key.type]),
            major=any_num if key.major is None else key.major,
            minor=any_num if key.minor is None else key.minor,
        )

    def dev_value(self, slots: list[Slot | None]) -> bytes:
        values: dict[str, int | bytes] = {"action": bytes(s.action if s else 0 for s in slots)}
        for i, s in enumerate(slots):
            values[f"rule_id[{i}]"] = s.rule_id if s else 0
        return self._abi.layout("dev_rule").pack(**values)

    def net_key(self, ruleset: int, prefix: NetPrefix) -> tuple[str, bytes]:
        """(map name, key) of an LPM entry."""
        net = prefix.network
        name = "net4" if net.version == 4 else "net6"
        key = self._abi.layout(f"{name}_key").pack(
            prefixlen=self._abi.const("NET_KEY_HEADER_BITS") + net.prefixlen,
            ruleset=ruleset,
            direction=self._abi.const(_DIRECTIONS[prefix.direction]),
            addr=net.network_address.packed,
        )
        return f"{name}_rules", key

    def net_value(self, entries: tuple[NetEntry, ...]) -> bytes:
        values: dict[str, int] = {"count": len(entries)}
        for i, e in enumerate(entries):
            for name in ("port_lo", "port_hi", "protocol", "action", "rule_id"):
                values[f"e[{i}].{name}"] = getattr(e, name)
        return self._abi.layout("net_rules").pack(**values)

    def sock_key(self, ruleset: int, key: SocketKey) -> bytes:
        return self._abi.layout("sock_key").pack(ruleset=ruleset, family=key.family, type=key.type)

    def sock_value(self, slot: Slot) -> bytes:
        return self._abi.layout("sock_rule").pack(rule_id=slot.rule_id, action=slot.action)

    # ----- rulesets -------------------------------------------------------------------------
    def _entries(self, ruleset: int, c: CompiledRuleset) -> dict[str, tuple[list[bytes], list[bytes]]]:
        out: dict[str, tuple[list[bytes], list[bytes]]] = {}

        def put(map_name: str, key: bytes, value: bytes) -> None:
            keys, values = out.setdefault(map_name, ([], []))
            keys.append(key)
            values.append(value)

        for dk, slots in c.devices.entries.items():
            put("dev_rules", self.dev_key(ruleset, dk), self.dev_value(slots))
        for prefix, entries in c.network.entries.items():
            map_name, key = self.net_key(ruleset, prefix)
            put(map_name, key, self.net_value(entries))
        for sk, slot in c.sockets.entries.items():
            put("sock_rules", self.sock_key(ruleset, sk), self.sock_value(slot))
        return out

    def write_ruleset(self, ruleset: int, compiled: CompiledRuleset) -> None:
        """All or nothing: if any map refuses (full: E2BIG/ENOMEM, EPERM), every entry
        written so far is deleted again before the error propagates."""
        entries = self._entries(ruleset, compiled)
        try:
            for map_name, (keys, values) in entries.items():
                self._maps[map_name].update_batch(keys, values)
        except BpfError:
            for map_name, (keys, _values) in entries.items():
                for key in keys:  # the ruleset id is fresh: every key present is one of ours
                    self._maps[map_name].delete(key)
            raise

    def delete_ruleset(self, ruleset: int, compiled: CompiledRuleset) -> None:
        for map_name, (keys, _values) in self._entries(ruleset, compiled).items():
            self._maps[map_name].delete_batch(keys)

    def container_fields(self, compiled: CompiledRuleset) -> dict[str, int]:
        """This ruleset's share of a container's `struct container` entry: flags only for
        kinds that can deny or audit, so a container without such rules costs one lookup."""
        c = self._abi.const
        flags = 0
        if compiled.devices.has_enforcing():
            flags |= c("CT_DEV_RULES")
        if compiled.network.has_enforcing("egress"):
            flags |= c("CT_NET_EGRESS")
        if compiled.network.has_enforcing("ingress"):
            flags |= c("CT_NET_INGRESS")
        if compiled.sockets.has_enforcing():
            flags |= c("CT_SOCK_RULES")
        return {"flags": flags, "dev_levels": compiled.devices.levels if flags & c("CT_DEV_RULES") else 0}

    # ----- taking over after a restart ------------------------------------------------------
    def ruleset_keys(self) -> dict[int, dict[str, list[bytes]]]:
        """ruleset id -> map name -> its keys, over every rule map."""
        out: dict[int, dict[str, list[bytes]]] = {}
        for map_name, layout_name in _KEY_LAYOUTS.items():
            layout = self._abi.layout(layout_name)
            for k in self._maps[map_name].keys():
                rs = int(layout.decode(k)["ruleset"])
                out.setdefault(rs, {}).setdefault(map_name, []).append(k)
        return out

    def prune(self, keep: set[int]) -> int:
        """Delete the entries of every ruleset not in `keep`; returns how many."""
        n = 0
        for rs, per_map in self.ruleset_keys().items():
            if rs in keep:
                continue
            for map_name, keys in per_map.items():
                self._maps[map_name].delete_batch(keys)
                n += len(keys)
        return n

    def has_container(self, cgroup_id: int) -> bool:
        return self._maps["containers"].lookup(cgroup_id.to_bytes(8, "little")) is not None
