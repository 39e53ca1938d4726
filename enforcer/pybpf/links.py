"""bpf_link wrappers: the handle that keeps a program attached.

Lifetime: destroying a Link closes our fd. If the link is pinned, the pin keeps the
program attached after that (and after this process exits); unpin then destroy detaches.
detach() forces a detach now, pinned or not.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Self

from .errors import BpfError
from .libbpf import check_int, check_ptr, lib

if TYPE_CHECKING:
    from .programs import Program


def _destroy(ptr: int) -> None:
    lib().bpf_link__destroy(ptr)


class Link:
    def __init__(self, ptr: int, what: str) -> None:
        self._ptr = ptr
        self.what = what  # e.g. "program guard_connect4 on cgroup /sys/fs/cgroup/..."
        # Without an explicit destroy the link is released when garbage collected, which
        # detaches it unless pinned: a forgotten handle must not keep a program attached.
        self._finalizer = weakref.finalize(self, _destroy, ptr)

    @classmethod
    def open_pinned(cls, path: str | os.PathLike[str]) -> Self:
        p = os.fspath(path)
        lib().log.mark()
        return cls(check_ptr(lib().bpf_link__open(p.encode()), "open pinned link", p), f"link {p}")

    def _require(self, op: str) -> int:
        if not self._ptr:
            raise BpfError(9, op, self.what, detail="the link was destroyed")  # EBADF
        return self._ptr

    @property
    def fd(self) -> int:
        return int(lib().bpf_link__fd(self._require("fd of link")))

    @property
    def pin_path(self) -> str | None:
        p = lib().bpf_link__pin_path(self._require("pin path of link"))
        return p.decode() if p else None

    def pin(self, path: str | os.PathLike[str]) -> None:
        p = os.fspath(path)
        lib().log.mark()
        check_int(lib().bpf_link__pin(self._require("pin link"), p.encode()), f"pin {self.what} at", p)

    def unpin(self) -> None:
        lib().log.mark()
        check_int(lib().bpf_link__unpin(self._require("unpin link")), "unpin", self.what)

    def update_program(self, program: Program) -> None:
        """Atomically swap the program behind this link (no window without a program)."""
        lib().log.mark()
        check_int(
            lib().bpf_link__update_program(self._require("update link"), program._ptr_for("update link")),
            f"replace program of {self.what} with",
            program.name,
        )

    def detach(self) -> None:
        """Detach now (BPF_LINK_DETACH), even if pinned elsewhere; the fd stays valid."""
        lib().log.mark()
        check_int(lib().bpf_link__detach(self._require("detach link")), "detach", self.what)

    def destroy(self) -> None:
        """Release our handle (idempotent). Detaches unless pinned."""
        if self._ptr:
            self._ptr = 0
            self._finalizer()

    @property
    def destroyed(self) -> bool:
        return not self._ptr

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def __repr__(self) -> str:
        return f"Link({self.what!r})"
