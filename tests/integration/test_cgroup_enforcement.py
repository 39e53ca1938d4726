"""Device, network and socket rules by the cgroup programs, on real containers.

Runs twice: on the host (hybrid cgroups, kernel 6.18, v1 devices controller beside our
program) and in the VM (pure cgroup v2, Debian kernel, runc's own device program beside
ours): the `phase` parameter carries the host_bpf or the lsm mark, so each phase of
scripts/test picks its own copy. Network probes use loopback addresses only.

A static `probe` binary (tests/integration/helpers/probe.c) is copied into the container:
it makes exactly one system call and prints "ok" or the errno name, so a denial (EPERM) is
told apart from a refused connection (ECONNREFUSED: allowed, nothing listens).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from enforcer.audit.events import Event, EventDecoder
from enforcer.compiler.rules import RuleRef, RuleTable
from enforcer.compiler.ruleset import compile_ruleset
from enforcer.containers.cgroups import cgroup_of_pid
from enforcer.containers.model import ContainerInfo
from enforcer.kernel.build import ensure_built
from enforcer.kernel.cgroup_enforcement import (
    CGROUP_PROGRAMS,
    CgroupEnforcement,
    cgroup_links_dir,
)
from enforcer.kernel.enforcement import RulesetPart
from enforcer.kernel.loader import load_cgroup, unload
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.policy.loader import parse_text
from enforcer.policy.merge import merge
from enforcer.pybpf import BpfObject, Map, RingBuffer
from enforcer.pybpf.constants import AttachType
from enforcer.pybpf.programs import prog_info_by_id, prog_query
from tests.integration.dockerd import Container, PrivateDockerd, run_container
from tests.integration.helpers import build_probe

pytestmark = [pytest.mark.docker]

PHASES = [
    pytest.param("host", marks=pytest.mark.host_bpf, id="host"),
    pytest.param("vm", marks=pytest.mark.lsm, id="vm"),
]

POLICIES = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: cgtest}
spec:
  device:
    - {action: deny, type: char, major: 1, minor: 5, access: [read]}   # /dev/zero, read only
    - {action: audit, type: char, major: 1, minor: 9}                   # /dev/urandom
    - {action: deny, type: char, major: 1, minor: 3, access: [mknod]}  # a new null device node
    - {action: allow, type: char, major: 1, minor: 1}                   # /dev/mem: Docker still denies
  network:
    - {action: deny, direction: egress, protocol: tcp, cidrs: [127.0.0.2/32], ports: [8080]}
    - {action: deny, direction: egress, cidrs: ["::1/128"], ports: ["8000-8100"]}
    - {action: deny, direction: egress, protocol: udp, cidrs: [127.0.0.3/32]}
    - {action: audit, direction: egress, cidrs: [127.0.0.4/32]}
    - {action: deny, direction: ingress, cidrs: [127.0.0.5/32], ports: [9090]}
    - {action: deny, direction: egress, cidrs: [127.0.0.0/8], ports: [7070]}
    - {action: allow, direction: egress, cidrs: [127.0.0.1/32], ports: [7070]}
  socket:
    - {action: deny, families: [inet, inet6], types: [raw]}
    - {action: deny, families: [packet]}
---
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: cgwatch}
spec:
  mode: audit
  network:
    - {action: deny, direction: egress, cidrs: [127.0.0.6/32]}
"""
RULESET = 7
ALLOWED_CONNECT = {"ECONNREFUSED", "ENETUNREACH", "EADDRNOTAVAIL"}  # not ours: the stack's


