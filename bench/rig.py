"""What the benchmarks run against: a private dockerd with the bench image, and the
enforcer's kernel layer loaded under a private pin root, switchable on and off.

The private dockerd and the registry-free busybox image are the test suite's
(tests/integration/dockerd.py, tests/images/testbox.py): one way to do both, not two.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.loop import LoopClient, build_loop
from enforcer.compiler.rules import RuleTable
from enforcer.compiler.ruleset import compile_ruleset
from enforcer.containers.cgroups import cgroup_of_pid
from enforcer.containers.model import ContainerInfo
from enforcer.kernel.build import ensure_built
from enforcer.kernel.enforcement import RulesetPart, merge_container_fields
from enforcer.kernel.loader import CGROUP_OBJECTS, LSM_OBJECTS, Loaded, attach_pinned, unload
from enforcer.kernel.policy_maps import PolicyMaps
from enforcer.kernel.startup import kernel_enforcements, load_kernel
from enforcer.policy.merge import EffectiveRule, PostureDecision
from enforcer.pybpf import Link, Program
from tests.images.testbox import RootfsBuilder, import_image
from tests.integration.dockerd import DOCKER_CLI, Container, DockerdError, PrivateDockerd, run_container

IMAGE = "enforcer-bench:latest"
LOOP = "/bench/loop"
MAX_DEPTH = 32


TARGETS = ("none", "far", "allowed")


def target_path(depth: int, name: str) -> str:
    """A file `depth` components deep: /bench/d/.../NAME, beside the files the allow rule
    names ("none": no rule names it, but rule paths run through its directories); "far"
    under /far, where no rule path goes (a library or config file of the image)."""
    if depth < 2:
        raise ValueError("depth >= 2 (/bench/NAME)")
    return ("/far/" if name == "far" else "/bench/") + "d/" * (depth - 2) + name


def bench_rootfs(depths: Sequence[int]) -> RootfsBuilder:
    rootfs = RootfsBuilder()
    rootfs.add_file(LOOP, build_loop(), 0o755)
    rootfs.add_file("/bench/secret", "denied by the storm policy\n")
    for depth in depths:
        for name in TARGETS:
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
    """The daemon's kernel layer (every program and policy map, every Enforcement) under a
    private pin root.

    `off()` detaches every program: the global LSM links and each policed container's
    cgroup links (the kernel runs as if no enforcer existed); `on()` attaches them again
    through the loader's and the enforcements' own paths. Maps and rulesets stay.
    """

    def __init__(self, pin_root: Path) -> None:
        self.pin_root = pin_root
        self.loaded: Loaded = load_kernel(ensure_built(), pin_root, ())
        self.maps = PolicyMaps(self.loaded.abi, self.loaded.maps)
        self.table = RuleTable()
        self.enforcements = kernel_enforcements(self.loaded, self.maps, pin_root)
        self.parts: dict[int, dict[str, RulesetPart]] = {}
        self.containers: dict[int, ContainerInfo] = {}
        self.attached = True

    def lsm_programs(self) -> dict[str, Program]:
        return {p: self.loaded.program(p) for progs in LSM_OBJECTS.values() for p in progs}

    def programs(self) -> dict[str, Program]:
        names = [p for objs in (LSM_OBJECTS, CGROUP_OBJECTS) for progs in objs.values() for p in progs]
        return {p: self.loaded.program(p) for p in names}

    def off(self) -> None:
        if not self.attached:
            return
        for p in sorted((self.pin_root / "links").iterdir()):
            if p.is_file():  # links/cgroup/<id>/ holds the per-container ones
                with Link.open_pinned(p) as link:
                    link.unpin()  # closing the last fd of an unpinned link detaches it
        for info in self.containers.values():
            for enf in self.enforcements:
                enf.detach(info)
        self.attached = False

    def on(self) -> None:
        if self.attached:
            return
        for name, program in self.lsm_programs().items():
            attach_pinned(self.pin_root / "links" / name, program, program.attach_lsm)
        for info in self.containers.values():
            for enf in self.enforcements:
                enf.attach(info)
        # While d_instantiate was detached, freed dentries' addresses were not dropped from
        # the decision cache: nothing kept before counts.
        self.maps.changed()
        self.attached = True

    def cache(self, on: bool) -> None:
        """The file_open decision cache on (as the daemon runs) or off (every open walks,
        as a first open does)."""
        if self.maps.open_cache is not None:
            self.maps.open_cache.enable(on)

    def write(
        self, ruleset: int, rules: Sequence[EffectiveRule], postures: Mapping[str, PostureDecision] | None = None
    ) -> None:
        """Compile and write, as the daemon does (enforcer.rulesets)."""
        compiled = compile_ruleset(rules, self.table, self.loaded.abi, postures)
        self.parts[ruleset] = {enf.name: enf.write_ruleset(ruleset, compiled) for enf in self.enforcements}
        # the container entry's posture word and flags, as the daemon writes them
        self.parts[ruleset]["postures"] = RulesetPart(None, compiled.postures.container_fields(self.loaded.abi))

    def delete(self, ruleset: int) -> None:
        parts = self.parts.pop(ruleset)
        for enf in self.enforcements:
            enf.delete_ruleset(ruleset, parts[enf.name])

    def fields(self, ruleset: int) -> dict[str, int]:
        return merge_container_fields(list(self.parts[ruleset].values()))

    def add_container(self, info: ContainerInfo, ruleset: int) -> None:
        """Put a container under a ruleset the way the daemon does (attach, then entry)."""
        if self.attached:
            for enf in self.enforcements:
                enf.attach(info)
        self.containers[info.cgroup.id] = info
        self.police(info.cgroup.id, ruleset)

    def remove_container(self, cgroup_id: int) -> None:
        info = self.containers.pop(cgroup_id)
        self.maps.remove_container(cgroup_id)
        for enf in self.enforcements:
            enf.detach(info)

    def police(self, cgroup_id: int, ruleset: int) -> None:
        self.maps.set_container(cgroup_id, ruleset, self.fields(ruleset))

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


def container_info(container: Container) -> ContainerInfo:
    pid = container.pid
    return ContainerInfo(container.id, container.name, IMAGE, {}, pid, cgroup_of_pid(pid))
