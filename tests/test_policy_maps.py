"""Writing a ruleset into the kernel's path_rules map is all or nothing.

Runs on the host: the LSM object's maps are created for real with every program's autoload
off (this kernel refuses LSM programs but creates their maps), nothing pinned.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from enforcer.compiler.paths import compile_paths
from enforcer.compiler.rules import RuleTable
from enforcer.errors import EnforcerError
from enforcer.kernel.abi import Abi
from enforcer.kernel.build import ensure_built
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.policy.merge import merge
from enforcer.policy.model import Policy
from enforcer.pybpf import BpfObject

CAPACITY = 64


@pytest.fixture
def maps() -> Iterator[tuple[PolicyMaps, BpfObject]]:
    path = ensure_built().path("lsm_file")
    obj = BpfObject(path)
    obj.map("path_rules").set_max_entries(CAPACITY)
    obj.load_maps_only()
    try:
        yield PolicyMaps(Abi.from_object(path), obj.maps), obj
    finally:
        obj.close()


def compiled(n: int) -> object:
    pol = Policy.model_validate(
        {
            "apiVersion": "enforcer/v1",
            "kind": "ContainerPolicy",
            "metadata": {"name": "p"},
            "spec": {"file": [{"action": "deny", "paths": [f"/srv/s{i}" for i in range(n)]}]},
        }
    )
    return compile_paths(merge([pol]), RuleTable())


def test_a_ruleset_that_fits_is_written_whole(maps: tuple[PolicyMaps, BpfObject]) -> None:
    pm, obj = maps
    c = compiled(10)
    pm.write_ruleset(7, c)  # type: ignore[arg-type]
    assert obj.map("path_rules").count() == len(c.entries)  # type: ignore[attr-defined]


def test_a_ruleset_too_big_for_the_map_leaves_nothing_behind_and_says_what_to_do(
    maps: tuple[PolicyMaps, BpfObject],
) -> None:
    pm, obj = maps
    pm.write_ruleset(1, compiled(5))  # type: ignore[arg-type]
    before = set(obj.map("path_rules").keys())
    with pytest.raises(EnforcerError, match=r"no room .* split the policy"):
        pm.write_ruleset(2, compiled(CAPACITY))  # type: ignore[arg-type]
    assert set(obj.map("path_rules").keys()) == before  # ruleset 1 intact, none of 2


def test_a_reader_of_the_maps_keeps_the_daemons_fold_window_and_seed(maps: tuple[PolicyMaps, BpfObject]) -> None:
    """Only the daemon sets the fold window; another PolicyMaps over the same maps (the
    bench, a tool) must not turn the kernel's folding off, nor change the hash seed."""
    daemons, obj = maps
    abi = Abi.from_object(ensure_built().path("lsm_file"))
    PolicyMaps(abi, obj.maps, fold_window_ms=1000)

    def window() -> int:
        raw = obj.map("settings").lookup((0).to_bytes(4, "little"))
        assert raw is not None
        return int(abi.layout("settings").decode(raw)["fold_window_ms"])

    reader = PolicyMaps(abi, obj.maps)
    assert window() == 1000 and reader.seed == daemons.seed
    PolicyMaps(abi, obj.maps, fold_window_ms=0)
    assert window() == 0
