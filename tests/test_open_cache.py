"""The daemon's half of the file_open decision cache: a new epoch after every policy write,
and the kernel's rename/mount seqlocks found in kallsyms (else the cache is off, and says why).

Runs on the host with the LSM object's maps created for real (programs not loaded). What
the kernel does with them is proven in the VM (tests/integration/test_open_cache.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from enforcer.compiler.inodes import ContainerInodes, InodeEntry
from enforcer.compiler.paths import compile_paths
from enforcer.compiler.rules import RuleTable
from enforcer.kernel.abi import Abi
from enforcer.kernel.build import ensure_built
from enforcer.kernel.inode_rules import InodeRules
from enforcer.kernel.open_cache import OpenCache, seqlock_addresses
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.policy.merge import merge
from enforcer.policy.model import Policy
from enforcer.pybpf import BpfObject

KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff82a0b040 D rename_lock
ffffffff82a0c080 d mount_lock
ffffffffc0a00000 d mount_lock\t[some_module]
ffffffff81234560 t rename_lock_helper
"""


@pytest.fixture
def loaded() -> Iterator[tuple[Abi, BpfObject]]:
    path = ensure_built().path("lsm_file")
    obj = BpfObject(path)
    obj.load_maps_only()
    try:
        yield Abi.from_object(path), obj
    finally:
        obj.close()


def state(abi: Abi, obj: BpfObject) -> dict[str, int]:
    raw = obj.map("cache_state").lookup((0).to_bytes(4, "little"))
    assert raw is not None
    return {k: int(v) for k, v in abi.layout("cache_state").decode(raw).items()}


def kallsyms(tmp_path: Path, text: str = KALLSYMS) -> Path:
    p = tmp_path / "kallsyms"
    p.write_text(text)
    return p


def test_the_seqlocks_are_the_kernel_images_data_symbols(tmp_path: Path) -> None:
    assert seqlock_addresses(kallsyms(tmp_path)) == {
        "rename_lock": 0xFFFFFFFF82A0B040,
        "mount_lock": 0xFFFFFFFF82A0C080,
    }


@pytest.mark.parametrize(
    "text",
    [
        "ffffffff82a0b040 D rename_lock\n",  # mount_lock missing (no CONFIG_KALLSYMS_ALL)
        "0000000000000000 D rename_lock\n0000000000000000 D mount_lock\n",  # kptr_restrict
        "ffffffff82a0b040 D rename_lock\nffffffff82a0c080 D mount_lock\nffffffff82a0d000 b mount_lock\n",
    ],
    ids=["missing", "hidden", "ambiguous"],
)
def test_a_seqlock_missing_hidden_or_ambiguous_turns_the_cache_off_and_says_why(
    tmp_path: Path, loaded: tuple[Abi, BpfObject], text: str
) -> None:
    abi, obj = loaded
    cache = OpenCache(abi, obj.maps, kallsyms(tmp_path, text))
    assert not cache.enabled
    assert cache.why_off is not None and "mount_lock not in /proc/kallsyms" in cache.why_off
    assert state(abi, obj)["mount_lock"] == 0  # the kernel side sees 0: nothing cached


def test_the_addresses_and_a_non_zero_epoch_are_written(tmp_path: Path, loaded: tuple[Abi, BpfObject]) -> None:
    abi, obj = loaded
    cache = OpenCache(abi, obj.maps, kallsyms(tmp_path))
    assert cache.enabled and cache.why_off is None
    s = state(abi, obj)
    assert (s["rename_lock"], s["mount_lock"]) == (0xFFFFFFFF82A0B040, 0xFFFFFFFF82A0C080)
    assert s["epoch"] != 0


def test_turned_off_the_kernel_sees_no_addresses_until_it_is_on_again(
    tmp_path: Path, loaded: tuple[Abi, BpfObject]
) -> None:
    abi, obj = loaded
    cache = OpenCache(abi, obj.maps, kallsyms(tmp_path))
    cache.enable(False)
    cache.changed()  # a policy write meanwhile does not turn it back on
    assert (state(abi, obj)["rename_lock"], cache.enabled) == (0, False)
    cache.enable(True)
    assert (state(abi, obj)["rename_lock"], cache.enabled) == (0xFFFFFFFF82A0B040, True)


def test_a_second_writer_reuses_the_addresses_in_the_map(tmp_path: Path, loaded: tuple[Abi, BpfObject]) -> None:
    abi, obj = loaded
    OpenCache(abi, obj.maps, kallsyms(tmp_path))
    again = OpenCache(abi, obj.maps, tmp_path / "no-such-file")
    assert again.enabled and state(abi, obj)["rename_lock"] == 0xFFFFFFFF82A0B040


def policy(paths: list[str]) -> object:
    pol = Policy.model_validate(
        {
            "apiVersion": "enforcer/v1",
            "kind": "ContainerPolicy",
            "metadata": {"name": "p"},
            "spec": {"file": [{"action": "deny", "paths": paths}]},
        }
    )
    return compile_paths(merge([pol]), RuleTable())


def test_every_write_a_file_verdict_reads_moves_the_epoch(loaded: tuple[Abi, BpfObject]) -> None:
    abi, obj = loaded
    pm = PolicyMaps(abi, obj.maps)
    inodes = InodeRules(abi, obj.maps, pm)
    c = policy(["/etc/shadow"])
    linked = ContainerInodes()
    linked.put(InodeEntry("PK_FILE_EXACT", dev=8, ino=1234), [None, None])
    writes: list[Callable[[], object]] = [
        lambda: pm.write_ruleset(3, c),  # type: ignore[arg-type]
        lambda: inodes.write(42, 3, linked),
        lambda: pm.set_container(42, 3, pm.container_fields(c)),  # type: ignore[arg-type]
        lambda: pm.set_fold_window(100),
        lambda: pm.delete_ruleset(3, c),  # type: ignore[arg-type]
        lambda: inodes.drop(42),
        lambda: pm.remove_container(42),
    ]
    seen = {state(abi, obj)["epoch"]}
    for write in writes:
        write()
        epoch = state(abi, obj)["epoch"]
        assert epoch not in seen and epoch != 0
        seen.add(epoch)
