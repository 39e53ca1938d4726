"""Load policy files into an immutable PolicySet, with every problem as FILE:LINE:COL.

Rules an operator can rely on:
- A file is all or nothing: if any document in it is invalid, none of its policies load.
- Policy names are unique across the directory; on a clash the file that sorts later is
  rejected (the earlier one keeps working) and the message names both places.
- Only `*.yaml` / `*.yml` directly in the directory count; hidden files and editor
  leftovers (`.#x.yaml`, `x.yaml~`, `.x.yaml.swp`, `#x.yaml#`) are ignored.
- With `previous=`, a file that no longer validates keeps its last good policies (the daemon
  passes the running set): "a file that does not validate changes nothing".
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from enforcer.errors import EnforcerError
from enforcer.policy.errors import PolicyError
from enforcer.policy.fastyaml import read_documents
from enforcer.policy.model import Policy
from enforcer.policy.yamlpos import Loc, Pos, Positions, TooBig, document_starts, new_yaml, to_plain

MAX_FILE_BYTES = 4 * 1024 * 1024  # a policy file this big is a mistake, not a policy
POLICY_SUFFIXES = (".yaml", ".yml")


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy and where its metadata.name is written (for duplicate reports, status)."""

    policy: Policy
    file: str
    line: int
    col: int


@dataclass(frozen=True)
class FileResult:
    """Outcome for one file. `policies` is what the set uses from this file: the file's own
    policies if it is ok, the previous good ones if `kept_previous`, else nothing."""

    file: str
    policies: tuple[LoadedPolicy, ...] = ()
    errors: tuple[PolicyError, ...] = ()
    kept_previous: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class PolicyDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@dataclass(frozen=True)
class PolicySet:
    """The valid policies (file order, then document order) plus per-file results.

    `digest` covers the policies' content only (not file names or errors), so an edit that
    changes nothing enforceable keeps the digest and needs no swap.
    """

    entries: tuple[LoadedPolicy, ...] = ()
    files: tuple[FileResult, ...] = ()
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", _digest(e.policy for e in self.entries))

    @property
    def policies(self) -> tuple[Policy, ...]:
        return tuple(e.policy for e in self.entries)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.policy.name for e in self.entries)

    @property
    def errors(self) -> tuple[PolicyError, ...]:
        return tuple(err for f in self.files for err in f.errors)

    @property
    def ok(self) -> bool:
        return not self.errors

    def get(self, name: str) -> Policy | None:
        for e in self.entries:
            if e.policy.name == name:
                return e.policy
        return None

    def source(self, name: str) -> LoadedPolicy | None:
        for e in self.entries:
            if e.policy.name == name:
                return e
        return None

    def diff(self, old: PolicySet) -> PolicyDiff:
        """What changed from `old` to self, by policy name (for "what changed" logging)."""
        mine = {e.policy.name: policy_digest(e.policy) for e in self.entries}
        theirs = {e.policy.name: policy_digest(e.policy) for e in old.entries}
        return PolicyDiff(
            added=tuple(sorted(mine.keys() - theirs.keys())),
            removed=tuple(sorted(theirs.keys() - mine.keys())),
            changed=tuple(sorted(n for n in mine.keys() & theirs.keys() if mine[n] != theirs[n])),
        )


def _canonical(policy: Policy) -> Any:
    return policy.model_dump(mode="json", by_alias=True)


def policy_digest(policy: Policy) -> str:
    return hashlib.sha256(json.dumps(_canonical(policy), sort_keys=True).encode()).hexdigest()


def _digest(policies: Iterable[Policy]) -> str:
    canon = sorted((_canonical(p) for p in policies), key=lambda d: d["metadata"]["name"])
    return hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()


# --- one file -----------------------------------------------------------------------------