@dataclass
class CgroupKernel:
    enforcement: CgroupEnforcement
    maps: PolicyMaps
    table: RuleTable
    part: RulesetPart
    pin_root: Path
    loaded_maps: dict[str, Map]
    lsm_sockets: bool  # the LSM socket_create program runs (VM): packet sockets are judged
    ring: RingBuffer | None = None
    events: list[Event] = field(default_factory=list)

    def drain(self) -> None:
        assert self.ring is not None
        self.ring.consume()
        self.events.clear()

    def wait_events(self, n: int = 1, timeout: float = 5.0) -> list[Event]:
        assert self.ring is not None
        end = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < end:
            self.ring.poll(100)
        self.ring.poll(50)  # and anything beyond n: tests check the exact number
        return list(self.events)

    def rule(self, event: Event) -> RuleRef | None:
        return self.table.ref_for(event.rule_id)

    def rule_id(self, policy: str, rule: str) -> int:
        return self.table.id_for(RuleRef(policy, rule))

    def put_under_policy(self, info: ContainerInfo) -> None:
        self.enforcement.attach(info)
        self.maps.set_container(info.cgroup.id, RULESET, self.part.container_fields)

    def release(self, info: ContainerInfo) -> dict[int, int]:
        counts = self.maps.remove_container(info.cgroup.id)
        self.enforcement.detach(info)
        return counts


@pytest.fixture(scope="module")
def probe_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_probe(tmp_path_factory.mktemp("probe"))


@pytest.fixture(scope="module", params=PHASES)
def kernel(request: pytest.FixtureRequest) -> Iterator[CgroupKernel]:
    pin_root = Path(f"/sys/fs/bpf/enforcer-cgtest-{os.getpid()}")
    built = ensure_built()
    loaded = load_cgroup(built, pin_root)
    lsm_link = None
    try:
        if request.param == "vm":  # BPF-LSM loads there: the socket_create program too
            obj = BpfObject(str(built.path("lsm_sock")), pin_root_path=str(pin_root / "maps"))
            loaded.objects.append(obj)
            obj.load()
            lsm_link = obj.program("enforcer_socket_create").attach_lsm()
        policies, errors = parse_text(POLICIES, "cgtest.yaml")
        assert not errors, errors
        table = RuleTable()
        programs = {name: loaded.program(name) for name in CGROUP_PROGRAMS}
        enforcement = CgroupEnforcement(loaded.abi, loaded.maps, programs, pin_root, lsm_sockets=lsm_link is not None)
        part = enforcement.write_ruleset(RULESET, compile_ruleset(merge(p.policy for p in policies), table, loaded.abi))
        k = CgroupKernel(
            enforcement,
            PolicyMaps(loaded.abi, loaded.maps),
            table,
            part,
            pin_root,
            loaded.maps,
            lsm_sockets=lsm_link is not None,
        )
        decoder = EventDecoder(loaded.abi)
        k.ring = RingBuffer(
            loaded.maps["events"], lambda raw: k.events.append(e) if (e := decoder.decode(raw)) else None
        )
        try:
            yield k
        finally:
            k.ring.close()
            enforcement.delete_ruleset(RULESET, part)
    finally:
        if lsm_link is not None:
            lsm_link.destroy()
        loaded.close()
        unload(pin_root)


def container_info(c: Container) -> ContainerInfo:
    return ContainerInfo(
        id=c.id, name=c.name, image="enforcer-testbox", labels={}, pid=c.pid, cgroup=cgroup_of_pid(c.pid)
    )


@pytest.fixture(scope="module")
def box(
    kernel: CgroupKernel, dockerd: PrivateDockerd, testbox_image: str, probe_binary: Path
) -> Iterator[tuple[Container, ContainerInfo]]:
    """A container of this module, with /bin/probe, under the test policies."""
    c = run_container(dockerd, testbox_image, "sleep", "1000000", name=f"cgtest-{os.getpid()}")
    try:
        dockerd.cli("cp", str(probe_binary), f"{c.id}:/bin/probe")
        info = container_info(c)
        kernel.put_under_policy(info)
        try:
            yield c, info
        finally:
            kernel.release(info)
    finally:
        c.remove()


@pytest.fixture
def policed(kernel: CgroupKernel, box: tuple[Container, ContainerInfo]) -> Container:
    kernel.drain()
    return box[0]


