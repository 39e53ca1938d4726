"""Match the file, not the spelling: every way around a path rule we know of, tried from a
real container (runs in the VM).

The container runs the shipped credentials policy plus a test policy, compiled and written
the way the daemon does it (FileEnforcement, with the per-container inode rules). Every
attempt must fail with EPERM *and* leave an audit event naming the rule; a few tests pin
down what a rule deliberately does not cover (busybox applets, copies).

The helper /usr/local/bin/enfhelper (tests/images/bypass_helper.c) makes the system calls
busybox cannot; it exits with the errno of the failed call (EPERM = 1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from enforcer.compiler.paths import PathEntry
from enforcer.compiler.rules import RuleRef
from enforcer.containers.cgroups import cgroup_of_pid
from tests.images.bypass import HELPER
from tests.integration.bypass_rig import EPERM, Rig, load_rig, police
from tests.integration.dockerd import Container, PrivateDockerd, run_container

pytestmark = [pytest.mark.lsm, pytest.mark.docker]

POLICY = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: bypass}
spec:
  file:
    - action: deny            # file[0]: readable by every uid: only the policy stops it
      paths: [/srv/secret/token]
    - action: deny            # file[1]
      paths: [/etc/group]
      access: [write]
    - action: deny            # file[2]
      dirs: [/srv/ro]
      access: [write]
    - action: deny            # file[3]
      dirs: [/srv/deep/protected]
    - action: deny            # file[4]: in a volume of the admin container
      paths: [/srv/vola/secret]
  exec:
    - action: deny            # exec[0]
      paths: [/bin/nc]
"""
SHADOW = RuleRef("protect-credentials", "file[0]")
SSH = RuleRef("protect-credentials", "file[3]")
SUDOERS_D = RuleRef("protect-credentials", "file[1]")
TOKEN = RuleRef("bypass", "file[0]")
GROUP = RuleRef("bypass", "file[1]")
RO_DIR = RuleRef("bypass", "file[2]")
DEEP = RuleRef("bypass", "file[3]")
VOL_SECRET = RuleRef("bypass", "file[4]")
NC = RuleRef("bypass", "exec[0]")


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    with load_rig([Path("policies/credentials.yaml")], POLICY) as rig:
        yield rig


@pytest.fixture(scope="module")
def box(dockerd: PrivateDockerd, testbox_image: str, rig: Rig) -> Iterator[Container]:
    """A container of its own (tests try to rename and unlink in it), under the policies
    for the whole module."""
    container = run_container(dockerd, testbox_image, "sleep", "1000000", name=f"enforcer-bypass-{os.getpid()}")
    try:
        with police(rig, container):
            yield container
    finally:
        container.remove()


@pytest.fixture
def c(box: Container, rig: Rig) -> Container:
    rig.drain()
    return box


