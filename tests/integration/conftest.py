"""Fixtures for tests that need Docker: a private dockerd, the testbox image, containers.

- `dockerd` (session): a PrivateDockerd, started once; `dockerd.cli(...)`, `dockerd.client()`,
  `dockerd.restart(live_restore=...)`. Env: ENFORCER_TEST_LIVE_RESTORE=1,
  ENFORCER_TEST_STORAGE_DRIVER, ENFORCER_TEST_CGROUP_DRIVER.
- `testbox_image` (session): tag of the registry-free busybox image (built once).
- `docker_run` (function): `docker_run("sleep", "60", name=..., labels=..., user=...)` starts a
  container with `--network none`; every container it made is removed at teardown.
- `testbox` (function): one long-lived session container (`sleep`), restarted if a dockerd
  restart stopped it. Prefer `testbox.exec(...)` over a new container: a start costs ~10 s
  in the VM.

Any test using these fixtures gets the `docker` marker automatically (mark it explicitly too),
so `-m "not docker"` deselects it.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator

import pytest

from tests.images.testbox import IMAGE_TAG, RootfsBuilder, build_testbox_rootfs, import_image
from tests.integration.dockerd import DOCKERD, Container, PrivateDockerd, run_container

DOCKER_FIXTURES = {
    "dockerd",
    "testbox_image",
    "testbox_rootfs",
    "docker_run",
    "testbox",
    "shared_testbox",
    "module_testbox",
}
SHARED_NAME = "enforcer-testbox-shared"

# Seconds, by what was measured; printed at the end of the run.
TIMINGS: dict[str, list[float]] = {}


def record_timing(what: str, seconds: float) -> None:
    TIMINGS.setdefault(what, []).append(seconds)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DOCKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("docker timings (s)")
    for what, values in TIMINGS.items():
        shown = ", ".join(f"{v:.3f}" for v in values[:10])
        terminalreporter.write_line(f"{what}: n={len(values)} max={max(values):.3f} [{shown}]")


@pytest.fixture(scope="session")
def dockerd(request: pytest.FixtureRequest) -> Iterator[PrivateDockerd]:
    if os.geteuid() != 0:
        pytest.skip("a private dockerd needs root")
    if not shutil.which(DOCKERD) and not os.path.exists(DOCKERD):
        pytest.skip(f"{DOCKERD} not installed")
    daemon = PrivateDockerd(live_restore=os.environ.get("ENFORCER_TEST_LIVE_RESTORE") == "1")
    failed = True
    try:
        record_timing("dockerd start", daemon.start())
        info = daemon.info()
        print(
            f"\nprivate dockerd: {daemon.host} cgroup driver={info.cgroup_driver} "
            f"v{info.cgroup_version} layout={daemon.cgroup_layout.value} "
            f"storage={info.storage_driver} log={daemon.log_path}"
        )
        yield daemon
        failed = False
    finally:
        failed = failed or request.session.testsfailed > 0
        if failed:
            print(f"\n--- dockerd log tail ({daemon.log_path}, kept) ---\n{daemon.log_tail()}")
        daemon.cleanup(remove_log=not failed)


@pytest.fixture(scope="session")
def testbox_rootfs() -> RootfsBuilder:
    """The rootfs the testbox image is built from; override to add files."""
    return build_testbox_rootfs()


@pytest.fixture(scope="session")
def testbox_image(dockerd: PrivateDockerd, testbox_rootfs: RootfsBuilder) -> str:
    if dockerd.cli("image", "inspect", IMAGE_TAG, check=False).returncode != 0:
        record_timing("image import", import_image(testbox_rootfs, dockerd.cli, IMAGE_TAG))
    return IMAGE_TAG


RunContainer = Callable[..., Container]


@pytest.fixture
def docker_run(dockerd: PrivateDockerd, testbox_image: str, request: pytest.FixtureRequest) -> Iterator[RunContainer]:
    started: list[Container] = []
    counter = itertools.count()
    stem = re.sub(r"[^a-zA-Z0-9_.-]", "-", request.node.name)[:40].strip("-.")

    def run(
        *command: str,
        name: str | None = None,
        labels: dict[str, str] | None = None,
        user: str | None = None,
        image: str | None = None,
        extra_args: list[str] | tuple[str, ...] = (),
    ) -> Container:
        t0 = time.monotonic()
        container = run_container(
            dockerd,
            image or testbox_image,
            *(command or ("sleep", "3600")),
            name=name or f"t-{stem}-{next(counter)}",
            labels=labels,
            user=user,
            extra_args=extra_args,
        )
        record_timing("container start (docker run -d)", time.monotonic() - t0)
        started.append(container)
        return container

    try:
        yield run
    finally:
        for container in started:
            container.remove()


@pytest.fixture(scope="session")
def shared_testbox(dockerd: PrivateDockerd, testbox_image: str) -> Iterator[Container]:
    t0 = time.monotonic()
    container = run_container(
        dockerd,
        testbox_image,
        "sleep",
        "1000000",
        name=SHARED_NAME,
        labels={"enforcer.test": "shared"},
    )
    record_timing("container start (docker run -d)", time.monotonic() - t0)
    try:
        yield container
    finally:
        container.remove()


def _running(shared_testbox: Container, dockerd: PrivateDockerd) -> Container:
    # a dockerd restart without live-restore (test_container_identity) stops it
    if not dockerd.running:
        dockerd.start()
    if not shared_testbox.running:
        dockerd.cli("start", shared_testbox.id)
    return shared_testbox


@pytest.fixture
def testbox(shared_testbox: Container, dockerd: PrivateDockerd) -> Container:
    """The shared long-lived container, running when the test starts."""
    return _running(shared_testbox, dockerd)


@pytest.fixture(scope="module")
def module_testbox(shared_testbox: Container, dockerd: PrivateDockerd) -> Container:
    """The shared long-lived container, running when the module starts (for module fixtures,
    whatever ran before them)."""
    return _running(shared_testbox, dockerd)
