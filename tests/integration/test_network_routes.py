"""Network rules hold for what actually leaves and arrives, by every route an attacker in a
container with Docker's default capabilities has.

Runs on the host (kernel 6.18: cgroup programs load there) and in the VM (Debian's kernel),
as test_cgroup_enforcement does. One container (`--network none`) for the module; it runs
with seccomp unconfined, so io_uring is open to it and our hook, not seccomp, is what
stops it. Every address is a loopback address of the container's own network namespace
(127.0.0.0/8, ::1).

Two rulesets, one container: ROUTES (rules written for each route) and METADATA (the
shipped policies/network-metadata.yaml, its CIDRs replaced by loopback stand-ins). The routes of
a table run in one `docker exec` (run_routes), once per module, each route then checked by
its own test.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from enforcer.audit.events import Event, EventDecoder, NetEvent
from enforcer.compiler.rules import RuleRef, RuleTable
from enforcer.compiler.ruleset import compile_ruleset
from enforcer.containers.cgroups import cgroup_of_pid
from enforcer.containers.model import ContainerInfo
from enforcer.kernel.build import ensure_built
from enforcer.kernel.cgroup_enforcement import CGROUP_PROGRAMS, CgroupEnforcement
from enforcer.kernel.enforcement import RulesetPart
from enforcer.kernel.loader import load_cgroup, unload
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.policy.loader import parse_text
from enforcer.policy.merge import merge
from enforcer.pybpf import RingBuffer
from tests.integration.dockerd import Container, PrivateDockerd, run_container
from tests.integration.helpers import build_probe

pytestmark = [pytest.mark.docker]

PHASES = [
    pytest.param("host", marks=pytest.mark.host_bpf, id="host"),
    pytest.param("vm", marks=pytest.mark.lsm, id="vm"),
]

ROUTES_POLICY = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: routes}
spec:
  network:
    - {action: deny, direction: egress, cidrs: [127.0.0.1/32], ports: [7001]}
    - {action: deny, direction: egress, cidrs: [127.0.0.9/32], ports: [7003]}
    - {action: deny, direction: egress, cidrs: ["::1/128"], ports: [7001]}
    - {action: deny, direction: egress, cidrs: [127.0.0.30/32]}
    - {action: deny, direction: egress, cidrs: [127.0.0.31/32], ports: [5000]}
    - {action: deny, direction: egress, protocol: udp, cidrs: [127.0.0.32/32]}
    - {action: deny, direction: egress, protocol: tcp, cidrs: [127.0.0.2/32], ports: [8080]}
    - {action: deny, direction: ingress, cidrs: [127.0.0.7/32], ports: ["9000-9010"]}
    - {action: deny, direction: ingress, ports: [9500]}
    - {action: audit, direction: egress, cidrs: [127.0.0.33/32]}
"""
METADATA_FILE = Path(__file__).parents[2] / "policies" / "network-metadata.yaml"
METADATA_V4, METADATA_V6 = "127.0.0.40", "::1"  # stand-ins for 169.254.169.254, fd00:ec2::254
ROUTES, METADATA = 21, 22


def metadata_policy_text() -> str:
    text = METADATA_FILE.read_text()
    assert "169.254.169.254/32" in text and "fd00:ec2::254/128" in text
    return text.replace("169.254.169.254/32", f"{METADATA_V4}/32").replace("fd00:ec2::254/128", f"{METADATA_V6}/128")


@dataclass
class NetKernel:
    enforcement: CgroupEnforcement
    maps: PolicyMaps
    table: RuleTable
    parts: dict[int, RulesetPart]
    ring: RingBuffer
    events: list[Event] = field(default_factory=list)
    batches: dict[str, tuple[list[str], list[NetEvent]]] = field(default_factory=dict)

    def use(self, info: ContainerInfo, ruleset: int) -> None:
        self.maps.set_container(info.cgroup.id, ruleset, self.parts[ruleset].container_fields)
        self.ring.consume()
        self.events.clear()

    def wait_events(self, n: int = 1, timeout: float = 5.0) -> list[NetEvent]:
        end = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < end:
            self.ring.poll(100)
        self.ring.poll(200)  # and anything beyond n: tests check the exact number
        out = [e for e in self.events if isinstance(e, NetEvent)]
        self.events.clear()
        return out

    def rule(self, event: Event) -> RuleRef | None:
        return self.table.ref_for(event.rule_id)


