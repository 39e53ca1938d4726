"""`enforcer status [--json] [--socket PATH]`: ask the running daemon what it enforces."""

from __future__ import annotations

from pathlib import Path

import click

from enforcer.status.server import DEFAULT_SOCKET


@click.command(name="status")
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_SOCKET,
    show_default=True,
    help="The daemon's status socket (enforcer run --status-socket).",
)
def command(as_json: bool, socket_path: Path) -> None:
    """Show the running daemon: containers with their policies and per-rule counters,
    policy files and their last load result, kernel features in use, what is not enforced
    on this host and why, and audit totals (records, folded, dropped). Needs root."""
    from rich.console import Console

    from enforcer.status.client import fetch_status
    from enforcer.status.render import render

    doc = fetch_status(socket_path)
    if as_json:
        click.echo(doc.model_dump_json(indent=2))
    else:
        render(doc, Console())
