"""`enforcer` console script: a click group whose commands live in enforcer.commands.*.

Each command is its own module so that one change touches one file. Expected failures
(EnforcerError) print one line and exit 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from enforcer.errors import EnforcerError

# command name -> module under enforcer.commands exposing `command` (a click.Command), or
# "module:attribute" when one module holds a pair of commands
_COMMANDS: dict[str, str] = {
    "run": "run",
    "check": "check",
    "doctor": "doctor",
    "status": "status",
    "audit": "audit",
    "unload": "unload",
    "schema": "schema",
    "replay": "replay",
    "learn": "learn",
    "install-service": "install_service",
    "install-runtime": "install_runtime",
    "uninstall-runtime": "install_runtime:uninstall_command",
}


class _LazyGroup(click.Group):
    """Imports a command's module only when that command runs (keeps `check` fast)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in _COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        spec = _COMMANDS.get(name)
        if spec is None:
            return None
        module, _, attr = spec.partition(":")
        try:
            mod = importlib.import_module(f"enforcer.commands.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"enforcer.commands.{module}":
                return None  # not built yet
            raise
        cmd: click.Command = getattr(mod, attr or "command")
        return cmd


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Enforce per-container security policies on a Docker host with BPF."""


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except EnforcerError as err:
        click.echo(f"enforcer: {err}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("enforcer: aborted", err=True)
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code if err.exit_code != 2 else 1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)