@pytest.fixture(scope="module", params=PHASES)
def kernel(request: pytest.FixtureRequest) -> Iterator[NetKernel]:
    pin_root = Path(f"/sys/fs/bpf/enforcer-nettest-{os.getpid()}")
    loaded = load_cgroup(ensure_built(), pin_root)
    try:
        table = RuleTable()
        programs = {name: loaded.program(name) for name in CGROUP_PROGRAMS}
        enforcement = CgroupEnforcement(loaded.abi, loaded.maps, programs, pin_root)
        parts: dict[int, RulesetPart] = {}
        for ruleset, text in ((ROUTES, ROUTES_POLICY), (METADATA, metadata_policy_text())):
            policies, errors = parse_text(text, "nettest.yaml")
            assert not errors, errors
            compiled = compile_ruleset(merge(p.policy for p in policies), table, loaded.abi)
            parts[ruleset] = enforcement.write_ruleset(ruleset, compiled)
        decoder = EventDecoder(loaded.abi)
        events: list[Event] = []
        ring = RingBuffer(loaded.maps["events"], lambda raw: events.append(e) if (e := decoder.decode(raw)) else None)
        k = NetKernel(enforcement, PolicyMaps(loaded.abi, loaded.maps), table, parts, ring, events)
        try:
            yield k
        finally:
            ring.close()
            for ruleset, part in parts.items():
                enforcement.delete_ruleset(ruleset, part)
    finally:
        loaded.close()
        unload(pin_root)


@pytest.fixture(scope="module")
def box(
    kernel: NetKernel, dockerd: PrivateDockerd, testbox_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Container, ContainerInfo]]:
    probe_binary = build_probe(tmp_path_factory.mktemp("probe"))
    c = run_container(
        dockerd,
        testbox_image,
        "sleep",
        "1000000",
        name=f"nettest-{os.getpid()}",
        extra_args=[
            "--security-opt",
            "seccomp=unconfined",
            "--sysctl",
            "net.ipv4.ping_group_range=0 2147483647",
            "--sysctl",
            "net.ipv6.conf.all.disable_ipv6=0",
            "--sysctl",
            "net.ipv6.conf.lo.disable_ipv6=0",
        ],
    )
    try:
        dockerd.cli("cp", str(probe_binary), f"{c.id}:/bin/probe")
        info = ContainerInfo(
            id=c.id, name=c.name, image="enforcer-testbox", labels={}, pid=c.pid, cgroup=cgroup_of_pid(c.pid)
        )
        kernel.enforcement.attach(info)
        kernel.use(info, ROUTES)
        try:
            yield c, info
        finally:
            kernel.maps.remove_container(info.cgroup.id)
            kernel.enforcement.detach(info)
    finally:
        c.remove()


def run_routes(
    kernel: NetKernel, box: tuple[Container, ContainerInfo], ruleset: int, routes: list[tuple[str, ...]], events: int
) -> tuple[list[str], list[NetEvent]]:
    """Every route of a table in one `docker exec` (a start costs seconds in the VM), once
    per module: one result line per route, and the records, in the order of the routes."""
    key = f"{ruleset}:{routes!r}"
    if key not in kernel.batches:
        c, info = box
        kernel.use(info, ruleset)
        script = "; ".join("/bin/probe " + " ".join(args) for args in routes)
        lines = c.exec("sh", "-c", script, timeout=600).stdout.splitlines()
        assert len(lines) == len(routes), lines
        kernel.batches[key] = (lines, kernel.wait_events(events, timeout=10))
    return kernel.batches[key]


