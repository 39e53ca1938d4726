"""`enforcer replay POLICY... --events FILE`: what policies would do to recorded operations."""

from __future__ import annotations

import json
import sys
from typing import NoReturn

import click

from enforcer.errors import EnforcerError
from enforcer.learn.recording import read_events
from enforcer.learn.replay import render_text, replay, to_json
from enforcer.policy.loader import expand_paths, load_files

BAD_INPUT = 2  # SPEC: 0 nothing denied, 1 something would be, 2 bad input


def _fail(message: str) -> NoReturn:
    click.echo(f"enforcer: {message}", err=True)
    sys.exit(BAD_INPUT)


@click.command(name="replay")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--events",
    "events_file",
    required=True,
    type=click.Path(),
    help="A learn recording (enforcer learn --record) or an audit log (JSON lines).",
)
@click.option("--container", default=None, help="Only operations of this container (a name glob, or an id prefix).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(paths: tuple[str, ...], events_file: str, container: str | None, as_json: bool) -> None:
    """What the policies in PATHS (files, or directories of *.yaml) would do to recorded
    operations: the denials and audits, folded with counts under the rule and policy that
    would fire, then a summary line. Each operation is judged by the policies selecting its
    container, exactly as the daemon merges them.

    Exit status: 0 when nothing would be denied, 1 when something would, 2 on bad input
    (a policy that does not validate, a file that is not a recording or audit log).
    """
    try:
        files = expand_paths(paths)
    except EnforcerError as exc:
        _fail(str(exc))
    policy_set = load_files(files)
    if not policy_set.ok:
        for err in policy_set.errors:
            click.echo(str(err), err=True)
        _fail(f"{len(policy_set.errors)} policy error(s): nothing replayed (fix them; `enforcer check` shows the same)")
    if not policy_set.entries:
        _fail(f"no policies in {', '.join(paths)}")
    try:
        events = read_events(events_file)
    except EnforcerError as exc:
        _fail(str(exc))
    result = replay(policy_set.policies, events, container)
    if as_json:
        click.echo(json.dumps(to_json(result), indent=2))
    else:
        for line in render_text(result):
            click.echo(line)
    sys.exit(result.exit_code)
