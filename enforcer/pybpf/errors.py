"""BpfError: what failed, on which program/map/path, with errno and libbpf's own words."""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Sequence

# Kernel-internal errno values that leak out of bpf(2) and that Python's errno table lacks.
ENOTSUPP = 524  # "this kernel object has no such operation" (not EOPNOTSUPP, 95)
_EXTRA_ERRNO_NAMES = {ENOTSUPP: "ENOTSUPP", 525: "ETOOSMALL", 526: "ESERVERFAULT", 527: "EBADTYPE"}

# How many of libbpf's last warning lines go into str(err); all are kept in .libbpf_log.
_SHOWN_LOG_LINES = 12


def errno_name(err: int) -> str:
    """Symbolic name of an errno value (EPERM, ENOTSUPP, ...)."""
    return _errno.errorcode.get(err) or _EXTRA_ERRNO_NAMES.get(err) or f"errno {err}"


def _strerror(err: int) -> str:
    if err == ENOTSUPP:
        return "Operation not supported by this kernel object"
    return os.strerror(err)


class BpfError(OSError):
    """A failed libbpf/bpf(2) call.

    `errno` is the positive errno; `op` says what was attempted ("load object", "update map"),
    `target` names the program, map or path; `libbpf_log` holds libbpf's warning lines
    (verifier log included) emitted by this thread during the failed call.
    """

    def __init__(
        self,
        err: int,
        op: str,
        target: str | None = None,
        libbpf_log: Sequence[str] = (),
        detail: str | None = None,
    ) -> None:
        super().__init__(err, _strerror(err))
        self.op = op
        self.target = target
        self.libbpf_log: tuple[str, ...] = tuple(libbpf_log)
        self.detail = detail

    @property
    def errno_name(self) -> str:
        return errno_name(self.errno or 0)

    def __str__(self) -> str:
        what = f"{self.op} {self.target}" if self.target else self.op
        text = f"{what}: {self.errno_name} ({self.strerror})"
        if self.detail:
            text += f"; {self.detail}"
        if self.libbpf_log:
            tail = self.libbpf_log[-_SHOWN_LOG_LINES:]
            text += "\n" + "\n".join(f"  libbpf: {line}" for line in tail)
        return text

    def __reduce__(self) -> tuple[object, ...]:
        # OSError's own pickling would drop op/target; keep them across processes.
        return (type(self), (self.errno, self.op, self.target, self.libbpf_log, self.detail))
