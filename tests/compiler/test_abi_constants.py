"""Every number the compiler writes into a map by a Python name is the number the BPF side
means by its enum: the hand-written constants are pinned to the objects' BTF here, one
pair each, so an edit of enforcer_abi.h that renumbers an enum fails before any kernel does."""

from __future__ import annotations

import pytest

from enforcer.compiler import devices, network, paths
from enforcer.kernel.abi import Abi
from enforcer.kernel.build import ensure_built

PINNED = [
    # (Python name, its value, the ABI constant it stands for)
    *((f"paths.ACTION_CODES[{a!r}]", paths.ACTION_CODES[a], f"ACT_{a.upper()}") for a in ("allow", "audit", "deny")),
    ("paths.READ", paths.READ, "ACC_READ"),
    ("paths.WRITE", paths.WRITE, "ACC_WRITE"),
    ("devices.READ", devices.READ, "DACC_READ"),
    ("devices.WRITE", devices.WRITE, "DACC_WRITE"),
    ("devices.MKNOD", devices.MKNOD, "DACC_MKNOD"),
    ("devices.LEVEL_TYPE_ANY", devices.LEVEL_TYPE_ANY, "DEV_LEVEL_TYPE_ANY"),
    ("devices.LEVEL_MINOR_ANY", devices.LEVEL_MINOR_ANY, "DEV_LEVEL_MINOR_ANY"),
    ("devices.LEVEL_MAJOR_ANY", devices.LEVEL_MAJOR_ANY, "DEV_LEVEL_MAJOR_ANY"),
    ("network.PROTO_ANY", network.PROTO_ANY, "NET_PROTO_ANY"),
]
OBJECTS = ("lsm_file", "cgroup_dev", "cgroup_net", "cgroup_sock")


@pytest.fixture(scope="module")
def abis() -> dict[str, Abi]:
    built = ensure_built()
    return {name: Abi.from_object(built.path(name)) for name in OBJECTS}


@pytest.mark.parametrize(("name", "value", "const"), PINNED, ids=[p[0] for p in PINNED])
def test_a_python_constant_is_the_abi_constant_of_every_object(
    abis: dict[str, Abi], name: str, value: int, const: str
) -> None:
    assert {obj: abi.consts[const] for obj, abi in abis.items()} == dict.fromkeys(OBJECTS, value), name