@pytest.fixture(scope="module")
def admin_box(dockerd: PrivateDockerd, testbox_image: str, rig: Rig) -> Iterator[Container]:
    """A second container for the routes that need one added capability: CAP_SYS_ADMIN
    (mount namespaces, detached mounts) and CAP_DAC_READ_SEARCH (file handles), seccomp and
    AppArmor unconfined so the capabilities are usable. Its entrypoint chroots (inode rules
    must still be resolved from its namespace root), and it has two volumes from one file
    system (a handle of a file in one opened through the other)."""
    vols = Path(tempfile.mkdtemp(prefix="enf-vols-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(vols)], check=True)
    try:
        for name, text in (("a/secret", "vol-secret\n"), ("a/plain", "plain\n")):
            (vols / name).parent.mkdir(exist_ok=True)
            (vols / name).write_text(text)
        (vols / "b").mkdir()
        container = run_container(
            dockerd,
            testbox_image,
            HELPER,
            "chroot-hold",
            "/srv/scratch",
            name=f"enforcer-bypass-admin-{os.getpid()}",
            extra_args=[
                "--cap-add",
                "SYS_ADMIN",
                "--cap-add",
                "DAC_READ_SEARCH",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "apparmor=unconfined",
                "-v",
                f"{vols}/a:/srv/vola",
                "-v",
                f"{vols}/b:/srv/volb",
            ],
        )
        try:
            while os.readlink(f"/proc/{container.pid}/root") == "/":
                time.sleep(0.05)  # police only once the entrypoint has chrooted
            with police(rig, container):
                yield container
        finally:
            container.remove()
    finally:
        subprocess.run(["umount", "-l", str(vols)], check=False)
        os.rmdir(vols)


@pytest.fixture
def a(admin_box: Container, rig: Rig) -> Container:
    rig.drain()
    return admin_box


def helper(c: Container, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    return c.exec(HELPER, *args, user=user)


def denied(
    rig: Rig, result: subprocess.CompletedProcess[str], rule: RuleRef | None, path: str, hook: str = "file_open"
) -> None:
    """The attempt failed with EPERM and exactly one deny event names `rule` and `path`."""
    assert result.returncode != 0, f"not denied: {result.stdout!r}"
    said = (result.stdout + result.stderr).lower()  # docker exec reports exec errors on stdout
    assert "operation not permitted" in said or result.returncode == EPERM, said
    events = rig.wait_events()
    assert [(e.hook, e.action, e.path, rig.rule(e)) for e in events] == [(hook, "deny", path, rule)], events
    rig.drain()


# -- spellings of the path: the kernel resolves them before file_open -----------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "/opt/alias/shadow",  # symlink to the file, shipped in the image
        "/opt/alias/etc/shadow",  # symlink to its directory (relative target)
        "/etc/../etc/./shadow",
        "//etc///shadow",
        "/proc/self/root/etc/shadow",
        "/proc/1/root/etc/shadow",  # another process's root
        "/proc/self/root/proc/1/root/etc/shadow",
    ],
)
def test_every_spelling_of_a_denied_path_is_denied(rig: Rig, c: Container, spelling: str) -> None:
    denied(rig, c.exec("cat", spelling), SHADOW, "/etc/shadow")


def test_symlinks_made_in_the_container_to_the_file_and_to_a_parent(rig: Rig, c: Container) -> None:
    assert c.exec("ln", "-sf", "/etc/shadow", "/tmp/s").returncode == 0
    assert c.exec("ln", "-sfn", "/root/.ssh", "/tmp/keys").returncode == 0
    denied(rig, c.exec("cat", "/tmp/s"), SHADOW, "/etc/shadow")
    denied(rig, c.exec("cat", "/tmp/keys/id_rsa"), SSH, "/root/.ssh/id_rsa")


def test_relative_paths_cwd_and_directory_fds(rig: Rig, c: Container) -> None:
    denied(rig, c.exec("sh", "-c", "cd /etc && cat shadow"), SHADOW, "/etc/shadow")
    denied(rig, c.exec("sh", "-c", "cd /root/.ssh/.. && cat ./.ssh/../.ssh/id_rsa"), SSH, "/root/.ssh/id_rsa")
    denied(rig, c.exec("sh", "-c", "cd /etc && cat /proc/self/cwd/shadow"), SHADOW, "/etc/shadow")
    denied(rig, helper(c, "openat", "/etc", "shadow"), SHADOW, "/etc/shadow")
    denied(rig, helper(c, "openat", "/", "etc/../etc/shadow"), SHADOW, "/etc/shadow")


def test_an_o_path_descriptor_reopened_through_proc_self_fd(rig: Rig, c: Container) -> None:
    # O_PATH itself reads nothing (file_open does not run); the reopen is a real open.
    denied(rig, helper(c, "reopen", "/etc/shadow"), SHADOW, "/etc/shadow")
    denied(rig, helper(c, "reopen", "/opt/alias/ssh/id_rsa"), SSH, "/root/.ssh/id_rsa")


def test_allowed_files_still_open_through_the_same_tricks(rig: Rig, c: Container) -> None:
    assert c.exec("cat", "/opt/alias/etc/passwd").returncode == 0
    assert helper(c, "openat", "/etc", "passwd").returncode == 0
    assert helper(c, "reopen", "/root/.ssh/known_hosts").returncode == 0  # file[4] allows reads
    assert rig.wait_events(timeout=0.5) == []


# -- other names of the same inode ---------------------------------------------------------


def test_hard_links_shipped_in_the_image_are_judged_as_the_file(rig: Rig, c: Container) -> None:
    # Same inode, a path no rule names: the inode rules written at container start match.
    denied(rig, c.exec("cat", "/var/backups/shadow.bak"), SHADOW, "/var/backups/shadow.bak")
    denied(rig, c.exec("cat", "/var/backups/id_rsa.bak"), SSH, "/var/backups/id_rsa.bak")


def test_a_hard_link_cannot_be_made_to_a_protected_file(rig: Rig, c: Container) -> None:
    denied(rig, c.exec("ln", "/etc/shadow", "/tmp/shadow.lnk"), SHADOW, "/etc/shadow", "path_link")
    denied(rig, helper(c, "link", "/root/.ssh/id_rsa", "/tmp/k"), SSH, "/root/.ssh/id_rsa", "path_link")
    assert c.exec("test", "-e", "/tmp/shadow.lnk").returncode != 0
    assert c.exec("test", "-e", "/tmp/k").returncode != 0


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("/etc/shadow", SHADOW),  # the file itself
        ("/root/.ssh/id_rsa", SSH),  # a file under a directory rule
        ("/root/.ssh", SSH),  # the protected directory
        ("/etc", None),  # a directory above protected files (guard)
    ],
)
def test_protected_files_and_their_directories_cannot_be_moved(
    rig: Rig, c: Container, source: str, rule: RuleRef | None
) -> None:
    if rule is None:  # a guard names one of the rules below it
        (slot, _) = rig.part.compiled.entries[PathEntry("guard", source)]
        rule = rig.table.ref_for(slot.rule_id)
    denied(rig, helper(c, "rename", source, "/tmp/moved"), rule, source, "path_rename")
    assert c.exec("test", "-e", source).returncode == 0


