"""File and exec enforcement by the LSM programs on a real container (runs in the VM).

The proof that the design stands: a real container started by dockerd gets EPERM opening a
file the compiled policy denies for that container's cgroup, the same file opens fine from
a process outside the container, and the ring buffer delivers the denial to Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from enforcer.audit.events import EventDecoder, FileEvent
from enforcer.compiler.paths import CompiledPaths, compile_paths
from enforcer.compiler.rules import RuleRef, RuleTable
from enforcer.containers.cgroups import cgroup_of_pid
from enforcer.kernel.build import ensure_built
from enforcer.kernel.loader import load_lsm, unload
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.policy.loader import parse_text
from enforcer.policy.merge import merge
from enforcer.pybpf import RingBuffer
from tests.integration.dockerd import Container

pytestmark = [pytest.mark.lsm, pytest.mark.docker]

POLICY = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: proof}
spec:
  file:
    - action: deny
      paths: [/etc/shadow]
    - action: deny
      dirs: [/root/.ssh]
    - action: allow
      paths: [/root/.ssh/known_hosts]
    - action: deny
      paths: [/etc/group]
      access: [write]
    - action: audit
      paths: [/etc/hostname]
    - action: deny
      dirs: [/tmp/denied-tree]
  exec:
    - action: deny
      paths: [/bin/nc]
"""
RULESET = 1


@dataclass
class Enforcement:
    maps: PolicyMaps
    table: RuleTable
    ring: RingBuffer
    decoder: EventDecoder
    compiled: CompiledPaths  # the proof policy's ruleset, as written to the maps
    events: list[FileEvent] = field(default_factory=list)

    def drain(self) -> None:
        self.ring.consume()
        self.events.clear()

    def wait_events(self, n: int = 1, timeout: float = 5.0) -> list[FileEvent]:
        end = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < end:
            self.ring.poll(100)
        return list(self.events)

    def rule(self, event: FileEvent) -> RuleRef | None:
        return self.table.ref_for(event.rule_id)


@pytest.fixture(scope="module")
def enforcement() -> Iterator[Enforcement]:
    pin_root = Path(f"/sys/fs/bpf/enforcer-test-{os.getpid()}")
    loaded = load_lsm(ensure_built(), pin_root)
    try:
        loaded_policies, errors = parse_text(POLICY, "proof.yaml")
        assert not errors, errors
        table = RuleTable()
        maps = PolicyMaps(loaded.abi, loaded.maps)
        compiled = compile_paths(merge(p.policy for p in loaded_policies), table)
        maps.write_ruleset(RULESET, compiled)
        decoder = EventDecoder(loaded.abi)
        enf = Enforcement(maps, table, RingBuffer(loaded.maps["events"], lambda raw: None), decoder, compiled)
        enf.ring.close()

        def on_record(raw: bytes) -> None:
            if e := decoder.decode(raw):
                assert isinstance(e, FileEvent), e  # the proof policy has file rules only
                enf.events.append(e)

        enf.ring = RingBuffer(loaded.maps["events"], on_record)
        yield enf
        enf.ring.close()
    finally:
        loaded.close()
        unload(pin_root)


@pytest.fixture
def policed(enforcement: Enforcement, testbox: Container) -> Iterator[Container]:
    """The shared test container, put under the proof policy for the test's duration."""
    cgroup = cgroup_of_pid(testbox.pid)
    enforcement.maps.set_container(cgroup.id, RULESET, enforcement.maps.container_fields(enforcement.compiled))
    enforcement.drain()
    try:
        yield testbox
    finally:
        enforcement.maps.remove_container(cgroup.id)


def test_container_is_denied_a_file_the_policy_denies_and_python_gets_the_event(
    enforcement: Enforcement, policed: Container
) -> None:
    result = policed.exec("cat", "/etc/shadow")
    assert result.returncode != 0
    assert "Operation not permitted" in result.stderr
    (event,) = enforcement.wait_events()
    assert (event.hook, event.action, event.path, event.comm) == ("file_open", "deny", "/etc/shadow", "cat")
    assert event.access == {"read"}
    assert event.cgroup_id == cgroup_of_pid(policed.pid).id
    assert enforcement.rule(event) == RuleRef("proof", "file[0]")
    assert enforcement.maps.counters(event.cgroup_id) == {event.rule_id: 1}


