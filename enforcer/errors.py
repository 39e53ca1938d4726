"""Errors meant for the operator: one line saying what failed and what to do."""

from __future__ import annotations

from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


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


def undo_quietly(undo: Callable[..., object], *args: object, what: str, **context: object) -> None:
    """Undo part of a change that failed. A failure of the undo is logged (`what`, with
    `context`), never raised: the first failure is the one the caller raises."""
    try:
        undo(*args)
    except Exception as err:  # noqa: BLE001 - see above
        log.warning(what, error=str(err) or type(err).__name__, **context)
