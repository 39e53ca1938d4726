"""fnmatch-style globs for selectors, validated strictly.

Python's fnmatch silently treats a malformed bracket expression as literal text, so a typo
like `web-[0-9` would select nothing without a word. We parse the glob ourselves: `*`, `?`,
`[abc]`, `[a-z]`, `[!abc]` / `[^abc]`; an unclosed, empty or reversed bracket expression is
an error. Matching is case-sensitive (container names and image references are).
"""

from __future__ import annotations

import re
from functools import lru_cache


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i
            negate = j < n and pattern[j] in "!^"
            if negate:
                j += 1
            start = j
            if j < n and pattern[j] == "]":  # a leading ']' is a literal member
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                raise ValueError(f"unclosed '[' in glob {pattern!r}")
            body = pattern[start:j]
            if not body:
                raise ValueError(f"empty bracket expression in glob {pattern!r}")
            out.append("[" + ("^" if negate else "") + _bracket(body, pattern) + "]")
            i = j + 1
        else:
            out.append(re.escape(c))
    return "".join(out)


def _bracket(body: str, pattern: str) -> str:
    parts: list[str] = []
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            lo, hi = body[k], body[k + 2]
            if lo > hi:
                raise ValueError(f"reversed range '{lo}-{hi}' in glob {pattern!r}")
            parts.append(re.escape(lo) + "-" + re.escape(hi))
            k += 3
        else:
            parts.append(re.escape(body[k]))
            k += 1
    return "".join(parts)


def validate_glob(pattern: str) -> str:
    """Return the pattern unchanged if it is a valid glob, else raise ValueError."""
    if not pattern:
        raise ValueError("glob must not be empty")
    if "\x00" in pattern:
        raise ValueError("glob must not contain a NUL byte")
    _translate(pattern)
    return pattern


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(_translate(pattern), re.DOTALL)


def glob_match(pattern: str, text: str) -> bool:
    """Whole-string, case-sensitive glob match ('*' also matches '/' and ':')."""
    return _compiled(pattern).fullmatch(text) is not None


def has_glob(pattern: str) -> bool:
    return any(c in "*?[" for c in pattern)
