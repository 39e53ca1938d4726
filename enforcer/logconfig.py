"""structlog set-up: the daemon's own log goes to stderr (audit records go elsewhere)."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_logging() -> None:
    level = getattr(logging, os.environ.get("ENFORCER_LOG_LEVEL", "INFO").upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False) if sys.stderr.isatty() else structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
