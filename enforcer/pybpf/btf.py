"""Read BTF from a compiled .bpf.o and derive Python layouts from it.

The BPF C header is the single definition of every shared struct; Python asks the object's
BTF for sizes, offsets and enum values instead of hand-writing them. Two products:
- `Btf.struct(name)`: a ctypes.Structure with exact offsets/size (explicit padding, packed);
- `Btf.layout(name)`: a flattened `struct.Struct` format + field names, for hot paths
  (ring buffer events) where ctypes.from_buffer_copy is too slow.

Raw format: Documentation/bpf/btf.rst (header, type section, string section).
A type referenced only by local variables is not emitted by clang; reference shared types
from a map's __type() or from a global (e.g. `struct event _event_btf = {};`) so they exist.
"""

from __future__ import annotations

import ctypes
import struct as pystruct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property
from typing import Any, ClassVar

from .libbpf import check_ptr, lib

BTF_MAGIC = 0xEB9F

# kinds (btf.rst "Type encoding")
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT = 9, 10, 11, 12, 13, 14, 15, 16
DECL_TAG, TYPE_TAG, ENUM64 = 17, 18, 19
KIND_NAMES = {
    0: "void",
    INT: "int",
    PTR: "ptr",
    ARRAY: "array",
    STRUCT: "struct",
    UNION: "union",
    ENUM: "enum",
    FWD: "fwd",
    TYPEDEF: "typedef",
    VOLATILE: "volatile",
    CONST: "const",
    RESTRICT: "restrict",
    FUNC: "func",
    FUNC_PROTO: "func_proto",
    VAR: "var",
    DATASEC: "datasec",
    FLOAT: "float",
    DECL_TAG: "decl_tag",
    TYPE_TAG: "type_tag",
    ENUM64: "enum64",
}
_MODIFIERS = frozenset({TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG})
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4


class BtfFormatError(ValueError):
    """The bytes are not BTF this parser understands."""


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int  # 0 unless a bitfield


@dataclass(frozen=True, slots=True)
class BtfType:
    id: int
    kind: int
    name: str
    size: int  # size for INT/STRUCT/UNION/ENUM/FLOAT/DATASEC, else 0
    ref: int  # referenced type id for PTR/TYPEDEF/modifiers/FUNC/VAR, else 0
    kind_flag: bool
    members: tuple[Member, ...] = ()
    enum_values: tuple[tuple[str, int], ...] = ()
    array: tuple[int, int] | None = None  # (element type id, nelems)
    int_encoding: int = 0
    int_bits: int = 0
    int_offset: int = 0

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))


_VOID = BtfType(id=0, kind=0, name="void", size=0, ref=0, kind_flag=False)


@dataclass(frozen=True, slots=True)
class Field:
    """One leaf of a flattened layout."""

    name: str  # dotted path: "addr.port", "args[2]"
    offset: int
    size: int
    fmt: str  # struct module code, e.g. "I", "16s"
    is_cstring: bool = False  # char array: decode() cuts at NUL and returns str