def probe(c: Container, *args: str) -> str:
    return c.exec("/bin/probe", *args).stdout.strip()


# ----- network ----------------------------------------------------------------------------
def test_tcp_connect_to_a_denied_address_and_port_is_eperm_and_one_record(
    kernel: CgroupKernel, policed: Container
) -> None:
    assert probe(policed, "connect", "127.0.0.2", "8080", "tcp") == "EPERM"
    (event,) = kernel.wait_events()
    assert (event.hook, event.action, event.comm) == ("connect", "deny", "probe")
    assert event.target() == {"family": "inet", "protocol": "tcp", "address": "127.0.0.2", "port": 8080}
    assert kernel.rule(event) == RuleRef("cgtest", "network[0]")
    assert event.cgroup_id == cgroup_of_pid(policed.pid).id


def test_neighbouring_addresses_ports_and_protocols_stay_reachable(kernel: CgroupKernel, policed: Container) -> None:
    assert probe(policed, "connect", "127.0.0.1", "8080", "tcp") == "ECONNREFUSED"
    assert probe(policed, "connect", "127.0.0.2", "8081", "tcp") == "ECONNREFUSED"
    assert probe(policed, "connect", "127.0.0.2", "8080", "udp") == "ok"  # the rule is tcp only
    assert kernel.wait_events(timeout=0.5) == []


def test_ipv6_rule_denies_loopback_in_its_port_range(kernel: CgroupKernel, policed: Container) -> None:
    assert probe(policed, "connect", "::1", "8050", "tcp") == "EPERM"
    assert probe(policed, "connect", "::1", "9000", "tcp") in ALLOWED_CONNECT
    (event,) = kernel.wait_events()
    assert event.target() == {"family": "inet6", "protocol": "tcp", "address": "::1", "port": 8050}
    assert kernel.rule(event) == RuleRef("cgtest", "network[1]")


def test_ipv4_mapped_ipv6_address_hits_the_ipv4_rule(kernel: CgroupKernel, policed: Container) -> None:
    assert probe(policed, "connect", "::ffff:127.0.0.2", "8080", "tcp") == "EPERM"
    assert probe(policed, "connect", "::ffff:127.0.0.1", "8080", "tcp") == "ECONNREFUSED"
    (event,) = kernel.wait_events()
    assert event.target() == {"family": "inet6", "protocol": "tcp", "address": "::ffff:127.0.0.2", "port": 8080}
    assert kernel.rule(event) == RuleRef("cgtest", "network[0]")


def test_udp_sendmsg_to_a_denied_address_is_eperm(kernel: CgroupKernel, policed: Container) -> None:
    assert probe(policed, "sendto", "127.0.0.3", "53") == "EPERM"
    assert probe(policed, "sendto", "::ffff:127.0.0.3", "53") == "EPERM"
    assert probe(policed, "sendto", "127.0.0.1", "53") == "ok"
    events = kernel.wait_events(2)
    # A v4-mapped destination on an IPv6 UDP socket is sent by the IPv4 code: the kernel
    # runs the sendmsg4 hook with the IPv4 address.
    assert [(e.hook, e.action, e.target()) for e in events] == [
        ("sendmsg", "deny", {"family": "inet", "protocol": "udp", "address": "127.0.0.3", "port": 53}),
    ] * 2
    assert {kernel.rule(e) for e in events} == {RuleRef("cgtest", "network[2]")}


def test_bind_to_a_denied_address_and_port_is_eperm(kernel: CgroupKernel, policed: Container) -> None:
    assert probe(policed, "bind", "127.0.0.5", "9090", "tcp") == "EPERM"
    assert probe(policed, "bind", "::ffff:127.0.0.5", "9090", "udp") == "EPERM"
    assert probe(policed, "bind", "127.0.0.5", "9091", "tcp") == "ok"
    events = kernel.wait_events(2)
    assert [(e.hook, e.target()["address"], e.target()["port"]) for e in events] == [
        ("bind", "127.0.0.5", 9090),
        ("bind", "::ffff:127.0.0.5", 9090),
    ]


