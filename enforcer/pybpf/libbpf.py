"""ctypes prototypes for the system libbpf.so.1 (libbpf >= 1.0 semantics, written against 1.1).

Every libbpf call in the package goes through `lib()`. Conventions that matter:
- pointer-returning functions get restype=c_void_p (the default c_int truncates 64-bit
  pointers) and return NULL with errno set;
- int-returning functions return -errno (libbpf 1.0 "strict" mode is the only mode in 1.x).
The struct layouts below are the sz-versioned option structs of libbpf 1.1; passing our
sizeof() in `sz` lets newer libbpf accept them unchanged.
"""

from __future__ import annotations

import ctypes
import functools
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_int,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Any

from .errors import BpfError
from .log import LogCapture

LIBBPF_SONAME = "libbpf.so.1"


class BpfObjectOpenOpts(Structure):
    """struct bpf_object_open_opts (libbpf.h, 1.1)."""

    _fields_ = [
        ("sz", c_size_t),
        ("object_name", c_char_p),
        ("relaxed_maps", c_bool),
        ("pin_root_path", c_char_p),
        ("_removed_attach_prog_fd", c_uint32),  # `__u32 :32;` kept for ABI
        ("kconfig", c_char_p),
        ("btf_custom_path", c_char_p),
        ("kernel_log_buf", c_char_p),
        ("kernel_log_size", c_size_t),
        ("kernel_log_level", c_uint32),
    ]


class BpfTestRunOpts(Structure):
    """struct bpf_test_run_opts (bpf.h, 1.1)."""

    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", c_uint32),
        ("data_size_out", c_uint32),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32),
        ("retval", c_uint32),
        ("repeat", c_int),
        ("duration", c_uint32),
        ("flags", c_uint32),
        ("cpu", c_uint32),
        ("batch_size", c_uint32),
    ]


class BpfMapBatchOpts(Structure):
    """struct bpf_map_batch_opts (bpf.h)."""

    _fields_ = [("sz", c_size_t), ("elem_flags", c_uint64), ("flags", c_uint64)]


class BpfProgInfo(Structure):
    """struct bpf_prog_info (linux/bpf.h). The kernel fills at most sizeof() bytes."""

    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("tag", c_uint8 * 8),
        ("jited_prog_len", c_uint32),
        ("xlated_prog_len", c_uint32),
        ("jited_prog_insns", c_uint64),
        ("xlated_prog_insns", c_uint64),
        ("load_time", c_uint64),
        ("created_by_uid", c_uint32),
        ("nr_map_ids", c_uint32),
        ("map_ids", c_uint64),
        ("name", c_char * 16),
        ("ifindex", c_uint32),
        ("gpl_compatible", c_uint32),  # a 1-bit bitfield + 31 pad bits
        ("netns_dev", c_uint64),
        ("netns_ino", c_uint64),
        ("nr_jited_ksyms", c_uint32),
        ("nr_jited_func_lens", c_uint32),
        ("jited_ksyms", c_uint64),
        ("jited_func_lens", c_uint64),
        ("btf_id", c_uint32),
        ("func_info_rec_size", c_uint32),
        ("func_info", c_uint64),
        ("nr_func_info", c_uint32),
        ("nr_line_info", c_uint32),
        ("line_info", c_uint64),
        ("jited_line_info", c_uint64),
        ("nr_jited_line_info", c_uint32),
        ("line_info_rec_size", c_uint32),
        ("jited_line_info_rec_size", c_uint32),
        ("nr_prog_tags", c_uint32),
        ("prog_tags", c_uint64),
        ("run_time_ns", c_uint64),
        ("run_cnt", c_uint64),
        ("recursion_misses", c_uint64),
        ("verified_insns", c_uint32),
        ("attach_btf_obj_id", c_uint32),
        ("attach_btf_id", c_uint32),
        ("_pad", c_uint32),
    ]


