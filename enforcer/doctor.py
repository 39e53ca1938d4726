"""`enforcer doctor`: can this host enforce, and if not, what to change.

Each check returns a Check (OK/WARN/FAIL, a one-line finding, a fix on failure). The checks
look at the real thing where it matters: the active LSM list alone is not trusted (some
kernels list `bpf` yet refuse BPF-LSM programs), so the LSM object is actually loaded
(never attached) with its pinned maps under a private, temporary pin root that is always
removed afterwards.
"""

from __future__ import annotations

import errno
import os
import platform
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import structlog

from enforcer.containers.tracker import docker_base_url
from enforcer.errors import EnforcerError

log = structlog.get_logger(__name__)

OK, WARN, FAIL = "OK", "WARN", "FAIL"

MIN_KERNEL = (5, 17)  # bpf_loop() (5.17); ring buffer (5.8) and BPF-LSM (5.7) come earlier
LSM_FILE = Path("/sys/kernel/security/lsm")
LOCKDOWN_FILE = Path("/sys/kernel/security/lockdown")
BTF_FILE = Path("/sys/kernel/btf/vmlinux")
BPFFS = "/sys/fs/bpf"
LSM_PROGRAMS = ("enforcer_file_open", "enforcer_bprm_check")
VM_FIX = "run the enforcer in the VM: `scripts/vm-run -- enforcer run`"
SECURITYFS_FIX = "mount securityfs: `mount -t securityfs securityfs /sys/kernel/security`"

# Checks that must not FAIL for file/exec enforcement to be possible on this host.
ENFORCEMENT_CHECKS = (
    "kernel version",
    "BTF",
    "BPF objects",
    "bpf in active LSM list",
    "LSM program loads",
    "bpffs",
    "cgroup2",
)


@dataclass
class Check:
    name: str
    status: str  # OK | WARN | FAIL
    finding: str
    fix: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [f"{self.status:<4}  {self.name}: {self.finding}"]
        if self.fix and self.status != OK:
            out.append(f"    fix: {self.fix}")
        return out


# ----- kernel ------------------------------------------------------------------------------
def parse_kernel_version(release: str) -> tuple[int, int] | None:
    """(major, minor) from a uname release such as '6.1.0-27-amd64' or '6.18.44-fc-v669'."""
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_kernel(release: str | None = None) -> Check:
    release = release if release is not None else platform.release()
    version = parse_kernel_version(release)
    need = ".".join(map(str, MIN_KERNEL))
    if version is None:
        return Check(
            "kernel version",
            WARN,
            f"cannot parse kernel release {release!r}",
            f"make sure the kernel is {need} or newer",
        )
    if version < MIN_KERNEL:
        return Check(
            "kernel version",
            FAIL,
            f"{release} is too old: the LSM programs need bpf_loop() (Linux {need}), ring buffers need 5.8",
            f"boot a kernel >= {need} (or use the VM: `scripts/vm-run -- enforcer run`)",
        )
    return Check("kernel version", OK, f"{release} (>= {need}: ring buffer and bpf_loop)")


def check_btf(path: Path = BTF_FILE) -> Check:
    if path.is_file():
        return Check("BTF", OK, f"{path} present")
    return Check(
        "BTF",
        FAIL,
        f"{path} missing: CO-RE programs cannot be relocated",
        "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y (stock distribution kernels are)",
    )


# ----- BPF objects -------------------------------------------------------------------------
def check_objects() -> tuple[Check, Path | None]:
    """Build (or find up to date) the BPF objects; returns the LSM object path when built."""
    from enforcer.kernel.build import ensure_built

    try:
        path = ensure_built().path("lsm_file")
    except EnforcerError as err:
        return Check(
            "BPF objects",
            FAIL,
            f"not built: {err.message}",
            err.hint or "install clang and bpftool, then `python -m enforcer.kernel.build`",
        ), None
    return Check("BPF objects", OK, f"built ({path})"), path


# ----- LSM list ----------------------------------------------------------------------------
def parse_lsm_list(text: str) -> list[str]:
    return [name.strip() for name in text.strip().split(",") if name.strip()]


def _lsm_boot_fix(active: list[str]) -> str:
    wanted = ",".join([n for n in active if n != "bpf"] + ["bpf"]) if active else "...,bpf"
    return f"boot with `lsm={wanted}` on the kernel command line (CONFIG_BPF_LSM=y needed)"