def test_the_most_specific_network_rule_wins(kernel: CgroupKernel, policed: Container) -> None:
    assert probe(policed, "connect", "127.0.0.9", "7070", "tcp") == "EPERM"  # 127.0.0.0/8 deny
    assert probe(policed, "connect", "127.0.0.1", "7070", "tcp") == "ECONNREFUSED"  # /32 allow
    (event,) = kernel.wait_events()
    assert kernel.rule(event) == RuleRef("cgtest", "network[5]")


def test_audit_rules_and_audit_mode_record_without_denying(kernel: CgroupKernel, policed: Container) -> None:
    assert probe(policed, "connect", "127.0.0.4", "80", "tcp") == "ECONNREFUSED"
    assert probe(policed, "connect", "127.0.0.6", "80", "tcp") == "ECONNREFUSED"
    events = kernel.wait_events(2)
    assert [(e.action, kernel.rule(e)) for e in events] == [
        ("audit", RuleRef("cgtest", "network[3]")),
        ("audit", RuleRef("cgwatch", "network[0]")),
    ]


def test_every_denial_is_counted_exactly(kernel: CgroupKernel, policed: Container) -> None:
    cgid = cgroup_of_pid(policed.pid).id
    rid = kernel.rule_id("cgtest", "network[0]")
    before = kernel.maps.counters(cgid).get(rid, 0)
    script = "for i in 1 2 3 4 5 6 7; do /bin/probe connect 127.0.0.2 8080 tcp; done"
    assert policed.exec("sh", "-c", script).stdout.split() == ["EPERM"] * 7
    assert len(kernel.wait_events(7)) == 7
    assert kernel.maps.counters(cgid)[rid] == before + 7


def test_identical_repeats_within_the_fold_window_are_one_event_and_the_rest_wait_in_the_kernel(
    kernel: CgroupKernel, policed: Container
) -> None:
    cgid = cgroup_of_pid(policed.pid).id
    rid = kernel.rule_id("cgtest", "network[1]")  # ::1, ports 8000-8100
    before = kernel.maps.counters(cgid).get(rid, 0)
    kernel.maps.set_fold_window(60_000)  # long enough for a slow VM's seven docker-exec'd probes
    try:
        script = "for i in 1 2 3 4 5 6 7; do /bin/probe connect ::1 8080 tcp; done"
        assert policed.exec("sh", "-c", script).stdout.split() == ["EPERM"] * 7
        assert probe(policed, "connect", "::1", "8081", "tcp") == "EPERM"  # another target
        events = kernel.wait_events(3)
        waiting = kernel.maps.take_folds()
    finally:
        kernel.maps.set_fold_window(0)
    assert [(e.target()["port"], e.count) for e in events] == [(8080, 1), (8081, 1)]
    assert [(key, n) for key, n, _last in waiting] == [((cgid, rid, events[0].fold), 6)]  # sent as no event
    assert waiting[0][2] > events[0].ktime_ns  # the latest repeat's time
    assert events[0].fold != events[1].fold
    assert kernel.maps.counters(cgid)[rid] == before + 8 == before + sum(e.count for e in events) + 6


def test_processes_outside_the_container_are_not_affected(
    kernel: CgroupKernel, policed: Container, probe_binary: Path
) -> None:
    out = subprocess.run(
        [str(probe_binary), "connect", "127.0.0.2", "8080", "tcp"], capture_output=True, text=True, check=False
    ).stdout.strip()
    assert out == "ECONNREFUSED"
    assert kernel.wait_events(timeout=0.5) == []


