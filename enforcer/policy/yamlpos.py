"""YAML -> plain Python data plus the source position of every key and value.

We validate plain dicts/lists (ruamel's round-trip types subclass them, but plain data keeps
pydantic's strict checks predictable) and keep a side table from a pydantic-style `loc`
tuple ("spec", "file", 0, "paths") to 1-based positions, so errors can point at the text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarbool import ScalarBoolean

Loc = tuple[Any, ...]
Pos = tuple[int, int]  # 1-based (line, col)


@dataclass
class Positions:
    """Where each loc's key and value are; the root (loc ()) is the document start."""

    keys: dict[Loc, Pos]
    values: dict[Loc, Pos]

    def value(self, loc: Loc) -> Pos:
        """Position of the value at `loc`, or of the nearest enclosing thing we know."""
        for n in range(len(loc), -1, -1):
            sub = loc[:n]
            if sub in self.values:
                return self.values[sub]
            if sub in self.keys:
                return self.keys[sub]
        return (1, 1)

    def key(self, loc: Loc) -> Pos:
        """Position of the key at `loc` (the value's if it has no key, e.g. a list item)."""
        return self.keys.get(loc) or self.value(loc)


def new_yaml() -> YAML:
    # round-trip loader: it records line/column for every key and item, and rejects
    # duplicate keys (a repeated `paths:` must not silently drop the first list)
    return YAML(typ="rt")


def load_documents(yaml: YAML, text: str) -> Iterator[Any]:
    """The raw documents (ruamel types); raises ruamel's YAMLError on bad syntax."""
    yield from yaml.load_all(text)


def document_starts(text: str) -> list[Pos]:
    """Start of each document (only needed to place errors about non-mapping documents)."""
    out: list[Pos] = []
    try:
        for node in new_yaml().compose_all(text):
            mark = node.start_mark if node is not None else None
            out.append((mark.line + 1, mark.column + 1) if mark else (1, 1))
    except Exception:  # noqa: BLE001 (best effort: positions only)
        pass
    return out


MAX_NODES = 200_000  # keys + values of one document once aliases are expanded
MAX_DEPTH = 64  # a policy is ~6 levels deep; a self-referencing alias is infinitely deep


class TooBig(ValueError):
    """A document that expands past MAX_NODES or MAX_DEPTH (alias bombs, recursive
    aliases); `loc` is where the limit was hit."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.where: Pos = (1, 1)  # line, col of `loc`, set by to_plain


def to_plain(doc: Any, root: Pos) -> tuple[Any, Positions]:
    """Raises TooBig past MAX_NODES / MAX_DEPTH (with `pos` filled up to there)."""
    pos = Positions(keys={}, values={(): root})
    try:
        return _plain(doc, (), pos, [MAX_NODES]), pos
    except TooBig as exc:
        exc.where = pos.value(exc.loc)
        raise


def _plain(node: Any, loc: Loc, pos: Positions, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise TooBig(loc, f"the document expands to more than {MAX_NODES} values (YAML aliases?)")
    if len(loc) > MAX_DEPTH:
        raise TooBig(loc[:MAX_DEPTH], f"nested deeper than {MAX_DEPTH} levels (a recursive YAML alias?)")
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            plain_key = _plain(key, loc, pos, budget) if isinstance(key, (CommentedMap, CommentedSeq)) else _scalar(key)
            if isinstance(plain_key, list):
                plain_key = tuple(plain_key)
            sub = (*loc, plain_key)
            data = node.lc.data.get(key) if node.lc.data is not None else None
            if data is not None:  # merged (<<) keys have no position of their own
                pos.keys[sub] = (data[0] + 1, data[1] + 1)
                # a null value (`paths:`) has no text of its own: point at the key
                pos.values[sub] = pos.keys[sub] if value is None else (data[2] + 1, data[3] + 1)
            out[plain_key] = _plain(value, sub, pos, budget)
        return out
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for i, value in enumerate(node):
            sub = (*loc, i)
            data = node.lc.data.get(i) if node.lc.data is not None else None
            if data is not None:
                pos.values[sub] = (data[0] + 1, data[1] + 1)
            items.append(_plain(value, sub, pos, budget))
        return items
    if isinstance(node, (dict, list)):  # defensive: plain containers from other loaders
        return node
    return _scalar(node)


def _scalar(value: Any) -> Any:
    # ruamel's round-trip scalars subclass the builtins (ScalarInt, LiteralScalarString...)
    if isinstance(value, (bool, ScalarBoolean)):  # ScalarBoolean subclasses int, not bool
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value