def check_lsm_list(path: Path = LSM_FILE) -> Check:
    name = "bpf in active LSM list"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Check(name, WARN, f"{path} missing: securityfs is not mounted, cannot read the list", SECURITYFS_FIX)
    except OSError as err:
        return Check(name, WARN, f"cannot read {path}: {err.strerror}", "run as root")
    active = parse_lsm_list(text)
    if "bpf" in active:
        return Check(name, OK, ",".join(active))
    return Check(name, FAIL, f"bpf is not active ({','.join(active) or 'empty list'})", _lsm_boot_fix(active))


def _lockdown(path: Path = LOCKDOWN_FILE) -> str | None:
    try:
        m = re.search(r"\[(\w+)\]", path.read_text())
    except OSError:
        return None
    return m.group(1) if m else None


def check_open_cache(kallsyms: Path | None = None) -> Check:
    """The decision cache needs the kernel's rename and mount seqlocks from kallsyms;
    without them every open is walked (slower, never less safe)."""
    from enforcer.kernel.open_cache import KALLSYMS, SEQLOCKS, seqlock_addresses

    name = "decision cache"
    found = seqlock_addresses(kallsyms or KALLSYMS)
    missing = [s for s in SEQLOCKS if s not in found]
    if not missing:
        return Check(name, OK, "rename_lock and mount_lock in kallsyms: a repeated allowed open skips the walk")
    return Check(
        name,
        WARN,
        f"{' and '.join(missing)} not in {kallsyms or KALLSYMS}: every open is walked (enforcement is the same)",
        "a kernel with CONFIG_KALLSYMS_ALL=y, and kernel.kptr_restrict <= 1 (run as root)",
    )


# ----- bpffs -------------------------------------------------------------------------------
def _mounts(proc_root: str = "/proc") -> list[tuple[str, str]]:
    from enforcer.containers.cgroups import parse_mounts

    text = Path(proc_root, "self/mounts").read_text()
    return [(m.mountpoint, m.fstype) for m in parse_mounts(text)]


def check_bpffs(mounts: list[tuple[str, str]] | None = None, where: str = BPFFS) -> Check:
    mounts = mounts if mounts is not None else _mounts()
    if any(point == where and fstype == "bpf" for point, fstype in mounts):
        return Check("bpffs", OK, f"mounted at {where}")
    return Check(
        "bpffs", FAIL, f"no bpf filesystem at {where}: maps and links cannot be pinned", f"`mount -t bpf bpf {where}`"
    )


# The kernel refusing a program type (as opposed to a broken object), errno by errno;
# pybpf's ENOTSUPP (kernel-internal 524) joins them where pybpf is imported.
_REFUSED = (errno.EPERM, errno.EINVAL, errno.EACCES, errno.EOPNOTSUPP)


# ----- LSM load probe ----------------------------------------------------------------------
def _cleanup_pins(obj: object, pin_root: Path) -> None:
    maps = getattr(obj, "maps", {}) if obj is not None else {}
    for mp in maps.values():
        if mp.pin_path is None:
            continue
        try:
            mp.unpin()
        except Exception as err:  # noqa: BLE001 - never pinned (load failed first) is fine
            log.debug("unpin failed", map=mp.name, error=str(err))
    if pin_root.is_dir():
        for leftover in pin_root.iterdir():  # anything libbpf pinned that we did not see
            try:
                leftover.unlink()
            except OSError as err:
                log.warning("cannot remove pin", path=str(leftover), error=err.strerror)
        try:
            pin_root.rmdir()
        except OSError as err:
            log.warning("cannot remove pin dir", path=str(pin_root), error=err.strerror)


def probe_lsm_load(obj_path: Path, bpffs_ok: bool) -> None:
    """Load (never attach) the LSM object. Pins go under a private temporary root that is
    removed afterwards; without bpffs the maps are not pinned at all. Raises BpfError."""
    probe_load(obj_path, bpffs_ok, LSM_PROGRAMS)


def probe_load(obj_path: Path, bpffs_ok: bool, programs: tuple[str, ...]) -> None:
    """Load (never attach) one object that must hold `programs`; pins as probe_lsm_load."""
    from enforcer.pybpf import BpfObject

    pin_root = Path(BPFFS, f"enforcer-doctor-{os.getpid()}")
    if bpffs_ok:
        pin_root.mkdir(exist_ok=True)
    obj = None
    try:
        obj = BpfObject(obj_path, pin_root_path=pin_root)
        if not bpffs_ok:
            for mp in obj.maps.values():
                if mp.pin_path is not None:
                    mp.set_pin_path(None)
        obj.load()
        missing = [p for p in programs if p not in obj.programs]
        if missing:
            raise EnforcerError(f"{obj_path} has no program(s) {', '.join(missing)}")
    finally:
        try:
            _cleanup_pins(obj, pin_root)
        finally:
            if obj is not None:
                obj.close()


