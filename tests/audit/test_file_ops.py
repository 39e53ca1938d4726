"""File events name the hook that judged them (file_event.op), so a denied unlink or rename
is not reported as an open."""

from __future__ import annotations

import pytest

from enforcer.audit.events import EventDecoder, FileEvent
from enforcer.kernel.abi import Abi
from enforcer.kernel.build import ensure_built


@pytest.fixture(scope="module")
def abi() -> Abi:
    return Abi.from_object(ensure_built().path("lsm_file"))


def _raw(abi: Abi, ev_type: str, op: str, path: bytes) -> bytes:
    hdr = abi.layout("event_hdr").pack(
        type=abi.const(ev_type), action=abi.const("ACT_DENY"), rule_id=7, pid=1, comm=b"x"
    )
    body = abi.layout("file_event")
    raw = bytearray(body.size)
    raw[: len(hdr)] = hdr
    fields = body.pack(access=abi.const("ACCF_WRITE"), path_len=len(path), op=abi.btf.enum("file_op")[op])
    start = body.offsets["access"]
    raw[start : body.offsets["path"]] = fields[start : body.offsets["path"]]
    return bytes(raw[: body.offsets["path"]]) + path


@pytest.mark.parametrize(
    ("ev_type", "op", "hook"),
    [
        ("EV_FILE", "FOP_OPEN", "file_open"),
        ("EV_EXEC", "FOP_EXEC", "exec"),
        ("EV_EXEC", "FOP_MMAP", "mmap_file"),
        ("EV_FILE", "FOP_UNLINK", "path_unlink"),
        ("EV_FILE", "FOP_RENAME", "path_rename"),
        ("EV_FILE", "FOP_TRUNCATE", "path_truncate"),
        ("EV_FILE", "FOP_MKNOD", "path_mknod"),
        ("EV_FILE", "FOP_SETATTR", "inode_setattr"),
        ("EV_FILE", "FOP_XATTR", "inode_setxattr"),
        ("EV_FILE", "FOP_CGROUP_MOVE", "clone3"),
    ],
)
def test_the_hook_comes_from_the_operation(abi: Abi, ev_type: str, op: str, hook: str) -> None:
    event = EventDecoder(abi).decode(_raw(abi, ev_type, op, b"/etc/group"))
    assert isinstance(event, FileEvent)
    assert (event.hook, event.path, event.rule_id) == (hook, "/etc/group", 7)


def test_every_operation_has_a_hook_name(abi: Abi) -> None:
    names = {EventDecoder(abi)._ops[v] for v in abi.btf.enum("file_op").values()}
    assert len(names) == len(abi.btf.enum("file_op"))
    assert all(n in ("file_open", "exec", "mmap_file", "clone3") or n.startswith(("path_", "inode_")) for n in names)
