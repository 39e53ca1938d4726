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
    depth: int   # components ("/" -> 0, "/etc" -> 1)


def components(path: str) -> list[str]:
    """Components of a normalised absolute path ("/" has none)."""
    if not path.startswith("/"):
        raise ValueError(f"not an absolute path: {path!r}")
    return [c for c in path.split("/") if c]


def path_hash(path: str, seed: int) -> PathHash:
    h = FNV_OFFSET ^ (seed & _MASK)
    parts = components(path)
    length = 0
    for part in parts:
        data = b"/" + part.encode()
        for byte in data:
            h = ((h ^ byte) * FNV_PRIME) & _MASK
        length += len(data)
    return PathHash(_final(h), length, len(parts))
