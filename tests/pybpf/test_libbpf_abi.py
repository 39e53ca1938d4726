"""The ctypes mirrors of libbpf's structs match the installed headers byte for byte."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import pytest

from enforcer.pybpf import libbpf as L

from .build import BuildUnavailable, build_c_helper

pytestmark = pytest.mark.host_bpf

MIRRORS = {
    "bpf_object_open_opts": L.BpfObjectOpenOpts,
    "bpf_test_run_opts": L.BpfTestRunOpts,
    "bpf_map_batch_opts": L.BpfMapBatchOpts,
    "bpf_prog_info": L.BpfProgInfo,
    "bpf_map_info": L.BpfMapInfo,
}


@pytest.fixture(scope="module")
def c_layouts(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, int]]:
    try:
        exe = build_c_helper(Path(__file__).with_name("layouts.c"), tmp_path_factory.mktemp("abi") / "layouts")
    except BuildUnavailable as e:
        pytest.skip(str(e))
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return [(s, f, int(n)) for s, f, n in (line.split() for line in out.splitlines())]


def test_struct_sizes_and_offsets_match_the_headers(c_layouts: list[tuple[str, str, int]]) -> None:
    for struct_name, field, value in c_layouts:
        mirror = MIRRORS[struct_name]
        if field == "sizeof":
            assert ctypes.sizeof(mirror) == value, struct_name
        else:
            assert getattr(mirror, field).offset == value, f"{struct_name}.{field}"


def test_every_prototyped_function_exists_in_the_library() -> None:
    lib = L.lib()
    for name in L._PROTOTYPES:
        assert getattr(lib, name) is not None
    with pytest.raises(AttributeError, match="no prototype"):
        lib.bpf_not_a_function  # noqa: B018
