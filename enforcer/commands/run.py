"""`enforcer run`: the daemon, in the foreground."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from enforcer.audit.sink import RotatingFile
from enforcer.errors import EnforcerError
from enforcer.logconfig import configure_logging
from enforcer.status.server import DEFAULT_SOCKET


def _default_policies() -> Path:
    installed = Path("/etc/enforcer/policies")
    if installed.is_dir():
        return installed
    checkout = Path(__file__).resolve().parents[2] / "policies"
    return checkout if checkout.is_dir() else installed


def install_signal_handlers(stop: threading.Event, sink: RotatingFile | None) -> None:
    """SIGINT/SIGTERM stop; SIGHUP reopens the audit log file (a no-op on stdout)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: sink.request_reopen() if sink else None)


@click.command(name="run")
@click.option(
    "--policies",
    "policies",
    type=click.Path(path_type=Path),
    default=None,
    help="Policy directory (default: /etc/enforcer/policies, else the checkout's policies/).",
)
@click.option(
    "--audit-log",
    type=click.Path(path_type=Path, allow_dash=True),
    default=None,
    help="Append audit records (JSON lines) to FILE; default (or -) stdout.",
)
@click.option(
    "--audit-max-bytes",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Rotate the audit log before it grows past this size; 0 = never (logrotate + SIGHUP).",
)
@click.option(
    "--audit-backups",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Rotated audit logs to keep (FILE.1 ... FILE.N).",
)
@click.option(
    "--audit-format",
    type=click.Choice(["json", "ocsf"]),
    default="json",
    show_default=True,
    help="json: the enforcer's audit record (docs/audit-records.md); ocsf: OCSF 1.1.0 events "
    "(File System / Process / Network Activity) for SIEMs such as Security Lake.",
)
@click.option(
    "--audit-syslog",
    metavar="TARGET",
    default=None,
    help="Also send every record as an RFC 5424 syslog message to TARGET: a unix socket "
    "path (/dev/log), udp://HOST:PORT or tcp://HOST:PORT.",
)
@click.option(
    "--pin-root",
    type=click.Path(path_type=Path),
    default=None,
    help="bpffs directory for pinned maps and links (default /sys/fs/bpf/enforcer).",
)
@click.option("--docker-host", default=None, help="Docker API URL (default: DOCKER_HOST or the local socket).")
@click.option(
    "--allow-missing-lsm",
    is_flag=True,
    default=False,
    help="Where the kernel refuses BPF-LSM programs, run anyway with device, network and "
    "socket rules only: file and exec rules are then NOT enforced (said in the log, "
    "`enforcer status` and `enforcer doctor`). Without it the daemon refuses to start "
    "when a policy has file or exec rules it cannot enforce.",
)
@click.option(
    "--status-socket",
    default=str(DEFAULT_SOCKET),
    show_default=True,
    help="Unix socket `enforcer status` talks to (root only); '' disables it.",
)
@click.option(
    "--runtime-socket",
    default="/run/enforcer/runtime.sock",
    show_default=True,
    help="Where enforcer-runc (install-runtime) registers new containers before their "
    "entrypoint runs (root only); '' disables it.",
)
@click.option(
    "--runtime-socket-uid",
    "runtime_socket_uids",
    type=click.IntRange(min=0),
    multiple=True,
    help="A uid besides root allowed to register containers on the runtime socket (checked "
    "with SO_PEERCRED; repeat for several). Only for a runtime wrapper not run as root.",
)
@click.option(
    "--metrics-addr",
    metavar="[HOST:]PORT",
    default=None,
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (off by default; HOST defaults to 127.0.0.1).",
)
def command(
    policies: Path | None,
    audit_log: Path | None,
    audit_max_bytes: int,
    audit_backups: int,
    audit_format: str,
    audit_syslog: str | None,
    pin_root: Path | None,
    docker_host: str | None,
    status_socket: str,
    allow_missing_lsm: bool,
    metrics_addr: str | None,
    runtime_socket: str,
    runtime_socket_uids: tuple[int, ...] = (),
) -> None:
    """Run the enforcer in the foreground: audit records to FILE or stdout, logs to stderr.

    SIGHUP reopens the audit log (for logrotate); SIGINT/SIGTERM stop the daemon while the
    pinned programs keep enforcing (`enforcer unload` removes them).
    """
    from enforcer.audit.records import AuditWriter
    from enforcer.daemon import Daemon, DaemonConfig
    from enforcer.kernel.loader import DEFAULT_PIN_ROOT
    from enforcer.status.metrics import parse_addr
    from enforcer.status.services import OperatorServices

    configure_logging()
    from enforcer.audit.syslog import SyslogSink, parse_target

    forward = [SyslogSink(parse_target(audit_syslog))] if audit_syslog else []
    fmt = None
    if audit_format == "ocsf":
        import functools
        import socket

        from enforcer.audit.ocsf import from_record

        fmt = functools.partial(from_record, hostname=socket.gethostname())
    sink = None
    if audit_log is not None and str(audit_log) != "-":
        try:
            # absolute: `enforcer audit` finds it through the status socket from any directory
            sink = RotatingFile(audit_log.absolute(), max_bytes=audit_max_bytes, backups=audit_backups)
        except OSError as exc:
            raise EnforcerError(
                f"cannot open the audit log {audit_log}: {exc.strerror}",
                hint="check the directory exists and is writable by root",
            ) from exc
    stop = threading.Event()
    install_signal_handlers(stop, sink)
    config = DaemonConfig(
        policies or _default_policies(),
        pin_root=pin_root or DEFAULT_PIN_ROOT,
        allow_missing_lsm=allow_missing_lsm,
        docker_host=docker_host,
        runtime_socket=Path(runtime_socket) if runtime_socket else None,
        runtime_socket_uids=tuple(runtime_socket_uids),
    )
    daemon = Daemon(config, AuditWriter(sink or sys.stdout, fmt=fmt, forward=forward))
    services = OperatorServices(
        daemon.snapshot,
        daemon.kernel_stats,
        status_socket=Path(status_socket) if status_socket else None,
        metrics_addr=parse_addr(metrics_addr) if metrics_addr else None,
        streams={"learn": daemon.learn},  # enforcer learn
    )
    try:
        with services:
            daemon.run(stop)
    finally:
        if sink:
            sink.close()
        for f in forward:
            f.close()
