"""PolicyError: one problem in one policy file, rendered `FILE:LINE:COL: message`."""

from __future__ import annotations

from enforcer.errors import EnforcerError


class PolicyError(EnforcerError):
    """`line`/`col` are 1-based and point at the offending key or value.

    They are None only for problems with the file as a whole (unreadable, not UTF-8 at an
    unknown position); those render as `FILE: message`.
    """

    def __init__(self, file: str, line: int | None, col: int | None, message: str) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.col = col

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}:{self.col}: {self.message}"

    def __repr__(self) -> str:
        return f"PolicyError({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PolicyError) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line or 0, self.col or 0, self.message)

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "col": self.col, "message": self.message}