def test_the_same_file_opens_for_a_process_outside_the_container(policed: Container) -> None:
    with open(f"/proc/{policed.pid}/root/etc/shadow") as f:
        assert f.read().startswith("root:")


def test_files_no_rule_denies_still_open(enforcement: Enforcement, policed: Container) -> None:
    assert policed.exec("cat", "/etc/passwd").returncode == 0
    assert enforcement.wait_events(timeout=0.5) == []


def test_directory_rule_covers_everything_below_except_a_more_specific_allow(
    enforcement: Enforcement, policed: Container
) -> None:
    assert policed.exec("cat", "/root/.ssh/id_rsa").returncode != 0
    assert policed.exec("ls", "/root/.ssh").returncode != 0  # the directory itself
    assert policed.exec("cat", "/root/.ssh/known_hosts").returncode == 0
    paths = sorted(e.path for e in enforcement.wait_events(2))
    assert paths == ["/root/.ssh", "/root/.ssh/id_rsa"]


def test_write_only_rule_denies_a_write_open_and_allows_a_read(enforcement: Enforcement, policed: Container) -> None:
    assert policed.exec("cat", "/etc/group").returncode == 0
    assert policed.exec("sh", "-c", "echo x >> /etc/group").returncode != 0
    (event,) = enforcement.wait_events()
    assert (event.path, event.access, event.action) == ("/etc/group", frozenset({"write"}), "deny")


def test_audit_rule_records_without_denying_across_a_bind_mount(enforcement: Enforcement, policed: Container) -> None:
    # /etc/hostname is a bind mount Docker puts into the container: the walk crosses it.
    assert policed.exec("cat", "/etc/hostname").returncode == 0
    (event,) = enforcement.wait_events()
    assert (event.path, event.action) == ("/etc/hostname", "audit")


def test_exec_rule_denies_running_the_binary(enforcement: Enforcement, policed: Container) -> None:
    result = policed.exec("/bin/nc", "-h")
    assert result.returncode != 0
    events = [e for e in enforcement.wait_events() if e.hook == "exec"]
    assert [(e.path, e.action) for e in events] == [("/bin/nc", "deny")]


def test_a_path_deeper_than_the_walk_limit_is_denied_and_reported(enforcement: Enforcement, policed: Container) -> None:
    deep = "/tmp/deep" + "/d" * 140
    # Made from the host: inside the container, mkdir past the limit is refused too.
    os.makedirs(f"/proc/{policed.pid}/root{deep}", exist_ok=True)
    result = policed.exec("sh", "-c", f"cd {deep} && echo x > f")
    assert result.returncode != 0
    (event,) = enforcement.wait_events()
    assert event.action == "deny" and event.truncated
    assert event.path.endswith("/d/d/f")  # the leaf side of what was resolved
    shutil.rmtree(f"/proc/{policed.pid}/root/tmp/deep")  # inside, past the limit, rm is refused


def test_a_path_too_long_to_resolve_is_denied_even_where_no_rule_is_near(
    enforcement: Enforcement, policed: Container
) -> None:
    """The walk down stops where no rule lies below, but the length of the whole path is
    known from the walk up: 20 components of 250 bytes (5,020 bytes, depth 21) are denied."""
    names = [f"{i:02d}" + "l" * 248 for i in range(20)]
    top = f"/proc/{policed.pid}/root/tmp"
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:  # made by dir fd: one path string this long is refused by the kernel
            os.mkdir(name, dir_fd=fd)
            fd, old = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
            os.close(old)
    finally:
        os.close(fd)
    try:
        # busybox cd keeps the whole path and refuses one past 4096 bytes: it goes half way,
        # the write names the rest relative to it
        script = f"cd /tmp/{'/'.join(names[:10])} && echo x > {'/'.join(names[10:])}/f"
        result = policed.exec("sh", "-c", script)
        assert result.returncode != 0 and "Operation not permitted" in result.stderr, result
        (event,) = enforcement.wait_events()
        assert event.action == "deny" and event.truncated
    finally:
        subprocess.run(["rm", "-rf", f"{top}/{names[0]}"], check=True)


