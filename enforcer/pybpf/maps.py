"""BPF maps on raw bytes: CRUD, iteration, batches, per-CPU values, pinning.

A Map is either a view of a map inside a BpfObject (the object owns the fd) or a map
opened from a pin / fd (the Map owns the fd and closes it). Keys and values are raw bytes in
the kernel's layout; build them with btf.py layouts or struct.
"""

from __future__ import annotations

import ctypes
import os
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, Self

from .constants import PERCPU_MAP_TYPES, MapType, UpdateFlag
from .errors import ENOTSUPP, BpfError
from .handle import ObjectHandle
from .info import MapInfo, map_info
from .libbpf import BpfMapBatchOpts, check_int, fail, lib

ENOENT = 2
EINVAL = 22
EOPNOTSUPP = 95
_BATCH_UNSUPPORTED = frozenset({EOPNOTSUPP, ENOTSUPP})


def _round8(n: int) -> int:
    return (n + 7) & ~7


def num_possible_cpus() -> int:
    """CPUs the kernel sizes per-CPU maps for (may exceed online CPUs)."""
    return check_int(lib().libbpf_num_possible_cpus(), "count possible CPUs")


class Map:
    def __init__(
        self,
        *,
        name: str,
        fd: int = -1,
        ptr: int | None = None,
        owner: ObjectHandle | None = None,
        owns_fd: bool = False,
        info: MapInfo | None = None,
    ) -> None:
        self.name = name
        self._ptr = ptr
        self._owner = owner
        self._fd = fd
        self._info = info
        self._batch_ok: bool | None = None  # learnt on first batch call
        self._ncpus: int | None = None
        self._closer: weakref.finalize[[int], Map] | None = None
        # Type and sizes never change after open; cached because the hot paths consult them.
        self._type: int | None = None
        self._key_size: int | None = None
        self._value_size: int | None = None
        if owns_fd:
            # Safety net: an owned fd is closed even if close() is forgotten.
            self._closer = weakref.finalize(self, os.close, fd)

    # ----- construction -------------------------------------------------------------------
    @classmethod
    def _from_object(cls, ptr: int, owner: ObjectHandle) -> Self:
        name = (lib().bpf_map__name(ptr) or b"").decode()
        return cls(name=name, ptr=ptr, owner=owner)

    @classmethod
    def from_fd(cls, fd: int, *, take_ownership: bool = True, what: str | None = None) -> Self:
        """Wrap a map fd; with take_ownership the Map closes it."""
        try:
            info = map_info(fd, what or f"fd {fd}")
        except BaseException:
            if take_ownership:
                os.close(fd)
            raise
        return cls(name=info.name, fd=fd, owns_fd=take_ownership, info=info)

    @classmethod
    def open_pinned(cls, path: str | os.PathLike[str]) -> Self:
        """Open a map pinned on bpffs (bpf_obj_get) and learn its shape from the kernel."""
        p = os.fspath(path)
        lib().log.mark()
        fd = check_int(lib().bpf_obj_get(p.encode()), "open pinned map", p)
        return cls.from_fd(fd, what=p)

    # ----- shape --------------------------------------------------------------------------
    def _obj_ptr(self, what: str) -> int:
        assert self._ptr is not None and self._owner is not None
        self._owner.require(f"{what} {self.name}")
        return self._ptr

    @property
    def fd(self) -> int:
        if self._fd >= 0:
            return self._fd
        if self._ptr is None:
            raise ValueError(f"map {self.name} is closed")
        fd = int(lib().bpf_map__fd(self._obj_ptr("fd of map")))
        if fd < 0:
            raise BpfError(-fd if fd < 0 else EINVAL, "use map", self.name, detail="the object is not loaded yet")
        self._fd = fd  # stable until the object closes; cached for the hot path
        return fd

    def _shape(self, attr: str, getter: str) -> int:
        if self._info is not None:
            return int(getattr(self._info, attr))
        return int(getattr(lib(), getter)(self._obj_ptr(attr)))

    @property
    def type(self) -> MapType | int:
        if self._type is None:
            t = self._shape("type", "bpf_map__type")
            try:
                self._type = MapType(t)
            except ValueError:
                self._type = t
        return self._type

    @property
    def key_size(self) -> int:
        if self._key_size is None:
            self._key_size = self._shape("key_size", "bpf_map__key_size")
        return self._key_size

    @property
    def value_size(self) -> int:
        if self._value_size is None:
            self._value_size = self._shape("value_size", "bpf_map__value_size")
        return self._value_size

    @property
    def max_entries(self) -> int:
        return self._shape("max_entries", "bpf_map__max_entries")

    @property
    def map_flags(self) -> int:
        return self._shape("map_flags", "bpf_map__map_flags")

    @property
    def is_percpu(self) -> bool:
        return self.type in PERCPU_MAP_TYPES

    @property
    def value_stride(self) -> int:
        """Bytes per CPU in a per-CPU value buffer (value_size rounded up to 8)."""
        return _round8(self.value_size)

    @property
    def value_buffer_size(self) -> int:
        """Bytes a lookup returns: value_size, or ncpus * round_up(value_size, 8) per-CPU."""
        if not self.is_percpu:
            return self.value_size
        if self._ncpus is None:
            self._ncpus = num_possible_cpus()
        return self._ncpus * self.value_stride

    def info(self) -> MapInfo:
        """Kernel view (id, flags, BTF ids); needs a loaded map."""
        return map_info(self.fd, f"map {self.name}")

    @property
    def btf_key_type_id(self) -> int:
        if self._info is not None:
            return self._info.btf_key_type_id
        return int(lib().bpf_map__btf_key_type_id(self._obj_ptr("btf key of map")))

    @property
    def btf_value_type_id(self) -> int:
        if self._info is not None:
            return self._info.btf_value_type_id
        return int(lib().bpf_map__btf_value_type_id(self._obj_ptr("btf value of map")))

    # ----- before load (object maps only) -------------------------------------------------
    def _preload_ptr(self, what: str) -> int:
        if self._ptr is None or self._owner is None:
            raise RuntimeError(f"{what} {self.name}: only for maps of an unloaded BpfObject")
        self._owner.require_unloaded(f"{what} {self.name}")
        return self._ptr

    def set_max_entries(self, n: int) -> None:
        ptr = self._preload_ptr("set max_entries of map")
        check_int(lib().bpf_map__set_max_entries(ptr, n), "set max_entries of map", self.name)

    def set_pin_path(self, path: str | os.PathLike[str] | None) -> None:
        """Pin at load time (and reuse the pinned map if one is already there)."""
        ptr = self._preload_ptr("set pin path of map")
        arg = os.fspath(path).encode() if path is not None else None
        check_int(lib().bpf_map__set_pin_path(ptr, arg), "set pin path of map", self.name)

    def reuse_fd(self, fd: int) -> None:
        """Make the object use an existing map (same type/shape) instead of creating one.

        libbpf dup()s the fd, so the caller keeps ownership of `fd`.
        """
        ptr = self._preload_ptr("reuse fd for map")
        lib().log.mark()
        check_int(lib().bpf_map__reuse_fd(ptr, fd), "reuse fd for map", self.name)

    @property
    def pin_path(self) -> str | None:
        if self._ptr is None:
            return None
        p = lib().bpf_map__pin_path(self._obj_ptr("pin path of map"))
        return p.decode() if p else None

    # ----- element ops --------------------------------------------------------------------
    def _check_len(self, data: bytes, expected: int, what: str) -> None:
        if len(data) != expected:
            raise ValueError(f"map {self.name}: {what} must be {expected} bytes, got {len(data)}")

    def _value_bytes(self, value: bytes) -> bytes:
        if self.is_percpu and len(value) == self.value_size:
            # One value for every CPU: the common "reset/initialise" case.
            return self.pack_percpu([value] * (self.value_buffer_size // self.value_stride))
        self._check_len(value, self.value_buffer_size, "value")
        return value

    def lookup(self, key: bytes) -> bytes | None:
        """Value for key, or None. Per-CPU maps return the whole per-CPU buffer."""
        return self._value_of(lib().bpf_map_lookup_elem, key, "lookup in map")

    def _value_of(self, call: Any, key: bytes, what: str) -> bytes | None:
        self._check_len(key, self.key_size, "key")
        buf = ctypes.create_string_buffer(self.value_buffer_size)
        ret = call(self.fd, key, buf)
        if ret < 0:
            if -ret == ENOENT:
                return None
            raise fail(-ret, what, self.name)
        return buf.raw

    def __getitem__(self, key: bytes) -> bytes:
        v = self.lookup(key)
        if v is None:
            raise KeyError(key)
        return v

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.update(key, value)

    def __delitem__(self, key: bytes) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self.lookup(key) is not None

    def update(self, key: bytes, value: bytes, flags: int = UpdateFlag.ANY) -> None:
        self._check_len(key, self.key_size, "key")
        value = self._value_bytes(value)
        ret = lib().bpf_map_update_elem(self.fd, key, value, flags)
        if ret < 0:
            raise fail(-ret, "update map", self.name)

    def delete(self, key: bytes) -> bool:
        """True if removed, False if absent. Arrays cannot delete (EINVAL raises)."""
        self._check_len(key, self.key_size, "key")
        ret = lib().bpf_map_delete_elem(self.fd, key)
        if ret < 0:
            if -ret == ENOENT:
                return False
            raise fail(-ret, "delete from map", self.name)
        return True

    def pop(self, key: bytes) -> bytes | None:
        """Remove key and return its value, or None if absent (hash maps). One syscall: two
        takers never both get the value. A program's in-place update during the call may
        go with the entry; programs that re-create the entry start from their own value."""
        return self._value_of(lib().bpf_map_lookup_and_delete_elem, key, "lookup and delete in map")

    def keys(self) -> Iterator[bytes]:
        """Iterate keys (bpf_map_get_next_key). Concurrent deletes may restart a hash walk."""
        fd, size = self.fd, self.key_size
        get_next = lib().bpf_map_get_next_key
        prev: ctypes.Array[ctypes.c_char] | None = None
        nxt = ctypes.create_string_buffer(size)
        while True:
            ret = get_next(fd, prev, nxt)
            if ret < 0:
                if -ret == ENOENT:
                    return
                raise fail(-ret, "iterate map", self.name)
            key = nxt.raw
            yield key
            prev, nxt = nxt, ctypes.create_string_buffer(size)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:  # deleted between the two calls
                yield key, value

    def count(self) -> int:
        return sum(1 for _ in self.keys())

    def clear(self) -> int:
        """Delete every key (not for arrays); returns how many were deleted."""
        return self.delete_batch(list(self.keys()))

    # ----- per-CPU helpers ----------------------------------------------------------------
    def split_percpu(self, raw: bytes) -> list[bytes]:
        stride, size = self.value_stride, self.value_size
        return [raw[i : i + size] for i in range(0, len(raw), stride)]

    def pack_percpu(self, values: Sequence[bytes]) -> bytes:
        pad = b"\0" * (self.value_stride - self.value_size)
        ncpus = self.value_buffer_size // self.value_stride
        if len(values) != ncpus:
            raise ValueError(f"map {self.name}: need {ncpus} per-CPU values, got {len(values)}")
        for v in values:
            self._check_len(v, self.value_size, "per-CPU value")
        return b"".join(v + pad for v in values)

    def lookup_percpu(self, key: bytes) -> list[bytes] | None:
        raw = self.lookup(key)
        return None if raw is None else self.split_percpu(raw)

    def update_percpu(self, key: bytes, values: Sequence[bytes], flags: int = UpdateFlag.ANY) -> None:
        self.update(key, self.pack_percpu(values), flags)

    # ----- batches ------------------------------------------------------------------------
    @property
    def batch_supported(self) -> bool | None:
        """Whether the kernel took a batch op for this map (None: not tried yet)."""
        return self._batch_ok

    def _batch_opts(self, flags: int) -> BpfMapBatchOpts:
        return BpfMapBatchOpts(sz=ctypes.sizeof(BpfMapBatchOpts), elem_flags=flags, flags=0)

    def _check_all(self, items: Sequence[bytes], size: int, what: str) -> None:
        if not all(len(x) == size for x in items):
            bad = next(x for x in items if len(x) != size)
            self._check_len(bad, size, what)

    def update_batch(self, keys: Sequence[bytes], values: Sequence[bytes], flags: int = UpdateFlag.ANY) -> int:
        """Write many entries with one syscall (one by one where the map type lacks batch ops).

        The kernel's batch op takes no NOEXIST/EXIST flag, so those go one by one too.
        Returns the number written; raises BpfError on the first failing entry.
        """
        if len(keys) != len(values):
            raise ValueError(f"map {self.name}: {len(keys)} keys but {len(values)} values")
        if not keys:
            return 0
        self._check_all(keys, self.key_size, "key")
        if self.is_percpu:
            vals: Sequence[bytes] = [self._value_bytes(v) for v in values]
        else:
            self._check_all(values, self.value_size, "value")
            vals = values
        if self._batch_ok is not False and flags == UpdateFlag.ANY:
            kbuf, vbuf = b"".join(keys), b"".join(vals)
            count = ctypes.c_uint32(len(keys))
            opts = self._batch_opts(flags)
            ret = lib().bpf_map_update_batch(self.fd, kbuf, vbuf, ctypes.byref(count), opts)
            if ret >= 0:
                self._batch_ok = True
                return count.value
            if -ret not in _BATCH_UNSUPPORTED:
                raise fail(-ret, "batch update map", self.name, detail=f"{count.value} of {len(keys)} entries written")
            # The map type has no batch op (e.g. LPM trie on older kernels). Nothing was
            # written: the kernel refuses before the loop (count is then left unchanged).
            self._batch_ok = False
        for k, v in zip(keys, vals, strict=True):
            self.update(k, v, flags)
        return len(keys)

    def delete_batch(self, keys: Sequence[bytes]) -> int:
        """Delete many keys in one syscall (one by one where unsupported).

        The kernel batch fails on a missing key (ENOENT); the fallback path skips them.
        Returns the number deleted.
        """
        if not keys:
            return 0
        self._check_all(keys, self.key_size, "key")
        if self._batch_ok is not False:
            count = ctypes.c_uint32(len(keys))
            ret = lib().bpf_map_delete_batch(self.fd, b"".join(keys), ctypes.byref(count), self._batch_opts(0))
            if ret >= 0:
                self._batch_ok = True
                return count.value
            if -ret not in _BATCH_UNSUPPORTED:
                raise fail(
                    -ret, "batch delete from map", self.name, detail=f"{count.value} of {len(keys)} entries deleted"
                )
            self._batch_ok = False
        return sum(1 for k in keys if self.delete(k))

    # ----- pinning / lifetime -------------------------------------------------------------
    def pin(self, path: str | os.PathLike[str]) -> None:
        p = os.fspath(path)
        lib().log.mark()
        if self._ptr is not None:
            check_int(lib().bpf_map__pin(self._obj_ptr("pin map"), p.encode()), f"pin map {self.name} at", p)
        else:
            check_int(lib().bpf_obj_pin(self.fd, p.encode()), f"pin map {self.name} at", p)

    def unpin(self, path: str | os.PathLike[str] | None = None) -> None:
        """Remove the pin (path defaults to the object's pin path for object maps)."""
        if self._ptr is not None:
            arg = os.fspath(path).encode() if path is not None else None
            lib().log.mark()
            check_int(lib().bpf_map__unpin(self._obj_ptr("unpin map"), arg), "unpin map", self.name)
            return
        if path is None:
            raise ValueError(f"map {self.name}: unpin needs the pin path")
        try:
            os.unlink(os.fspath(path))
        except OSError as e:
            raise BpfError(e.errno or EINVAL, f"unpin map {self.name} at", os.fspath(path)) from e

    def close(self) -> None:
        """Close an owned fd; a no-op for maps owned by a BpfObject."""
        if self._closer is not None:
            self._closer()
            self._closer = None
            self._fd = -1
            self._ptr = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Map({self.name!r})"
