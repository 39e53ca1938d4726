"""Packet-level network events (cgroup_skb egress/ingress) decode to records with their own
hook names and the packet's protocol by name."""

from __future__ import annotations

import ipaddress

import pytest

from enforcer.audit.events import EventDecoder, NetEvent
from enforcer.kernel.abi import Abi
from enforcer.kernel.build import ensure_built


@pytest.fixture(scope="module")
def abi() -> Abi:
    return Abi.from_object(ensure_built().path("lsm_file"))


def _raw(abi: Abi, ev_type: str, family: int, protocol: int, address: str, port: int) -> bytes:
    hdr = abi.layout("event_hdr").pack(type=abi.const(ev_type), action=abi.const("ACT_DENY"), rule_id=3, comm=b"")
    packed = ipaddress.ip_address(address).packed.ljust(16, b"\0")
    words = {f"addr[{i}]": int.from_bytes(packed[4 * i : 4 * i + 4], "little") for i in range(4)}
    body = abi.layout("net_event")
    raw = bytearray(body.pack(family=family, protocol=protocol, port=port, **words))
    raw[: len(hdr)] = hdr
    return bytes(raw)


@pytest.mark.parametrize(
    ("ev_type", "family", "protocol", "address", "port", "hook", "want"),
    [
        (
            "EV_EGRESS",
            2,
            132,
            "127.0.0.31",
            5000,
            "egress",
            {"family": "inet", "protocol": "sctp", "address": "127.0.0.31", "port": 5000},
        ),
        (
            "EV_EGRESS",
            10,
            58,
            "::1",
            0,
            "egress",
            {"family": "inet6", "protocol": "icmpv6", "address": "::1", "port": 0},
        ),
        (
            "EV_INGRESS",
            2,
            6,
            "127.0.0.7",
            9000,
            "ingress",
            {"family": "inet", "protocol": "tcp", "address": "127.0.0.7", "port": 9000},
        ),
        (
            "EV_EGRESS",
            2,
            0,
            "127.0.0.30",
            0,
            "egress",
            {"family": "inet", "protocol": "unknown", "address": "127.0.0.30", "port": 0},
        ),
    ],
)
def test_packet_events_name_their_hook_and_protocol(
    abi: Abi,
    ev_type: str,
    family: int,
    protocol: int,
    address: str,
    port: int,
    hook: str,
    want: dict[str, object],
) -> None:
    event = EventDecoder(abi).decode(_raw(abi, ev_type, family, protocol, address, port))
    assert isinstance(event, NetEvent)
    assert (event.hook, event.action, event.rule_id, event.target()) == (hook, "deny", 3, want)
