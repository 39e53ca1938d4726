"""Typed writes into the shared policy maps: settings, containers, path_rules, counters.

A container points at a ruleset id; rules are keyed by ruleset. A new policy version is
written under a fresh ruleset id and each container is then flipped with one map update,
so an open is judged by the old rules or the new ones, never by a mixture. Every write is
followed by `changed()`: the kernel's decision cache keeps no verdict across it.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence

from enforcer.compiler.pathhash import PathHasher
from enforcer.compiler.paths import CompiledPaths, PathEntry, Slot
from enforcer.errors import EnforcerError
from enforcer.kernel.abi import Abi
from enforcer.kernel.open_cache import OpenCache
from enforcer.pybpf import BpfError, Map

_KIND_CONST = {
    "file_exact": "PK_FILE_EXACT",
    "file_dir": "PK_FILE_DIR",
    "exec_exact": "PK_EXEC_EXACT",
    "exec_dir": "PK_EXEC_DIR",
    "guard": "PK_GUARD",
}


def _host_mnt_ns() -> int:
    """The inode number of pid 1's mount namespace: the host's, where the runtime sets a
    container up (runc execs a sealed copy of itself from a detached mount there). 0 when it
    cannot be read: then no task counts as the runtime's and detached files stay denied."""
    try:
        return os.stat("/proc/1/ns/mnt").st_ino & 0xFFFFFFFF
    except OSError:
        return 0


