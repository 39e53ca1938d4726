"""BpfError tells the operator what failed, on what, and why."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import pytest

from enforcer.pybpf import BpfError, BpfObject, Map, RingBuffer, errno_name


def test_message_names_operation_target_errno_and_libbpf_lines() -> None:
    err = BpfError(errno.EPERM, "load BPF object", "/x.bpf.o (program guard)", ["line one", "line two"])
    assert isinstance(err, OSError)
    assert err.errno == errno.EPERM and err.errno_name == "EPERM"
    text = str(err)
    assert text.startswith("load BPF object /x.bpf.o (program guard): EPERM (Operation not permitted)")
    assert "  libbpf: line one\n  libbpf: line two" in text


def test_kernel_internal_errno_values_have_names() -> None:
    assert errno_name(524) == "ENOTSUPP"
    assert errno_name(errno.E2BIG) == "E2BIG"
    assert "ENOTSUPP" in str(BpfError(524, "batch update map", "lpm"))


def test_long_libbpf_logs_are_cut_in_the_message_but_kept_whole() -> None:
    err = BpfError(errno.EACCES, "load", None, [f"l{i}" for i in range(100)])
    assert len(err.libbpf_log) == 100
    assert "l99" in str(err) and "l50" not in str(err)


def test_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(BpfError(errno.ENOENT, "open pinned map", "/sys/fs/bpf/x")))
    assert isinstance(err, BpfError) and err.target == "/sys/fs/bpf/x" and err.errno == errno.ENOENT


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.host_bpf
def test_no_fd_leaks_across_a_full_lifecycle(testprog_path: Path, pin_dir: Path) -> None:
    from .conftest import open_testprog

    def cycle() -> None:
        with open_testprog(testprog_path) as obj:
            obj.load()
            obj.map("lru_map").pin(pin_dir / "m")
            with Map.open_pinned(pin_dir / "m") as m:
                m.update(b"\0" * 4, b"\0" * 8)
            Map.open_pinned(pin_dir / "m")  # dropped without close: the finalizer closes it
            with RingBuffer(obj.map("events"), lambda d: None) as rb:
                rb.poll(0)
            obj.map("lru_map").unpin()

    cycle()  # first run warms caches (libbpf feature probes, BTF)
    import gc

    gc.collect()
    before = _open_fds()
    cycle()
    gc.collect()
    assert _open_fds() == before


@pytest.mark.host_bpf
def test_a_non_bpf_file_gives_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.bpf.o"
    bogus.write_bytes(b"not an ELF file")
    with pytest.raises(BpfError) as info:
        BpfObject(bogus)
    assert str(bogus) in str(info.value)
    assert info.value.libbpf_log  # libbpf said why
