"""Capture libbpf's log: route it to structlog (debug) and keep recent warnings per thread.

libbpf has one process-wide print callback, so one LogCapture per loaded library. Warning
lines (which include the verifier log on a failed load) are buffered per thread so that the
BpfError raised by a failed call carries the lines that call produced.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
from collections import deque
from collections.abc import Callable
from ctypes import c_char_p, c_int, c_size_t, c_void_p
from typing import Any

import structlog

_log = structlog.get_logger("enforcer.pybpf.libbpf")

LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG = 0, 1, 2
_LEVEL_NAMES = {LIBBPF_WARN: "warn", LIBBPF_INFO: "info", LIBBPF_DEBUG: "debug"}
_KEEP_LINES = 200  # enough for the tail of a verifier log
_FORMAT_BUF = 16384


class LogCapture:
    """`verbose`: also forward libbpf's DEBUG level (hundreds of lines per load); off by
    default, or on with ENFORCER_LIBBPF_DEBUG=1. WARN and INFO always go to structlog."""

    def __init__(self) -> None:
        self.verbose = os.environ.get("ENFORCER_LIBBPF_DEBUG") == "1"
        self._local = threading.local()
        self._callback: Any = None  # the CFUNCTYPE object: must outlive libbpf's use of it
        self._vsnprintf: Callable[..., int] | None = None
        if platform.machine() in ("x86_64", "AMD64"):
            # Only where va_list is a pointer (x86_64) can ctypes pass it on to vsnprintf.
            libc = ctypes.CDLL(None)
            fn = libc.vsnprintf
            fn.restype = c_int
            fn.argtypes = [c_void_p, c_size_t, c_char_p, c_void_p]
            self._vsnprintf = fn

    def install(self, set_print: Callable[[Any], Any]) -> None:
        from .libbpf import PRINT_FN

        self._callback = PRINT_FN(self._on_print)
        set_print(self._callback)

    def _lines(self) -> deque[str]:
        lines: deque[str] | None = getattr(self._local, "lines", None)
        if lines is None:
            lines = deque(maxlen=_KEEP_LINES)
            self._local.lines = lines
        return lines

    def _format(self, fmt: bytes | None, va_list: int | None) -> str:
        if fmt is None:
            return ""
        if self._vsnprintf is None or va_list is None:
            return fmt.decode(errors="replace")
        buf = ctypes.create_string_buffer(_FORMAT_BUF)
        self._vsnprintf(buf, _FORMAT_BUF, fmt, va_list)
        return buf.value.decode(errors="replace")

    def _on_print(self, level: int, fmt: bytes | None, va_list: int | None) -> int:
        # Runs inside libbpf: never let an exception escape into C.
        try:
            if level >= LIBBPF_DEBUG and not self.verbose:
                return 0
            text = self._format(fmt, va_list).rstrip("\n")
            if not text:
                return 0
            _log.debug("libbpf", level=_LEVEL_NAMES.get(level, str(level)), message=text)
            if level <= LIBBPF_WARN:
                lines = self._lines()
                for line in text.split("\n"):
                    lines.append(line.removeprefix("libbpf: "))
        except BaseException:  # noqa: BLE001 - a C callback has nowhere to raise to
            pass
        return 0

    def mark(self) -> None:
        """Forget earlier warnings of this thread (call before an operation)."""
        self._lines().clear()

    def take(self) -> list[str]:
        """The warnings this thread collected since mark(), and forget them."""
        lines = self._lines()
        out = list(lines)
        lines.clear()
        return out
