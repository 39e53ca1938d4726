"""A fast path for well-formed policy text: libyaml's C parser, YAML 1.2 core scalars.

ruamel's round-trip loader gives exact positions and messages, but it is pure Python: a
10,000-rule policy took 10 s to read, most of the time to make a new policy live. Valid
policies are the common case, so they are read from libyaml's event stream (C) into the
same plain data and `Positions` that `yamlpos.to_plain` builds. Anything outside the plain
subset (anchors, aliases, tags, merge keys, duplicate keys, a %YAML directive, scalars whose
reading differs between YAML versions such as `0o17`, `1_000` or dates, non-mapping
documents) and any syntax error returns None: the caller then reads the text with ruamel,
so what a user sees on any mistake is unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ruamel.yaml.resolver import VersionedResolver

from enforcer.policy.yamlpos import Loc, Positions

try:
    import yaml
    from yaml import CSafeLoader as _Loader  # libyaml; without it this path is not faster
except ImportError:  # pragma: no cover (PyYAML wheels bundle libyaml)
    _LIBYAML = False
else:
    _LIBYAML = True

Document = tuple[Any, Positions]  # plain data, and where each part of it is written

_DECIMAL = re.compile(r"[-+]?[0-9]+\Z")


def _implicit_resolvers() -> dict[str | None, list[tuple[str, re.Pattern[str]]]]:
    """ruamel's own YAML 1.2 implicit-tag table (first character -> (tag, regexp)), so a
    plain scalar is typed exactly as the ruamel reader types it."""
    table = VersionedResolver(version=None).versioned_resolver
    return {k: list(v) for k, v in table.items()}


_RESOLVERS = _implicit_resolvers()
_ANY_START = _RESOLVERS.get(None, [])


class _Unsupported(Exception):
    """The text leaves the subset this reader handles; read it with ruamel instead."""


def read_documents(text: str) -> list[Document | None] | None:
    """Every document of `text` (None for an empty one), or None if ruamel must read it."""
    if not _LIBYAML:
        return None
    try:
        events = yaml.parse(text, Loader=_Loader)
        return list(_documents(events))
    except (_Unsupported, yaml.YAMLError):
        return None


def _at(ev: yaml.Event) -> tuple[int, int]:
    """Where an event starts, 1-based (line, column). The parser marks every event."""
    mark = ev.start_mark
    assert mark is not None
    return mark.line + 1, mark.column + 1


def _documents(events: Iterator[Any]) -> Iterator[Document | None]:
    for ev in events:
        if isinstance(ev, yaml.DocumentStartEvent):
            if ev.version is not None or ev.tags:
                raise _Unsupported
            first = next(events)
            if isinstance(first, yaml.ScalarEvent) and not first.style and first.value == "":
                doc: Document | None = None  # an empty document
                if first.anchor or first.tag:
                    raise _Unsupported
            elif isinstance(first, yaml.MappingStartEvent):
                pos = Positions(keys={}, values={(): _at(first)})
                doc = (_node(first, events, (), pos), pos)
            else:
                raise _Unsupported  # not a mapping: ruamel words that error
            if not isinstance(next(events), yaml.DocumentEndEvent):
                raise _Unsupported
            yield doc


def _node(ev: Any, events: Iterator[Any], loc: Loc, pos: Positions) -> Any:
    if getattr(ev, "anchor", None) is not None or getattr(ev, "tag", None) is not None:
        raise _Unsupported
    if isinstance(ev, yaml.ScalarEvent):
        return _scalar(ev)
    if isinstance(ev, yaml.MappingStartEvent):
        out: dict[Any, Any] = {}
        while not isinstance(key_ev := next(events), yaml.MappingEndEvent):
            if not isinstance(key_ev, yaml.ScalarEvent) or key_ev.anchor or key_ev.tag:
                raise _Unsupported
            key = _scalar(key_ev)
            if key in out:
                raise _Unsupported  # duplicate key: ruamel reports it
            sub = (*loc, key)
            value_ev = next(events)
            key_pos = _at(key_ev)
            value = _node(value_ev, events, sub, pos)
            pos.keys[sub] = key_pos
            # a null value (`paths:`) has no text of its own: point at the key
            pos.values[sub] = key_pos if value is None else _at(value_ev)
            out[key] = value
        return out
    if isinstance(ev, yaml.SequenceStartEvent):
        items: list[Any] = []
        while not isinstance(item_ev := next(events), yaml.SequenceEndEvent):
            sub = (*loc, len(items))
            pos.values[sub] = _at(item_ev)
            items.append(_node(item_ev, events, sub, pos))
        return items
    raise _Unsupported  # alias


def _scalar(ev: Any) -> Any:
    value: str = ev.value
    if ev.style:  # quoted or block: always a string (plain is None, or "" from libyaml)
        return value
    # "" keys the empty scalar; tag is read after the loop: the resolver that matched
    for tag, regexp in _RESOLVERS.get(value[:1], []) + _ANY_START:  # noqa: B007
        if regexp.match(value):
            break
    else:
        return value  # a string (paths, names, CIDRs: no regexp for their first character)
    kind = tag.rsplit(":", 1)[-1]
    if kind == "null":
        return None
    if kind == "bool":
        return value.lower() == "true"
    if kind == "int" and _DECIMAL.match(value):
        return int(value)
    raise _Unsupported  # 0o17, 1_000, floats, dates, merge keys: ruamel constructs those
