"""`enforcer learn --container NAME`: record a container's operations through the running
daemon, then print a policy that allows them (mode: audit; nothing is enforced by learn)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import IO

import click

from enforcer.errors import EnforcerError
from enforcer.learn.client import Collected, learn, parse_duration
from enforcer.learn.generalise import Learned, generalise
from enforcer.policy.merge import POSTURE_CLASSES
from enforcer.status.server import DEFAULT_SOCKET

PLAIN_PROGRESS_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


def progress_line(got: Collected, left: float | None) -> str:
    seen = ", ".join(f"{c} {got.per_class[c]}" for c in POSTURE_CLASSES if got.per_class[c])
    when = "Ctrl-C to stop" if left is None else f"{left:.0f} s left"
    extra = f"; {got.denied} denied" if got.denied else ""
    extra += f"; {got.lost} LOST" if got.lost else ""
    return f"learning {got.container.name}: {seen or 'nothing yet'}{extra} ({when})"


def summary_line(got: Collected) -> str:
    total = sum(got.operations.values())
    return (
        f"learned {got.container.name}: {total} operations in {got.seconds:.0f} s, "
        f"{got.denied} denied by the policies in force, {got.lost} lost ({got.reason})"
    )


def _refuse_existing(path: str | None, what: str) -> None:
    if path is not None and os.path.lexists(path):
        raise EnforcerError(f"{what} {path} exists", hint="remove it or choose another name")


def _create(path: str, what: str) -> IO[str]:
    try:
        return open(path, "x", encoding="utf-8")  # never overwrite a policy or a recording
    except FileExistsError:
        raise EnforcerError(f"{what} {path} exists", hint="remove it or choose another name") from None
    except OSError as exc:
        raise EnforcerError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


def selector_labels(got: Collected, keys: tuple[str, ...]) -> dict[str, str] | None:
    if not keys:
        return None
    have = got.container.labels or {}
    missing = [k for k in keys if k not in have]
    if missing:
        raise EnforcerError(
            f"container {got.container.name} has no label {missing[0]!r}",
            hint=f"its labels: {', '.join(sorted(have)) or 'none'}",
        )
    return {k: have[k] for k in keys}


@click.command(name="learn")
@click.option("--container", required=True, help="The running container to learn (its name).")
@click.option("--duration", default=None, help="How long to record (30s, 10m, 1h); default until Ctrl-C.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the policy here (a new file) instead of stdout.",
)
@click.option(
    "--record",
    type=click.Path(dir_okay=False),
    default=None,
    help="Keep the raw observations as JSON lines (a new file, for enforcer replay).",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="KEY",
    help="Select by this label of the container (its value) instead of the image; repeatable.",
)
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(),
    default=str(DEFAULT_SOCKET),
    show_default=True,
    help="The daemon's status socket.",
)
def command(
    container: str,
    duration: str | None,
    output: str | None,
    record: str | None,
    labels: tuple[str, ...],
    socket_path: str,
) -> None:
    """Record every operation of a running container through the daemon (execs, file opens
    with their access, connects/sends/binds, devices, sockets), for --duration or until
    Ctrl-C, then write a policy that allows what was seen and denies the rest of each class
    that had observations, in mode: audit. A progress line goes to stderr.

    Nothing is enforced by learn itself: while it records, the container keeps every denial
    of its policies and only gains audit records (sent to learn, not to the audit log).
    """
    seconds = parse_duration(duration) if duration is not None else None
    _refuse_existing(record, "recording")
    _refuse_existing(output, "policy file")
    stop = {"requested": False}
    files: list[IO[str]] = []

    def on_sigint(_sig: int, _frame: FrameType | None) -> None:
        if stop["requested"]:
            raise KeyboardInterrupt  # a second Ctrl-C: give up at once
        stop["requested"] = True

    def on_start(got: Collected) -> IO[str] | None:
        selector_labels(got, labels)  # refused before anything is written
        if got.not_learned:
            click.echo(
                f"not learned (the kernel does not judge them by posture yet): {', '.join(got.not_learned)}", err=True
            )
        if record is None:
            return None
        files.append(_create(record, "recording"))
        return files[-1]

    tty = sys.stderr.isatty()
    last = {"at": 0.0}

    def progress(got: Collected, left: float | None) -> None:
        if tty:
            click.echo("\r\033[K" + progress_line(got, left), err=True, nl=False)
        elif time.monotonic() - last["at"] >= PLAIN_PROGRESS_EVERY:
            last["at"] = time.monotonic()
            click.echo(progress_line(got, left), err=True)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        got = learn(Path(socket_path), container, seconds, on_start, progress, lambda: stop["requested"])
    finally:
        signal.signal(signal.SIGINT, previous)
        for fh in files:
            fh.close()
    if tty:
        click.echo("", err=True)
    click.echo(summary_line(got), err=True)
    if got.lost:
        click.echo(
            f"WARNING: {got.lost} operations were lost before they could be recorded; "
            "the policy may miss them (learn again under less load)",
            err=True,
        )
    text = generalise(
        Learned(
            got.container.name or container,
            got.container.image or "",
            list(got.operations.items()),
            selector_labels(got, labels),
            got.lost,
            got.denied,
            got.seconds,
        )
    )
    if output is None:
        sys.stdout.write(text)
        return
    with _create(output, "policy file") as fh:
        fh.write(text)
    hint = f" --events {record}" if record else " --events RECORDING"
    click.echo(f"policy written to {output} (mode: audit; try it: enforcer replay {output}{hint})", err=True)