def test_a_protected_file_cannot_be_swapped_with_a_decoy(rig: Rig, c: Container) -> None:
    assert c.exec("sh", "-c", "echo decoy > /tmp/decoy").returncode == 0
    denied(rig, helper(c, "exchange", "/tmp/decoy", "/etc/shadow"), SHADOW, "/etc/shadow", "path_rename")


# -- write-denied files and directories ------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "hook"),
    [
        (("truncate", "/etc/group"), "path_truncate"),
        (("open", "/etc/group", "wt"), "file_open"),  # O_TRUNC
        (("open", "/etc/group", "wa"), "file_open"),  # O_APPEND
        (("open", "/etc/group", "rt"), "file_open"),  # O_RDONLY|O_TRUNC still truncates
        (("unlink", "/etc/group"), "path_unlink"),
        (("chmod", "/etc/group", "666"), "path_chmod"),
        (("chown", "/etc/group", "1000", "1000"), "path_chown"),
    ],
)
def test_a_write_denied_file_cannot_be_changed_any_way(
    rig: Rig, c: Container, args: tuple[str, ...], hook: str
) -> None:
    denied(rig, helper(c, *args), GROUP, "/etc/group", hook)
    assert c.exec("grep", "-q", "^shadow:", "/etc/group").returncode == 0  # reads still work


def test_a_write_denied_file_cannot_be_replaced_by_rename(rig: Rig, c: Container) -> None:
    assert c.exec("sh", "-c", "echo 'root:x:0:evil' > /tmp/group").returncode == 0
    denied(rig, helper(c, "rename", "/tmp/group", "/etc/group"), GROUP, "/etc/group", "path_rename")
    assert c.exec("grep", "-q", "evil", "/etc/group").returncode != 0


@pytest.mark.parametrize(
    ("args", "path", "hook"),
    [
        (("open", "/srv/ro/new", "wc"), "/srv/ro/new", "path_mknod"),  # O_CREAT
        (("mkdir", "/srv/ro/newdir"), "/srv/ro/newdir", "path_mkdir"),
        (("symlink", "/tmp", "/srv/ro/link"), "/srv/ro/link", "path_symlink"),
        (("mknod", "/srv/ro/fifo"), "/srv/ro/fifo", "path_mknod"),
        (("unlink", "/srv/ro/config"), "/srv/ro/config", "path_unlink"),
        (("rmdir", "/srv/ro/sub"), "/srv/ro/sub", "path_rmdir"),
        (("rename", "/srv/ro/config", "/srv/ro/config2"), "/srv/ro/config", "path_rename"),
        (("link", "/etc/passwd", "/srv/ro/passwd"), "/srv/ro/passwd", "path_link"),
        (("open", "/srv/ro/config", "w"), "/srv/ro/config", "file_open"),
    ],
)
def test_a_write_denied_directory_cannot_change(
    rig: Rig, c: Container, args: tuple[str, ...], path: str, hook: str
) -> None:
    denied(rig, helper(c, *args), RO_DIR, path, hook)
    assert c.exec("ls", "/srv/ro").stdout.split() == ["config", "sub"]


