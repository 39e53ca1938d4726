"""BPF programs of a BpfObject: identity, autoload, attach, test_run, and cgroup queries."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from .constants import AttachType, ProgType, QueryFlag
from .handle import ObjectHandle
from .info import ProgInfo, prog_info
from .libbpf import BpfTestRunOpts, check_int, check_ptr, fail, lib
from .links import Link

ENOSPC = 28


@dataclass(frozen=True, slots=True)
class TestRunResult:
    retval: int
    ctx: bytes  # the context after the run (SYSCALL programs may write to it)
    duration_ns: int


class Program:
    def __init__(self, ptr: int, owner: ObjectHandle) -> None:
        self._ptr = ptr
        self._owner = owner
        L = lib()
        self.name: str = (L.bpf_program__name(ptr) or b"").decode()
        self.section: str = (L.bpf_program__section_name(ptr) or b"").decode()

    def _ptr_for(self, what: str) -> int:
        self._owner.require(f"{what} {self.name}")
        return self._ptr

    @property
    def type(self) -> ProgType | int:
        t = int(lib().bpf_program__type(self._ptr_for("type of program")))
        try:
            return ProgType(t)
        except ValueError:
            return t

    @property
    def expected_attach_type(self) -> AttachType | int:
        t = int(lib().bpf_program__expected_attach_type(self._ptr_for("attach type of program")))
        try:
            return AttachType(t)
        except ValueError:
            return t

    @property
    def fd(self) -> int:
        """Program fd, -1 if not loaded (autoload off or object not loaded)."""
        fd = int(lib().bpf_program__fd(self._ptr_for("fd of program")))
        return fd if fd >= 0 else -1  # libbpf returns -ENOENT/-EINVAL here

    @property
    def loaded(self) -> bool:
        return self._owner.loaded and self.fd >= 0

    @property
    def autoload(self) -> bool:
        return bool(lib().bpf_program__autoload(self._ptr_for("autoload of program")))

    @autoload.setter
    def autoload(self, on: bool) -> None:
        self._owner.require_unloaded(f"set autoload of program {self.name}")
        check_int(lib().bpf_program__set_autoload(self._ptr, on), "set autoload of program", self.name)

    def info(self) -> ProgInfo:
        """Kernel view: id, run_time_ns/run_cnt (see stats.enable_stats)."""
        return prog_info(self._loaded_fd("info of"), f"program {self.name}")

    def _loaded_fd(self, op: str) -> int:
        fd = self.fd
        if fd < 0:
            raise fail(9, f"{op} program", self.name, detail="program is not loaded")  # EBADF
        return fd

    # ----- attach -------------------------------------------------------------------------
    def _attach(self, fn_name: str, what: str, *args: int) -> Link:
        lib().log.mark()
        fn = getattr(lib(), fn_name)
        ptr = check_ptr(fn(self._ptr_for("attach program"), *args), f"attach program {self.name}", what)
        return Link(ptr, f"program {self.name} {what}")

    def attach(self) -> Link:
        """Auto-attach by section (tp_btf/, raw_tp/, lsm/, ...). Not for cgroup sections."""
        return self._attach("bpf_program__attach", f"({self.section})")

    def attach_lsm(self) -> Link:
        return self._attach("bpf_program__attach_lsm", f"to LSM hook ({self.section})")

    def attach_cgroup(self, cgroup: int | str | os.PathLike[str]) -> Link:
        """Link-based attach to a cgroup v2 directory (coexists with other multi-attached programs).

        `cgroup` is a directory fd or a path; a path is opened and closed here (the link keeps
        its own reference to the cgroup).
        """
        if isinstance(cgroup, int):
            return self._attach("bpf_program__attach_cgroup", f"to cgroup fd {cgroup}", cgroup)
        path = os.fspath(cgroup)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return self._attach("bpf_program__attach_cgroup", f"to cgroup {path}", fd)
        finally:
            os.close(fd)

    # ----- run ----------------------------------------------------------------------------
    def test_run(self, ctx: bytes | bytearray | None = None, *, repeat: int = 0) -> TestRunResult:
        """BPF_PROG_TEST_RUN. For SYSCALL programs, ctx is the program's argument and the
        kernel writes it back (returned as .ctx)."""
        fd = self._loaded_fd("test run")
        buf = ctypes.create_string_buffer(bytes(ctx or b""), len(ctx or b""))
        opts = BpfTestRunOpts(sz=ctypes.sizeof(BpfTestRunOpts), repeat=repeat)
        if ctx:
            opts.ctx_in = ctypes.addressof(buf)
            opts.ctx_size_in = len(ctx)
        lib().log.mark()
        check_int(lib().bpf_prog_test_run_opts(fd, ctypes.byref(opts)), "test run program", self.name)
        return TestRunResult(retval=opts.retval, ctx=buf.raw, duration_ns=opts.duration)

    def __repr__(self) -> str:
        return f"Program({self.name!r}, section={self.section!r})"


@dataclass(frozen=True, slots=True)
class CgroupQuery:
    attach_flags: int  # BPF_F_ALLOW_MULTI etc. for legacy attachments; 0 for links
    prog_ids: tuple[int, ...]


def prog_query(
    cgroup: int | str | os.PathLike[str], attach_type: AttachType | int, *, effective: bool = False
) -> CgroupQuery:
    """Programs attached to a cgroup at one attach point (bpf_prog_query).

    effective=True lists what actually runs there, including programs inherited from ancestors.
    """
    own_fd = not isinstance(cgroup, int)
    fd = int(cgroup) if isinstance(cgroup, int) else os.open(os.fspath(cgroup), os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = int(QueryFlag.EFFECTIVE) if effective else 0
        cap = 64
        while True:
            ids = (ctypes.c_uint32 * cap)()
            cnt = ctypes.c_uint32(cap)
            attach_flags = ctypes.c_uint32(0)
            ret = lib().bpf_prog_query(fd, int(attach_type), flags, ctypes.byref(attach_flags), ids, ctypes.byref(cnt))
            if ret == -ENOSPC:  # more programs than room: cnt says how many there are
                cap = max(cap * 2, cnt.value)
                continue
            check_int(ret, f"query programs ({_attach_name(attach_type)}) of cgroup", str(cgroup))
            return CgroupQuery(attach_flags.value, tuple(ids[: cnt.value]))
    finally:
        if own_fd:
            os.close(fd)


def _attach_name(t: AttachType | int) -> str:
    try:
        return AttachType(t).name
    except ValueError:
        return str(t)


def prog_info_by_id(prog_id: int) -> ProgInfo:
    """Info about any loaded program (e.g. runc's device program found by prog_query)."""
    fd = check_int(lib().bpf_prog_get_fd_by_id(prog_id), "open program id", str(prog_id))
    try:
        return prog_info(fd, f"program id {prog_id}")
    finally:
        os.close(fd)


__all__ = ["CgroupQuery", "Program", "TestRunResult", "prog_info_by_id", "prog_query"]
