"""Errors meant for the operator: one line saying what failed and what to do."""

from __future__ import annotations


class EnforcerError(Exception):
    """An expected failure (no Docker, no permission, bad policy...).

    The CLI prints `str(err)` on one line and exits 1, never a traceback.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
