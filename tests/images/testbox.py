"""The `testbox` image: a busybox-static rootfs with fake secrets, built without a registry.

The rootfs is written straight into a tar stream (ownership and modes set in the tar headers,
so nothing is created on the host) and fed to `docker import`. Other tests may add files,
e.g. a static helper binary: `RootfsBuilder().add_file("/bin/helper", path_or_bytes, 0o755)`.

Layout highlights, for policy tests:
- /bin/busybox plus an applet symlink in /bin for every applet it has (`busybox --list`);
  /usr/bin/env and friends point to it too.
- Some applets (`COPIED_APPLETS`: nc, wget) are separate *copies* of busybox, not symlinks,
  so an exec rule on /bin/nc can be told apart from every other applet (busybox dispatches
  on argv[0], so a copy behaves the same).
- /etc/shadow and /etc/gshadow (0640 root:shadow), /root/.ssh/{id_rsa,known_hosts,
  authorized_keys}, /etc/ssh/ssh_host_*_key: all fake.
- user `user` (uid/gid 1000, home /home/user); root; nobody.
- /usr/local/bin/enfhelper (static C, tests/images/bypass_helper.c) and the aliases the
  bypass suite attacks through (tests/images/bypass.py: hard links, symlinks, secrets).
- No CMD/ENTRYPOINT: tests always pass a command.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

BUSYBOX = os.environ.get("ENFORCER_TEST_BUSYBOX", "/bin/busybox")
IMAGE_TAG = "enforcer-testbox:latest"
USER_UID = 1000
SHADOW_GID = 42
COPIED_APPLETS = ("nc", "wget")
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

FAKE_SHADOW = (
    "root:$6$fakesalt$FAKEHASHFAKEHASHFAKEHASH:19000:0:99999:7:::\n"
    "user:$6$fakesalt$ANOTHERFAKEHASH:19000:0:99999:7:::\n"
    "nobody:*:19000:0:99999:7:::\n"
)
FAKE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "ZmFrZSBrZXkgZm9yIGVuZm9yY2VyIHRlc3RzOyBub3QgYSByZWFsIGtleQ==\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


@dataclass
class _Entry:
    kind: bytes  # tarfile.REGTYPE / DIRTYPE / SYMTYPE / LNKTYPE
    mode: int
    uid: int = 0
    gid: int = 0
    data: bytes = b""
    target: str = ""


def busybox_applets(busybox: str = BUSYBOX) -> list[str]:
    out = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    return sorted(a for a in out.split() if a and "/" not in a and a != "busybox")


@dataclass
class RootfsBuilder:
    """Collects a rootfs in memory and writes it as a tar for `docker import`."""

    busybox: str = BUSYBOX
    copied_applets: Iterable[str] = COPIED_APPLETS
    entries: dict[str, _Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._base()

    # -- public: what other tests may add --------------------------------------------------

    def add_dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        self._parents(path)
        self.entries[_norm(path)] = _Entry(tarfile.DIRTYPE, mode, uid, gid)

    def add_file(self, path: str, content: bytes | str | Path, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        """Add a file; `content` is bytes, text, or a host Path to copy (e.g. a static binary)."""
        if isinstance(content, Path):
            data = content.read_bytes()
        elif isinstance(content, str):
            data = content.encode()
        else:
            data = content
        self._parents(path)
        self.entries[_norm(path)] = _Entry(tarfile.REGTYPE, mode, uid, gid, data=data)

    def add_symlink(self, path: str, target: str) -> None:
        self._parents(path)
        self.entries[_norm(path)] = _Entry(tarfile.SYMTYPE, 0o777, target=target)

    def add_hardlink(self, path: str, target: str) -> None:
        """A second name for the regular file `target` (already added; it must sort before
        `path`, as the tar is written in path order)."""
        if self.entries.get(_norm(target), _Entry(b"", 0)).kind != tarfile.REGTYPE:
            raise ValueError(f"hard link target is not a file added before: {target!r}")
        if _norm(target) > _norm(path):
            raise ValueError(f"hard link {path!r} sorts before its target {target!r}")
        self._parents(path)
        t = self.entries[_norm(target)]  # the header's mode/owner are applied to the shared inode
        self.entries[_norm(path)] = _Entry(tarfile.LNKTYPE, t.mode, t.uid, t.gid, target=target)

    def write_tar(self, out: io.BufferedIOBase | io.BytesIO) -> None:
        mtime = int(time.time())
        with tarfile.open(fileobj=out, mode="w|") as tar:
            for path in sorted(self.entries):  # parents sort before children
                e = self.entries[path]
                info = tarfile.TarInfo(path.lstrip("/") or ".")
                info.type, info.mode, info.uid, info.gid, info.mtime = (
                    e.kind,
                    e.mode,
                    e.uid,
                    e.gid,
                    mtime,
                )
                if e.kind == tarfile.SYMTYPE:
                    info.linkname = e.target
                    tar.addfile(info)
                elif e.kind == tarfile.LNKTYPE:
                    info.linkname = e.target.lstrip("/")
                    tar.addfile(info)
                elif e.kind == tarfile.REGTYPE:
                    info.size = len(e.data)
                    tar.addfile(info, io.BytesIO(e.data))
                else:
                    tar.addfile(info)

    def tar_bytes(self) -> bytes:
        buf = io.BytesIO()
        self.write_tar(buf)
        return buf.getvalue()

    # -- the base image --------------------------------------------------------------------

    def _parents(self, path: str) -> None:
        parent = os.path.dirname(_norm(path))
        while parent not in ("/", "") and parent not in self.entries:
            self.entries[parent] = _Entry(tarfile.DIRTYPE, 0o755)
            parent = os.path.dirname(parent)

    def _base(self) -> None:
        for d in (
            "/bin",
            "/sbin",
            "/usr/bin",
            "/usr/sbin",
            "/etc",
            "/dev",
            "/proc",
            "/sys",
            "/run",
            "/var",
            "/var/log",
            "/opt",
            "/mnt",
            "/srv",
        ):
            self.add_dir(d)
        self.add_dir("/tmp", 0o1777)
        self.add_dir("/var/tmp", 0o1777)
        self.add_dir("/root", 0o700)
        self.add_dir("/home/user", 0o755, USER_UID, USER_UID)

        binary = Path(self.busybox).read_bytes()
        self.add_file("/bin/busybox", binary, 0o755)
        copies = set(self.copied_applets)
        for applet in busybox_applets(self.busybox):
            if applet in copies:
                self.add_file(f"/bin/{applet}", binary, 0o755)
            else:
                self.add_symlink(f"/bin/{applet}", "busybox")
        # Common absolute paths scripts use (#!/usr/bin/env ...).
        for applet in ("env", "id", "head", "tail", "wc", "which", "nc", "wget", "awk"):
            self.add_symlink(f"/usr/bin/{applet}", f"/bin/{applet}")

        self.add_file(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\n"
            f"user:x:{USER_UID}:{USER_UID}:Test User:/home/user:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        self.add_file(
            "/etc/group",
            f"root:x:0:\nshadow:x:{SHADOW_GID}:\nuser:x:{USER_UID}:\nnogroup:x:65534:\n",
        )
        self.add_file("/etc/shadow", FAKE_SHADOW, 0o640, 0, SHADOW_GID)
        self.add_file("/etc/gshadow", "root:*::\nshadow:*::\nuser:!::\n", 0o640, 0, SHADOW_GID)
        self.add_file("/etc/hostname", "testbox\n")
        self.add_file("/etc/os-release", 'NAME="enforcer testbox"\nID=testbox\n')

        self.add_dir("/root/.ssh", 0o700)
        self.add_file("/root/.ssh/id_rsa", FAKE_KEY, 0o600)
        self.add_file("/root/.ssh/id_rsa.pub", "ssh-rsa AAAAFAKE root@testbox\n")
        self.add_file("/root/.ssh/known_hosts", "example.invalid ssh-ed25519 AAAAFAKE\n")
        self.add_file("/root/.ssh/authorized_keys", "ssh-ed25519 AAAAFAKE someone\n", 0o600)

        self.add_dir("/etc/ssh")
        for kind in ("rsa", "ecdsa", "ed25519"):
            self.add_file(f"/etc/ssh/ssh_host_{kind}_key", FAKE_KEY, 0o600)
            self.add_file(f"/etc/ssh/ssh_host_{kind}_key.pub", f"ssh-{kind} AAAAFAKE host\n")


def import_image(
    builder: RootfsBuilder,
    docker_cli: Callable[..., subprocess.CompletedProcess[str]],
    tag: str = IMAGE_TAG,
) -> float:
    """`docker import` the rootfs as `tag`; returns seconds taken.

    `docker_cli(*args, input=bytes)` runs the docker CLI against the private daemon
    (PrivateDockerd.cli)."""
    t0 = time.monotonic()
    docker_cli(
        "import",
        "--change",
        f"ENV PATH={PATH_ENV}",
        "--message",
        "enforcer testbox",
        "-",
        tag,
        input=builder.tar_bytes(),
    )
    return time.monotonic() - t0


def _norm(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"rootfs paths are absolute: {path!r}")
    return os.path.normpath(path)


def build_testbox_rootfs() -> RootfsBuilder:
    """The testbox rootfs. Add project helpers here (e.g. a static C binary with
    `builder.add_file("/usr/local/bin/helper", Path(...), 0o755)`), or override the
    `testbox_rootfs` fixture in a conftest."""
    from tests.images.bypass import add_bypass_fixtures

    builder = RootfsBuilder()
    add_bypass_fixtures(builder)
    return builder