def target(family: str, protocol: str, address: str, port: int) -> dict[str, object]:
    return {"family": family, "protocol": protocol, "address": address, "port": port}


# ----- egress: each route against a deny rule ---------------------------------------------
EGRESS_DENIED = [
    # (route, probe arguments, the record's hook, target, rule)
    (
        "tcp connect to 0.0.0.0 reaches 127.0.0.1",
        ("connect", "0.0.0.0", "7001", "tcp"),
        "connect",
        target("inet", "tcp", "127.0.0.1", 7001),
        "network[0]",
    ),
    (
        "udp send to 0.0.0.0 reaches 127.0.0.1",
        ("sendto", "0.0.0.0", "7001"),
        "sendmsg",
        target("inet", "udp", "127.0.0.1", 7001),
        "network[0]",
    ),
    (
        "tcp connect to 0.0.0.0 reaches the bound address",
        ("connect-from", "127.0.0.9", "0.0.0.0", "7003", "tcp"),
        "connect",
        target("inet", "tcp", "127.0.0.9", 7003),
        "network[1]",
    ),
    (
        "udp send to 0.0.0.0 reaches the bound address",
        ("sendto-from", "127.0.0.9", "0.0.0.0", "7003"),
        "sendmsg",
        target("inet", "udp", "127.0.0.9", 7003),
        "network[1]",
    ),
    (
        "tcp connect to :: reaches ::1",
        ("connect", "::", "7001", "tcp"),
        "connect",
        target("inet6", "tcp", "::1", 7001),
        "network[2]",
    ),
    (
        "udp send to :: reaches ::1",
        ("sendto", "::", "7001"),
        "sendmsg",
        target("inet6", "udp", "::1", 7001),
        "network[2]",
    ),
    (
        "raw socket, hand-built UDP datagram",
        ("raw", "127.0.0.30", "17", "53"),
        "egress",
        target("inet", "udp", "127.0.0.30", 53),
        "network[3]",
    ),
    (
        "raw socket, hand-built UDP datagram, IPv6",
        ("raw", "::1", "17", "7001"),
        "egress",
        target("inet6", "udp", "::1", 7001),
        "network[2]",
    ),
    (
        "raw UDP meets a udp-only rule",
        ("raw", "127.0.0.32", "17", "53"),
        "egress",
        target("inet", "udp", "127.0.0.32", 53),
        "network[5]",
    ),
    ("ICMP ping socket", ("ping", "127.0.0.30"), "egress", target("inet", "icmp", "127.0.0.30", 0), "network[3]"),
    (
        "SCTP packet, judged by its port",
        ("raw", "127.0.0.31", "132", "5000"),
        "egress",
        target("inet", "sctp", "127.0.0.31", 5000),
        "network[4]",
    ),
    (
        "DCCP packet, judged by its port",
        ("raw", "127.0.0.31", "33", "5000"),
        "egress",
        target("inet", "dccp", "127.0.0.31", 5000),
        "network[4]",
    ),
    ("TCP Fast Open", ("tfo", "127.0.0.2", "8080"), "connect", target("inet", "tcp", "127.0.0.2", 8080), "network[6]"),
    ("MPTCP", ("mptcp", "127.0.0.2", "8080"), "connect", target("inet", "tcp", "127.0.0.2", 8080), "network[6]"),
    (
        "io_uring connect",
        ("uring-connect", "127.0.0.2", "8080"),
        "connect",
        target("inet", "tcp", "127.0.0.2", 8080),
        "network[6]",
    ),
]
EGRESS_ALLOWED = [
    # (route, probe arguments, result): the same routes where no rule denies
    ("tcp connect to 0.0.0.0, another port", ("connect", "0.0.0.0", "7002", "tcp"), "ECONNREFUSED"),
    ("udp send to 0.0.0.0, another port", ("sendto", "0.0.0.0", "7002"), "ok"),
    (
        "tcp connect to 0.0.0.0 from a bound address, another port",
        ("connect-from", "127.0.0.9", "0.0.0.0", "7004", "tcp"),
        "ECONNREFUSED",
    ),
    ("tcp connect to ::, another port", ("connect", "::", "7002", "tcp"), "ECONNREFUSED"),
    ("raw UDP to an address no rule names", ("raw", "127.0.0.1", "17", "53"), "ok"),
    ("ping to an address no rule names", ("ping", "127.0.0.1"), "ok"),
    ("ping ::1 (its rule names a port)", ("ping", "::1"), "ok"),
    ("ping meets a udp-only rule", ("ping", "127.0.0.32"), "ok"),
    ("SCTP packet to another port", ("raw", "127.0.0.31", "132", "5001"), "ok"),
    ("TCP Fast Open, another port", ("tfo", "127.0.0.2", "8081"), "ECONNREFUSED"),
    ("MPTCP, another port", ("mptcp", "127.0.0.2", "8081"), "ECONNREFUSED"),
    ("io_uring connect, another port", ("uring-connect", "127.0.0.2", "8081"), "ECONNREFUSED"),
]


