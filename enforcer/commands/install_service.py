"""`enforcer install-service`: install the systemd unit (and seed /etc/enforcer)."""

from __future__ import annotations

from pathlib import Path

import click

from enforcer.service import ETC, UNIT_DIR


@click.command(name="install-service")
@click.option("--unit-dir", type=click.Path(path_type=Path), default=UNIT_DIR, show_default=True)
@click.option(
    "--etc",
    "etc",
    type=click.Path(path_type=Path),
    default=ETC,
    show_default=True,
    help="Configuration directory (policies/ is seeded with the shipped policies if missing).",
)
@click.option("--print", "print_only", is_flag=True, help="Only print the unit; change nothing.")
@click.option("--start", is_flag=True, help="Also `systemctl enable --now enforcer`.")
@click.option("--no-reload", is_flag=True, help="Do not run `systemctl daemon-reload`.")
def command(unit_dir: Path, etc: Path, print_only: bool, start: bool, no_reload: bool) -> None:
    """Install enforcer.service (starts before dockerd, restarts on failure, logs to the
    journal, audit records in /var/log/enforcer/audit.jsonl with rotation)."""
    from enforcer.service import UNIT_NAME, install, render_unit, systemctl

    if print_only:
        click.echo(render_unit(), nl=False)
        return
    result = install(unit_dir=unit_dir, etc=etc)
    for path in result.written:
        click.echo(f"wrote {path}")
    for path in result.kept:
        click.echo(f"kept {path} (exists; not overwritten)")
    if not no_reload:
        systemctl("daemon-reload")
    if start:
        systemctl("enable", "--now", UNIT_NAME)
        click.echo("started: systemctl status enforcer; enforcer status")
    else:
        click.echo("next: systemctl enable --now enforcer")