def test_a_protected_path_that_does_not_exist_yet_cannot_be_created(rig: Rig, c: Container) -> None:
    denied(rig, c.exec("mkdir", "/etc/sudoers.d"), SUDOERS_D, "/etc/sudoers.d", "path_mkdir")


# -- long and deep paths ---------------------------------------------------------------------


def _deep(base: str, depth: int, name: str) -> str:
    return base + ("/" + name) * depth


def test_paths_beyond_256_bytes_and_64_components_are_still_matched(rig: Rig, c: Container) -> None:
    protected = _deep("/srv/deep/protected", 70, "component")  # 72 levels, ~730 bytes
    free = _deep("/srv/deep/free", 70, "component")
    assert c.exec("mkdir", "-p", free).returncode == 0
    assert c.exec("sh", "-c", f"echo ok > {free}/f && cat {free}/f").stdout == "ok\n"
    # The protected tree is made from the host: inside, mkdir under the rule is a write.
    os.makedirs(f"/proc/{c.pid}/root{protected}", exist_ok=True)
    assert rig.wait_events(timeout=0.5) == []
    denied(rig, c.exec("sh", "-c", f"echo x > {protected}/f"), DEEP, f"{protected}/f", "path_mknod")
    denied(rig, c.exec("ls", protected), DEEP, protected)


