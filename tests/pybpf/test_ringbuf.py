"""Ring buffer: real denials reach a Python callback; errors and event-loop integration."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from typing import Any

import pytest

from enforcer.pybpf import BpfObject, Btf, RingBuffer

from .conftest import CONNECT_PROBE, RAW_SOCKET_PROBE, Cgroup, run_python

pytestmark = pytest.mark.host_bpf

ZERO = struct.pack("=I", 0)


def fill(obj: BpfObject, n: int, wakeup: bool = True) -> int:
    """Have the kernel write n benchmark events; returns how many fit.

    Without wakeup the consumer's epoll is not signalled: only consume() sees them."""
    ctx = obj.program("fill_ring").test_run(struct.pack("=III", n, 0, wakeup)).ctx
    produced: int = struct.unpack("=III", ctx)[1]
    return produced


class Poller:
    """poll() in a thread, as the daemon will; collects decoded events."""

    def __init__(self, rb: RingBuffer) -> None:
        self.rb = rb
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.rb.poll(50)

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.2)  # let the last wakeup be consumed
        self.stop.set()
        self.thread.join()


def test_denials_in_the_cgroup_are_delivered_to_the_callback(obj: BpfObject, cgroup: Cgroup) -> None:
    btf = Btf.from_elf(obj.path)
    event = btf.layout("test_event")
    kinds = btf.int_enum("test_event_kind")
    obj.map("deny_v4").update(
        struct.pack("=I", 32) + socket.inet_aton("127.0.0.2"),
        bytes(btf.struct("deny_rule")(port=9, rule_id=1)),
    )
    obj.map("test_config").update(ZERO, bytes(btf.struct("test_config")(deny_raw=1)))
    events: list[dict[str, Any]] = []
    with (
        RingBuffer(obj.map("events"), lambda data: events.append(event.decode(data))) as rb,
        obj.program("deny_connect4").attach_cgroup(cgroup.path),
        obj.program("deny_raw_socket").attach_cgroup(cgroup.path),
        Poller(rb),
    ):
        inside_connect = cgroup.run_python(CONNECT_PROBE)
        inside_raw = cgroup.run_python(RAW_SOCKET_PROBE)
        outside_connect = run_python(CONNECT_PROBE)
        outside_raw = run_python(RAW_SOCKET_PROBE)

    assert inside_connect["denied_target"] == "EPERM"
    assert inside_raw == {"raw": "EPERM"}
    assert outside_connect["denied_target"] == "ECONNREFUSED"
    assert outside_raw == {"raw": "ok"}  # root has CAP_NET_RAW; outside the cgroup untouched

    assert [kinds(e["kind"]).name for e in events] == ["EV_CONNECT4", "EV_SOCK_CREATE"]
    connect, raw = events
    assert connect["cgroup_id"] == cgroup.id
    assert connect["port"] == 9
    assert socket.inet_ntoa(struct.pack("=I", connect["addr"])) == "127.0.0.2"
    assert connect["sock.family"] == socket.AF_INET
    assert connect["comm"] == "python3"
    assert connect["tail"] == 0xBEEF
    assert raw["sock.type"] == socket.SOCK_RAW
    assert raw["cgroup_id"] == cgroup.id


def test_an_exception_in_the_callback_surfaces_from_poll(obj: BpfObject) -> None:
    seen: list[bytes] = []

    def callback(data: bytes) -> None:
        seen.append(data)
        if len(seen) == 2:
            raise ValueError("bad record")

    with RingBuffer(obj.map("events"), callback) as rb:
        assert fill(obj, 5) == 5
        with pytest.raises(ValueError, match="bad record"):
            rb.poll(100)
        assert len(seen) == 2  # stopped at the failing record
        assert rb.consume() == 3  # the rest is still queued and arrives next time
        assert len(seen) == 5