class BpfMapInfo(Structure):
    """struct bpf_map_info (linux/bpf.h)."""

    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("key_size", c_uint32),
        ("value_size", c_uint32),
        ("max_entries", c_uint32),
        ("map_flags", c_uint32),
        ("name", c_char * 16),
        ("ifindex", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32),
        ("netns_dev", c_uint64),
        ("netns_ino", c_uint64),
        ("btf_id", c_uint32),
        ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32),
        ("_pad", c_uint32),
        ("map_extra", c_uint64),
    ]


# int (*libbpf_print_fn_t)(enum libbpf_print_level, const char *, va_list): on x86_64 a
# va_list argument is a pointer to __va_list_tag, so c_void_p carries it through untouched.
PRINT_FN = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
# int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size)
SAMPLE_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)

_u32p = POINTER(c_uint32)

# name -> (restype, argtypes)
_PROTOTYPES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    # object
    "bpf_object__open_file": (c_void_p, (c_char_p, POINTER(BpfObjectOpenOpts))),
    "bpf_object__load": (c_int, (c_void_p,)),
    "bpf_object__close": (None, (c_void_p,)),
    "bpf_object__name": (c_char_p, (c_void_p,)),
    "bpf_object__next_program": (c_void_p, (c_void_p, c_void_p)),
    "bpf_object__next_map": (c_void_p, (c_void_p, c_void_p)),
    "bpf_object__find_program_by_name": (c_void_p, (c_void_p, c_char_p)),
    "bpf_object__find_map_by_name": (c_void_p, (c_void_p, c_char_p)),
    # program
    "bpf_program__name": (c_char_p, (c_void_p,)),
    "bpf_program__section_name": (c_char_p, (c_void_p,)),
    "bpf_program__fd": (c_int, (c_void_p,)),
    "bpf_program__type": (c_int, (c_void_p,)),
    "bpf_program__expected_attach_type": (c_int, (c_void_p,)),
    "bpf_program__autoload": (c_bool, (c_void_p,)),
    "bpf_program__set_autoload": (c_int, (c_void_p, c_bool)),
    "bpf_program__attach": (c_void_p, (c_void_p,)),
    "bpf_program__attach_lsm": (c_void_p, (c_void_p,)),
    "bpf_program__attach_cgroup": (c_void_p, (c_void_p, c_int)),
    # map (libbpf object view)
    "bpf_map__name": (c_char_p, (c_void_p,)),
    "bpf_map__fd": (c_int, (c_void_p,)),
    "bpf_map__type": (c_int, (c_void_p,)),
    "bpf_map__key_size": (c_uint32, (c_void_p,)),
    "bpf_map__value_size": (c_uint32, (c_void_p,)),
    "bpf_map__max_entries": (c_uint32, (c_void_p,)),
    "bpf_map__map_flags": (c_uint32, (c_void_p,)),
    "bpf_map__set_max_entries": (c_int, (c_void_p, c_uint32)),
    "bpf_map__set_pin_path": (c_int, (c_void_p, c_char_p)),
    "bpf_map__pin_path": (c_char_p, (c_void_p,)),
    "bpf_map__is_pinned": (c_bool, (c_void_p,)),
    "bpf_map__pin": (c_int, (c_void_p, c_char_p)),
    "bpf_map__unpin": (c_int, (c_void_p, c_char_p)),
    "bpf_map__reuse_fd": (c_int, (c_void_p, c_int)),
    "bpf_map__btf_key_type_id": (c_uint32, (c_void_p,)),
    "bpf_map__btf_value_type_id": (c_uint32, (c_void_p,)),
    # fd-level map ops (bpf.h): one syscall each, the cheapest path from Python
    "bpf_map_update_elem": (c_int, (c_int, c_void_p, c_void_p, c_uint64)),
    "bpf_map_lookup_elem": (c_int, (c_int, c_void_p, c_void_p)),
    "bpf_map_delete_elem": (c_int, (c_int, c_void_p)),
    "bpf_map_lookup_and_delete_elem": (c_int, (c_int, c_void_p, c_void_p)),
    "bpf_map_get_next_key": (c_int, (c_int, c_void_p, c_void_p)),
    "bpf_map_update_batch": (
        c_int,
        (c_int, c_void_p, c_void_p, _u32p, POINTER(BpfMapBatchOpts)),
    ),
    "bpf_map_delete_batch": (c_int, (c_int, c_void_p, _u32p, POINTER(BpfMapBatchOpts))),
    "bpf_obj_get": (c_int, (c_char_p,)),
    "bpf_obj_pin": (c_int, (c_int, c_char_p)),
    "bpf_obj_get_info_by_fd": (c_int, (c_int, c_void_p, _u32p)),
    "bpf_prog_get_fd_by_id": (c_int, (c_uint32,)),
    "bpf_prog_query": (c_int, (c_int, c_int, c_uint32, _u32p, _u32p, _u32p)),
    "bpf_prog_test_run_opts": (c_int, (c_int, POINTER(BpfTestRunOpts))),
    "bpf_enable_stats": (c_int, (c_int,)),
    # links
    "bpf_link__open": (c_void_p, (c_char_p,)),
    "bpf_link__fd": (c_int, (c_void_p,)),
    "bpf_link__pin": (c_int, (c_void_p, c_char_p)),
    "bpf_link__unpin": (c_int, (c_void_p,)),
    "bpf_link__pin_path": (c_char_p, (c_void_p,)),
    "bpf_link__detach": (c_int, (c_void_p,)),
    "bpf_link__destroy": (c_int, (c_void_p,)),
    "bpf_link__update_program": (c_int, (c_void_p, c_void_p)),
    # ring buffer
    "ring_buffer__new": (c_void_p, (c_int, SAMPLE_FN, c_void_p, c_void_p)),
    "ring_buffer__add": (c_int, (c_void_p, c_int, SAMPLE_FN, c_void_p)),
    "ring_buffer__poll": (c_int, (c_void_p, c_int)),
    "ring_buffer__consume": (c_int, (c_void_p,)),
    "ring_buffer__epoll_fd": (c_int, (c_void_p,)),
    "ring_buffer__free": (None, (c_void_p,)),
    # btf
    "btf__parse_elf": (c_void_p, (c_char_p, c_void_p)),
    "btf__raw_data": (c_void_p, (c_void_p, _u32p)),
    "btf__free": (None, (c_void_p,)),
    # misc
    "libbpf_num_possible_cpus": (c_int, ()),
    "libbpf_set_print": (c_void_p, (c_void_p,)),
}


