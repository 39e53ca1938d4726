"""The rule-side path hash must equal the kernel side's, bit for bit (bpf/include/pathhash.h):
pinned values, the FNV-1a 64 reference vectors, and the prefix property the kernel relies on."""

from __future__ import annotations

import pytest

from enforcer.compiler.pathhash import FNV_OFFSET, FNV_PRIME, _final, path_hash

MASK = (1 << 64) - 1


def fnv1a64(data: bytes, basis: int = FNV_OFFSET) -> int:
    h = basis
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def test_fnv_constants_give_the_published_fnv1a_64_vectors() -> None:
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


@pytest.mark.parametrize(
    ("path", "seed", "expected", "length", "depth"),
    [
        ("/", 0, 0xEFD01F60BA992926, 0, 0),
        ("/etc", 0, 0xF30BD558219C95DD, 4, 1),
        ("/etc/shadow", 0, 0x78E637262774AB12, 11, 2),
        ("/etc/shadow", 0x1234, 0xAD4E2B70A96A49DA, 11, 2),
    ],
)
def test_pinned_values(path: str, seed: int, expected: int, length: int, depth: int) -> None:
    h = path_hash(path, seed)
    assert (h.hash, h.length, h.depth) == (expected, length, depth)


def test_the_hash_is_fnv1a_of_the_path_bytes_from_a_seeded_basis_then_finalised() -> None:
    seed = 0xDEADBEEF12345678
    assert path_hash("/etc/ssh/ssh_host_rsa_key", seed).hash == _final(
        fnv1a64(b"/etc/ssh/ssh_host_rsa_key", FNV_OFFSET ^ seed)
    )


def test_spellings_of_one_path_hash_alike_and_the_seed_changes_everything() -> None:
    assert path_hash("/etc//shadow/", 7) == path_hash("/etc/shadow", 7)
    assert path_hash("/etc/shadow", 7).hash != path_hash("/etc/shadow", 8).hash
    assert path_hash("/etc/shadow", 7).hash != path_hash("/etc/shado", 7).hash


def test_relative_paths_are_refused() -> None:
    with pytest.raises(ValueError):
        path_hash("etc/shadow", 0)
