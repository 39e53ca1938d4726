"""The daemon's side of the file_open decision cache (lsm_file.bpf.c): `cache_state`.

The kernel remembers opens it allowed silently and answers the next open of the same dentry
without a walk while nothing the verdict depended on moved. Two of those things are the
daemon's to say: a fresh epoch after every write to the maps a file verdict reads, and where
the kernel's rename_lock and mount_lock seqlocks are, whose sequence counts move on every
rename and every mount change. A kernel that does not show them in /proc/kallsyms (built
without CONFIG_KALLSYMS_ALL, or kptr_restrict hiding addresses) gets no cache: every open
is walked, as before.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

from enforcer.kernel.abi import Abi
from enforcer.pybpf import Map

KALLSYMS = Path("/proc/kallsyms")
SEQLOCKS = ("rename_lock", "mount_lock")
_DATA_TYPES = frozenset("DdBb")


def seqlock_addresses(kallsyms: Path = KALLSYMS) -> dict[str, int]:
    """Address of each of SEQLOCKS in the kernel image: one data symbol of that name with no
    module, shown (non-zero). A name missing, hidden or ambiguous is left out."""
    found: dict[str, list[int]] = {name: [] for name in SEQLOCKS}
    try:
        with kallsyms.open() as f:
            for line in f:
                parts = line.split()
                # module symbols have a fourth field, "[module]"
                if len(parts) == 3 and parts[2] in found and parts[1] in _DATA_TYPES:
                    found[parts[2]].append(int(parts[0], 16))
    except OSError:
        return {}
    return {name: addrs[0] for name, addrs in found.items() if len(addrs) == 1 and addrs[0]}


class OpenCache:
    """Writes `cache_state`: the seqlock addresses once, a new epoch on every `changed()`."""

    def __init__(self, abi: Abi, maps: Mapping[str, Map], kallsyms: Path = KALLSYMS) -> None:
        self._layout = abi.layout("cache_state")
        self._map = maps["cache_state"]
        self._key = (0).to_bytes(4, "little")
        raw = self._map.lookup(self._key)
        current = self._layout.decode(raw) if raw else {}
        # Pinned maps live no longer than the boot, and the addresses no shorter.
        if current.get("rename_lock") and current.get("mount_lock"):
            self._addresses = {name: int(current[name]) for name in SEQLOCKS}
        else:
            self._addresses = seqlock_addresses(kallsyms)
        self._on = True
        self.changed()

    @property
    def enabled(self) -> bool:
        return self._on and all(self._addresses.get(name) for name in SEQLOCKS)

    def enable(self, on: bool) -> None:
        """Off: the kernel sees no addresses, keeps nothing and answers nothing from the
        cache (the bench measures first opens so). On again: with a fresh epoch."""
        self._on = on
        self.changed()

    @property
    def why_off(self) -> str | None:
        """None when on; else why, and what the operator can do about it."""
        missing = [name for name in SEQLOCKS if not self._addresses.get(name)]
        if not missing:
            return None if self._on else "turned off (enable(False)): every open is walked"
        return (
            f"{' and '.join(missing)} not in {KALLSYMS} (kernel without CONFIG_KALLSYMS_ALL, or "
            "kernel.kptr_restrict hides addresses): every open is walked"
        )

    def changed(self) -> None:
        """A map a file verdict reads was written: no verdict kept before counts any more.
        Random, so that two writers (daemon, bench) never hand out the same epoch."""
        addresses = self._addresses if self._on else {}
        self._map.update(
            self._key,
            self._layout.pack(
                epoch=secrets.randbits(64) or 1,
                rename_lock=addresses.get("rename_lock", 0),
                mount_lock=addresses.get("mount_lock", 0),
            ),
        )