def test_a_denial_deep_below_a_dir_rule_records_the_whole_path(enforcement: Enforcement, policed: Container) -> None:
    """The judging walk stops at /tmp/denied-tree (no rule lies below it); the record still
    names the file itself."""
    deep = "/tmp/denied-tree" + "/d" * 30 + "/secret"
    os.makedirs(f"/proc/{policed.pid}/root{os.path.dirname(deep)}", exist_ok=True)
    Path(f"/proc/{policed.pid}/root{deep}").write_text("x")
    try:
        enforcement.drain()
        result = policed.exec("cat", deep)
        assert "Operation not permitted" in result.stderr, result
        (event,) = enforcement.wait_events()
        assert (event.path, event.action, event.truncated) == (deep, "deny", False)
        ref = enforcement.rule(event)
        assert ref is not None and ref.policy == "proof"
        # beside it, a file as deep where no rule is near opens
        free = "/tmp/free-tree" + "/d" * 30 + "/file"
        os.makedirs(f"/proc/{policed.pid}/root{os.path.dirname(free)}", exist_ok=True)
        Path(f"/proc/{policed.pid}/root{free}").write_text("y")
        assert policed.exec("cat", free).stdout == "y"
    finally:
        shutil.rmtree(f"/proc/{policed.pid}/root/tmp/denied-tree", ignore_errors=True)
        shutil.rmtree(f"/proc/{policed.pid}/root/tmp/free-tree", ignore_errors=True)


def test_a_ruleset_written_before_prefix_markers_still_finds_its_dir_rules(
    enforcement: Enforcement, testbox: Container
) -> None:
    """A daemon upgraded with containers running: until it flips them to fresh rulesets,
    they point at rulesets written without markers (and without CT_PATH_MARKERS). The
    kernel must then look at every depth, not binary-search for marks that are not there."""
    compiled = enforcement.compiled
    old = type(compiled)({e: s for e, s in compiled.entries.items() if any(s)})  # no markers
    old_ruleset = RULESET + 1
    enforcement.maps.write_ruleset(old_ruleset, old)
    fields = enforcement.maps.container_fields(old)
    fields["flags"] &= ~enforcement.maps._abi.const("CT_PATH_MARKERS")  # as the old daemon wrote it
    cgroup = cgroup_of_pid(testbox.pid)
    enforcement.maps.set_container(cgroup.id, old_ruleset, fields)
    enforcement.drain()
    try:
        result = testbox.exec("cat", "/root/.ssh/id_rsa")
        assert "Operation not permitted" in result.stderr, result
        assert testbox.exec("cat", "/etc/passwd").returncode == 0
    finally:
        enforcement.maps.remove_container(cgroup.id)
        enforcement.maps.delete_ruleset(old_ruleset, old)


# -- the decision cache: a silent allow is remembered, and forgotten when anything it rests on moves


def cached_opens(enforcement: Enforcement) -> int:
    return enforcement.maps.stats()["STAT_OPEN_CACHED"]


def test_the_cache_is_on_in_this_kernel(enforcement: Enforcement) -> None:
    cache = enforcement.maps.open_cache
    assert cache is not None and cache.enabled, cache and cache.why_off


def test_an_allowed_file_opened_again_is_answered_from_the_cache_and_a_denied_one_every_time_by_the_rules(
    enforcement: Enforcement, policed: Container
) -> None:
    before = cached_opens(enforcement)
    loop = "for i in 1 2 3 4 5 6 7 8 9 10; do cat /etc/passwd >/dev/null; cat /etc/shadow 2>/dev/null; done"
    policed.exec("sh", "-c", loop)
    assert cached_opens(enforcement) - before >= 9  # every /etc/passwd open after the first
    events = enforcement.wait_events(10)
    assert [(e.path, e.action) for e in events] == [("/etc/shadow", "deny")] * 10
    assert enforcement.maps.counters(cgroup_of_pid(policed.pid).id) == {events[0].rule_id: 10}


