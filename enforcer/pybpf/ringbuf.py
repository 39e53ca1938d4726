"""Ring buffer consumer (libbpf ring_buffer__*) delivering each record to a Python callback.

ring_buffer__poll/consume release the GIL while in C (ctypes does so for CDLL calls); the
callback re-takes it per record. A Python exception raised by a callback must never unwind
through C: it is recorded, the callback returns -1 so libbpf stops the current batch (the
record that raised is consumed, later ones stay queued), and poll()/consume() re-raise it.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Callable
from typing import Self

from .errors import BpfError
from .libbpf import SAMPLE_FN, check_int, check_ptr, lib
from .maps import Map

EINTR = 4
Callback = Callable[[bytes], object]


def _free(ptr_box: list[int]) -> None:
    if ptr_box[0]:
        ptr, ptr_box[0] = ptr_box[0], 0
        lib().ring_buffer__free(ptr)


class RingBuffer:
    def __init__(self, ring: Map, callback: Callback) -> None:
        self._callbacks: list[Callback] = [callback]
        self._maps: list[Map] = [ring]  # keep the maps (and their objects) alive
        self._error: BaseException | None = None
        # One trampoline for all rings; ctx carries the ring's index + 1 (ctx 0 arrives as None).
        self._trampoline = SAMPLE_FN(self._on_sample)
        lib().log.mark()
        ptr = check_ptr(
            lib().ring_buffer__new(ring.fd, self._trampoline, ctypes.c_void_p(1), None),
            "create ring buffer on map",
            ring.name,
        )
        self._ptr_box = [ptr]
        self._finalizer = weakref.finalize(self, _free, self._ptr_box)

    def _on_sample(self, ctx: int | None, data: int | None, size: int) -> int:
        try:
            self._callbacks[(ctx or 1) - 1](ctypes.string_at(data, size))  # type: ignore[arg-type]
            return 0
        except BaseException as e:  # noqa: BLE001 - must not cross into C; re-raised by poll
            if self._error is None:
                self._error = e
            return -1

    @property
    def _ptr(self) -> int:
        if not self._ptr_box[0]:
            raise BpfError(9, "use ring buffer", self._maps[0].name, detail="closed")  # EBADF
        return self._ptr_box[0]

    def add(self, ring: Map, callback: Callback) -> None:
        """Also consume another ring buffer map (shares the epoll fd and poll())."""
        self._callbacks.append(callback)
        self._maps.append(ring)
        lib().log.mark()
        ret = lib().ring_buffer__add(self._ptr, ring.fd, self._trampoline, ctypes.c_void_p(len(self._callbacks)))
        if ret < 0:
            self._callbacks.pop()
            self._maps.pop()
            check_int(ret, "add ring buffer map", ring.name)

    def _result(self, ret: int, op: str) -> int:
        err, self._error = self._error, None
        if err is not None:
            raise err
        if ret < 0:
            if -ret == EINTR:
                return 0
            check_int(ret, op, self._maps[0].name)
        return ret

    def poll(self, timeout_ms: int = 100) -> int:
        """Wait up to timeout_ms for data, then consume; returns records handled (0 on timeout)."""
        return self._result(lib().ring_buffer__poll(self._ptr, timeout_ms), "poll ring buffer")

    def consume(self) -> int:
        """Handle whatever is queued now, without waiting."""
        return self._result(lib().ring_buffer__consume(self._ptr), "consume ring buffer")

    def epoll_fd(self) -> int:
        """An fd that becomes readable when data is queued (for select/epoll/asyncio);
        call consume() when it fires. Owned by the RingBuffer: do not close it."""
        return int(lib().ring_buffer__epoll_fd(self._ptr))

    def fileno(self) -> int:
        return self.epoll_fd()

    def close(self) -> None:
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._ptr_box[0]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