@dataclass(frozen=True)
class StructLayout:
    """Flattened, struct-module view of a BTF struct: fast to decode ring buffer records."""

    name: str
    size: int
    fields: tuple[Field, ...]
    format: str  # "=" + codes with explicit "x" padding; calcsize(format) == size
    _struct: pystruct.Struct = field(init=False, repr=False, compare=False)

    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _cstrings: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Precomputed so decode() does no per-field Python work beyond C strings.
        object.__setattr__(self, "_struct", pystruct.Struct(self.format))
        object.__setattr__(self, "_names", tuple(f.name for f in self.fields))
        object.__setattr__(self, "_cstrings", tuple(f.name for f in self.fields if f.is_cstring))

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def offsets(self) -> dict[str, int]:
        return {f.name: f.offset for f in self.fields}

    @property
    def struct(self) -> pystruct.Struct:
        return self._struct

    def unpack(self, data: bytes) -> tuple[Any, ...]:
        """Values in `names` order (char arrays as raw bytes). The fastest path."""
        return self._struct.unpack_from(data)

    def decode(self, data: bytes) -> dict[str, Any]:
        """Values by name; char arrays cut at the first NUL and decoded to str."""
        out = dict(zip(self._names, self._struct.unpack_from(data), strict=True))
        for name in self._cstrings:
            out[name] = out[name].split(b"\0", 1)[0].decode(errors="replace")
        return out

    def packer(self, *names: str) -> Callable[..., bytes]:
        """A function packing the fields `names` from positional arguments, the rest zero:
        for writing many records (no per-record dict or per-field lookups)."""
        missing = [n for n in names if n not in self._names]
        if missing:
            raise KeyError(f"{self.name} has no field(s) {', '.join(missing)}")
        template = [b"" if f.fmt.endswith("s") else 0 for f in self.fields]
        where = [self._names.index(n) for n in names]
        pack = self._struct.pack
        if where == list(range(len(template))):
            return pack

        def packed(*values: Any) -> bytes:
            args = template.copy()
            for i, v in zip(where, values, strict=True):
                args[i] = v
            return pack(*args)

        return packed

    def pack(self, **values: Any) -> bytes:
        """Build a record (e.g. a map key); missing fields are zero, strings are encoded."""
        args: list[Any] = []
        for f in self.fields:
            v = values.get(f.name, b"" if f.fmt.endswith("s") else 0)
            if isinstance(v, str):
                v = v.encode()
            args.append(v)
        return self._struct.pack(*args)


