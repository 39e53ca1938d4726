"""BpfObject: open a compiled .bpf.o, adjust it, load it, hand out programs and maps."""

from __future__ import annotations

import ctypes
import os
import re
import weakref
from typing import Self

from .errors import BpfError
from .handle import ObjectHandle
from .libbpf import BpfObjectOpenOpts, check_ptr, lib
from .maps import Map
from .programs import Program

_PROG_IN_LOG = re.compile(r"prog '([^']+)'")
_MAP_IN_LOG = re.compile(r"map '([^']+)'")


def _close(handle: ObjectHandle) -> None:
    if handle.ptr:
        ptr, handle.ptr = handle.ptr, 0
        lib().bpf_object__close(ptr)


class BpfObject:
    """A libbpf bpf_object.

    Between open and load: toggle `program(n).autoload`, `map(n).set_max_entries()`,
    `.set_pin_path()`, `.reuse_fd()`. After load: program fds, map fds, attach.
    close() (or the context manager) frees everything not pinned or linked elsewhere;
    programs and maps of a closed object raise instead of touching freed memory.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        pin_root_path: str | os.PathLike[str] | None = None,
        object_name: str | None = None,
        kernel_log_level: int = 0,
    ) -> None:
        self.path = os.fspath(path)
        # Keep the encoded strings referenced: libbpf copies them, but only during open.
        self._opts_strings = [
            s.encode() if s is not None else None
            for s in (object_name, os.fspath(pin_root_path) if pin_root_path is not None else None)
        ]
        opts = BpfObjectOpenOpts(
            sz=ctypes.sizeof(BpfObjectOpenOpts),
            object_name=self._opts_strings[0],
            pin_root_path=self._opts_strings[1],
            kernel_log_level=kernel_log_level,
        )
        L = lib()
        L.log.mark()
        ptr = check_ptr(L.bpf_object__open_file(self.path.encode(), ctypes.byref(opts)), "open BPF object", self.path)
        self._handle = ObjectHandle(ptr=ptr, path=self.path)
        self._finalizer = weakref.finalize(self, _close, self._handle)
        self._programs: dict[str, Program] = {}
        p: int | None = None
        while p := L.bpf_object__next_program(ptr, p):
            prog = Program(p, self._handle)
            self._programs[prog.name] = prog
        self._maps: dict[str, Map] = {}
        m: int | None = None
        while m := L.bpf_object__next_map(ptr, m):
            mp = Map._from_object(m, self._handle)
            self._maps[mp.name] = mp

    # ----- lookup -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return (lib().bpf_object__name(self._handle.require("name of object")) or b"").decode()

    @property
    def loaded(self) -> bool:
        return self._handle.loaded

    @property
    def closed(self) -> bool:
        return not self._handle.alive

    @property
    def programs(self) -> dict[str, Program]:
        return dict(self._programs)

    @property
    def maps(self) -> dict[str, Map]:
        """All maps, including libbpf's internal ones (.bss/.data/.rodata named '<obj>.bss')."""
        return dict(self._maps)

    def program(self, name: str) -> Program:
        self._handle.require(f"program {name}")
        try:
            return self._programs[name]
        except KeyError:
            raise KeyError(f"{self.path} has no program {name!r}; it has {sorted(self._programs)}") from None

    def map(self, name: str) -> Map:
        self._handle.require(f"map {name}")
        try:
            return self._maps[name]
        except KeyError:
            raise KeyError(f"{self.path} has no map {name!r}; it has {sorted(self._maps)}") from None

    # ----- load / close -------------------------------------------------------------------
    def load(self) -> Self:
        """Create maps and load every autoload program. On failure nothing stays loaded and
        the BpfError names the program/map libbpf complained about, with the verifier log."""
        ptr = self._handle.require_unloaded("load")
        L = lib()
        L.log.mark()
        ret = L.bpf_object__load(ptr)
        if ret < 0:
            log = L.log.take()
            culprit = self._culprit(log)
            raise BpfError(-ret, "load BPF object", f"{self.path}{culprit}", log)
        self._handle.loaded = True
        return self

    def load_maps_only(self) -> Self:
        """Create the maps, load no program and pin nothing: writes into real kernel maps on
        a kernel that refuses the programs (tests, benchmarks). Gone with close()."""
        for prog in self._programs.values():
            prog.autoload = False
        for m in self._maps.values():
            m.set_pin_path(None)
        return self.load()

    @staticmethod
    def _culprit(log: list[str]) -> str:
        # libbpf names the failing program/map in its warnings; surface it in the message.
        for line in reversed(log):
            if m := _PROG_IN_LOG.search(line):
                return f" (program {m.group(1)})"
            if m := _MAP_IN_LOG.search(line):
                return f" (map {m.group(1)})"
        return ""

    def close(self) -> None:
        """Free the object: unpinned maps and programs without links go away."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("loaded" if self.loaded else "opened")
        return f"BpfObject({self.path!r}, {state})"


__all__ = ["BpfObject"]