@pytest.mark.parametrize("i", range(len(EGRESS_DENIED)), ids=[r[0] for r in EGRESS_DENIED])
def test_egress_route_to_a_denied_destination_is_eperm_with_one_record(
    kernel: NetKernel, box: tuple[Container, ContainerInfo], i: int
) -> None:
    route, _, hook, want, rule = EGRESS_DENIED[i]
    results, events = run_routes(kernel, box, ROUTES, [r[1] for r in EGRESS_DENIED], len(EGRESS_DENIED))
    assert results[i] == "EPERM", route
    assert len(events) == len(EGRESS_DENIED)  # one record per route
    event = events[i]
    assert (event.hook, event.action, event.target()) == (hook, "deny", want)
    assert kernel.rule(event) == RuleRef("routes", rule)
    assert event.comm == "probe"  # sent from the process's own context


@pytest.mark.parametrize("i", range(len(EGRESS_ALLOWED)), ids=[r[0] for r in EGRESS_ALLOWED])
def test_egress_route_no_rule_denies_is_allowed_without_a_record(
    kernel: NetKernel, box: tuple[Container, ContainerInfo], i: int
) -> None:
    route, _, result = EGRESS_ALLOWED[i]
    results, events = run_routes(kernel, box, ROUTES, [r[1] for r in EGRESS_ALLOWED], 0)
    assert results[i] == result, route
    assert [e.target() for e in events] == []


AUDITED = [
    # (probe arguments, result, hook, protocol)
    (("raw", "127.0.0.33", "17", "53"), "ok", "egress", "udp"),
    (("ping", "127.0.0.33"), "ok", "egress", "icmp"),
    (("sendto", "127.0.0.33", "53"), "ok", "sendmsg", "udp"),
    (("connect", "127.0.0.33", "53", "tcp"), "ECONNREFUSED", "connect", "tcp"),
]


@pytest.mark.parametrize("i", range(len(AUDITED)), ids=["raw", "ping", "udp-send", "tcp-connect"])
def test_an_audit_rule_records_each_route_once(kernel: NetKernel, box: tuple[Container, ContainerInfo], i: int) -> None:
    # a UDP send or TCP connect is judged by the socket hook and again as a packet: one record
    _, result, hook, protocol = AUDITED[i]
    results, events = run_routes(kernel, box, ROUTES, [r[0] for r in AUDITED], len(AUDITED))
    assert results[i] == result
    assert len(events) == len(AUDITED)
    event = events[i]
    assert (event.hook, event.action, event.target()["protocol"]) == (hook, "audit", protocol)
    assert kernel.rule(event) == RuleRef("routes", "network[9]")