@pytest.mark.parametrize("moved", ["the file", "its directory"])
def test_a_file_renamed_into_a_denied_dir_is_denied_at_once(
    enforcement: Enforcement, policed: Container, moved: str
) -> None:
    root = f"/proc/{policed.pid}/root"
    os.makedirs(f"{root}/tmp/denied-tree", exist_ok=True)
    Path(f"{root}/tmp/cache-dir").mkdir()
    Path(f"{root}/tmp/cache-dir/f").write_text("x")
    try:
        assert policed.exec("sh", "-c", "cat /tmp/cache-dir/f; cat /tmp/cache-dir/f").stdout == "xx"
        if moved == "the file":  # by the host: the rename hooks judge only the container's own
            os.rename(f"{root}/tmp/cache-dir/f", f"{root}/tmp/denied-tree/f")
            target = "/tmp/denied-tree/f"
        else:
            os.rename(f"{root}/tmp/cache-dir", f"{root}/tmp/denied-tree/cache-dir")
            target = "/tmp/denied-tree/cache-dir/f"
        enforcement.drain()
        result = policed.exec("cat", target)
        assert "Operation not permitted" in result.stderr, result
        (event,) = enforcement.wait_events()
        assert (event.path, event.action) == (target, "deny")
    finally:
        shutil.rmtree(f"{root}/tmp/cache-dir", ignore_errors=True)
        shutil.rmtree(f"{root}/tmp/denied-tree", ignore_errors=True)


def in_container_mounts(container: Container, *args: str) -> None:
    """Mount in the container's mount namespace as the host (the container may not)."""
    subprocess.run(["nsenter", "-t", str(container.pid), "-m", "--", "/bin/busybox", "mount", *args], check=True)


def test_a_mount_moved_under_a_denied_dir_is_denied_at_once(enforcement: Enforcement, policed: Container) -> None:
    root = f"/proc/{policed.pid}/root"
    os.makedirs(f"{root}/tmp/denied-tree/moved", exist_ok=True)
    os.makedirs(f"{root}/tmp/cache-mnt", exist_ok=True)
    in_container_mounts(policed, "-t", "tmpfs", "-o", "size=1m", "cache", "/tmp/cache-mnt")
    where = "/tmp/cache-mnt"
    try:
        Path(f"{root}/tmp/cache-mnt/f").write_text("x")
        assert policed.exec("sh", "-c", "cat /tmp/cache-mnt/f; cat /tmp/cache-mnt/f").stdout == "xx"
        in_container_mounts(policed, "--move", "/tmp/cache-mnt", "/tmp/denied-tree/moved")
        where = "/tmp/denied-tree/moved"
        enforcement.drain()
        result = policed.exec("cat", "/tmp/denied-tree/moved/f")  # same dentry, same mount
        assert "Operation not permitted" in result.stderr, result
    finally:
        subprocess.run(["nsenter", "-t", str(policed.pid), "-m", "--", "/bin/busybox", "umount", where], check=False)
        shutil.rmtree(f"{root}/tmp/denied-tree", ignore_errors=True)
        shutil.rmtree(f"{root}/tmp/cache-mnt", ignore_errors=True)


def test_a_policy_change_denies_a_file_the_cache_had_allowed(enforcement: Enforcement, policed: Container) -> None:
    root = f"/proc/{policed.pid}/root"
    Path(f"{root}/tmp/cache-policy").write_text("x")
    file_rule = "    - action: deny\n      paths: [/tmp/cache-policy]\n"
    stricter_policy, errors = parse_text(POLICY.replace("  exec:\n", file_rule + "  exec:\n"), "proof.yaml")
    assert not errors, errors
    stricter = compile_paths(merge(p.policy for p in stricter_policy), RuleTable())
    ruleset = RULESET + 2
    cgroup = cgroup_of_pid(policed.pid)
    try:
        assert policed.exec("sh", "-c", "cat /tmp/cache-policy; cat /tmp/cache-policy").stdout == "xx"
        enforcement.maps.write_ruleset(ruleset, stricter)
        enforcement.maps.set_container(cgroup.id, ruleset, enforcement.maps.container_fields(stricter))
        result = policed.exec("cat", "/tmp/cache-policy")
        assert "Operation not permitted" in result.stderr, result
    finally:
        enforcement.maps.set_container(cgroup.id, RULESET, enforcement.maps.container_fields(enforcement.compiled))
        enforcement.maps.delete_ruleset(ruleset, stricter)
        os.unlink(f"{root}/tmp/cache-policy")
