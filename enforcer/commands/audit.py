"""`enforcer audit`: find denials in the audit log (rotated files included)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from enforcer.audit.reader import DEFAULT_LOG
from enforcer.errors import EnforcerError
from enforcer.status.server import DEFAULT_SOCKET


def daemon_log(socket_path: Path) -> Path:
    """The log the running daemon writes (it says in its status), else the default path."""
    from enforcer.status.client import fetch_status

    try:
        log = fetch_status(socket_path, timeout=3.0).audit.log
    except EnforcerError:
        return DEFAULT_LOG  # no daemon (or not ours to ask): the installed default
    if log == "-":
        if DEFAULT_LOG.exists():
            return DEFAULT_LOG
        raise EnforcerError(
            "the running daemon writes its audit records to stdout, not a file",
            hint="read them where its stdout goes (journalctl -u enforcer), or pass --log FILE",
        )
    return Path(log)


@click.command(name="audit")
@click.option(
    "--log",
    "log_path",
    type=click.Path(path_type=Path, allow_dash=True),
    default=None,
    help="Audit log to read (its rotated FILE.N[.gz] too); - reads stdin. Default: the file "
    f"the running daemon writes (asked over --socket), else {DEFAULT_LOG}.",
)
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_SOCKET,
    show_default=True,
    help="Status socket of the running daemon (to find its audit log).",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new records as they are written (Ctrl-C stops).")
@click.option("--container", metavar="NAME", default=None, help="Only this container (name glob, or id prefix).")
@click.option("--policy", metavar="NAME", default=None, help="Only records of this policy (glob).")
@click.option(
    "--since",
    metavar="DURATION",
    default=None,
    help="Only records newer than this: 30s, 10m, 1h30m, 2d, or an ISO 8601 time.",
)
@click.option("--json", "as_json", is_flag=True, help="Print matching records as JSON lines (for jq, log shippers).")
def command(
    log_path: Path | None,
    socket_path: Path,
    follow: bool,
    container: str | None,
    policy: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """Show audit records: a table on a terminal, one record per line when piped (no field
    wrapped or cut, so grep finds what the table shows), JSON lines with --json.

    \b
    Examples:
      enforcer audit --container web --since 1h
      enforcer audit --policy protect-credentials --json | jq .target.path
      enforcer audit --follow
    """
    from rich.console import Console

    from enforcer.audit import render
    from enforcer.audit.reader import Filter, Reader, parse_since

    if log_path is None:
        log_path = daemon_log(socket_path)
    keep = Filter(container=container, policy=policy, since=parse_since(since) if since else None)
    reader = Reader()
    console = Console(highlight=False)
    if follow:
        if str(log_path) == "-":
            raise click.UsageError("--follow needs a file, not stdin")
        for r in filter(keep, reader.follow(log_path, stop=lambda: False)):
            if as_json:
                click.echo(json.dumps(r, separators=(",", ":")))
            else:
                render.line(r, console)
        return
    records = [r for r in reader.history(log_path) if keep(r)]
    if as_json:
        for r in records:
            click.echo(json.dumps(r, separators=(",", ":")))
    elif records and console.is_terminal:
        console.print(render.table(records))
    elif records:  # a pipe or a file: whole records, one per line
        for r in records:
            render.line(r, console)
        click.echo(render.summary(records), err=True)
    else:
        click.echo("no matching audit records", err=True)
    if reader.skipped:
        click.echo(f"enforcer: skipped {reader.skipped} line(s) that are not audit records", err=True)