# ----- ingress ----------------------------------------------------------------------------
INGRESS_DENIED = [
    # (route, probe arguments, result, hook, target, rule): the client in the same container
    # connects. bind() to the wildcard is allowed where no rule names 0.0.0.0 or :: (the rule
    # names 127.0.0.7): what arrives is judged, on arrival.
    (
        "tcp through a wildcard 0.0.0.0 listener",
        ("0.0.0.0", "127.0.0.7", "9000", "tcp"),
        "timeout",
        "ingress",
        target("inet", "tcp", "127.0.0.7", 9000),
        "network[7]",
    ),
    (
        "tcp through a dual-stack :: listener, IPv4 rule",
        ("::", "127.0.0.7", "9001", "tcp"),
        "timeout",
        "ingress",
        target("inet", "tcp", "127.0.0.7", 9001),
        "network[7]",
    ),
    (
        "udp through a wildcard 0.0.0.0 socket",
        ("0.0.0.0", "127.0.0.7", "9002", "udp"),
        "timeout",
        "ingress",
        target("inet", "udp", "127.0.0.7", 9002),
        "network[7]",
    ),
    (
        "udp through a dual-stack :: socket, IPv4 rule",
        ("::", "127.0.0.7", "9003", "udp"),
        "timeout",
        "ingress",
        target("inet", "udp", "127.0.0.7", 9003),
        "network[7]",
    ),
    # A rule without cidrs covers the wildcard addresses too: the bind is refused at once.
    (
        "a rule without cidrs, IPv4",
        ("0.0.0.0", "127.0.0.1", "9500", "tcp"),
        "EPERM",
        "bind",
        target("inet", "tcp", "0.0.0.0", 9500),
        "network[8]",
    ),
    (
        "a rule without cidrs, IPv6",
        ("::", "::1", "9500", "tcp"),
        "EPERM",
        "bind",
        target("inet6", "tcp", "::", 9500),
        "network[8]",
    ),
    (
        "a rule without cidrs, udp",
        ("::", "127.0.0.1", "9500", "udp"),
        "EPERM",
        "bind",
        target("inet6", "udp", "::", 9500),
        "network[8]",
    ),
]
INGRESS_ALLOWED = [
    ("another local address", ("0.0.0.0", "127.0.0.1", "9000", "tcp"), "accepted"),
    ("another port, dual-stack", ("::", "127.0.0.7", "9100", "tcp"), "accepted"),
    ("another port, udp", ("0.0.0.0", "127.0.0.7", "9100", "udp"), "received"),
    ("IPv6, another port", ("::", "::1", "9501", "tcp"), "accepted"),
]


@pytest.mark.parametrize("i", range(len(INGRESS_DENIED)), ids=[r[0] for r in INGRESS_DENIED])
def test_ingress_to_a_denied_local_address_and_port_is_stopped_with_a_record(
    kernel: NetKernel, box: tuple[Container, ContainerInfo], i: int
) -> None:
    route, _, result, hook, want, rule = INGRESS_DENIED[i]
    results, events = run_routes(
        kernel, box, ROUTES, [("accept-via", *r[1]) for r in INGRESS_DENIED], len(INGRESS_DENIED)
    )
    assert results[i] == result, route
    assert len(events) == len(INGRESS_DENIED)  # one record per route: one SYN, one datagram
    event = events[i]
    assert (event.hook, event.action, event.target()) == (hook, "deny", want)
    assert kernel.rule(event) == RuleRef("routes", rule)
    if hook == "ingress":
        assert event.pid == 0  # judged on arrival, in no process's context


@pytest.mark.parametrize("i", range(len(INGRESS_ALLOWED)), ids=[r[0] for r in INGRESS_ALLOWED])
def test_ingress_no_rule_denies_is_accepted_without_a_record(
    kernel: NetKernel, box: tuple[Container, ContainerInfo], i: int
) -> None:
    route, _, result = INGRESS_ALLOWED[i]
    results, events = run_routes(kernel, box, ROUTES, [("accept-via", *r[1]) for r in INGRESS_ALLOWED], 0)
    assert results[i] == result, route
    assert [e.target() for e in events] == []