def parse_text(text: str, file: str) -> tuple[list[LoadedPolicy], list[PolicyError]]:
    """Every document of `text` validated; errors sorted by position. Duplicate names
    within the text are errors too. The caller decides what a file with errors means."""
    try:
        fast = _parse_fast(text, file)
    except RecursionError:  # deep flow nesting: the full reader reports it with a position
        fast = None
    if fast is not None:
        return fast, []
    policies: list[LoadedPolicy] = []
    errors: list[PolicyError] = []
    yaml = new_yaml()
    starts: list[Pos] | None = None
    try:
        for index, doc in enumerate(yaml.load_all(text)):
            if doc is None:
                continue  # empty document (e.g. a trailing '---')
            if not isinstance(doc, CommentedMap):
                starts = starts if starts is not None else document_starts(text)
                line, col = starts[index] if index < len(starts) else (1, 1)
                errors.append(
                    PolicyError(
                        file,
                        line,
                        col,
                        f"a policy document must be a mapping (apiVersion, kind, metadata, spec), got {_kind_of(doc)}",
                    )
                )
                continue
            data, pos = to_plain(doc, (doc.lc.line + 1, doc.lc.col + 1))
            try:
                policy = Policy.model_validate(data)
            except ValidationError as exc:
                errors.extend(_validation_errors(exc, file, pos))
                continue
            line, col = pos.value(("metadata", "name"))
            policies.append(LoadedPolicy(policy, file, line, col))
    except MarkedYAMLError as exc:
        errors.append(_yaml_error(exc, file))
    except YAMLError as exc:  # e.g. a control character (ReaderError: an offset, no mark)
        at = getattr(exc, "position", None)
        line, col = (
            (1, 1) if not isinstance(at, int) else (text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1)
        )
        errors.append(PolicyError(file, line, col, "YAML error: " + " ".join(str(exc).split())))
    except TooBig as exc:
        errors.append(PolicyError(file, *exc.where, f"{exc}; write the policy out plainly"))
    except TypeError:  # ruamel cannot hash a key that is itself a mapping: `? [{a: 1}]`
        line, col = _complex_key(text)
        errors.append(
            PolicyError(
                file,
                line,
                col,
                "a mapping key must be a plain word or number (YAML complex keys `? ...` are not allowed)",
            )
        )
    except RecursionError:  # the YAML reader itself recurses per level of flow nesting
        errors.append(
            PolicyError(
                file, 1, 1, "nested too deeply to read (a policy needs ~6 levels); write the policy out plainly"
            )
        )
    seen: dict[str, LoadedPolicy] = {}
    for lp in policies:
        first = seen.setdefault(lp.policy.name, lp)
        if first is not lp:
            errors.append(
                PolicyError(
                    file,
                    lp.line,
                    lp.col,
                    f"duplicate policy name {lp.policy.name!r} "
                    f"(first defined at {first.file}:{first.line}:{first.col})",
                )
            )
    errors.sort(key=PolicyError.sort_key)
    return policies, errors


def _complex_key(text: str) -> Pos:
    """Where the first mapping key that is not a scalar starts (best effort: else 1:1)."""
    from ruamel.yaml.nodes import MappingNode, ScalarNode

    try:
        todo = list(new_yaml().compose_all(text))
        while todo:
            node = todo.pop(0)
            if isinstance(node, MappingNode):
                for key, value in node.value:
                    if not isinstance(key, ScalarNode):
                        return (key.start_mark.line + 1, key.start_mark.column + 1)
                    todo.append(value)
            elif node is not None and isinstance(node.value, list):
                todo.extend(node.value)
    except Exception:  # noqa: BLE001 - positions only
        pass
    return (1, 1)


def _parse_fast(text: str, file: str) -> list[LoadedPolicy] | None:
    """The policies of a text that reads and validates cleanly through the C parser, or
    None: then ruamel reads it again, for the exact positions and words of every error."""
    docs = read_documents(text)
    if docs is None:
        return None
    policies: list[LoadedPolicy] = []
    for doc in docs:
        if doc is None:
            continue
        data, pos = doc
        try:
            policy = Policy.model_validate(data)
        except ValidationError:
            return None
        line, col = pos.value(("metadata", "name"))
        policies.append(LoadedPolicy(policy, file, line, col))
    if len({lp.policy.name for lp in policies}) != len(policies):
        return None  # duplicate names: reported by the full reader
    return policies


ParseCache = dict[tuple[str, str], FileResult]  # (file, text) -> its result


