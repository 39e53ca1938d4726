"""Decoding, natively: raw ring-buffer event bytes to finished audit lines, events/s.

What the daemon does per event, on the machine's real CPU (under the VM's emulated CPU it
is 10-50x slower and would misstate the product): decode the bytes (EventDecoder, layouts
from the built objects' BTF), look the rule and container up, build the AuditRecord and
render its JSON line. The events are built with the same BTF layouts, a realistic mix: file
opens with distinct paths (every one its own record, the worst case: nothing folds), exec,
device, connect and socket events. `storm` adds the fold step for one repeated denial (what
a flood costs per event before kernel-side folding).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

from enforcer.audit.events import EventDecoder
from enforcer.audit.records import AuditFolder, AuditRecord, AuditWriter
from enforcer.compiler.rules import RuleRef
from enforcer.containers.cgroups import CgroupRef
from enforcer.containers.model import ContainerInfo
from enforcer.kernel.abi import Abi
from enforcer.kernel.build import ensure_built

CGROUP = 4242
CONTAINER = ContainerInfo(
    id="e" * 64, name="web", image="nginx:1.25", labels={}, pid=1, cgroup=CgroupRef("/sys/fs/cgroup/docker/x", CGROUP)
)
RULE = RuleRef("bench", "file[0]")


def sample_events(abi: Abi, n: int) -> list[bytes]:
    """n raw events: 70% file opens (distinct paths), 10% each exec and connect, 5% each
    device and socket: the shape of a busy trail."""
    c = abi.consts
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    hdr = {
        "hdr.ktime_ns": now,
        "hdr.cgroup_id": CGROUP,
        "hdr.pid": 1234,
        "hdr.uid": 0,
        "hdr.rule_id": 7,
        "hdr.action": c["ACT_DENY"],
        "hdr.comm": b"cat",
    }
    file_lay, net_lay = abi.layout("file_event"), abi.layout("net_event")
    dev_lay, sock_lay = abi.layout("device_event"), abi.layout("sock_event")
    path_off = file_lay.offsets["path"]
    out: list[bytes] = []
    for i in range(n):
        k = i % 20
        if k < 16:
            path = f"/srv/data/app-{i}/config.yaml".encode()
            kind = c["EV_EXEC"] if k >= 14 else c["EV_FILE"]
            raw = file_lay.pack(
                **hdr, **{"hdr.type": kind, "access": c["ACCF_READ"], "path_len": len(path), "path": path}
            )
            out.append(raw[: path_off + len(path)])  # the kernel sends only the used part
        elif k < 18:
            out.append(
                net_lay.pack(
                    **hdr,
                    **{
                        "hdr.type": c["EV_CONNECT"],
                        "family": 2,
                        "protocol": 6,
                        "addr[0]": 0x0100007F + ((i % 250) << 24),
                        "port": 8080,
                    },
                )
            )
        elif k == 18:
            out.append(
                dev_lay.pack(
                    **hdr,
                    **{
                        "hdr.type": c["EV_DEVICE"],
                        "dev_type": c["DEV_TYPE_CHAR"],
                        "access": c["ACCF_READ"],
                        "major": 1,
                        "minor": 5,
                    },
                )
            )
        else:
            out.append(
                sock_lay.pack(**hdr, **{"hdr.type": c["EV_SOCK_CREATE"], "family": 17, "sock_type": 3, "protocol": 0})
            )
    return out


def _rate(n: int, fn: Callable[[], None], rounds: int) -> float:
    """Events per second of this thread's CPU time, best of `rounds`: on a shared machine
    wall time also counts the other tenants' share of the core."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return n / best


def run_decode(n: int, rounds: int, say: Callable[[str], None]) -> dict[str, Any]:
    abi = Abi.from_object(ensure_built().path("lsm_file"))
    decoder = EventDecoder(abi)
    raws = sample_events(abi, n)
    storm = [raws[0]] * n
    out = io.StringIO()
    writer = AuditWriter(out)

    def decode_only() -> None:
        decode = decoder.decode
        for raw in raws:
            decode(raw)

    def to_records() -> None:  # what the daemon hands the folder per event
        decode = decoder.decode
        for raw in raws:
            e = decode(raw)
            assert e is not None
            AuditRecord(e, RULE, CONTAINER)

    def to_lines() -> None:  # every event its own record: nothing folds
        out.seek(0)
        out.truncate()
        decode = decoder.decode
        for raw in raws:
            e = decode(raw)
            assert e is not None
            writer.write(AuditRecord(e, RULE, CONTAINER))

    def folded() -> None:  # one denial repeated: decoded and folded, one line written
        folder = AuditFolder(writer, window=3600)
        decode = decoder.decode
        for raw in storm:
            e = decode(raw)
            assert e is not None
            folder.add(AuditRecord(e, RULE, CONTAINER))
        folder.flush_all()

    row = {
        "events": n,
        "decode_per_s": round(_rate(n, decode_only, rounds)),
        "records_per_s": round(_rate(n, to_records, rounds)),
        "json_lines_per_s": round(_rate(n, to_lines, rounds)),
        "storm_folded_per_s": round(_rate(n, folded, rounds)),
    }
    say(f"decode natively: {row}")
    return row


if __name__ == "__main__":
    import json
    import sys

    print(
        json.dumps(
            run_decode(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, 3, lambda m: print(m, file=sys.stderr))
        )
    )
