"""The precompiled decoders read every event type from the BTF layouts, field for field,
and refuse a layout they cannot read rather than misread it."""

from __future__ import annotations

import pytest

from enforcer.audit.events import (
    DeviceEvent,
    EventDecoder,
    FileEvent,
    SockEvent,
    picker,
)
from enforcer.kernel.abi import Abi
from enforcer.kernel.build import ensure_built


@pytest.fixture(scope="module")
def abi() -> Abi:
    return Abi.from_object(ensure_built().path("lsm_file"))


def _hdr(abi: Abi, ev_type: str, **kw: object) -> dict[str, object]:
    return {
        "hdr.type": abi.const(ev_type),
        "hdr.action": abi.const("ACT_AUDIT"),
        "hdr.rule_id": 9,
        "hdr.pid": 77,
        "hdr.uid": 1000,
        "hdr.cgroup_id": 555,
        "hdr.ktime_ns": 123,
        "hdr.comm": b"sh",
        "hdr.fold": 0xF01D,
        "hdr.ruleset": 12,
        **kw,
    }


def test_a_device_event_decodes_every_field(abi: Abi) -> None:
    raw = abi.layout("device_event").pack(
        **_hdr(abi, "EV_DEVICE"),
        dev_type=abi.const("DEV_TYPE_BLOCK"),
        access=abi.const("ACCF_WRITE") | abi.const("ACCF_MKNOD"),
        major=8,
        minor=1,
    )
    e = EventDecoder(abi).decode(raw)
    assert isinstance(e, DeviceEvent)
    assert (e.hook, e.action, e.cgroup_id, e.pid, e.uid, e.comm, e.rule_id, e.ktime_ns) == (
        "device",
        "audit",
        555,
        77,
        1000,
        "sh",
        9,
        123,
    )
    assert e.target() == {"type": "block", "major": 8, "minor": 1, "access": "write+mknod"}
    assert (e.count, e.fold, e.ruleset) == (1, 0xF01D, 12)  # one operation, decided by ruleset 12


def test_a_socket_event_names_family_and_type(abi: Abi) -> None:
    raw = abi.layout("sock_event").pack(**_hdr(abi, "EV_SOCK_CREATE"), family=17, sock_type=3, protocol=0)
    e = EventDecoder(abi).decode(raw)
    assert isinstance(e, SockEvent) and e.target() == {"family": "packet", "type": "raw"}


def test_a_file_event_reads_only_the_sent_part_of_the_path(abi: Abi) -> None:
    lay = abi.layout("file_event")
    path = b"/etc/\xffbad"  # not UTF-8: kept byte for byte (surrogate escapes)
    raw = lay.pack(
        **_hdr(abi, "EV_FILE"),
        access=abi.const("ACCF_READ") | abi.const("ACCF_WRITE"),
        path_len=len(path),
        path=path + b"GARBAGE",
    )[: lay.offsets["path"] + len(path)]
    e = EventDecoder(abi).decode(raw)
    assert isinstance(e, FileEvent)
    assert e.path.encode(errors="surrogateescape") == path
    assert e.target()["access"] == "read+write"


def test_an_unknown_event_type_is_not_guessed(abi: Abi) -> None:
    raw = abi.layout("sock_event").pack(**_hdr(abi, "EV_SOCK_CREATE", **{"hdr.type": 999}))
    assert EventDecoder(abi).decode(raw) is None


def test_a_picker_refuses_fields_it_cannot_read_in_order(abi: Abi) -> None:
    lay = abi.layout("sock_event")
    with pytest.raises(KeyError):
        picker(lay, ("hdr.pid", "no_such_field"))
    with pytest.raises(ValueError):
        picker(lay, ("family", "hdr.pid"))  # not in offset order
    s = picker(lay, ("hdr.pid", "family"))
    assert s.size == lay.size and s.unpack_from(lay.pack(**{"hdr.pid": 5, "family": 10})) == (5, 10)
