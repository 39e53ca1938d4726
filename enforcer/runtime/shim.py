"""`enforcer-runc`: the OCI runtime dockerd runs instead of runc (see install-runtime).

Every subcommand goes straight to the real runc (exec, no overhead) except `create`: runc
creates the container (its init waits on the exec fifo, the entrypoint has not run), then
the shim gives the enforcer the container id and init pid and waits until the container's
cgroup points at its policy. Only then does it return, and only then does containerd call
`runc start`. So the entrypoint's first instruction runs under the policy.

If the enforcer does not answer: fail closed by default (the container is deleted and the
start fails with a message saying why and what to do), or fail open when runtime.json says
so. Stdlib only, and nothing from the enforcer package but the protocol: it runs on every
container start.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from enforcer.runtime.protocol import FAIL_OPEN, ShimConfig

# runc global options that take a value (everything else before the subcommand is a flag).
CONFIG_FLAG = "--enforcer-config"
_GLOBAL_WITH_VALUE = {"--root", "--log", "--log-format", "--criu", "--rootless"}
_CREATE_WITH_VALUE = {"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds"}


def split_args(args: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(global options, subcommand, subcommand arguments) of a runc command line."""
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("-"):
            return args[:i], a, args[i + 1 :]
        i += 1 if ("=" in a or a not in _GLOBAL_WITH_VALUE) else 2
    return args, None, []


def option(args: list[str], names: set[str]) -> str | None:
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def container_id(create_args: list[str]) -> str | None:
    """The positional argument of `runc create`: its last non-option word."""
    i, found = 0, None
    while i < len(create_args):
        a = create_args[i]
        if a.startswith("-"):
            i += 2 if (a in _CREATE_WITH_VALUE) else 1
            continue
        found = a
        i += 1
    return found


def ask_enforcer(cfg: ShimConfig, request: dict[str, object]) -> str | None:
    """None when the enforcer confirmed, else why not."""
    deadline = time.monotonic() + cfg.timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(cfg.timeout)
            s.connect(cfg.socket)
            s.sendall(json.dumps(request).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n") and time.monotonic() < deadline:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
    except OSError as err:
        return f"the enforcer is not reachable at {cfg.socket} ({err.strerror or err})"
    try:
        reply = json.loads(buf or b"{}")
    except ValueError:
        return f"the enforcer sent an unreadable answer: {buf[:200]!r}"
    if reply.get("ok") is True:
        return None
    return str(reply.get("error") or "the enforcer did not confirm the container's policy")


def _log(global_opts: list[str], message: str) -> None:
    """To stderr and, when containerd gave runc a JSON log file, there too: that is where
    dockerd takes the error message `docker run` prints."""
    print(f"enforcer-runc: {message}", file=sys.stderr)
    path = option(global_opts, {"--log"})
    if path and option(global_opts, {"--log-format"}) == "json":
        entry = {
            "level": "error",
            "msg": f"enforcer: {message}",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        try:
            with open(path, "a") as f:
                f.write(json.dumps(entry) + "\n")
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    config_path = None
    # install-runtime puts `--enforcer-config=PATH` in daemon.json's runtimeArgs: dockerd
    # passes it first, and no environment variable survives containerd's shim.
    while args and args[0].startswith(CONFIG_FLAG + "="):
        config_path = Path(args.pop(0).split("=", 1)[1])
    cfg = ShimConfig.load(config_path)
    runc = [cfg.runc]
    global_opts, sub, sub_args = split_args(args)
    if sub != "create":
        os.execvp(cfg.runc, runc + args)  # never returns
    rc = subprocess.run(runc + args, close_fds=False).returncode
    if rc != 0:
        return rc
    cid = container_id(sub_args)
    pid_file = option(sub_args, {"--pid-file"})
    bundle = option(sub_args, {"--bundle", "-b"}) or os.getcwd()
    try:
        pid = int(Path(pid_file).read_text().strip()) if pid_file else 0
    except (OSError, ValueError):
        pid = 0
    why = (
        "runc create gave no container id or pid"
        if not (cid and pid)
        else ask_enforcer(cfg, {"id": cid, "pid": pid, "bundle": bundle})
    )
    if why is None:
        return 0
    if cfg.on_unavailable == FAIL_OPEN:
        _log(global_opts, f"container {cid} starts WITHOUT its policy: {why} (fail-open)")
        return 0
    _log(
        global_opts,
        f"container {cid} not started: {why}. Start the enforcer (`enforcer run`) "
        "or, to start containers unpoliced while it is down, `enforcer install-runtime --fail-open`",
    )
    if cid:
        subprocess.run(
            runc[:1] + global_opts + ["delete", "--force", cid],
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return 1


if __name__ == "__main__":
    sys.exit(main())