# ----- the shipped metadata-service policy, on loopback stand-ins -------------------------
V4, V6 = METADATA_V4, METADATA_V6
METADATA_ROUTES = [
    # (probe arguments, hook, family, protocol, address, port)
    (("connect", V4, "80", "tcp"), "connect", "inet", "tcp", V4, 80),
    (("connect", V4, "443", "udp"), "connect", "inet", "udp", V4, 443),
    (("sendto", V4, "80"), "sendmsg", "inet", "udp", V4, 80),
    (("connect", f"::ffff:{V4}", "80", "tcp"), "connect", "inet6", "tcp", f"::ffff:{V4}", 80),
    (("sendto", f"::ffff:{V4}", "80"), "sendmsg", "inet", "udp", V4, 80),
    (("connect-from", V4, "0.0.0.0", "80", "tcp"), "connect", "inet", "tcp", V4, 80),
    (("sendto-from", V4, "0.0.0.0", "80"), "sendmsg", "inet", "udp", V4, 80),
    (("raw", V4, "17", "80"), "egress", "inet", "udp", V4, 80),
    (("ping", V4), "egress", "inet", "icmp", V4, 0),
    (("raw", V4, "132", "80"), "egress", "inet", "sctp", V4, 80),
    (("raw", V4, "33", "80"), "egress", "inet", "dccp", V4, 80),
    (("tfo", V4, "80"), "connect", "inet", "tcp", V4, 80),
    (("mptcp", V4, "80"), "connect", "inet", "tcp", V4, 80),
    (("uring-connect", V4, "80"), "connect", "inet", "tcp", V4, 80),
    (("connect", V6, "80", "tcp"), "connect", "inet6", "tcp", V6, 80),
    (("connect", "::", "80", "tcp"), "connect", "inet6", "tcp", V6, 80),
    (("sendto", V6, "80"), "sendmsg", "inet6", "udp", V6, 80),
    (("sendto", "::", "80"), "sendmsg", "inet6", "udp", V6, 80),
    # the kernel's ping6 ignores the transmit error (sendto returns ok): the record shows the drop
    (("ping", V6), "egress", "inet6", "icmpv6", V6, 0),
    (("raw", V6, "17", "80"), "egress", "inet6", "udp", V6, 80),
]


@pytest.mark.parametrize("i", range(len(METADATA_ROUTES)), ids=[" ".join(r[0]) for r in METADATA_ROUTES])
def test_the_shipped_metadata_policy_stops_every_route(
    kernel: NetKernel, box: tuple[Container, ContainerInfo], i: int
) -> None:
    args, hook, family, protocol, address, port = METADATA_ROUTES[i]
    results, events = run_routes(kernel, box, METADATA, [r[0] for r in METADATA_ROUTES], len(METADATA_ROUTES))
    assert results[i] == ("ok" if args == ("ping", V6) else "EPERM")
    assert len(events) == len(METADATA_ROUTES)
    event = events[i]
    assert (event.hook, event.action) == (hook, "deny")
    assert event.target() == target(family, protocol, address, port)
    assert kernel.rule(event) == RuleRef("block-cloud-metadata", "network[0]")


METADATA_NEIGHBOUR = [
    (("connect", "127.0.0.41", "80", "tcp"), "ECONNREFUSED"),
    (("sendto", "127.0.0.41", "80"), "ok"),
    (("raw", "127.0.0.41", "17", "80"), "ok"),
    (("ping", "127.0.0.41"), "ok"),
    (("connect-from", "127.0.0.41", "0.0.0.0", "80", "tcp"), "ECONNREFUSED"),
]


@pytest.mark.parametrize("i", range(len(METADATA_NEIGHBOUR)), ids=["tcp", "udp", "raw", "ping", "0.0.0.0"])
def test_the_metadata_policy_leaves_the_next_address_alone(
    kernel: NetKernel, box: tuple[Container, ContainerInfo], i: int
) -> None:
    _, result = METADATA_NEIGHBOUR[i]
    results, events = run_routes(kernel, box, METADATA, [r[0] for r in METADATA_NEIGHBOUR], 0)
    assert results[i] == result
    assert [e.target() for e in events] == []