def check_lsm_load(
    obj_path: Path | None,
    bpffs_ok: bool = True,
    probe: Callable[[Path, bool], None] = probe_lsm_load,
) -> Check:
    from enforcer.pybpf import BpfError
    from enforcer.pybpf.errors import ENOTSUPP

    name = "LSM program loads"
    boot = "boot with `lsm=...,bpf` on a kernel with CONFIG_BPF_LSM=y"
    if obj_path is None:
        return Check(name, FAIL, "not probed: the BPF objects are not built", "fix the `BPF objects` check first")
    try:
        probe(obj_path, bpffs_ok)
    except BpfError as err:
        if err.errno in (errno.EPERM, errno.EACCES) and os.geteuid() != 0:
            return Check(
                name,
                FAIL,
                f"loading the LSM programs failed with {err.errno_name}: not root",
                "run `enforcer doctor` (and the enforcer) as root",
            )
        if err.errno in (*_REFUSED, ENOTSUPP):
            mode = _lockdown()
            extra = " (kernel lockdown: confidentiality)" if mode == "confidentiality" else ""
            return Check(
                name,
                FAIL,
                f"{err.errno_name}{extra}: the kernel refuses BPF-LSM programs even when it lists bpf "
                "as an active LSM; file and exec rules cannot be enforced on this host",
                f"{VM_FIX}, or {boot}",
            )
        return Check(name, FAIL, f"loading the LSM programs failed: {str(err).splitlines()[0]}", f"{VM_FIX}, or {boot}")
    except EnforcerError as err:
        return Check(name, FAIL, str(err), "rebuild: `python -m enforcer.kernel.build`")
    return Check(name, OK, f"{' and '.join(LSM_PROGRAMS)} load (probed, not attached)")


def probe_cgroup_load(bpffs_ok: bool) -> None:
    from enforcer.kernel.build import ensure_built
    from enforcer.kernel.loader import CGROUP_OBJECTS

    built = ensure_built()
    for name, programs in CGROUP_OBJECTS.items():
        probe_load(built.path(name), bpffs_ok, programs)


def check_cgroup_load(
    objects_ok: bool, bpffs_ok: bool = True, probe: Callable[[bool], None] = probe_cgroup_load
) -> Check:
    """Device, network and socket rules need only cgroup BPF: they hold where BPF-LSM does not."""
    from enforcer.pybpf import BpfError

    name = "cgroup programs load"
    if not objects_ok:
        return Check(name, FAIL, "not probed: the BPF objects are not built", "fix the `BPF objects` check first")
    try:
        probe(bpffs_ok)
    except BpfError as err:
        return Check(
            name,
            FAIL,
            f"loading the device/network/socket programs failed with {err.errno_name}: those rules cannot be enforced",
            "use a kernel with CONFIG_CGROUP_BPF=y and run as root",
        )
    except EnforcerError as err:
        return Check(name, FAIL, str(err), "rebuild: `python -m enforcer.kernel.build`")
    return Check(name, OK, "device, network and socket programs load (probed, not attached)")


# ----- cgroups -----------------------------------------------------------------------------
def check_cgroup2(proc_root: str = "/proc") -> Check:
    from enforcer.containers.cgroups import CgroupLayout, detect_layout, find_cgroup2_mount

    try:
        mount = find_cgroup2_mount(proc_root)
    except EnforcerError as err:
        return Check("cgroup2", FAIL, f"{err.message} (cgroup v1 only)", err.hint)
    layout = detect_layout(proc_root)
    if layout is CgroupLayout.HYBRID:
        return Check(
            "cgroup2",
            WARN,
            f"hybrid layout: cgroup2 at {mount} beside v1 controllers; enforcement works only if "
            "Docker puts containers in cgroup2 too (its cgroups are read from the 0:: line)",
            "boot with systemd.unified_cgroup_hierarchy=1 for a pure cgroup v2 host",
        )
    return Check("cgroup2", OK, f"{layout.value} layout, cgroup2 at {mount}")


# ----- Docker ------------------------------------------------------------------------------
def check_docker(docker_host: str | None = None, timeout: int = 3) -> Check:
    url = docker_base_url(docker_host)
    fix = "start dockerd (e.g. `systemctl start docker`), or point at it with --docker-host URL / DOCKER_HOST"
    try:
        import docker

        client = docker.DockerClient(base_url=url, timeout=timeout)
        try:
            client.ping()
            version = client.version().get("Version", "?")
        finally:
            client.close()
    except Exception as err:  # noqa: BLE001 - any failure means "not reachable", say why
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if len(reason) > 160:
            reason = reason[:157] + "..."
        return Check("Docker", FAIL, f"{url} not reachable: {reason}", fix)
    return Check("Docker", OK, f"{url} reachable (Docker {version})")


