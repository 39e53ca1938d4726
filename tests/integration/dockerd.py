"""A private, throw-away dockerd for tests (host and VM alike).

Everything lives under one temp directory: the data-root on its own tmpfs (fast, and gone at
teardown), the exec-root, the pidfile, the API socket and the log. Networking is off
(`--bridge=none`, no iptables), so containers must run with `--network none`. Only processes
this module started are ever signalled, by pid.

The daemon can be stopped and started again on the same data-root (to test that policies
survive a dockerd restart), with or without `--live-restore`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enforcer.containers.cgroups import CgroupLayout, detect_layout, find_cgroup2_mount

DOCKERD = os.environ.get("ENFORCER_TEST_DOCKERD", "/usr/sbin/dockerd")
# /usr/local/bin/docker may be another, newer CLI; the 20.10 one matches the daemon.
DOCKER_CLI = os.environ.get("ENFORCER_TEST_DOCKER_CLI", "/usr/bin/docker")


class DockerdError(RuntimeError):
    """The private dockerd failed; the message carries the tail of its log."""


@dataclass
class DockerdInfo:
    """What the running daemon says about itself (from `docker info`)."""

    server_version: str
    cgroup_driver: str
    cgroup_version: str
    storage_driver: str
    security_options: list[str]


@dataclass
class PrivateDockerd:
    """One private dockerd. Use `start()`, `stop()`, `restart()`, and always `cleanup()`.

    `storage_driver` None lets dockerd choose (overlay2 on the tmpfs); set
    ENFORCER_TEST_STORAGE_DRIVER=vfs where overlay is unavailable. `cgroup_driver` is
    "cgroupfs" or "systemd" (the latter needs systemd as init); None = dockerd's default.
    """

    live_restore: bool = False
    storage_driver: str | None = field(default_factory=lambda: os.environ.get("ENFORCER_TEST_STORAGE_DRIVER") or None)
    cgroup_driver: str | None = field(default_factory=lambda: os.environ.get("ENFORCER_TEST_CGROUP_DRIVER") or None)
    tmpfs_size: str = "2g"
    config: dict[str, Any] = field(default_factory=dict)  # daemon.json content
    extra_args: list[str] = field(default_factory=list)
    base_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="enf-dockerd-")))

    def __post_init__(self) -> None:
        # Short paths: containerd's socket lives below exec-root and unix paths max 108 bytes.
        self.data_root = self.base_dir / "data"
        self.exec_root = self.base_dir / "exec"
        self.pidfile = self.base_dir / "dockerd.pid"
        self.socket_path = self.base_dir / "docker.sock"
        # Outside base_dir so it survives cleanup(): read it when a test failed.
        self.log_path = self.base_dir.with_name(self.base_dir.name + ".log")
        self.host = f"unix://{self.socket_path}"
        self._proc: subprocess.Popen[bytes] | None = None
        # Our own containerd: dockerd's managed one must answer within a few seconds, which a
        # loaded 2-CPU machine under TCG does not always manage; we wait as long as needed.
        self._containerd: subprocess.Popen[bytes] | None = None
        self.containerd_socket = self.exec_root / "ctd.sock"
        self._log_file: Any = None
        self._tmpfs_mounted = False
        self.start_seconds: list[float] = []
        self._atexit_registered = False
        self.cgroup_layout: CgroupLayout = detect_layout()
        self.cgroup2_mount: str = find_cgroup2_mount()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        cmd = [
            DOCKERD,
            "--host",
            self.host,
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.exec_root),
            "--pidfile",
            str(self.pidfile),
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            # Never listen anywhere but our socket, never reach a registry by accident.
            "--config-file",
            str(self._write_config()),
            "--containerd",
            str(self.containerd_socket),
        ]
        if self.live_restore:
            cmd.append("--live-restore")
        if self.storage_driver:
            cmd += ["--storage-driver", self.storage_driver]
        if self.cgroup_driver:
            cmd += ["--exec-opt", f"native.cgroupdriver={self.cgroup_driver}"]
        return cmd + self.extra_args

    def _write_config(self) -> Path:
        # Our own config file so a host /etc/docker/daemon.json (hosts, mirrors...) never leaks
        # in; `config` holds what a test wants there (e.g. runtimes from install-runtime).
        path = self.base_dir / "daemon.json"
        path.write_text(json.dumps(self.config) + "\n")
        return path

    def start(self, timeout: float = 300.0) -> float:
        """Start dockerd and wait until its API answers; returns the seconds it took."""
        if self.running:
            return 0.0
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(exist_ok=True)
        self.exec_root.mkdir(exist_ok=True)
        if not self._tmpfs_mounted and not _is_mountpoint(self.data_root):
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={self.tmpfs_size},mode=0711", "tmpfs", str(self.data_root)],
                check=True,
            )
            self._tmpfs_mounted = True
        if not self._atexit_registered:
            # Backstop if a test run dies without running fixture teardown; cleanup is idempotent.
            atexit.register(self.cleanup)
            self._atexit_registered = True
        t0 = time.monotonic()
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._start_containerd(t0 + timeout)
        self._log_file.write(f"\n=== start {time.ctime()}: {' '.join(self.command())}\n".encode())
        self._log_file.flush()
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            # Own session: a Ctrl-C on pytest must not hit dockerd before our teardown does.
            start_new_session=True,
        )
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DockerdError(f"dockerd exited with {self._proc.returncode}\n{self.log_tail()}")
            if self.socket_path.exists() and self._ping():
                took = time.monotonic() - t0
                self.start_seconds.append(took)
                return took
            time.sleep(0.1)
        self.stop()
        raise DockerdError(f"dockerd not ready after {timeout}s\n{self.log_tail()}")

    def _start_containerd(self, deadline: float) -> None:
        if self._containerd is not None and self._containerd.poll() is None:
            return  # survives dockerd restarts, like a system containerd
        config = self.base_dir / "containerd.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.data_root}/containerd"\n'
            f'state = "{self.exec_root}/containerd-state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.containerd_socket}"\n'
        )
        self._containerd = subprocess.Popen(
            ["containerd", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while time.monotonic() < deadline:
            if self._containerd.poll() is not None:
                raise DockerdError(f"containerd exited with {self._containerd.returncode}\n{self.log_tail()}")
            if self.containerd_socket.exists():
                ok = subprocess.run(
                    ["ctr", "--address", str(self.containerd_socket), "--timeout", "10s", "version"],
                    capture_output=True,
                    check=False,
                )
                if ok.returncode == 0:
                    return
            time.sleep(0.2)
        raise DockerdError(f"containerd not ready\n{self.log_tail()}")

    def _ping(self) -> bool:
        # The socket accepts connections before the API serves (dockerd first restores or
        # stops old containers), so a ping may hang: retry rather than fail.
        try:
            result = self.cli("version", "--format", "{{.Server.Version}}", check=False, timeout=30)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM our dockerd by pid, wait, then SIGKILL. Keeps the data-root for a restart.

        Without live-restore dockerd stops its containers; with it they keep running."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self, *, live_restore: bool | None = None, timeout: float = 300.0) -> float:
        """Stop and start again on the same data-root (optionally toggling live-restore)."""
        self.stop()
        if live_restore is not None:
            self.live_restore = live_restore
        return self.start(timeout)

    def cleanup(self, *, remove_log: bool = False) -> None:
        """Remove every container, stop dockerd and its containerd, unmount, delete the dirs.

        Safe to call more than once and after a failed start. The log is kept unless asked."""
        if self.running:
            with contextlib.suppress(Exception):
                ids = self.cli("ps", "-aq", check=False, timeout=30).stdout.split()
                if ids:
                    self.cli("rm", "-f", *ids, check=False, timeout=120)
        self.stop()
        self._kill_own_containerd()
        self._unmount_all()
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.base_dir)], check=False)
        if remove_log:
            self.log_path.unlink(missing_ok=True)

    def _kill_own_containerd(self) -> None:
        proc, self._containerd = self._containerd, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._kill_managed_containerd()

    def _kill_managed_containerd(self) -> None:
        # dockerd's managed containerd normally exits with it; with live-restore (or a SIGKILL'd
        # dockerd) it may survive. Its pidfile is under our exec-root, so it is ours to stop.
        pidfile = self.exec_root / "containerd" / "containerd.pid"
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = int(pidfile.read_text().strip())
            if _process_cmdline(pid) == "containerd":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                    for _ in range(100):
                        os.kill(pid, 0)
                        time.sleep(0.1)
                    os.kill(pid, signal.SIGKILL)

    def _unmount_all(self) -> None:
        # Deepest first: overlay and netns mounts sit inside the data-root/exec-root.
        base = str(self.base_dir.resolve())
        for _ in range(3):
            points = [p for p in _mountpoints() if p == base or p.startswith(base + "/")]
            if not points:
                break
            for point in sorted(points, key=len, reverse=True):
                if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                    subprocess.run(["umount", "-l", point], capture_output=True)
        self._tmpfs_mounted = False

    # -- talking to it ---------------------------------------------------------------------

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120.0, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this daemon; returns text output."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.host
        env["DOCKER_CONFIG"] = str(self.base_dir / "cli-config")  # no host credentials/contexts
        result = subprocess.run(
            [DOCKER_CLI, *args],
            env=env,
            input=input,
            capture_output=True,
            timeout=timeout,
        )
        out = subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )
        if check and out.returncode != 0:
            raise DockerdError(f"docker {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
        return out

    def client(self) -> Any:
        """A Docker SDK client for this daemon (caller closes it)."""
        import docker

        return docker.DockerClient(base_url=self.host, timeout=60)

    def info(self) -> DockerdInfo:
        import json

        raw = json.loads(self.cli("info", "--format", "{{json .}}").stdout)
        return DockerdInfo(
            server_version=raw.get("ServerVersion", ""),
            cgroup_driver=raw.get("CgroupDriver", ""),
            cgroup_version=str(raw.get("CgroupVersion", "")),
            storage_driver=raw.get("Driver", ""),
            security_options=list(raw.get("SecurityOptions") or []),
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no dockerd log)"


def _mountpoints() -> list[str]:
    from enforcer.containers.cgroups import parse_mounts

    return [m.mountpoint for m in parse_mounts(Path("/proc/self/mounts").read_text())]


def _is_mountpoint(path: Path) -> bool:
    return str(path.resolve()) in _mountpoints()


def _process_cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return os.path.basename(raw.split(b"\0", 1)[0].decode(errors="replace"))


@dataclass
class Container:
    """A container started by the tests on a PrivateDockerd."""

    id: str
    name: str
    daemon: PrivateDockerd

    def inspect(self) -> dict[str, Any]:
        import json

        info: dict[str, Any] = json.loads(self.daemon.cli("inspect", self.id).stdout)[0]
        return info

    @property
    def pid(self) -> int:
        """The init process as seen from the host (0 if not running)."""
        return int(self.daemon.cli("inspect", "-f", "{{.State.Pid}}", self.id).stdout.strip())

    @property
    def running(self) -> bool:
        out = self.daemon.cli("inspect", "-f", "{{.State.Running}}", self.id, check=False)
        return out.stdout.strip() == "true"

    def exec(
        self, *command: str, user: str | None = None, check: bool = False, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """`docker exec` a command; returns the result (check=True raises on non-zero)."""
        args = ["exec"] + (["--user", user] if user else []) + [self.id, *command]
        return self.daemon.cli(*args, check=check, timeout=timeout)

    def remove(self) -> None:
        self.daemon.cli("rm", "-f", self.id, check=False)


def run_container(
    daemon: PrivateDockerd,
    image: str,
    *command: str,
    name: str | None = None,
    labels: dict[str, str] | None = None,
    user: str | None = None,
    extra_args: list[str] | tuple[str, ...] = (),
) -> Container:
    """`docker run -d --network none` and return at once (the container runs in background).

    `--stop-timeout 2`: test commands run as PID 1 (sleep...) ignore SIGTERM, and dockerd
    would wait 10 s per container on stop and on a restart without live-restore."""
    args = ["run", "-d", "--network", "none", "--stop-timeout", "2"]
    if name:
        args += ["--name", name]
    for key, value in (labels or {}).items():
        args += ["--label", f"{key}={value}"]
    if user:
        args += ["--user", user]
    args += [*extra_args, image, *command]
    cid = daemon.cli(*args).stdout.strip()
    real_name = daemon.cli("inspect", "-f", "{{.Name}}", cid).stdout.strip().lstrip("/")
    return Container(id=cid, name=real_name, daemon=daemon)
