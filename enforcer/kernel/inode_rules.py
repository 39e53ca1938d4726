"""`inode_rules`: the entries enforcer.compiler.inodes resolved for one container, written
and removed per (container, ruleset), so a ruleset change flips with the container's entry,
like the path rules."""

from __future__ import annotations

from collections.abc import Mapping

from enforcer.compiler.inodes import ContainerInodes, InodeEntry
from enforcer.kernel.abi import Abi
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.pybpf import Map


class InodeRules:
    """Writes and removes one container's `inode_rules` entries (keyed by cgroup and ruleset,
    so a ruleset change flips with the container's entry, like the path rules)."""

    def __init__(self, abi: Abi, maps: Mapping[str, Map], policy_maps: PolicyMaps) -> None:
        self._abi = abi
        self._map = maps["inode_rules"]
        self._value = policy_maps.path_value
        self._changed = policy_maps.changed
        self._written: dict[int, dict[int, list[bytes]]] = {}  # cgroup -> ruleset -> keys
        self._current: dict[int, int] = {}  # cgroup -> ruleset of the latest write

    def _key(self, cgroup_id: int, ruleset: int, e: InodeEntry) -> bytes:
        return self._abi.layout("inode_key").pack(
            cgroup_id=cgroup_id, ino=e.ino, dev=e.dev, ruleset=ruleset, kind=self._abi.const(e.kind)
        )

    def write(self, cgroup_id: int, ruleset: int, resolved: ContainerInodes) -> None:
        """Add the entries for (container, ruleset), before the container is pointed at the
        ruleset. The ruleset it points at until then keeps its entries; older ones go."""
        previous = self._current.get(cgroup_id)
        self.drop(cgroup_id, keep=(ruleset, previous))
        keys = [self._key(cgroup_id, ruleset, e) for e in resolved.entries]
        if keys:
            self._map.update_batch(keys, [self._value(s) for s in resolved.entries.values()])
            self._changed()
        self._written.setdefault(cgroup_id, {})[ruleset] = keys
        self._current[cgroup_id] = ruleset

    def drop(self, cgroup_id: int, keep: tuple[int | None, ...] = ()) -> None:
        """Remove the container's entries (all, or those of rulesets not in `keep`)."""
        for ruleset, keys in list(self._written.get(cgroup_id, {}).items()):
            if ruleset in keep:
                continue
            if keys:
                self._map.delete_batch(keys)
                self._changed()
            del self._written[cgroup_id][ruleset]
        if not self._written.get(cgroup_id):
            self._written.pop(cgroup_id, None)
            self._current.pop(cgroup_id, None)