START_WINDOW_FIX = "`enforcer install-runtime`, then restart dockerd (see docs/operations.md)"


def runtime_check_from(default_runtime: str | None) -> Check:
    """Is Docker's default runtime the enforcer's wrapper (enforcer-runc)? Without it a new
    container runs before the daemon has seen it: policies selecting every container hold
    from its first instruction anyway (the kernel recognises a Docker container's cgroup),
    policies with a selector only once the daemon has written its entry."""
    from enforcer.runtime.install import RUNTIME_NAME

    if default_runtime == RUNTIME_NAME:
        return Check(
            "runtime wrapper",
            OK,
            "Docker's default runtime is enforcer-runc: every "
            "container is under all its policies before its first instruction",
        )
    shown = default_runtime or "unknown"
    return Check(
        "runtime wrapper",
        WARN,
        f"Docker's default runtime is {shown}, not enforcer-runc: policies with a selector "
        "(names, images, labels) have a start window, from a container's first instruction until "
        "the daemon sees it (measured per container in `enforcer status`); policies selecting "
        "every container hold from the first instruction",
        START_WINDOW_FIX,
    )


def check_runtime(docker_host: str | None = None, timeout: int = 3) -> Check | None:
    """None when Docker cannot be asked (check_docker says so)."""
    try:
        import docker

        client = docker.DockerClient(base_url=docker_base_url(docker_host), timeout=timeout)
        try:
            default = client.info().get("DefaultRuntime")
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - reported by check_docker
        return None
    return runtime_check_from(str(default) if default else None)


# ----- all ---------------------------------------------------------------------------------
def run_checks(docker_host: str | None = None) -> list[Check]:
    checks = [check_kernel(), check_btf()]
    objects, obj_path = check_objects()
    checks.append(objects)
    checks.append(check_lsm_list())
    checks.append(check_open_cache())
    bpffs = check_bpffs()
    checks.append(check_lsm_load(obj_path, bpffs_ok=bpffs.status == OK))
    checks.append(check_cgroup_load(obj_path is not None, bpffs_ok=bpffs.status == OK))
    checks.append(bpffs)
    checks.append(check_cgroup2())
    checks.append(check_docker(docker_host))
    runtime = check_runtime(docker_host) if checks[-1].status == OK else None
    if runtime is not None:
        checks.append(runtime)
    return checks


def file_enforcement_possible(checks: list[Check]) -> bool:
    return all(c.status != FAIL for c in checks if c.name in ENFORCEMENT_CHECKS)


def cgroup_enforcement_possible(checks: list[Check]) -> bool:
    needed = ("BPF objects", "cgroup programs load", "bpffs", "cgroup2")
    return all(c.status != FAIL for c in checks if c.name in needed)


def summary(checks: list[Check]) -> str:
    if cgroup_enforcement_possible(checks) and not file_enforcement_possible(checks):
        return (
            summary_file(checks) + "\ndevice/network/socket enforcement: possible; "
            "`enforcer run --allow-missing-lsm` enforces only these (file and exec rules are NOT enforced)"
        )
    return summary_file(checks)


def summary_file(checks: list[Check]) -> str:
    if file_enforcement_possible(checks):
        tail = "" if all(c.status != FAIL for c in checks) else " (but see the failures above)"
        return f"file/exec enforcement: possible on this host{tail}"
    failed = ", ".join(c.name for c in checks if c.status == FAIL and c.name in ENFORCEMENT_CHECKS)
    return f"file/exec enforcement: NOT possible on this host ({failed}); use `scripts/vm-run -- enforcer run`"


def exit_code(checks: list[Check]) -> int:
    """1 when file enforcement is impossible or nothing can be tracked (Docker down)."""
    return 0 if all(c.status != FAIL for c in checks) else 1


__all__ = [
    "Check",
    "run_checks",
    "summary",
    "exit_code",
    "file_enforcement_possible",
    "cgroup_enforcement_possible",
    "check_cgroup_load",
    "check_kernel",
    "check_btf",
    "check_objects",
    "check_lsm_list",
    "check_lsm_load",
    "check_bpffs",
    "check_cgroup2",
    "check_docker",
    "check_runtime",
    "runtime_check_from",
    "parse_kernel_version",
    "parse_lsm_list",
]
