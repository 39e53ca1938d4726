"""`enforcer install-runtime` / `uninstall-runtime`: close the start race with a runtime shim."""

from __future__ import annotations

from pathlib import Path

import click

from enforcer.runtime.install import DAEMON_JSON
from enforcer.runtime.protocol import DEFAULT_CONFIG, DEFAULT_SOCKET

RELOAD = "reload dockerd to apply: `systemctl reload docker` (or `kill -HUP <dockerd pid>`)"


@click.command(name="install-runtime")
@click.option("--daemon-json", type=click.Path(path_type=Path), default=DAEMON_JSON, show_default=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Where the shim's settings are written.",
)
@click.option("--shim", default=None, help="Path of enforcer-runc (default: the installed one).")
@click.option("--runc", default=None, help="The real runc (default: runc from PATH).")
@click.option(
    "--socket",
    type=click.Path(path_type=Path),
    default=DEFAULT_SOCKET,
    show_default=True,
    help="The daemon's registration socket (enforcer run --runtime-socket).",
)
@click.option(
    "--fail-open",
    is_flag=True,
    help="When the enforcer is down, start containers anyway, unpoliced until it is "
    "back (default: fail closed, the start fails with a message).",
)
def command(
    daemon_json: Path, config_path: Path, shim: str | None, runc: str | None, socket: Path, fail_open: bool
) -> None:
    """Make dockerd start every container through enforcer-runc, which has the enforcer put
    the container under its policy after `runc create` and before its entrypoint runs."""
    from enforcer.runtime.install import install, launcher_path

    result = install(
        daemon_json=daemon_json, config_path=config_path, shim=shim, runc=runc, socket=socket, fail_open=fail_open
    )
    mode = "fail-open" if fail_open else "fail-closed"
    click.echo(
        f"{'updated' if result.changed else 'already set'}: {daemon_json} "
        f"(default-runtime enforcer); {config_path} ({mode}); "
        f"{launcher_path(config_path)} (runtime launcher)"
    )
    if result.changed:
        click.echo(RELOAD)


@click.command(name="uninstall-runtime")
@click.option("--daemon-json", type=click.Path(path_type=Path), default=DAEMON_JSON, show_default=True)
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=DEFAULT_CONFIG, show_default=True)
def uninstall_command(daemon_json: Path, config_path: Path) -> None:
    """Put daemon.json back as it was before install-runtime."""
    from enforcer.runtime.install import uninstall

    result = uninstall(daemon_json=daemon_json, config_path=config_path)
    click.echo(f"{'restored' if result.changed else 'nothing to undo in'} {daemon_json}")
    if result.changed:
        click.echo(RELOAD)