def test_a_process_in_a_child_cgroup_of_the_container_is_held_to_its_rules(
    kernel: CgroupKernel, box: tuple[Container, ContainerInfo]
) -> None:
    c, info = box
    kernel.drain()
    child = Path(info.cgroup.path) / "nested"
    child.mkdir()
    try:
        c.exec("sh", "-c", "rm -f /tmp/go /tmp/nested.out")
        c.daemon.cli(
            "exec",
            "-d",
            c.id,
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.05; done; /bin/probe connect 127.0.0.2 8080 tcp > /tmp/nested.out",
        )
        pid = _wait_for_waiter(Path(info.cgroup.path))
        (child / "cgroup.procs").write_text(str(pid))
        c.exec("touch", "/tmp/go")
        for _ in range(100):
            if c.exec("cat", "/tmp/nested.out").stdout.strip():
                break
            time.sleep(0.05)
        assert c.exec("cat", "/tmp/nested.out").stdout.strip() == "EPERM"
        (event,) = kernel.wait_events()
        assert event.cgroup_id == info.cgroup.id  # counted for the container, not the child
    finally:
        for _ in range(100):
            try:
                child.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def _wait_for_waiter(cgroup: Path) -> int:
    for _ in range(100):
        for pid in (cgroup / "cgroup.procs").read_text().split():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"/tmp/go" in cmd:
                return int(pid)
        time.sleep(0.05)
    raise AssertionError("the waiting shell did not start")


# ----- sockets ----------------------------------------------------------------------------
def test_raw_sockets_are_denied_other_inet_sockets_are_not(kernel: CgroupKernel, policed: Container) -> None:
    assert probe(policed, "socket", "inet", "raw") == "EPERM"
    assert probe(policed, "socket", "inet6", "raw") == "EPERM"
    assert probe(policed, "socket", "inet", "dgram") == "ok"
    assert probe(policed, "socket", "inet6", "stream") == "ok"
    events = kernel.wait_events(2)
    assert [(e.hook, e.action, e.target()) for e in events] == [
        ("sock_create", "deny", {"family": "inet", "type": "raw"}),
        ("sock_create", "deny", {"family": "inet6", "type": "raw"}),
    ]
    assert {kernel.rule(e) for e in events} == {RuleRef("cgtest", "socket[0]")}


def test_packet_sockets_are_denied_where_the_lsm_program_runs(kernel: CgroupKernel, policed: Container) -> None:
    result = probe(policed, "socket", "packet", "dgram")
    events = kernel.wait_events(timeout=2 if kernel.lsm_sockets else 0.5)
    if kernel.lsm_sockets:
        assert result == "EPERM"
        assert [(e.hook, e.action, e.target(), kernel.rule(e)) for e in events] == [
            ("sock_create", "deny", {"family": "packet", "type": "dgram"}, RuleRef("cgtest", "socket[1]"))
        ]
    else:  # cgroup/sock_create never sees AF_PACKET; the daemon logs it as NOT ENFORCED
        assert result == "ok"
        assert events == []
        assert kernel.part.compiled.sockets.families_beyond_cgroup() == ("packet",)


# ----- devices ----------------------------------------------------------------------------
def test_device_read_denied_by_the_rule_write_and_other_devices_not(kernel: CgroupKernel, policed: Container) -> None:
    assert probe(policed, "open", "/dev/zero", "r") == "EPERM"
    assert probe(policed, "open", "/dev/zero", "w") == "ok"  # the rule names read only
    assert probe(policed, "open", "/dev/null", "rw") == "ok"
    (event,) = kernel.wait_events()
    assert (event.hook, event.action) == ("device", "deny")
    assert event.target() == {"type": "char", "major": 1, "minor": 5, "access": "read"}
    assert kernel.rule(event) == RuleRef("cgtest", "device[0]")


def test_device_audit_rule_records_the_open(kernel: CgroupKernel, policed: Container) -> None:
    assert probe(policed, "open", "/dev/urandom", "rw") == "ok"
    (event,) = kernel.wait_events()
    assert (event.action, event.target()) == ("audit", {"type": "char", "major": 1, "minor": 9, "access": "read+write"})