class PolicyMaps:
    def __init__(self, abi: Abi, maps: Mapping[str, Map], fold_window_ms: int | None = None) -> None:
        """`fold_window_ms`: identical repeats of a reported operation within it share one
        kernel event (0: one event per operation). The daemon, which takes the repeats left
        waiting, sets it; None keeps what is in force (a reader of a daemon's maps, such as
        the bench, must not turn its folding off)."""
        self._abi = abi
        self._maps = maps
        self._cache = OpenCache(abi, maps) if "cache_state" in maps else None
        self._seed = self.set_fold_window(fold_window_ms)
        slots = abi.const("ACC_SLOTS")
        self._value_packer = abi.layout("path_rule").packer(*(f"rule_id[{i}]" for i in range(slots)), "action", "flags")
        self._below = abi.const("PR_BELOW")

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def open_cache(self) -> OpenCache | None:
        """None when the file programs (and their cache) are not loaded."""
        return self._cache

    def changed(self) -> None:
        """Call after writing any map a file verdict reads (InodeRules does)."""
        if self._cache is not None:
            self._cache.changed()

    def set_fold_window(self, fold_window_ms: int | None) -> int:
        """Write the settings; returns the hash seed. The seed lives in the pinned settings
        map: a restarted daemon must reuse it, because the rules already in the kernel were
        hashed with it. The host's mount namespace and the fold window (None: the one in
        force) are written beside it, each start (see _host_mnt_ns)."""
        settings = self._abi.layout("settings")
        key = (0).to_bytes(4, "little")
        raw = self._maps["settings"].lookup(key)
        current = settings.decode(raw) if raw else {}
        seed = int(current.get("hash_seed") or 0) or secrets.randbits(64) or 1
        if fold_window_ms is None:
            fold_window_ms = int(current.get("fold_window_ms") or 0)
        self._maps["settings"].update(
            key, settings.pack(hash_seed=seed, host_mnt_ns=_host_mnt_ns(), fold_window_ms=fold_window_ms)
        )
        self.changed()
        return seed

    def _path_keys(self, ruleset: int, entries: Iterable[PathEntry]) -> list[bytes]:
        hasher = PathHasher(self._seed)
        pack = self._abi.layout("path_key").packer("hash", "ruleset", "len", "depth", "kind")
        kinds = {k: self._abi.const(c) for k, c in _KIND_CONST.items()}
        out = []
        for e in entries:
            h = hasher.hash(e.path)
            out.append(pack(h.hash, ruleset, h.length, h.depth, kinds[e.kind]))
        return out

    def path_value(self, slots: Sequence[Slot | None], below: bool = False) -> bytes:
        """A `struct path_rule` (also the value type of inode_rules); `below`: a rule lies
        under this directory (PR_BELOW)."""
        return self._value_packer(
            *(s.rule_id if s else 0 for s in slots),
            bytes(s.action if s else 0 for s in slots),
            self._below if below else 0,
        )

    def write_ruleset(self, ruleset: int, compiled: CompiledPaths) -> None:
        if not compiled.entries:
            return
        keys = self._path_keys(ruleset, compiled.entries)
        values = [self.path_value(slots, e in compiled.below) for e, slots in compiled.entries.items()]
        try:
            self._maps["path_rules"].update_batch(keys, values)
            self.changed()
        except BpfError as exc:
            # All or nothing: a half-written ruleset must not linger (nor be used).
            for key in keys:  # the ruleset id is fresh: every key present is one of ours
                self._maps["path_rules"].delete(key)
            self.changed()
            if exc.errno in (errno.E2BIG, errno.ENOMEM):
                raise EnforcerError(
                    f"the policies selecting this container compile to {len(keys)} path entries "
                    "and the kernel's path_rules map has no room for them (it holds "
                    f"{self._maps['path_rules'].max_entries} across all rulesets, and a reload "
                    "briefly needs old and new); merge exact paths into `dirs` rules or split "
                    "the policy by selector"
                ) from exc
            raise

    def delete_ruleset(self, ruleset: int, compiled: CompiledPaths) -> None:
        if compiled.entries:
            self._maps["path_rules"].delete_batch(self._path_keys(ruleset, compiled.entries))
            self.changed()

    def container_flags(self, compiled: CompiledPaths) -> int:
        flags = self._abi.const("CT_PATH_MARKERS")  # compile_paths always marks ancestors
        if compiled.has_enforcing("file"):
            flags |= self._abi.const("CT_FILE_RULES")
        if compiled.has_enforcing("exec"):
            flags |= self._abi.const("CT_EXEC_RULES")
        return flags

    def container_fields(self, compiled: CompiledPaths) -> dict[str, int]:
        """This ruleset's share of a container's `struct container` entry."""
        return {
            "flags": self.container_flags(compiled),
        }

    def set_container(self, cgroup_id: int, ruleset: int, fields: Mapping[str, int]) -> None:
        """Point a container at a ruleset: one map update, so its next operation is judged
        by the new ruleset entirely."""
        value = self._abi.layout("container").pack(ruleset=ruleset, **fields)
        self._maps["containers"].update(cgroup_id.to_bytes(8, "little"), value)
        self.changed()

    def remove_container(self, cgroup_id: int) -> dict[int, int]:
        """Forget a container; returns its final per-rule counts (rule id -> count)."""
        self._maps["containers"].delete(cgroup_id.to_bytes(8, "little"))
        self.changed()
        if "image_times" in self._maps:  # its created time (origin: image) goes with it
            self._maps["image_times"].delete(cgroup_id.to_bytes(8, "little"))
        counts = self.counters(cgroup_id)
        key = self._abi.layout("counter_key")
        for rule_id in counts:
            self._maps["counters"].delete(key.pack(cgroup_id=cgroup_id, rule_id=rule_id))
        return counts

    def counters(self, cgroup_id: int | None = None) -> dict[int, int]:
        key = self._abi.layout("counter_key")
        out: dict[int, int] = {}
        for k, v in self._maps["counters"].items():
            fields = key.decode(k)
            if cgroup_id is None or fields["cgroup_id"] == cgroup_id:
                out[fields["rule_id"]] = out.get(fields["rule_id"], 0) + int.from_bytes(v, "little")
        return out

    def all_counters(self) -> dict[tuple[int, int], int]:
        """Every exact counter: (cgroup id, rule id) -> denials/audits counted."""
        key = self._abi.layout("counter_key").struct
        return {
            (cg, rule): int.from_bytes(v, "little")
            for k, v in self._maps["counters"].items()
            for cg, rule in [key.unpack_from(k)[:2]]
        }

    def take_folds(self) -> list[tuple[tuple[int, int, int], int, int]]:
        """Take the repeats the kernel folded (sent as no event): ((cgroup id, rule id,
        fold), repeats, boot-time ns of the latest) for each key with some, each taken
        (deleted) in one syscall. Keys with none stay, so a repeat still folds into the
        window its event opened."""
        if "folds" not in self._maps:
            return []
        folds = self._maps["folds"]
        key = self._abi.layout("fold_key").struct
        val = self._abi.layout("fold_val").struct
        out = []
        for k, v in list(folds.items()):
            if val.unpack_from(v)[1] == 0:
                continue
            taken = folds.pop(k)
            if taken is None:
                continue
            _end, repeats, last_ns = val.unpack_from(taken)[:3]
            if repeats:
                cg, fold, rule = key.unpack_from(k)[:3]
                out.append(((cg, rule, fold), repeats, last_ns))
        return out

    def stats(self) -> dict[str, int]:
        """Global counters (summed over CPUs), by enum abi_stat name."""
        names = {v: k for k, v in self._abi.btf.enum("abi_stat").items() if k != "STAT_NR"}
        stats = self._maps["stats"]
        out = {}
        for idx, name in names.items():
            per_cpu = stats.lookup_percpu(idx.to_bytes(4, "little")) or []
            out[name] = sum(int.from_bytes(v, "little") for v in per_cpu)
        return out

    # ----- taking over after a restart ----------------------------------------------------
    def container_entries(self) -> dict[int, int]:
        """cgroup id -> ruleset id of every container entry in the kernel."""
        layout = self._abi.layout("container")
        return {
            int.from_bytes(k, "little"): int(layout.decode(v)["ruleset"]) for k, v in self._maps["containers"].items()
        }

    def path_rule_rulesets(self) -> dict[int, list[bytes]]:
        """ruleset id -> its path_rules keys."""
        layout = self._abi.layout("path_key")
        out: dict[int, list[bytes]] = {}
        for k in self._maps["path_rules"].keys():
            out.setdefault(int(layout.decode(k)["ruleset"]), []).append(k)
        return out

    def prune_path_rules(self, keep: set[int]) -> int:
        """Delete the path rules of every ruleset not in `keep`; returns how many."""
        stale = [k for rs, keys in self.path_rule_rulesets().items() if rs not in keep for k in keys]
        if stale:
            self._maps["path_rules"].delete_batch(stale)
            self.changed()
        return len(stale)
