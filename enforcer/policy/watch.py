"""Watch the policy directory and call back once an edit has settled.

Editors save in several steps (write a temp file then rename it over; truncate then write,
maybe in chunks). Reading between two steps could see half a file that still parses. So a
change is only acted on after the directory has been quiet for `quiet` seconds; a burst of
writes gives one reload of the final content. A half-written file that does not validate
changes nothing anyway (the loader keeps its previous version).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver  # Observer is the platform's subclass of it

log = structlog.get_logger(__name__)


class PolicyWatcher(FileSystemEventHandler):
    def __init__(self, directory: Path, on_settled: Callable[[], None], quiet: float = 0.2) -> None:
        self._directory = directory
        self._on_settled = on_settled
        self._quiet = quiet
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        observer = Observer()
        observer.schedule(self, str(self._directory), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer
        log.info("watching policies", directory=str(self._directory))

    def stop(self) -> None:
        with self._lock:
            if self._timer:
                self._timer.cancel()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads (ours included) change nothing
        with self._lock:
            if self._timer:
                self._timer.cancel()
            self._timer = threading.Timer(self._quiet, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        try:
            self._on_settled()
        except Exception:
            log.exception("policy reload failed")