class Libbpf:
    """The loaded library: typed-by-table function pointers plus the log capture.

    Attribute access (`lib().bpf_map_update_elem`) returns the prototyped ctypes function.
    """

    def __init__(self, soname: str = LIBBPF_SONAME) -> None:
        # use_errno: NULL-returning libbpf calls report through errno.
        self.cdll = ctypes.CDLL(soname, use_errno=True)
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(self.cdll, name)
            fn.restype = restype
            fn.argtypes = list(argtypes)
            setattr(self, name, fn)
        self.log = LogCapture()
        self.log.install(self.cdll.libbpf_set_print)

    def __getattr__(self, name: str) -> Any:  # only reached for names not in the table
        raise AttributeError(f"libbpf function {name!r} has no prototype in pybpf.libbpf")


@functools.cache
def lib() -> Libbpf:
    """Load libbpf.so.1 once (lazily, so importing the package never fails on a host without it)."""
    return Libbpf()


def errno_now() -> int:
    """errno left by the last ctypes call on this thread (set by NULL-returning libbpf APIs)."""
    return ctypes.get_errno()


def fail(err: int, op: str, target: str | None = None, detail: str | None = None) -> BpfError:
    """Build the BpfError for a failed call, with this thread's libbpf warnings attached."""
    return BpfError(err, op, target, lib().log.take(), detail)


def check_int(ret: int, op: str, target: str | None = None) -> int:
    """libbpf int API: negative means -errno."""
    if ret < 0:
        raise fail(-ret, op, target)
    return ret


def check_ptr(ptr: int | None, op: str, target: str | None = None) -> int:
    """libbpf pointer API: NULL means failure with errno set."""
    if not ptr:
        raise fail(errno_now() or 22, op, target)  # EINVAL if libbpf forgot errno
    return ptr