def load_file(path: str | os.PathLike[str], cache: ParseCache | None = None) -> FileResult:
    """One file on its own (no cross-file checks). Any error -> no policies. With `cache`,
    a file whose text did not change since the last call is not parsed again (a hot
    reload then only pays for the file that was edited)."""
    file = os.fspath(path)
    text_or_error = _read(file)
    if isinstance(text_or_error, PolicyError):
        return FileResult(file, errors=(text_or_error,))
    if cache is not None and (file, text_or_error) in cache:
        return cache[(file, text_or_error)]
    policies, errors = parse_text(text_or_error, file)
    result = FileResult(file, errors=tuple(errors)) if errors else FileResult(file, policies=tuple(policies))
    if cache is not None:
        for key in [k for k in cache if k[0] == file]:
            del cache[key]  # one version per file
        cache[(file, text_or_error)] = result
    return result


def _read(file: str) -> str | PolicyError:
    try:
        with open(file, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return PolicyError(file, None, None, f"cannot read: {exc.strerror or exc}")
    if len(data) > MAX_FILE_BYTES:
        return PolicyError(file, None, None, f"file larger than {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return PolicyError(file, line, col, "not valid UTF-8")


# --- directories and sets -----------------------------------------------------------------


def is_policy_file_name(name: str) -> bool:
    """*.yaml / *.yml, not hidden, not an editor or package-manager leftover."""
    if name.startswith((".", "#")) or name.endswith(("~", "#")):
        return False
    return name.endswith(POLICY_SUFFIXES)


def policy_files(directory: str | os.PathLike[str]) -> list[str]:
    """The policy files directly in `directory`, sorted by name (byte order)."""
    d = os.fspath(directory)
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        raise EnforcerError(f"policy directory {d}: no such directory") from None
    except NotADirectoryError:
        raise EnforcerError(f"policy directory {d}: not a directory") from None
    except OSError as exc:
        raise EnforcerError(f"policy directory {d}: {exc.strerror or exc}") from None
    out = []
    for name in sorted(names):
        full = os.path.join(d, name)
        # follow symlinks (config management links files in); a broken link is still
        # listed so that it is reported rather than silently ignored
        if is_policy_file_name(name) and (os.path.isfile(full) or not os.path.exists(full)):
            out.append(full)
    return out


def load_directory(
    directory: str | os.PathLike[str],
    previous: PolicySet | None = None,
    cache: ParseCache | None = None,
) -> PolicySet:
    """All policy files of `directory` (non-recursive). Raises EnforcerError if the
    directory itself cannot be listed (the caller decides whether that is fatal)."""
    return load_files(policy_files(directory), previous=previous, cache=cache)


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files as given (any extension), directories expanded to their policy files."""
    out: list[str] = []
    for p in paths:
        s = os.fspath(p)
        out.extend(policy_files(s) if os.path.isdir(s) else [s])
    return out


def load_files(files: Iterable[str], previous: PolicySet | None = None, cache: ParseCache | None = None) -> PolicySet:
    """Load `files` in the given order; names must be unique across them (later loses)."""
    old_by_file: dict[str, tuple[LoadedPolicy, ...]] = {}
    if previous is not None:
        for fr in previous.files:
            if fr.policies:
                old_by_file[fr.file] = fr.policies
    taken: dict[str, LoadedPolicy] = {}
    entries: list[LoadedPolicy] = []
    results: list[FileResult] = []
    for file in files:
        result = load_file(file, cache)
        errors = list(result.errors)
        chosen: tuple[LoadedPolicy, ...] = ()
        kept = False
        if result.ok:
            dups = _duplicates(result.policies, taken)
            errors.extend(dups)
            if not dups:
                chosen = result.policies
        if errors and file in old_by_file and not _duplicates(old_by_file[file], taken):
            chosen, kept = old_by_file[file], True
        for lp in chosen:
            taken[lp.policy.name] = lp
        entries.extend(chosen)
        errors.sort(key=PolicyError.sort_key)
        results.append(FileResult(file, chosen, tuple(errors), kept))
    return PolicySet(tuple(entries), tuple(results))


def load_paths(paths: Iterable[str | os.PathLike[str]], previous: PolicySet | None = None) -> PolicySet:
    return load_files(expand_paths(paths), previous=previous)


def _duplicates(policies: Iterable[LoadedPolicy], taken: Mapping[str, LoadedPolicy]) -> list[PolicyError]:
    out = []
    for lp in policies:
        first = taken.get(lp.policy.name)
        if first is not None:
            out.append(
                PolicyError(
                    lp.file,
                    lp.line,
                    lp.col,
                    f"duplicate policy name {lp.policy.name!r} "
                    f"(already defined at {first.file}:{first.line}:{first.col}); "
                    "this file is not loaded",
                )
            )
    return out


# --- error translation --------------------------------------------------------------------


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _yaml_error(exc: MarkedYAMLError, file: str) -> PolicyError:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = " ".join((exc.problem or "invalid YAML").split())  # one line
    if isinstance(exc, DuplicateKeyError):
        m = re.search(r'duplicate key "(.*?)"', problem)
        key = m.group(1) if m else "?"
        first = f" (mapping starts at line {exc.context_mark.line + 1})" if exc.context_mark else ""
        return PolicyError(file, line, col, f"duplicate key {key!r}{first}")
    msg = f"YAML syntax error: {problem}"
    if exc.context and exc.context_mark and exc.context_mark is not mark:
        msg += (
            f" ({' '.join(exc.context.split())} at line {exc.context_mark.line + 1}, "
            f"column {exc.context_mark.column + 1})"
        )
    return PolicyError(file, line, col, msg)


def _where(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "document"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class validating the mapping at `loc` (for 'allowed keys' hints)."""
    cls: type[BaseModel] | None = Policy
    for part in loc:
        if cls is None:
            return None
        if isinstance(part, int):
            continue
        fields = {(f.alias or n): f for n, f in cls.model_fields.items()}
        f = fields.get(part)
        cls = _find_model(f.annotation) if f else None
    return cls


def _find_model(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in get_args(tp) if get_origin(tp) is not None or get_args(tp) else ():
        found = _find_model(arg)
        if found is not None:
            return found
    return None


_TYPE_MESSAGES = {
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "model_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "string_type": "expected a string",
}


def _is_origin_outside_exec(loc: Loc) -> bool:
    """spec.<file|device|network|socket>[i].origin: a mistake worth its own words."""
    return (
        len(loc) == 4
        and loc[0] == "spec"
        and loc[-1] == "origin"
        and loc[1] in ("file", "device", "network", "socket")
        and isinstance(loc[2], int)
    )


def _validation_errors(exc: ValidationError, file: str, pos: Positions) -> list[PolicyError]:
    out = []
    errors = exc.errors()
    failed_locs = [tuple(e["loc"]) for e in errors]
    for err in errors:
        loc: Loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "too_short":
            # pydantic also reports "too short" for a list whose items all failed: noise
            if any(len(f) > len(loc) and f[: len(loc)] == loc for f in failed_locs):
                continue
            line, col = pos.value(loc)
            out.append(PolicyError(file, line, col, f"{_where(loc)}: must not be empty"))
            continue
        if loc and loc[-1] == "[key]":  # a dict key failed (e.g. a label key that is a number)
            loc = loc[:-1]
            line, col = pos.key(loc)
            out.append(PolicyError(file, line, col, f"{_where(loc)}: key must be a string"))
            continue
        if kind == "extra_forbidden" and _is_origin_outside_exec(loc):
            line, col = pos.key(loc)
            out.append(
                PolicyError(
                    file,
                    line,
                    col,
                    f"{_where(loc[:-1])}: 'origin' is for exec rules only "
                    "(origin: image says where an executable came from)",
                )
            )
            continue
        if kind == "extra_forbidden":
            line, col = pos.key(loc)
            model = _model_at(loc[:-1])
            allowed = ""
            if model is not None:
                names = [f.alias or n for n, f in model.model_fields.items()]
                close = difflib.get_close_matches(str(loc[-1]), names, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                allowed = f" ({hint}allowed: {', '.join(names)})"
            out.append(PolicyError(file, line, col, f"{_where(loc[:-1])}: unknown key {loc[-1]!r}{allowed}"))
            continue
        if kind == "missing":
            line, col = pos.value(loc[:-1])
            out.append(PolicyError(file, line, col, f"{_where(loc[:-1])}: missing required key {loc[-1]!r}"))
            continue
        line, col = pos.value(loc)
        msg = _TYPE_MESSAGES.get(kind, err["msg"])
        if kind in ("literal_error", "enum"):
            msg = f"{msg}, got {err['input']!r}"
        elif kind in _TYPE_MESSAGES:
            msg = f"{msg}, got {_kind_of(err['input'])}"
        out.append(PolicyError(file, line, col, f"{_where(loc)}: {msg}"))
    return out
