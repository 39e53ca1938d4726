"""The SPEC's audit record -> an OCSF 1.1.0 event (`enforcer run --audit-format ocsf`).

Classes (docs/audit-records.md has the full mapping):
- File System Activity (1001): file hooks (file_open, path_*, inode_*, mmap_file) and
  device records (a device node is a file: type Character/Block Device, path /dev/char|block/M:m);
- Process Activity (1007): exec;
- Network Activity (4001): connect, sendmsg, bind, egress, ingress, and sock_create (the
  closest class: activity Other, the socket's family and type in connection_info/unmapped);
- Base Event (0): audit_loss (no activity class counts unitemised events).
Profiles: host (device, actor), security_control (action, disposition), container.
The enforcer's own names (policy, rule, hook, target) are kept under `unmapped`.
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from typing import Any

from enforcer import __version__

VERSION = "1.1.0"
PRODUCT = {"name": "enforcer", "vendor_name": "enforcer", "version": __version__}

# file hook -> (activity_id, activity name) of File System Activity
_FILE_ACTIVITY = {
    "file_open": (14, "Open"),
    "path_truncate": (3, "Update"),
    "path_unlink": (4, "Delete"),
    "path_rmdir": (4, "Delete"),
    "path_rename": (5, "Rename"),
    "path_link": (1, "Create"),
    "path_mknod": (1, "Create"),
    "path_mkdir": (1, "Create"),
    "path_symlink": (1, "Create"),
    "path_chmod": (7, "Set Security"),
    "path_chown": (7, "Set Security"),
    "inode_setattr": (6, "Set Attributes"),
    "inode_setxattr": (6, "Set Attributes"),
    "mmap_file": (99, "Other"),
    "clone3": (3, "Update"),
}
# network hook -> (activity_id, activity name, direction_id) of Network Activity
_NET_ACTIVITY = {
    "connect": (1, "Open", 2),
    "sendmsg": (6, "Traffic", 2),
    "egress": (6, "Traffic", 2),
    "bind": (7, "Listen", 1),
    "ingress": (6, "Traffic", 1),
    "sock_create": (99, "Other", 0),
}
_DIRECTIONS = {0: "Unknown", 1: "Inbound", 2: "Outbound"}
_CLASSES = {
    1001: ("File System Activity", 1, "System Activity"),
    1007: ("Process Activity", 1, "System Activity"),
    4001: ("Network Activity", 4, "Network Activity"),
    0: ("Base Event", 0, "Uncategorized"),
}
_DEV_TYPES = {"char": (3, "Character Device"), "block": (4, "Block Device")}


def _millis(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def _user(uid: Any) -> dict[str, Any]:
    return {"uid": str(uid)}


def from_record(rec: dict[str, Any], hostname: str) -> dict[str, Any]:
    """One OCSF event for one audit record (native JSON, as AuditRecord.to_json writes)."""
    hook, action = str(rec.get("hook")), str(rec.get("action"))
    target = rec.get("target") or {}
    proc = rec.get("process") or {}
    denied = action == "deny"
    event: dict[str, Any]
    if hook == "exec":
        path = str(target.get("path", ""))
        class_uid, activity = 1007, (1, "Launch")
        event = {
            "process": {
                "name": posixpath.basename(path) or path,
                "file": {"path": path, "name": posixpath.basename(path), "type_id": 1},
            }
        }
    elif hook in _NET_ACTIVITY:
        class_uid = 4001
        aid, aname, direction = _NET_ACTIVITY[hook]
        activity = (aid, aname)
        conn: dict[str, Any] = {"direction_id": direction, "direction": _DIRECTIONS[direction]}
        if hook == "sock_create":
            conn["protocol_name"] = str(target.get("type", ""))
            dst: dict[str, Any] = {"name": f"{target.get('family')}/{target.get('type')} socket"}
            activity = (aid, "Socket Create")
        else:
            conn["protocol_name"] = str(target.get("protocol", ""))
            conn["protocol_ver_id"] = 6 if target.get("family") == "inet6" else 4
            dst = {"ip": str(target.get("address")), "port": int(target.get("port", 0))}
        event = {"connection_info": conn, "dst_endpoint": dst}
        c = rec.get("container") or {}
        event["src_endpoint"] = {"name": c.get("name") or "container", "uid": c.get("id") or "unknown"}
    elif hook == "audit_loss":
        class_uid, activity = 0, (99, "Other")
        event = {
            "message": f"{rec.get('count')} operation(s) counted by the kernel but not itemised "
            "in the audit trail (the ring buffer was full)"
        }
    elif "major" in target:  # device
        class_uid = 1001
        acc = str(target.get("access", ""))
        activity = (1, "Create") if "mknod" in acc else (3, "Update") if "write" in acc else (2, "Read")
        type_id, type_name = _DEV_TYPES.get(str(target.get("type")), (99, "Other"))
        name = f"{target.get('major')}:{target.get('minor')}"
        event = {
            "file": {"name": name, "path": f"/dev/{target.get('type')}/{name}", "type_id": type_id, "type": type_name}
        }
    else:  # file hooks
        class_uid = 1001
        activity = _FILE_ACTIVITY.get(hook, (99, "Other"))
        acc = str(target.get("access", ""))
        if hook == "file_open" and "write" in acc and "read" not in acc:
            activity = (3, "Update")
        path = str(target.get("path", ""))
        event = {"file": {"path": path, "name": posixpath.basename(path) or path, "type_id": 1, "type": "Regular File"}}
    class_name, category_uid, category_name = _CLASSES[class_uid]
    aid, aname = activity
    c = rec.get("container") or {}
    out: dict[str, Any] = {
        "metadata": {"version": VERSION, "product": PRODUCT, "profiles": ["host", "security_control", "container"]},
        "time": _millis(str(rec.get("timestamp"))),
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": aid,
        "activity_name": aname,
        "type_uid": class_uid * 100 + aid,
        "type_name": f"{class_name}: {aname}",
        "severity_id": 3 if denied else 1,
        "severity": "Medium" if denied else "Informational",
        "count": int(rec.get("count", 1)),
        "device": {"hostname": hostname, "type_id": 0, "type": "Unknown"},
        "container": {"uid": c.get("id") or "", "name": c.get("name") or "", "image": {"name": c.get("image") or ""}},
        "unmapped": {"hook": hook, "policy": rec.get("policy"), "rule": rec.get("rule"), "target": target},
        **event,
    }
    if class_uid != 0:
        out["actor"] = {
            "process": {"pid": proc.get("pid"), "name": proc.get("comm"), "user": _user(proc.get("uid"))},
            "user": _user(proc.get("uid")),
        }
        out |= {
            "action_id": 2 if denied else 1,
            "action": "Denied" if denied else "Allowed",
            "disposition_id": 2 if denied else 17,
            "disposition": "Blocked" if denied else "Logged",
            "status_id": 2 if denied else 1,
            "status": "Failure" if denied else "Success",
        }
        if denied:
            out["status_detail"] = str(rec.get("errno") or rec.get("signal") or "EPERM")
    return out