class Btf:
    def __init__(self, types: list[BtfType]) -> None:
        self.types = types  # index == type id; 0 is void
        self._by_name: dict[str, list[int]] = {}
        for t in types[1:]:
            if t.name:
                self._by_name.setdefault(t.name, []).append(t.id)
        self._ctypes_cache: dict[int, Any] = {}

    # ----- parsing ------------------------------------------------------------------------
    @classmethod
    def from_elf(cls, path: str) -> Btf:
        """BTF of a compiled BPF object file (its .BTF section), via libbpf."""
        L = lib()
        L.log.mark()
        btf = check_ptr(L.btf__parse_elf(path.encode(), None), "read BTF of", path)
        try:
            size = ctypes.c_uint32(0)
            data = check_ptr(L.btf__raw_data(btf, ctypes.byref(size)), "get raw BTF of", path)
            raw = ctypes.string_at(data, size.value)
        finally:
            L.btf__free(btf)
        return cls.from_bytes(raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Btf:
        if len(raw) < 24:
            raise BtfFormatError("BTF too short for its header")
        magic = int.from_bytes(raw[:2], "little")
        if magic == BTF_MAGIC:
            e = "<"
        elif magic == 0x9FEB:
            e = ">"
        else:
            raise BtfFormatError(f"bad BTF magic {magic:#x}")
        _, _, _, hdr_len, type_off, type_len, str_off, str_len = pystruct.unpack_from(e + "HBBIIIII", raw)
        tstart = hdr_len + type_off
        sstart = hdr_len + str_off
        strings = raw[sstart : sstart + str_len]
        return cls(list(_parse_types(raw[tstart : tstart + type_len], strings, e)))

    # ----- queries ------------------------------------------------------------------------
    def __getitem__(self, type_id: int) -> BtfType:
        return self.types[type_id] if type_id else _VOID

    def find(self, name: str, kind: int | None = None) -> BtfType:
        """The type named `name` (of `kind` if given; a complete struct beats a FWD)."""
        for tid in self._by_name.get(name, ()):
            t = self.types[tid]
            if (kind is None and t.kind not in (FWD, FUNC, VAR, DECL_TAG)) or t.kind == kind:
                return t
        what = f"{KIND_NAMES.get(kind, 'type')} {name}" if kind else f"type {name}"
        raise KeyError(f"BTF has no {what} (referenced only by local variables? see btf.py)")

    def resolve(self, type_id: int) -> BtfType:
        """Skip typedef/const/volatile/restrict/type_tag."""
        t = self[type_id]
        while t.kind in _MODIFIERS:
            t = self[t.ref]
        return t

    def sizeof(self, type_id: int) -> int:
        t = self.resolve(type_id)
        if t.kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC):
            return t.size
        if t.kind == PTR:
            return 8
        if t.kind == ARRAY:
            assert t.array is not None
            return self.sizeof(t.array[0]) * t.array[1]
        raise TypeError(f"BTF type {t.id} ({t.kind_name} {t.name}) has no size")

    def _named(self, name: str, kinds: tuple[int, ...]) -> BtfType:
        for tid in self._by_name.get(name, ()):
            t = self.resolve(tid)
            if t.kind in kinds:
                return t
        raise KeyError(
            f"BTF has no {'/'.join(KIND_NAMES[k] for k in kinds)} named {name}"
            " (referenced only by local variables? see btf.py)"
        )

    # ----- enums --------------------------------------------------------------------------
    def enum(self, name: str) -> dict[str, int]:
        return dict(self._named(name, (ENUM, ENUM64)).enum_values)

    def int_enum(self, name: str, class_name: str | None = None) -> type[IntEnum]:
        return IntEnum(class_name or name, self.enum(name))  # type: ignore[return-value]

    def enum_constants(self) -> dict[str, int]:
        """Every enumerator of every enum (anonymous ones too)."""
        out: dict[str, int] = {}
        for t in self.types:
            if t.kind in (ENUM, ENUM64):
                out.update(t.enum_values)
        return out

    # ----- ctypes -------------------------------------------------------------------------
    def struct(self, name: str) -> Any:
        """ctypes.Structure (or Union) subclass with the exact layout of struct/union `name`."""
        return self.ctype(self._named(name, (STRUCT, UNION)).id)

    def ctype(self, type_id: int) -> Any:
        t = self.resolve(type_id)
        cached = self._ctypes_cache.get(t.id)
        if cached is None:
            cached = self._build_ctype(t)
            self._ctypes_cache[t.id] = cached
        return cached

    def _build_ctype(self, t: BtfType) -> Any:
        if t.kind == INT:
            if t.int_offset or t.int_bits != t.size * 8:
                raise NotImplementedError(f"BTF int {t.name} with bit offset/size")
            if t.name == "char" or t.int_encoding & INT_CHAR:
                return ctypes.c_char
            if t.int_encoding & INT_BOOL:
                return ctypes.c_bool
            return _int_ctype(t.size, bool(t.int_encoding & INT_SIGNED))
        if t.kind in (ENUM, ENUM64):
            return _int_ctype(t.size, t.kind_flag)  # kind_flag marks signed enums
        if t.kind == PTR:
            return ctypes.c_uint64  # BPF pointers are 64-bit; meaningless in userspace anyway
        if t.kind == FLOAT:
            return {4: ctypes.c_float, 8: ctypes.c_double}.get(t.size) or ctypes.c_uint8 * t.size
        if t.kind == ARRAY:
            assert t.array is not None
            return self.ctype(t.array[0]) * t.array[1]
        if t.kind in (STRUCT, UNION):
            return self._build_record(t)
        raise TypeError(f"BTF type {t.id} ({t.kind_name} {t.name}) cannot be a ctypes field")

    def _build_record(self, t: BtfType) -> Any:
        fields: list[tuple[str, Any]] = []
        anonymous: list[str] = []
        pos = 0
        for i, m in enumerate(self._plain_members(t)):
            off = m.bit_offset // 8
            if t.kind == STRUCT and off > pos:
                fields.append((f"_pad_{pos}", ctypes.c_uint8 * (off - pos)))
            elif t.kind == STRUCT and off < pos:
                raise NotImplementedError(f"struct {t.name}: overlapping member {m.name}")
            ctype = self.ctype(m.type_id)
            name = m.name
            if not name:
                name = f"_anon{i}"
                anonymous.append(name)
            fields.append((name, ctype))
            pos = off + ctypes.sizeof(ctype) if t.kind == STRUCT else max(pos, ctypes.sizeof(ctype))
        if t.kind == STRUCT and pos < t.size:
            fields.append((f"_pad_{pos}", ctypes.c_uint8 * (t.size - pos)))
        elif t.kind == UNION and pos < t.size:
            fields.append(("_size", ctypes.c_uint8 * t.size))
        base: type = ctypes.Structure if t.kind == STRUCT else ctypes.Union
        ns: dict[str, Any] = {"_pack_": 1, "_fields_": fields, "__module__": __name__}
        if anonymous:
            ns["_anonymous_"] = anonymous
        cls = type(t.name or f"anon_{KIND_NAMES[t.kind]}_{t.id}", (base,), ns)
        if ctypes.sizeof(cls) != t.size:
            raise AssertionError(f"{t.name}: built {ctypes.sizeof(cls)} bytes, BTF says {t.size}")
        return cls

    def _plain_members(self, t: BtfType) -> Iterator[Member]:
        for m in t.members:
            if m.bitfield_size or m.bit_offset % 8:
                raise NotImplementedError(f"{t.kind_name} {t.name}: bitfield member {m.name}")
            mt = self.resolve(m.type_id)
            if mt.kind == INT and mt.int_bits != mt.size * 8:
                raise NotImplementedError(f"{t.kind_name} {t.name}: bitfield member {m.name}")
            yield m

    # ----- flattened struct-module layout -------------------------------------------------
    def layout(self, name: str) -> StructLayout:
        t = self._named(name, (STRUCT, UNION))
        leaves: list[Field] = []
        self._flatten(t.id, "", 0, leaves)
        fmt = ["="]
        pos = 0
        for f in sorted(leaves, key=lambda f: f.offset):
            if f.offset > pos:
                fmt.append(f"{f.offset - pos}x")
            fmt.append(f.fmt)
            pos = f.offset + f.size
        if pos < t.size:
            fmt.append(f"{t.size - pos}x")
        fields = tuple(sorted(leaves, key=lambda f: f.offset))
        layout = StructLayout(name=name, size=t.size, fields=fields, format="".join(fmt))
        assert layout.struct.size == t.size, (layout.format, t.size)
        return layout

    _INT_FMT: ClassVar[dict[tuple[int, bool], str]] = {
        (1, False): "B",
        (1, True): "b",
        (2, False): "H",
        (2, True): "h",
        (4, False): "I",
        (4, True): "i",
        (8, False): "Q",
        (8, True): "q",
    }

    def _flatten(self, type_id: int, prefix: str, base: int, out: list[Field]) -> None:
        t = self.resolve(type_id)
        if t.kind == STRUCT:
            for i, m in enumerate(self._plain_members(t)):
                sub = m.name or f"_anon{i}"
                # Members of anonymous structs/unions read as members of the parent (like C).
                path = prefix if not m.name else (f"{prefix}.{sub}" if prefix else sub)
                self._flatten(m.type_id, path, base + m.bit_offset // 8, out)
            return
        if t.kind == UNION:  # overlapping views: expose the raw bytes once
            out.append(Field(prefix or t.name, base, t.size, f"{t.size}s"))
            return
        if t.kind == ARRAY:
            assert t.array is not None
            elem, n = t.array
            et = self.resolve(elem)
            if et.kind == INT and et.size == 1 and (et.name == "char" or et.int_encoding & INT_CHAR):
                out.append(Field(prefix, base, n, f"{n}s", is_cstring=True))
                return
            if et.kind == INT and et.size == 1:
                out.append(Field(prefix, base, n, f"{n}s"))  # u8 arrays: bytes
                return
            esize = self.sizeof(elem)
            for i in range(n):
                self._flatten(elem, f"{prefix}[{i}]", base + i * esize, out)
            return
        if t.kind == INT:
            if t.int_encoding & INT_BOOL and t.size == 1:
                code = "?"
            elif t.name == "char" or t.int_encoding & INT_CHAR:
                code = "c"
            elif (t.size, bool(t.int_encoding & INT_SIGNED)) in self._INT_FMT:
                code = self._INT_FMT[(t.size, bool(t.int_encoding & INT_SIGNED))]
            else:
                out.append(Field(prefix, base, t.size, f"{t.size}s"))  # __int128
                return
            out.append(Field(prefix, base, t.size, code))
            return
        if t.kind in (ENUM, ENUM64):
            out.append(Field(prefix, base, t.size, self._INT_FMT[(t.size, t.kind_flag)]))
            return
        if t.kind == PTR:
            out.append(Field(prefix, base, 8, "Q"))
            return
        if t.kind == FLOAT and t.size in (4, 8):
            out.append(Field(prefix, base, t.size, "f" if t.size == 4 else "d"))
            return
        raise TypeError(f"BTF type {t.id} ({t.kind_name} {t.name}) cannot be flattened")

    @cached_property
    def struct_names(self) -> tuple[str, ...]:
        return tuple(sorted(t.name for t in self.types if t.kind in (STRUCT, UNION) and t.name))


def _int_ctype(size: int, signed: bool) -> Any:
    table = {
        1: (ctypes.c_uint8, ctypes.c_int8),
        2: (ctypes.c_uint16, ctypes.c_int16),
        4: (ctypes.c_uint32, ctypes.c_int32),
        8: (ctypes.c_uint64, ctypes.c_int64),
    }
    if size in table:
        return table[size][signed]
    return ctypes.c_uint8 * size  # __int128 and friends: raw bytes


def _parse_types(data: bytes, strings: bytes, e: str) -> Iterator[BtfType]:
    def name_at(off: int) -> str:
        end = strings.find(b"\0", off)
        return strings[off : end if end >= 0 else len(strings)].decode(errors="replace")

    yield _VOID
    u32 = pystruct.Struct(e + "I")
    hdr = pystruct.Struct(e + "III")
    pos, tid = 0, 0
    while pos < len(data):
        tid += 1
        name_off, info, size_or_type = hdr.unpack_from(data, pos)
        pos += hdr.size
        vlen = info & 0xFFFF
        kind = (info >> 24) & 0x1F
        kflag = bool(info >> 31)
        name = name_at(name_off)
        sized = kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC)
        kw: dict[str, Any] = {}
        if kind == INT:
            (enc,) = u32.unpack_from(data, pos)
            pos += 4
            kw.update(int_encoding=(enc >> 24) & 0x0F, int_offset=(enc >> 16) & 0xFF, int_bits=enc & 0xFF)
        elif kind == ARRAY:
            elem, _index, nelems = hdr.unpack_from(data, pos)
            pos += 12
            kw["array"] = (elem, nelems)
        elif kind in (STRUCT, UNION):
            members = []
            for _ in range(vlen):
                m_name, m_type, m_off = hdr.unpack_from(data, pos)
                pos += 12
                bits, bsize = (m_off & 0xFFFFFF, m_off >> 24) if kflag else (m_off, 0)
                members.append(Member(name_at(m_name), m_type, bits, bsize))
            kw["members"] = tuple(members)
        elif kind == ENUM:
            vals = []
            for _ in range(vlen):
                v_name, v_val = pystruct.unpack_from(e + ("Ii" if kflag else "II"), data, pos)
                pos += 8
                vals.append((name_at(v_name), v_val))
            kw["enum_values"] = tuple(vals)
        elif kind == ENUM64:
            vals = []
            for _ in range(vlen):
                v_name, lo, hi = hdr.unpack_from(data, pos)
                pos += 12
                v = (hi << 32) | lo
                if kflag and v >= 1 << 63:
                    v -= 1 << 64
                vals.append((name_at(v_name), v))
            kw["enum_values"] = tuple(vals)
        elif kind == FUNC_PROTO:
            pos += 8 * vlen
        elif kind in (VAR, DECL_TAG):
            pos += 4
        elif kind == DATASEC:
            pos += 12 * vlen
        elif kind not in (PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG):
            raise BtfFormatError(f"unknown BTF kind {kind} at type {tid}")
        yield BtfType(
            id=tid,
            kind=kind,
            name=name,
            size=size_or_type if sized else 0,
            ref=0 if sized else size_or_type,
            kind_flag=kflag,
            **kw,
        )
