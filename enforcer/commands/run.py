"""`enforcer run`: the daemon, in the foreground."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from enforcer.logconfig import configure_logging


def _default_policies() -> Path:
    installed = Path("/etc/enforcer/policies")
    if installed.is_dir():
        return installed
    checkout = Path(__file__).resolve().parents[2] / "policies"
    return checkout if checkout.is_dir() else installed


@click.command(name="run")
@click.option("--policies", "policies", type=click.Path(path_type=Path), default=None,
              help="Policy directory (default: /etc/enforcer/policies, else the checkout's policies/).")
@click.option("--audit-log", type=click.Path(path_type=Path), default=None,
              help="Append audit records (JSON lines) to FILE; default stdout.")
@click.option("--pin-root", type=click.Path(path_type=Path), default=None,
              help="bpffs directory for pinned maps and links (default /sys/fs/bpf/enforcer).")
@click.option("--docker-host", default=None, help="Docker API URL (default: DOCKER_HOST or the local socket).")
def command(policies: Path | None, audit_log: Path | None, pin_root: Path | None,
            docker_host: str | None) -> None:  # fmt: skip
    """Run the enforcer in the foreground: audit records to FILE or stdout, logs to stderr."""
    from enforcer.audit.records import AuditWriter
    from enforcer.daemon import Daemon, DaemonConfig
    from enforcer.kernel.loader import DEFAULT_PIN_ROOT

    configure_logging()
    out = audit_log.open("a", encoding="utf-8") if audit_log else sys.stdout
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    config = DaemonConfig(policies or _default_policies(), pin_root=pin_root or DEFAULT_PIN_ROOT,
                          docker_host=docker_host)  # fmt: skip
    daemon = Daemon(config, AuditWriter(out))
    daemon.run(stop)
