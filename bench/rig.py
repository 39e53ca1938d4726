"""What the benchmarks run against: a private dockerd with the bench image, and the
enforcer's kernel layer loaded under a private pin root, switchable on and off.

The private dockerd and the registry-free busybox image are the test suite's
(tests/integration/dockerd.py, tests/images/testbox.py): one way to do both, not two.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from enforcer.compiler.rules import RuleTable
from enforcer.containers.cgroups import cgroup_of_pid
from enforcer.kernel.build import ensure_built
from enforcer.kernel.enforcement import FileEnforcement, RulesetPart
from enforcer.kernel.loader import LSM_OBJECTS, Loaded, attach_pinned, load_lsm, unload
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.policy.merge import merge
from enforcer.policy.model import Policy
from enforcer.pybpf import Link, Program
from tests.images.testbox import RootfsBuilder, import_image
from tests.integration.dockerd import DOCKER_CLI, Container, DockerdError, PrivateDockerd, run_container

from bench.loop import LoopClient, build_loop

IMAGE = "enforcer-bench:latest"
LOOP = "/bench/loop"
MAX_DEPTH = 32


def target_path(depth: int, name: str) -> str:
    """A file `depth` components deep: /bench/d/.../NAME."""
    if depth < 2:
        raise ValueError("depth >= 2 (/bench/NAME)")
    return "/bench/" + "d/" * (depth - 2) + name


def bench_rootfs(depths: Sequence[int]) -> RootfsBuilder:
    rootfs = RootfsBuilder()
    rootfs.add_file(LOOP, build_loop(), 0o755)
    rootfs.add_file("/bench/secret", "denied by the storm policy\n")
    for depth in depths:
        for name in ("allowed", "none"):
            rootfs.add_file(target_path(depth, name), f"{name} at depth {depth}\n")
    return rootfs


@dataclass
class DockerRig:
    """A private dockerd with the bench image; containers it started are removed at close."""

    depths: Sequence[int]
    daemon: PrivateDockerd = field(default_factory=PrivateDockerd)
    containers: list[Container] = field(default_factory=list)

    def start(self, attempts: int = 3) -> None:
        # On a loaded machine dockerd may give up waiting for its containerd: try again.
        for attempt in range(attempts):
            try:
                self.daemon.start()
                break
            except DockerdError:
                self.daemon.stop()
                if attempt == attempts - 1:
                    raise
        import_image(bench_rootfs(self.depths), self.daemon.cli, IMAGE)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.daemon.host
        env["DOCKER_CONFIG"] = str(self.daemon.base_dir / "cli-config")
        return env

    def run(self, name: str, *command: str) -> Container:
        container = run_container(self.daemon, IMAGE, *(command or ("sleep", "1000000")), name=name)
        self.containers.append(container)
        return container

    def loop_in(self, container: Container) -> LoopClient:
        return LoopClient([DOCKER_CLI, "exec", "-i", container.id, LOOP, "serve"], env=self.env())

    def close(self) -> None:
        for c in self.containers:
            c.remove()
        self.daemon.cleanup(remove_log=True)


def host_loop() -> LoopClient:
    return LoopClient([str(build_loop()), "serve"])


class KernelRig:
    """The LSM programs and policy maps under a private pin root.

    `off()` detaches every program (the kernel runs as if no enforcer existed); `on()`
    attaches them again through the loader's own pinned-link path; maps and rulesets stay.
    """

    def __init__(self, pin_root: Path) -> None:
        self.pin_root = pin_root
        self.loaded: Loaded = load_lsm(ensure_built(), pin_root)
        self.maps = PolicyMaps(self.loaded.abi, self.loaded.maps)
        self.table = RuleTable()
        self.files = FileEnforcement(self.maps, self.table)
        self.parts: dict[int, RulesetPart] = {}
        self.attached = True

    def programs(self) -> dict[str, Program]:
        out: dict[str, Program] = {}
        for obj, names in zip(self.loaded.objects, LSM_OBJECTS.values(), strict=True):
            for name in names:
                out[name] = obj.program(name)
        return out

    def off(self) -> None:
        if not self.attached:
            return
        links = self.pin_root / "links"
        for p in sorted(links.iterdir()):
            with Link.open_pinned(p) as link:
                link.unpin()  # closing the last fd of an unpinned link detaches it
        self.attached = False

    def on(self) -> None:
        if self.attached:
            return
        for name, program in self.programs().items():
            attach_pinned(self.pin_root / "links" / name, program, program.attach_lsm)
        self.attached = True

    def write(self, ruleset: int, policies: Sequence[Policy]) -> RulesetPart:
        part = self.files.write_ruleset(ruleset, merge(policies))
        self.parts[ruleset] = part
        return part

    def police(self, cgroup_id: int, ruleset: int) -> None:
        self.maps.set_container(cgroup_id, ruleset, self.parts[ruleset].container_fields)

    def close(self) -> None:
        self.loaded.close()
        unload(self.pin_root)


@contextmanager
def kernel_rig(name: str) -> Iterator[KernelRig]:
    rig = KernelRig(Path(f"/sys/fs/bpf/enforcer-bench-{name}-{os.getpid()}"))
    try:
        yield rig
    finally:
        rig.close()


def cgroup_id_of(container: Container) -> int:
    return cgroup_of_pid(container.pid).id
