"""`enforcer unload`: remove everything the enforcer attached or pinned."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="unload")
@click.option(
    "--pin-root",
    type=click.Path(path_type=Path),
    default=None,
    help="bpffs directory the daemon pinned to (default /sys/fs/bpf/enforcer).",
)
def command(pin_root: Path | None) -> None:
    """Detach every program and unpin every map the enforcer left (lifts enforcement)."""
    from enforcer.kernel.loader import DEFAULT_PIN_ROOT, unload
    from enforcer.kernel.state import PolicyStore, RuleTableStore, policies_file, state_file

    removed = unload(pin_root or DEFAULT_PIN_ROOT)
    RuleTableStore(state_file(pin_root or DEFAULT_PIN_ROOT)).remove()
    PolicyStore(policies_file(pin_root or DEFAULT_PIN_ROOT)).remove()  # nothing is in force now
    click.echo(f"removed {len(removed)} pinned object(s)" if removed else "nothing was loaded")
