"""`enforcer check PATH...`: validate policy files the way the daemon will load them."""

from __future__ import annotations

import json
import sys

import click

from enforcer.errors import EnforcerError
from enforcer.policy.loader import expand_paths, load_files


@click.command(name="check")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (files, errors, ok).")
def command(paths: tuple[str, ...], as_json: bool) -> None:
    """Validate policy files and directories (*.yaml/*.yml directly inside them).

    Errors go to stderr as FILE:LINE:COL: message (one per line); each good file
    prints "OK FILE (N policies)" on stdout. Names must be unique across all PATHs,
    as in the policy directory. Exit status: 0 if everything is valid, 1 otherwise.
    """
    files: list[str] = []
    try:
        files = expand_paths(paths)
    except EnforcerError as exc:  # e.g. an unreadable directory: report, keep checking
        click.echo(str(exc), err=True)
        sys.exit(1)
    result = load_files(files)
    if as_json:
        doc = {
            "ok": result.ok,
            "files": [
                {
                    "file": f.file,
                    "ok": f.ok,
                    "policies": [p.policy.name for p in f.policies],
                    "errors": [e.as_dict() for e in f.errors],
                }
                for f in result.files
            ],
            "errors": [e.as_dict() for e in result.errors],
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        for f in result.files:
            if f.ok:
                n = len(f.policies)
                click.echo(f"OK {f.file} ({n} {'policy' if n == 1 else 'policies'})")
            for err in f.errors:
                click.echo(str(err), err=True)
    if not files:
        click.echo("no policy files found", err=True)
        sys.exit(1)
    sys.exit(0 if result.ok else 1)