def test_a_path_longer_than_the_walk_buffer_is_denied_and_recorded(rig: Rig, c: Container) -> None:
    # 17 names of 255 bytes: 4352 bytes, more than PATH_MAX. Built from the host (not
    # judged) with directory fds; the helper reaches it with openat steps (a shell's cd
    # builds the absolute name and gives up).
    name = "n" * 255
    fd = os.open(f"/proc/{c.pid}/root/srv/scratch", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(17):
            os.mkdir(name, dir_fd=fd)
            fd, old = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
            os.close(old)
        os.close(os.open("x", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    try:
        result = helper(c, "deep", "/srv/scratch", name, "17", "x")
        assert result.returncode == EPERM, result.stderr
        (event,) = rig.wait_events()
        assert (event.hook, event.action, event.truncated) == ("file_open", "deny", True)
        assert rig.rule(event) is None  # RULE_UNRESOLVED: the limit, not a policy rule
        assert event.path.startswith("/srv/scratch/" + name)  # the part that fitted
        rig.drain()
        # Creating there is judged too: nothing below the limit is known, so it is refused.
        result = helper(c, "deep", "/srv/scratch", name, "17", "y", "mkdir")
        assert result.returncode == EPERM, result.stderr
        (event,) = rig.wait_events()
        assert (event.hook, event.action, event.truncated) == ("path_mkdir", "deny", True)
    finally:
        shutil.rmtree(f"/proc/{c.pid}/root/srv/scratch/{name}")


# -- exec rules ------------------------------------------------------------------------------


def test_exec_aliases_of_a_denied_binary_are_denied(rig: Rig, c: Container) -> None:
    assert c.exec("ln", "-sf", "/bin/nc", "/tmp/nc").returncode == 0
    denied(rig, c.exec("/tmp/nc", "-h"), NC, "/bin/nc", "exec")  # symlink, made here
    denied(rig, c.exec("/opt/alias/nc", "-h"), NC, "/bin/nc", "exec")  # symlink, shipped
    denied(rig, c.exec("/usr/local/bin/ncat", "-h"), NC, "/usr/local/bin/ncat", "exec")  # hard link
    denied(rig, helper(c, "execfd", "/bin/nc", "nc", "-h"), NC, "/bin/nc", "exec")  # execveat(fd)
    denied(rig, c.exec("ln", "/bin/nc", "/tmp/nc2"), NC, "/bin/nc", "path_link")


def test_mapping_a_denied_binary_executable_is_denied(rig: Rig, c: Container) -> None:
    # What a dynamic loader does with `ld.so /bin/nc`: no exec, an executable mapping.
    denied(rig, helper(c, "mmap-exec", "/bin/nc"), NC, "/bin/nc", "mmap_file")
    denied(rig, helper(c, "mprotect-exec", "/bin/nc"), NC, "/bin/nc", "mmap_file")


def test_a_busybox_applet_and_a_copy_are_other_files(rig: Rig, c: Container) -> None:
    """Documented limit: an exec rule names a file. `busybox nc` runs /bin/busybox, and a
    copy is a new file; neither is /bin/nc. Deny /bin/busybox (every applet) or the read of
    /bin/nc (no copy) to stop them."""
    applet = c.exec("busybox", "nc", "--help")
    assert "usage: nc" in (applet.stdout + applet.stderr).lower()
    # busybox picks the applet by the program's name: the copy keeps the name "nc".
    assert c.exec("sh", "-c", "mkdir -p /tmp/copy && cp /bin/nc /tmp/copy/nc").returncode == 0
    copy = c.exec("/tmp/copy/nc", "--help")
    assert "usage: nc" in (copy.stdout + copy.stderr).lower()
    assert rig.wait_events(timeout=0.5) == []


# -- who asks: other uids, chroot, child cgroups ---------------------------------------------


def test_other_uids_and_dropped_privileges_are_judged_alike(rig: Rig, c: Container) -> None:
    denied(rig, c.exec("cat", "/srv/secret/token", user="1000"), TOKEN, "/srv/secret/token")
    denied(rig, c.exec("cat", "/srv/secret/token", user="65534:65534"), TOKEN, "/srv/secret/token")
    denied(rig, helper(c, "as", "1000", "1000", "open", "/srv/secret/token"), TOKEN, "/srv/secret/token")


def test_chroot_does_not_change_what_a_path_is(rig: Rig, c: Container) -> None:
    assert c.exec("mkdir", "-p", "/tmp/jail").returncode == 0
    # Escape: a directory fd opened before chroot reaches /etc/shadow outside the new root.
    denied(rig, helper(c, "chroot-escape", "/tmp/jail", "etc/shadow"), SHADOW, "/etc/shadow")
    # Chroot *into* the protected directory: the file is /id_rsa to the process, not to us.
    denied(rig, helper(c, "chroot-open", "/root/.ssh", "/id_rsa"), SSH, "/root/.ssh/id_rsa")


def test_a_process_in_a_child_cgroup_of_the_container_is_judged_by_its_container(rig: Rig, c: Container) -> None:
    container_cg = cgroup_of_pid(c.pid)
    child = Path(container_cg.path) / f"bypass-child-{os.getpid()}"
    child.mkdir()
    with ThreadPoolExecutor(1) as pool:
        waiter = pool.submit(c.exec, "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done; cat /etc/shadow")
        try:
            pid = _wait_for_waiter(Path(container_cg.path))
            (child / "cgroup.procs").write_text(str(pid))
            assert cgroup_of_pid(pid).id != container_cg.id
            c.exec("touch", "/tmp/go")
            result = waiter.result(timeout=60)
            assert result.returncode != 0 and "Operation not permitted" in result.stderr
            (event,) = rig.wait_events()
            assert (event.path, rig.rule(event), event.cgroup_id) == (
                "/etc/shadow",
                SHADOW,
                container_cg.id,
            )
        finally:
            c.exec("touch", "/tmp/go")
            waiter.result(timeout=60)
            c.exec("rm", "-f", "/tmp/go")
            for _ in range(50):
                try:
                    child.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def _wait_for_waiter(cgroup_dir: Path, timeout: float = 30.0) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for pid in (cgroup_dir / "cgroup.procs").read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"/tmp/go" in cmdline:
                return int(pid)
        time.sleep(0.1)
    raise AssertionError("the waiting shell never appeared in the container's cgroup")


# -- routes that leave the container's mount tree --------------------------------------------


def test_pipes_and_anonymous_files_still_open(rig: Rig, c: Container) -> None:
    # Kernel-private files (pipefs here) have no path: they are let out, not judged.
    assert c.exec("sh", "-c", "echo via-pipe | cat /proc/self/fd/0").stdout == "via-pipe\n"
    assert rig.wait_events(timeout=0.5) == []


def test_a_file_seen_through_another_mount_namespace_is_judged_by_its_path(rig: Rig, a: Container) -> None:
    pid = a.exec("sh", "-c", f"{HELPER} nsholder >/dev/null 2>&1 & echo $!").stdout.strip()
    try:
        own = a.exec("readlink", "/proc/self/ns/mnt").stdout
        for _ in range(100):
            if a.exec("readlink", f"/proc/{pid}/ns/mnt").stdout not in ("", own):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the namespace holder never made its mount namespace")
        denied(rig, a.exec("cat", f"/proc/{pid}/root/etc/shadow"), SHADOW, "/etc/shadow")
        # Judged, not shut out: what the rules allow there is still readable.
        assert a.exec("cat", f"/proc/{pid}/root/etc/passwd").returncode == 0
        assert rig.wait_events(timeout=0.5) == []
    finally:
        a.exec("kill", pid)


def test_a_detached_mount_is_judged_by_inode_and_otherwise_denied(rig: Rig, a: Container) -> None:
    # open_tree(OPEN_TREE_CLONE) of /etc: a mount no path leads to; the path in the record
    # is the part known (below the clone's root).
    denied(rig, helper(a, "opentree", "/etc", "shadow"), SHADOW, "/shadow")
    # A file no inode rule names may still lie under a directory rule: fail closed.
    denied(rig, helper(a, "opentree", "/etc", "passwd"), None, "/passwd")


def test_a_file_handle_opened_through_another_mount_is_judged(rig: Rig, a: Container) -> None:
    # /srv/vola and /srv/volb are two mounts of one file system: the handle of a file of
    # one, opened through the other, is a dentry outside that mount's root.
    denied(rig, helper(a, "handle", "/srv/volb", "/srv/vola/secret"), VOL_SECRET, "/a/secret")
    denied(rig, helper(a, "handle", "/srv/volb", "/srv/vola/plain"), None, "/a/plain")
    # Through its own mount the handle's file has its path, judged as usual.
    assert helper(a, "handle", "/srv/vola", "/srv/vola/plain").stdout == "plain\n"
    denied(rig, helper(a, "handle", "/srv/vola", "/srv/vola/secret"), VOL_SECRET, "/srv/vola/secret")


def test_inode_rules_hold_when_the_entrypoint_chrooted(rig: Rig, a: Container) -> None:
    # Resolved from the namespace root, not from the init's root (/srv/scratch here).
    assert os.readlink(f"/proc/{a.pid}/root").endswith("/srv/scratch")
    denied(rig, a.exec("cat", "/var/backups/shadow.bak"), SHADOW, "/var/backups/shadow.bak")


# -- metadata: timestamps and extended attributes ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "path", "rule", "hook"),
    [
        (("utimens", "/etc/group"), "/etc/group", GROUP, "inode_setattr"),
        (("futimens", "/etc/group"), "/etc/group", GROUP, "inode_setattr"),  # on a read-only fd
        (("utimens", "/srv/ro/config"), "/srv/ro/config", RO_DIR, "inode_setattr"),  # dir rule
        (("setxattr", "/etc/group", "user.x", "1"), "/etc/group", GROUP, "inode_setxattr"),
        (("removexattr", "/etc/group", "user.x"), "/etc/group", GROUP, "inode_setxattr"),
        (("setxattr", "/srv/ro/config", "user.x", "1"), "/srv/ro/config", RO_DIR, "inode_setxattr"),
    ],
)
def test_a_write_denied_file_keeps_its_metadata(
    rig: Rig, c: Container, args: tuple[str, ...], path: str, rule: RuleRef, hook: str
) -> None:
    denied(rig, helper(c, *args), rule, path, hook)


def test_metadata_of_other_files_still_changes(rig: Rig, c: Container) -> None:
    assert helper(c, "utimens", "/etc/passwd").returncode == 0
    assert c.exec("touch", "/tmp/stamp").returncode == 0
    assert rig.wait_events(timeout=0.5) == []
