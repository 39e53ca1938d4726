"""Inode rules: exact rules resolved inside a container's root, never through the host's."""

from __future__ import annotations

import os
import time
from pathlib import Path

from enforcer.compiler.inodes import (
    InodeEntry,
    container_root,
    kernel_dev,
    resolve_container,
    resolve_in_root,
)
from enforcer.compiler.paths import CompiledPaths, compile_paths
from enforcer.compiler.rules import RuleTable
from enforcer.policy.loader import parse_text
from enforcer.policy.merge import merge

POLICY = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: p}
spec:
  file:
    - {action: deny, paths: [/etc/shadow, /etc/link-to-shadow, /missing]}
    - {action: deny, dirs: [/keys]}
    - {action: allow, paths: [/etc/passwd]}
  exec:
    - {action: deny, paths: [/bin/nc, /bin/applet]}
"""


def _rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for d in ("etc", "bin", "keys/sub", "var"):
        (root / d).mkdir(parents=True)
    (root / "etc/shadow").write_text("x")
    (root / "etc/passwd").write_text("x")
    (root / "etc/link-to-shadow").symlink_to("/etc/shadow")  # absolute: inside the root
    (root / "bin/nc").write_text("nc")
    (root / "bin/busybox").write_text("bb")
    (root / "bin/applet").symlink_to("busybox")
    (root / "keys/sub/id").write_text("k")
    (root / "keys/single").write_text("k")
    os.link(root / "keys/sub/id", root / "var/id.bak")
    return root


def _compiled() -> CompiledPaths:
    loaded, errors = parse_text(POLICY, "p.yaml")
    assert not errors
    return compile_paths(merge(p.policy for p in loaded), RuleTable())


def _entry(path: Path, kind: str) -> InodeEntry:
    st = os.stat(path)
    return InodeEntry(kind, kernel_dev(st.st_dev), st.st_ino)


def test_symlinks_resolve_inside_the_root_and_dotdot_stops_at_it(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    (root / "etc/escape").symlink_to("../../../../etc/shadow")
    assert resolve_in_root(str(root), "/etc/link-to-shadow") == str(root / "etc/shadow")
    assert resolve_in_root(str(root), "/etc/escape") == str(root / "etc/shadow")
    assert resolve_in_root(str(root), "/../../etc/./shadow") == str(root / "etc/shadow")
    assert resolve_in_root(str(root), "/etc/nothing") is None


def test_a_symlink_loop_does_not_resolve(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    assert resolve_in_root(str(root), "/a") is None


def test_exact_rules_and_multiply_linked_files_under_dir_rules_get_inodes(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    resolved = resolve_container(str(root), _compiled())
    assert set(resolved.entries) == {
        _entry(root / "etc/shadow", "PK_FILE_EXACT"),  # named, and through a symlink rule
        _entry(root / "bin/nc", "PK_EXEC_EXACT"),
        _entry(root / "keys/sub/id", "PK_FILE_EXACT"),  # under /keys with a second name
    }  # /keys/single has one name; /etc/passwd is only allowed; /missing does not exist


def test_an_exec_rule_naming_a_symlink_is_reported_not_widened(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    resolved = resolve_container(str(root), _compiled())
    assert _entry(root / "bin/busybox", "PK_EXEC_EXACT") not in resolved.entries
    assert [w for w in resolved.warnings if "/bin/applet" in w]


def test_kernel_dev_encoding() -> None:
    assert kernel_dev(os.makedev(8, 1)) == (8 << 20) | 1
    assert kernel_dev(os.makedev(0, 300)) == 300


def test_the_root_is_the_mount_namespace_root_even_when_the_process_chrooted(
    tmp_path: Path,
) -> None:
    jail = tmp_path / "jail"
    jail.mkdir()
    (jail / "decoy").mkdir()
    pid = os.fork()
    if pid == 0:  # the child chroots (like a container entrypoint) and waits to be killed
        os.chroot(jail)
        time.sleep(60)
        os._exit(0)
    try:
        while os.readlink(f"/proc/{pid}/root") != str(jail):
            time.sleep(0.01)
        assert os.path.isdir(f"/proc/{pid}/root/decoy")  # what the init's root would give
        with container_root(pid) as root:
            here, ns_root = os.stat(root), os.stat("/")
            assert (here.st_dev, here.st_ino) == (ns_root.st_dev, ns_root.st_ino)
            assert os.path.isfile(os.path.join(root, "etc/passwd"))
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_a_process_that_is_gone_resolves_nothing() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    with container_root(pid) as root:
        assert resolve_in_root(root, "/etc/passwd") is None
