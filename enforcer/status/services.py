"""The daemon's operator-facing services, started around Daemon.run(): the status socket,
the optional metrics endpoint and the watch on dropped audit records."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from enforcer.audit.drops import DropWatch
from enforcer.status.metrics import MetricsServer
from enforcer.status.model import StatusDocument
from enforcer.status.server import StatusServer, Streams


class OperatorServices:
    def __init__(
        self,
        snapshot: Callable[[], StatusDocument],
        kernel_stats: Callable[[], Mapping[str, int]],
        status_socket: Path | None,
        metrics_addr: tuple[str, int] | None,
        drop_interval: float = 5.0,
        streams: Streams | None = None,
    ) -> None:
        self.status = StatusServer(status_socket, snapshot, streams) if status_socket else None
        self.metrics = MetricsServer(metrics_addr, snapshot) if metrics_addr else None
        self._drops = DropWatch(kernel_stats, drop_interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.status:
            self.status.start()
        try:
            if self.metrics:
                self.metrics.start()
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._drops.run, args=(self._stop,), name="drops", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if self.metrics:
            self.metrics.stop()
        if self.status:
            self.status.stop()

    def __enter__(self) -> OperatorServices:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
