"""`enforcer doctor [--json] [--docker-host URL]`: can this host enforce, and how to fix it."""

from __future__ import annotations

import json
import logging
import sys

import click
import structlog

from enforcer.doctor import (
    cgroup_enforcement_possible,
    exit_code,
    file_enforcement_possible,
    run_checks,
    summary,
)


def _quiet_logs() -> None:
    # Our own logs go to stderr, warnings and up, so stdout stays the report (or pure JSON).
    if not structlog.is_configured():
        structlog.configure(
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        )


@click.command(name="doctor")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"checks": [{name, status, finding, fix}], "file_enforcement": bool, "cgroup_enforcement": bool}.',
)
@click.option(
    "--docker-host",
    metavar="URL",
    default=None,
    help="Docker API to try (default: $DOCKER_HOST, else unix:///var/run/docker.sock).",
)
def command(as_json: bool, docker_host: str | None) -> None:
    """Say whether this host can enforce policies, and how to fix each gap.

    Checks, in order: kernel version, BTF, BPF objects built, bpf in the active LSM list,
    the LSM programs actually load (loaded, never attached), the cgroup programs (device,
    network, socket rules) load, bpffs, cgroup2, Docker.
    Each prints `OK|WARN|FAIL  check: finding` and, when not OK, `fix: ...`.
    Exit status 1 when something FAILs (file/exec enforcement impossible here, or Docker
    unreachable so no container can be tracked), else 0. Run it as root.
    """
    _quiet_logs()
    checks = run_checks(docker_host)
    if as_json:
        doc = {
            "checks": [c.as_dict() for c in checks],
            "file_enforcement": file_enforcement_possible(checks),
            "cgroup_enforcement": cgroup_enforcement_possible(checks),
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        for c in checks:
            for line in c.lines():
                click.echo(line)
        click.echo(summary(checks))
    sys.exit(exit_code(checks))