def test_keyboard_interrupt_in_the_callback_is_not_swallowed(obj: BpfObject) -> None:
    def callback(data: bytes) -> None:
        raise KeyboardInterrupt

    with RingBuffer(obj.map("events"), callback) as rb:
        fill(obj, 1)
        with pytest.raises(KeyboardInterrupt):
            rb.consume()


def test_epoll_fd_becomes_readable_when_events_arrive(obj: BpfObject, cgroup: Cgroup) -> None:
    btf = Btf.from_elf(obj.path)
    obj.map("test_config").update(ZERO, bytes(btf.struct("test_config")(deny_raw=1)))
    got: list[bytes] = []
    with RingBuffer(obj.map("events"), got.append) as rb, obj.program("deny_raw_socket").attach_cgroup(cgroup.path):
        fd = rb.epoll_fd()
        assert select.select([fd], [], [], 0) == ([], [], [])
        cgroup.run_python(RAW_SOCKET_PROBE)  # a real denial wakes the consumer
        readable, _, _ = select.select([rb], [], [], 5)  # fileno() works too
        assert readable == [rb]
        assert rb.consume() == 1 and len(got) == 1
        assert select.select([fd], [], [], 0) == ([], [], [])
        ep = select.epoll()  # the same fd nests in the caller's own epoll set
        try:
            ep.register(fd, select.EPOLLIN)
            cgroup.run_python(RAW_SOCKET_PROBE)
            assert ep.poll(5) == [(fd, select.EPOLLIN)]
            assert rb.consume() == 1 and len(got) == 2
        finally:
            ep.close()


def test_one_consumer_serves_several_ring_buffers(obj: BpfObject) -> None:
    first: list[bytes] = []
    second: list[bytes] = []
    with RingBuffer(obj.map("events2"), second.append) as rb:
        rb.add(obj.map("events"), first.append)
        fill(obj, 3)
        assert rb.poll(100) == 3
    assert len(first) == 3 and second == []


def test_closed_ring_buffer_refuses_use(obj: BpfObject) -> None:
    rb = RingBuffer(obj.map("events"), lambda d: None)
    rb.close()
    rb.close()
    assert rb.closed
    with pytest.raises(OSError, match="closed"):
        rb.poll(0)


def test_measure_ring_buffer_throughput(obj: BpfObject) -> None:
    layout = Btf.from_elf(obj.path).layout("test_event")
    per_fill, rounds = 200_000, 5
    count = [0]

    def counting(data: bytes) -> None:
        count[0] += 1

    decoded: list[tuple[object, ...]] = []
    unpack = layout.struct.unpack  # the hot path: one struct.unpack per record

    def decoding(data: bytes) -> None:
        decoded.append(unpack(data))

    Event = Btf.from_elf(obj.path).struct("test_event")
    as_dicts: list[object] = []
    as_ctypes: list[object] = []

    figures = {}
    for name, cb in (
        ("counting", counting),
        ("decoding (struct)", decoding),
        ("decoding to dict (layout.decode)", lambda d: as_dicts.append(layout.decode(d))),
        ("decoding (ctypes from_buffer_copy)", lambda d: as_ctypes.append(Event.from_buffer_copy(d))),
    ):
        with RingBuffer(obj.map("events"), cb) as rb:
            elapsed, total = 0.0, 0
            for _ in range(rounds):
                produced = fill(obj, per_fill, wakeup=False)
                t0 = time.perf_counter()
                total += rb.consume()
                elapsed += time.perf_counter() - t0
                assert produced == per_fill
            figures[name] = total / elapsed
            assert total == per_fill * rounds
    assert count[0] == len(decoded) == per_fill * rounds
    seq_index = layout.names.index("u")
    assert decoded[-1][seq_index] == struct.pack("=Q", per_fill - 1)  # union kept as raw bytes
    print("\n[measure] ring buffer into Python: " + ", ".join(f"{k} {v:,.0f} events/s" for k, v in figures.items()))
