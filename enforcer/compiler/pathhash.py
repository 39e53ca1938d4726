"""The path hash of bpf/include/pathhash.h, bit for bit.

A rule for "/etc/shadow" is stored under the hash of the bytes "/etc/shadow"; the BPF side
computes the same running hash while it rebuilds the opened file's path, one component at
a time, and looks up every prefix that ends at a component boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1


def _final(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK
    h ^= h >> 33
    return h


@dataclass(frozen=True)
class PathHash:
    hash: int
    length: int  # bytes ("/" -> 0, "/etc" -> 4)
    depth: int  # components ("/" -> 0, "/etc" -> 1)


def components(path: str) -> list[str]:
    """Components of a normalised absolute path ("/" has none)."""
    if not path.startswith("/"):
        raise ValueError(f"not an absolute path: {path!r}")
    return [c for c in path.split("/") if c]


class PathHasher:
    """Hashes many paths under one seed, each prefix once: a policy's paths share their
    directories (and guard entries are prefixes of rules), so a 100,000-entry ruleset
    hashes each directory's bytes a single time instead of once per path below it."""

    def __init__(self, seed: int) -> None:
        # normalised prefix ("" for "/") -> (running FNV state, bytes, components)
        self._states: dict[str, tuple[int, int, int]] = {"": (FNV_OFFSET ^ (seed & _MASK), 0, 0)}

    def _state(self, prefix: str) -> tuple[int, int, int]:
        state = self._states.get(prefix)
        if state is None:
            parent, _, name = prefix.rpartition("/")
            h, length, depth = self._state(parent)
            data = b"/" + name.encode()
            for byte in data:
                h = ((h ^ byte) * FNV_PRIME) & _MASK
            state = self._states[prefix] = (h, length + len(data), depth + 1)
        return state

    def hash(self, path: str) -> PathHash:
        state = self._states.get(path)
        if state is None:
            if not path.startswith("/") or "//" in path or (path.endswith("/") and path != "/"):
                path = "".join("/" + c for c in components(path))  # raises if relative
            state = self._state("" if path == "/" else path)
        h, length, depth = state
        return PathHash(_final(h), length, depth)


def path_hash(path: str, seed: int) -> PathHash:
    return PathHasher(seed).hash(path)
