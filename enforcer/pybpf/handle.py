"""Shared liveness of a bpf_object, so program/map wrappers never touch freed libbpf memory."""

from __future__ import annotations

from dataclasses import dataclass


class ObjectClosedError(RuntimeError):
    """A program or map of a BpfObject was used after the object was closed."""


@dataclass(slots=True)
class ObjectHandle:
    ptr: int
    path: str
    loaded: bool = False

    @property
    def alive(self) -> bool:
        return self.ptr != 0

    def require(self, what: str) -> int:
        if not self.ptr:
            raise ObjectClosedError(f"{what}: BPF object {self.path} is closed")
        return self.ptr

    def require_unloaded(self, what: str) -> int:
        ptr = self.require(what)
        if self.loaded:
            raise RuntimeError(f"{what}: only possible before {self.path} is loaded")
        return ptr
