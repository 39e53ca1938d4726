"""Device, network and socket compilers: the compiled entries, looked up the way the cgroup
programs do (tests.compiler.kernel_model), give the reference decision for every request,
over hand-written cases and generated policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enforcer.compiler.devices import compile_devices
from enforcer.compiler.network import compile_network
from enforcer.compiler.rules import RuleTable
from enforcer.compiler.sockets import compile_sockets
from enforcer.errors import EnforcerError
from enforcer.policy.loader import load_file
from enforcer.policy.merge import EffectiveRule, merge
from enforcer.policy.model import Policy
from enforcer.policy.reference import decide_device, decide_network, decide_socket
from tests.compiler import kernel_model as km

SLOTS = 32  # ABI_NET_SLOTS
SHIPPED = Path(__file__).resolve().parents[2] / "policies"


Rule = dict[str, Any]  # one rule of a policy document, as the strategies draw it


def rules_of(*specs: tuple[str, dict[str, Any]]) -> tuple[EffectiveRule, ...]:
    return merge(
        Policy.model_validate(
            {"apiVersion": "enforcer/v1", "kind": "ContainerPolicy", "metadata": {"name": name}, "spec": spec}
        )
        for name, spec in specs
    )


# ----- devices ------------------------------------------------------------------------------
DEVICE_REQUESTS = [
    (t, ma, mi, acc)
    for t in ("char", "block")
    for ma in (1, 4, 8, 10)
    for mi in (1, 3, 5, 7)
    for acc in ({"read"}, {"write"}, {"mknod"}, {"read", "write"}, {"read", "write", "mknod"})
]


def check_devices(rules: tuple[EffectiveRule, ...]) -> None:
    table = RuleTable()
    compiled = compile_devices(rules, table)
    for t, ma, mi, acc in DEVICE_REQUESTS:
        want = km.reference(decide_device(rules, t, ma, mi, acc))
        assert km.device(compiled, table, t, ma, mi, acc) == want, (t, ma, mi, acc)


def test_devices_most_specific_wins_and_ties_go_to_the_more_severe() -> None:
    rules = rules_of(
        (
            "p",
            {
                "device": [
                    {"action": "deny", "type": "block", "major": "*", "minor": "*"},
                    {"action": "allow", "type": "block", "major": 8, "minor": "*"},
                    {"action": "audit", "type": "any", "major": 8, "minor": 1},
                    {"action": "deny", "type": "char", "major": 1, "minor": 5, "access": ["read"]},
                    {"action": "allow", "type": "char", "major": 1, "minor": 5},
                ]
            },
        ),
        ("q", {"mode": "audit", "device": [{"action": "deny", "type": "char", "major": 1, "minor": 5}]}),
    )
    table = RuleTable()
    c = compile_devices(rules, table)
    assert km.device(c, table, "block", 7, 0, {"read"}) == ("deny", "p", "device[0]")
    assert km.device(c, table, "block", 8, 0, {"read"}) == ("allow", "p", "device[1]")
    assert km.device(c, table, "block", 8, 1, {"read"}) == ("audit", "p", "device[2]")
    assert km.device(c, table, "char", 1, 5, {"read"}) == ("deny", "p", "device[3]")
    # write: allow p/device[4] and audit q/device[0] (audit mode) tie on specificity
    assert km.device(c, table, "char", 1, 5, {"write"}) == ("audit", "q", "device[0]")
    check_devices(rules)


def test_device_access_bits_combine_to_the_most_severe_first_bit_on_a_tie() -> None:
    rules = rules_of(
        (
            "p",
            {
                "device": [
                    {"action": "deny", "type": "char", "major": 1, "minor": "*", "access": ["write"]},
                    {"action": "deny", "type": "char", "major": 1, "minor": 3, "access": ["read"]},
                ]
            },
        )
    )
    table = RuleTable()
    c = compile_devices(rules, table)
    assert km.device(c, table, "char", 1, 3, {"read", "write"}) == ("deny", "p", "device[1]")
    check_devices(rules)


def test_shipped_device_policy_denies_memory_devices_and_every_block_device() -> None:
    rules = merge(p.policy for p in load_file(SHIPPED / "devices.yaml").policies)
    table = RuleTable()
    c = compile_devices(rules, table)
    for minor, rule in ((1, "device[0]"), (2, "device[1]"), (4, "device[2]")):  # mem kmem port
        for access in ({"read"}, {"write"}, {"mknod"}):
            assert km.device(c, table, "char", 1, minor, access) == ("deny", "deny-dangerous-devices", rule)
    assert km.device(c, table, "block", 8, 0, {"read"}) == ("deny", "deny-dangerous-devices", "device[3]")
    assert km.device(c, table, "block", 259, 1, {"mknod"}) == ("deny", "deny-dangerous-devices", "device[3]")
    assert km.device(c, table, "char", 1, 3, {"read", "write"}) is None  # /dev/null
    check_devices(rules)


def test_a_ruleset_without_deny_or_audit_device_rules_needs_no_lookup() -> None:
    table = RuleTable()
    assert not compile_devices(
        rules_of(("p", {"device": [{"action": "allow", "type": "char", "major": 1, "minor": 1}]})), table
    ).has_enforcing()
    assert compile_devices((), table).levels == 0


device_rule = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["deny", "audit", "allow"]),
        "type": st.sampled_from(["char", "block", "any"]),
        "major": st.sampled_from([1, 4, 8, "*"]),
        "minor": st.sampled_from([1, 3, 5, "*"]),
        "access": st.lists(st.sampled_from(["read", "write", "mknod"]), min_size=1, max_size=3, unique=True),
    }
)


@settings(max_examples=150, deadline=None)
@given(st.lists(device_rule, max_size=6), st.lists(device_rule, max_size=3), st.booleans())
def test_generated_device_policies_match_the_reference(a: list[Rule], b: list[Rule], b_audit: bool) -> None:
    check_devices(rules_of(("a", {"device": a}), ("b", {"device": b, "mode": "audit" if b_audit else "enforce"})))


# ----- network ------------------------------------------------------------------------------
NET_ADDRESSES = [
    "127.0.0.1",
    "127.0.0.2",
    "127.1.2.3",
    "10.0.0.1",
    "169.254.169.254",
    "::1",
    "fd00:ec2::254",
    "fd00::1",
    "::ffff:127.0.0.2",
    "::ffff:10.0.0.1",
]
NET_PORTS = [0, 53, 80, 443, 8000, 8080, 8100, 8101]


def check_network(rules: tuple[EffectiveRule, ...]) -> None:
    table = RuleTable()
    compiled = compile_network(rules, table, SLOTS)
    for direction in ("egress", "ingress"):
        for address in NET_ADDRESSES:
            for port in NET_PORTS:
                for proto in ("tcp", "udp"):
                    want = km.reference(decide_network(rules, direction, address, port, proto))
                    got = km.network(compiled, table, direction, address, port, proto)
                    assert got == want, (direction, address, port, proto)


def test_network_longest_prefix_then_narrowest_ports_then_named_protocol() -> None:
    rules = rules_of(
        (
            "p",
            {
                "network": [
                    {"action": "deny", "direction": "egress", "cidrs": ["127.0.0.0/8"]},
                    {"action": "allow", "direction": "egress", "cidrs": ["127.0.0.1/32"]},
                    {"action": "deny", "direction": "egress", "cidrs": ["127.0.0.1/32"], "ports": ["8000-8100"]},
                    {"action": "allow", "direction": "egress", "cidrs": ["127.0.0.1/32"], "ports": [8080]},
                    {
                        "action": "audit",
                        "direction": "egress",
                        "protocol": "udp",
                        "cidrs": ["127.0.0.1/32"],
                        "ports": [8080],
                    },
                ]
            },
        )
    )
    table = RuleTable()
    c = compile_network(rules, table, SLOTS)
    assert km.network(c, table, "egress", "127.0.0.2", 80, "tcp") == ("deny", "p", "network[0]")
    assert km.network(c, table, "egress", "127.0.0.1", 80, "tcp") == ("allow", "p", "network[1]")
    assert km.network(c, table, "egress", "127.0.0.1", 8000, "tcp") == ("deny", "p", "network[2]")
    assert km.network(c, table, "egress", "127.0.0.1", 8080, "tcp") == ("allow", "p", "network[3]")
    assert km.network(c, table, "egress", "127.0.0.1", 8080, "udp") == ("audit", "p", "network[4]")
    assert km.network(c, table, "ingress", "127.0.0.1", 8080, "udp") is None
    check_network(rules)


def test_ipv4_mapped_ipv6_addresses_are_judged_by_ipv4_rules() -> None:
    rules = rules_of(
        (
            "p",
            {
                "network": [
                    {"action": "deny", "direction": "egress", "cidrs": ["127.0.0.2/32"]},
                    {"action": "deny", "direction": "egress", "cidrs": ["::/0"]},
                ]
            },
        )
    )
    table = RuleTable()
    c = compile_network(rules, table, SLOTS)
    assert km.network(c, table, "egress", "::ffff:127.0.0.2", 80, "tcp") == ("deny", "p", "network[0]")
    assert km.network(c, table, "egress", "::ffff:127.0.0.3", 80, "tcp") is None  # IPv4, not ::/0
    assert decide_network(rules, "egress", "::ffff:127.0.0.3", 80, "tcp") is None
    check_network(rules)


def test_shipped_metadata_policy_blocks_every_spelling_of_the_address() -> None:
    rules = merge(p.policy for p in load_file(SHIPPED / "network-metadata.yaml").policies)
    table = RuleTable()
    c = compile_network(rules, table, SLOTS)
    for address in ("169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254"):
        for proto in ("tcp", "udp"):
            assert km.network(c, table, "egress", address, 80, proto)[0] == "deny"  # type: ignore[index]
    assert km.network(c, table, "egress", "169.254.169.253", 80, "tcp") is None
    check_network(rules)


def test_too_many_entries_for_one_prefix_is_an_error_that_says_what_to_do() -> None:
    rules = rules_of(
        (
            "p",
            {
                "network": [
                    {"action": "deny", "direction": "egress", "cidrs": ["10.0.0.0/8"], "ports": list(range(1, 40))},
                ]
            },
        )
    )
    with pytest.raises(EnforcerError, match="at most 32 per prefix"):
        compile_network(rules, RuleTable(), SLOTS)


net_rule = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["deny", "audit", "allow"]),
        "direction": st.sampled_from(["egress", "ingress"]),
        "protocol": st.sampled_from(["tcp", "udp", "any"]),
        "cidrs": st.lists(
            st.sampled_from(
                [
                    "127.0.0.0/8",
                    "127.0.0.0/24",
                    "127.0.0.2/32",
                    "0.0.0.0/0",
                    "::/0",
                    "::1/128",
                    "fd00::/8",
                    "10.0.0.0/8",
                ]
            ),
            min_size=1,
            max_size=2,
            unique=True,
        ),
        "ports": st.lists(st.sampled_from([53, 80, 8080, "8000-8100", "1-1024"]), max_size=2, unique=True),
    }
)


@settings(max_examples=60, deadline=None)
@given(st.lists(net_rule, max_size=6), st.lists(net_rule, max_size=3), st.booleans())
def test_generated_network_policies_match_the_reference(a: list[Rule], b: list[Rule], b_audit: bool) -> None:
    check_network(rules_of(("a", {"network": a}), ("b", {"network": b, "mode": "audit" if b_audit else "enforce"})))


# ----- sockets ------------------------------------------------------------------------------
SOCKET_REQUESTS = [
    (f, t)
    for f in ("inet", "inet6", "packet", "unix", "netlink")
    for t in ("stream", "dgram", "raw", "seqpacket", "packet")
]


def check_sockets(rules: tuple[EffectiveRule, ...]) -> None:
    table = RuleTable()
    compiled = compile_sockets(rules, table)
    for family, typ in SOCKET_REQUESTS:
        want = km.reference(decide_socket(rules, family, typ))
        assert km.socket(compiled, table, family, typ) == want, (family, typ)


def test_shipped_socket_policy_denies_raw_and_packet_and_says_packet_needs_lsm() -> None:
    rules = merge(p.policy for p in load_file(SHIPPED / "sockets.yaml").policies)
    table = RuleTable()
    c = compile_sockets(rules, table)
    assert km.socket(c, table, "inet", "raw") == ("deny", "deny-raw-sockets", "socket[1]")
    assert km.socket(c, table, "packet", "dgram") == ("deny", "deny-raw-sockets", "socket[0]")
    assert km.socket(c, table, "inet", "dgram") is None
    assert c.families_beyond_cgroup() == ("packet",)


def test_sock_packet_is_named_packet_and_compiles_to_type_10() -> None:
    # SOCK_PACKET (10) is the obsolete way to raw link-level frames; a policy can name it alone
    rules = rules_of(("a", {"socket": [{"action": "deny", "families": ["packet"], "types": ["packet"]}]}))
    table = RuleTable()
    c = compile_sockets(rules, table)
    assert [(k.family, k.type) for k in c.entries] == [(17, 10)]
    assert km.socket(c, table, "packet", "packet") == ("deny", "a", "socket[0]")
    assert km.socket(c, table, "packet", "raw") is None
    check_sockets(rules)


sock_rule = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["deny", "audit", "allow"]),
        "families": st.lists(st.sampled_from(["inet", "inet6", "packet", "unix"]), min_size=1, max_size=2, unique=True),
        "types": st.lists(st.sampled_from(["stream", "dgram", "raw", "any"]), max_size=2, unique=True),
    }
)


@settings(max_examples=100, deadline=None)
@given(st.lists(sock_rule, max_size=5), st.lists(sock_rule, max_size=3), st.booleans())
def test_generated_socket_policies_match_the_reference(a: list[Rule], b: list[Rule], b_audit: bool) -> None:
    check_sockets(rules_of(("a", {"socket": a}), ("b", {"socket": b, "mode": "audit" if b_audit else "enforce"})))


def test_network_rule_without_cidrs_covers_every_address_of_both_families() -> None:
    rules = rules_of(
        (
            "p",
            {
                "network": [
                    {"action": "deny", "direction": "ingress", "ports": ["9000-9010"]},
                ]
            },
        )
    )
    table = RuleTable()
    c = compile_network(rules, table, SLOTS)
    for address in ("127.0.0.7", "::1", "::ffff:127.0.0.7", "10.1.2.3"):
        assert km.network(c, table, "ingress", address, 9000, "tcp") == ("deny", "p", "network[0]")
        assert km.network(c, table, "ingress", address, 8999, "udp") is None
    assert km.network(c, table, "egress", "127.0.0.7", 9000, "tcp") is None
    check_network(rules)
