"""Validation of the absolute paths used in file and exec rules.

Paths are compared as strings against the kernel's resolved path, so a policy path must be
spelled exactly one way. Harmless spellings ('.', '//', a trailing '/') are normalised;
'..' is rejected because its meaning depends on symlinks, and glob characters are rejected
because paths are literal (an operator writing `/etc/ssh/ssh_host_*_key` would otherwise get
a rule that silently matches nothing).
"""

from __future__ import annotations

import re

PATH_MAX = 4095  # bytes, without the terminating NUL (PATH_MAX is 4096 on Linux)
NAME_MAX = 255  # bytes per component
GLOB_CHARS = frozenset("*?[")
_GLOB = re.compile(r"[*?\[]")
# Already canonical: no empty, "." or ".." component, no trailing "/".
_CANONICAL = re.compile(r"(?:/(?!\.\.?(?:/|\Z))[^/]+)+\Z")


def normalize_path(value: str) -> str:
    """Return the canonical spelling of an absolute path or raise ValueError saying why."""
    if not value:
        raise ValueError("path must not be empty")
    if "\x00" in value:
        raise ValueError("path must not contain a NUL byte")
    if not value.startswith("/"):
        raise ValueError(f"path must be absolute (start with '/'): {value!r}")
    if _GLOB.search(value):
        raise ValueError(f"paths are literal, globs are not supported: {value!r} (list each file)")
    if len(value.encode("utf-8", "surrogateescape")) <= NAME_MAX and _CANONICAL.match(value):
        return value  # the common spelling: nothing to change, no component can be too long
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"path must not contain '..' components: {value!r}")
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise ValueError(f"path component longer than {NAME_MAX} bytes: {part[:40]!r}...")
    norm = "/" + "/".join(parts)
    if len(norm.encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise ValueError(f"path longer than {PATH_MAX} bytes")
    return norm


def depth(path: str) -> int:
    """Number of components of a normalised path: '/' is 0, '/a/b' is 2."""
    return 0 if path == "/" else path.count("/")


def is_under(path: str, directory: str) -> bool:
    """True if `path` is `directory` itself or anything below it (both normalised)."""
    if directory == "/":
        return True
    return path == directory or path.startswith(directory + "/")
