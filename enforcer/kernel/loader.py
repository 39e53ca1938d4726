"""Load the BPF objects, attach their programs and pin everything under one root.

Layout under the pin root (default /sys/fs/bpf/enforcer):
  maps/<name>    every map, pinned by name (shared by all objects, kept across restarts)
  links/<prog>   every attachment; a pinned link keeps the program attached with no daemon
  links/cgroup/<cgroup id>/<prog>   the cgroup programs attached to one container's cgroup
A link already pinned from an earlier run is not detached: its program is swapped in place
(bpf_link_update), so an upgrade or restart leaves no moment unprotected.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from enforcer.errors import EnforcerError
from enforcer.kernel.abi import Abi
from enforcer.kernel.build import BuiltObjects
from enforcer.pybpf import BpfError, BpfObject, Link, Map, Program

log = structlog.get_logger(__name__)

DEFAULT_PIN_ROOT = Path("/sys/fs/bpf/enforcer")
# object -> its LSM programs (attached globally; they filter by container cgroup themselves)
LSM_OBJECTS: dict[str, tuple[str, ...]] = {
    "lsm_file": (
        # before file_open: no open is cached before a freed dentry's address is dropped
        "enforcer_d_instantiate",
        "enforcer_file_open",
        "enforcer_bprm_check",
        "enforcer_task_alloc",
        "enforcer_mmap_file",
        "enforcer_file_mprotect",
        "enforcer_path_truncate",
        "enforcer_path_chmod",
        "enforcer_path_chown",
        "enforcer_path_unlink",
        "enforcer_path_rmdir",
        "enforcer_path_mknod",
        "enforcer_path_mkdir",
        "enforcer_path_symlink",
        # A hook's programs run last-attached first and the first denial ends the call: the
        # new name's programs attach before the source's, so a denial names the source.
        "enforcer_path_link_new",
        "enforcer_path_link",
        "enforcer_path_rename_target",
        "enforcer_path_rename_swap",
        "enforcer_path_rename",
        "enforcer_inode_setattr",
        "enforcer_inode_setxattr",
        "enforcer_inode_removexattr",
    ),
    # socket rules for the families cgroup/sock_create never sees (packet, netlink, ...)
    "lsm_sock": ("enforcer_socket_create",),
    # a container task may not change cgroupfs outside its container's subtree (moves,
    # mkdir, limits); clone3(CLONE_INTO_CGROUP) is judged at fexit/cgroup_can_fork
    "lsm_cgroup": (
        "enforcer_cgroup_open",
        "enforcer_cgroup_mkdir",
        "enforcer_cgroup_rmdir",
        "enforcer_cgroup_rename",
        "enforcer_cgroup_setxattr",
        "enforcer_cgroup_removexattr",
        "enforcer_cgroup_fork",
    ),
}

# object -> its cgroup programs (attached per container cgroup by CgroupEnforcement). They
# load on kernels that refuse BPF-LSM, so device, network and socket rules hold there too.
CGROUP_OBJECTS: dict[str, tuple[str, ...]] = {
    "cgroup_dev": ("enforcer_device",),
    "cgroup_net": (
        "enforcer_connect4",
        "enforcer_connect6",
        "enforcer_sendmsg4",
        "enforcer_sendmsg6",
        "enforcer_bind4",
        "enforcer_bind6",
        # packets: what actually leaves and arrives, whatever the socket kind
        "enforcer_egress",
        "enforcer_ingress",
    ),
    "cgroup_sock": ("enforcer_sock_create",),
}


def _ensure_bpffs(root: Path) -> None:
    base = root.parent
    if not os.path.ismount(base) and not os.path.ismount(root):
        raise EnforcerError(
            f"{base} is not a bpf filesystem",
            hint=f"mount it: mount -t bpf bpf {base}",
        )
    (root / "maps").mkdir(parents=True, exist_ok=True)
    (root / "links").mkdir(parents=True, exist_ok=True)


@dataclass
class Loaded:
    """Open objects; their maps stay usable while this lives."""

    abi: Abi
    objects: list[BpfObject] = field(default_factory=list)
    lsm_error: str | None = None  # why the LSM objects are not loaded (run --allow-missing-lsm)

    @property
    def maps(self) -> dict[str, Map]:
        out: dict[str, Map] = {}
        for obj in self.objects:
            for name in obj.maps:
                out.setdefault(name, obj.map(name))
        return out

    def program(self, name: str) -> Program:
        for obj in self.objects:
            if name in obj.programs:
                return obj.program(name)
        raise KeyError(f"no loaded object has program {name!r}")

    def close(self) -> None:
        self.close_from(0)

    def close_from(self, first: int) -> None:
        """Close the objects from index `first` on (those a failed load added)."""
        for obj in self.objects[first:]:
            obj.close()
        del self.objects[first:]


def attach_pinned(link_path: Path, program: Program, attach: Callable[[], Link]) -> None:
    """Pin a new attachment, or replace the one pinned by an earlier run without a gap.

    cgroup links swap their program in place (bpf_link_update). LSM (tracing) links cannot
    (EINVAL), so the new program is attached first and the old link detached after: for
    that instant both run, both enforcing the same maps (an operation in it is counted
    twice, none is let through)."""
    if link_path.exists():
        with Link.open_pinned(link_path) as old:
            try:
                old.update_program(program)
                return
            except BpfError as err:
                if err.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                    raise
            fresh = attach()
            staging = link_path.with_name(link_path.name + "_new")  # bpffs names take no dots
            staging.unlink(missing_ok=True)
            fresh.pin(staging)
            fresh.destroy()
            old.unpin()
            os.rename(staging, link_path)  # bpffs renames pins atomically
        return  # closing `old` released its last reference: the old program is detached
    link = attach()
    link.pin(link_path)
    link.destroy()  # the pin holds the attachment


def _load_objects(
    built: BuiltObjects,
    pin_root: Path,
    into: Loaded | None,
    names: Iterable[str],
    after_load: Callable[[str, BpfObject], None],
    what: str,
    hint: str,
    ring_bytes: int | None = None,
) -> Loaded:
    """Load `names` (maps pinned under `pin_root`) into `into` or a new Loaded; on failure
    only the objects added here are closed and an EnforcerError says `what` failed."""
    _ensure_bpffs(pin_root)
    # The ABI comes from the LSM object's BTF even when it is not loaded: it anchors every type.
    loaded = into or Loaded(Abi.from_object(built.path("lsm_file")))
    first_new = len(loaded.objects)
    try:
        for name in names:
            obj = BpfObject(str(built.path(name)), pin_root_path=str(pin_root / "maps"))
            loaded.objects.append(obj)
            if ring_bytes is not None:  # tests: a small ring that fills (a power of 2 pages)
                obj.map("events").set_max_entries(ring_bytes)
            obj.load()
            after_load(name, obj)
    except BpfError as err:
        loaded.close_from(first_new)
        raise EnforcerError(f"cannot load the {what} programs: {err.errno_name}", hint=hint) from err
    return loaded


def load_lsm(built: BuiltObjects, pin_root: Path = DEFAULT_PIN_ROOT, into: Loaded | None = None) -> Loaded:
    """Load the LSM objects and attach their programs, pinned under `pin_root`; into
    `into` (whose objects stay loaded if this fails), or a new Loaded."""

    def attach_all(name: str, obj: BpfObject) -> None:
        for prog in LSM_OBJECTS[name]:
            program = obj.program(prog)
            # lsm/ sections attach to their hook, fexit/ to its function (by section)
            attach = program.attach_lsm if program.section.startswith("lsm") else program.attach
            attach_pinned(pin_root / "links" / prog, program, attach)
            log.info("attached", program=prog, pin=str(pin_root / "links" / prog))

    return _load_objects(
        built,
        pin_root,
        into,
        LSM_OBJECTS,
        attach_all,
        "file/exec enforcement",
        "run `enforcer doctor`; this kernel may not allow BPF-LSM programs",
    )


def load_cgroup(
    built: BuiltObjects, pin_root: Path = DEFAULT_PIN_ROOT, into: Loaded | None = None, ring_bytes: int | None = None
) -> Loaded:
    """Load the cgroup objects (maps pinned under `pin_root`, programs not attached yet:
    they attach per container) into `into`, or a new Loaded. `ring_bytes` sizes a new
    events ring buffer (tests flood a small one)."""
    return _load_objects(
        built,
        pin_root,
        into,
        CGROUP_OBJECTS,
        lambda _n, _o: None,
        "device/network/socket",
        "run `enforcer doctor`; the kernel needs cgroup v2 BPF (CONFIG_CGROUP_BPF)",
        ring_bytes,
    )


def _unpin_links(directory: Path, removed: list[str]) -> None:
    for p in sorted(directory.iterdir()):
        if p.is_dir():  # links/cgroup/<cgroup id>/
            _unpin_links(p, removed)
            p.rmdir()
            continue
        with Link.open_pinned(p) as link:
            link.unpin()
        removed.append(str(p))


def unload(pin_root: Path = DEFAULT_PIN_ROOT) -> list[str]:
    """Detach and unpin everything under `pin_root`; returns what was removed."""
    removed: list[str] = []
    links = pin_root / "links"
    if links.is_dir():
        _unpin_links(links, removed)
    maps = pin_root / "maps"
    if maps.is_dir():
        for p in sorted(maps.iterdir()):
            p.unlink()
            removed.append(str(p))
    for d in (links, maps, pin_root):
        if d.is_dir():
            d.rmdir()
    return removed