def test_mknod_denied_by_the_rule(kernel: CgroupKernel, policed: Container) -> None:
    policed.exec("rm", "-f", "/tmp/null2")
    assert probe(policed, "mknod", "/tmp/null2", "c", "1", "3") == "EPERM"
    (event,) = kernel.wait_events()
    assert event.target() == {"type": "char", "major": 1, "minor": 3, "access": "mknod"}


def test_a_device_docker_denies_stays_denied_whatever_the_policy_allows(
    kernel: CgroupKernel, policed: Container
) -> None:
    policed.exec("rm", "-f", "/tmp/mem")
    assert probe(policed, "mknod", "/tmp/mem", "c", "1", "1") == "ok"  # Docker allows mknod
    assert probe(policed, "open", "/tmp/mem", "r") == "EPERM"  # ... and denies the open
    assert kernel.wait_events(timeout=0.5) == []  # not ours: the policy allows it


def test_our_device_program_runs_beside_the_others_on_the_cgroup(
    box: tuple[Container, ContainerInfo],
) -> None:
    _, info = box
    ids = prog_query(info.cgroup.path, AttachType.CGROUP_DEVICE).prog_ids
    names = [prog_info_by_id(i).name for i in ids]
    assert "enforcer_device" in names
    if Path("/sys/fs/cgroup/devices").is_dir():  # hybrid: the v1 controller is runc's tool
        assert names == ["enforcer_device"]
    else:  # cgroup v2: runc's own device program stays attached
        assert len(names) == 2


def test_docker_update_still_works_and_every_device_rule_still_holds(
    kernel: CgroupKernel, box: tuple[Container, ContainerInfo]
) -> None:
    # On cgroup v2, runc detaches every other device program it finds on the container's
    # cgroup when it (re)applies its own filter, and fails if it cannot (ours is a link). It
    # applies it at start only: `runc update` skips devices (SkipDevices), so an update
    # neither fails nor loses a rule.
    c, _ = box
    result = c.daemon.cli("update", "--cpu-shares", "512", c.id, check=False)
    assert result.returncode == 0, result.stderr
    c.exec("rm", "-f", "/tmp/mem")
    kernel.drain()
    assert probe(c, "mknod", "/tmp/mem", "c", "1", "1") == "ok"
    assert probe(c, "open", "/tmp/mem", "r") == "EPERM"  # Docker's rule
    assert probe(c, "open", "/dev/zero", "r") == "EPERM"  # ours
    assert [kernel.rule(e) for e in kernel.wait_events()] == [RuleRef("cgtest", "device[0]")]


# ----- lifecycle --------------------------------------------------------------------------
def test_release_at_container_removal_leaves_no_links_or_map_entries(
    kernel: CgroupKernel, dockerd: PrivateDockerd, testbox_image: str, probe_binary: Path
) -> None:
    c = run_container(dockerd, testbox_image, "sleep", "1000000", name=f"cgtest-rm-{os.getpid()}")
    try:
        info = container_info(c)
        kernel.put_under_policy(info)
        links = cgroup_links_dir(kernel.pin_root, info.cgroup.id)
        assert sorted(p.name for p in links.iterdir()) == sorted(CGROUP_PROGRAMS)
        assert len(prog_query(info.cgroup.path, AttachType.CGROUP_INET4_CONNECT).prog_ids) == 1
        dockerd.cli("cp", str(probe_binary), f"{c.id}:/bin/probe")
        kernel.drain()
        assert probe(c, "socket", "inet", "raw") == "EPERM"
        assert len(kernel.wait_events()) == 1
    finally:
        c.remove()
    counts = kernel.release(info)
    assert counts == {kernel.rule_id("cgtest", "socket[0]"): 1}
    assert not links.exists()
    assert kernel.maps.counters(info.cgroup.id) == {}
    cgid = info.cgroup.id.to_bytes(8, "little")
    assert kernel.loaded_maps["containers"].lookup(cgid) is None
