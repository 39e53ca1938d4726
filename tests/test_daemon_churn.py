"""The daemon's bookkeeping against the real policy maps (host kernel; the LSM programs are
not loaded, only the maps they would read): containers coming and going leave nothing
behind, and containers selecting the same policies share one ruleset."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from enforcer.audit.records import AuditWriter
from enforcer.containers.cgroups import CgroupRef
from enforcer.containers.model import ContainerInfo
from enforcer.daemon import Daemon, DaemonConfig
from enforcer.kernel.loader import Loaded
from enforcer.policy.loader import PolicySet, parse_text
from tests.lsm_maps import lsm_maps

pytestmark = pytest.mark.host_bpf

POLICIES = """
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: everyone}
spec:
  file:
    - {action: deny, paths: [/etc/shadow], dirs: [/root/.ssh]}
---
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: web}
spec:
  selector: {containerNames: ["web-*"]}
  exec:
    - {action: deny, paths: [/bin/nc]}
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, Loaded]]:
    with lsm_maps("churn") as (loaded, pin_root):
        parsed, errors = parse_text(POLICIES, "test.yaml")
        assert not errors
        policies = PolicySet(tuple(parsed))
        d = Daemon(DaemonConfig(tmp_path, pin_root=pin_root, state_dir=tmp_path / "state"), AuditWriter(io.StringIO()))
        d.use_kernel(loaded, policies)
        yield d, loaded


def _info(n: int, name: str) -> ContainerInfo:
    return ContainerInfo(
        id=f"{n:064x}",
        name=name,
        image="busybox:latest",
        labels={},
        pid=1,
        cgroup=CgroupRef(f"/sys/fs/cgroup/docker/{n:064x}", 10_000 + n),
    )


STARTING_KEY = (0).to_bytes(8, "little")  # CT_KEY_STARTING: not a container


def _entries(loaded: Loaded, name: str) -> int:
    if name == "containers":
        return sum(1 for k in loaded.maps[name].keys() if k != STARTING_KEY)
    return sum(1 for _ in loaded.maps[name].keys())


def _starting_ruleset(loaded: Loaded) -> int | None:
    value = loaded.maps["containers"].lookup(STARTING_KEY)
    return None if value is None else int(loaded.abi.layout("container").decode(value)["ruleset"])


def test_hundreds_of_start_stop_cycles_leave_no_map_entries(daemon: tuple[Daemon, Loaded]) -> None:
    d, loaded = daemon
    for cycle in range(300):
        d.container_started(_info(cycle, f"web-{cycle}" if cycle % 2 else f"db-{cycle}"))
        if cycle >= 2:  # a few stay alive at any time, as on a real host
            d.container_stopped(f"{cycle - 2:064x}")
    assert _entries(loaded, "containers") == 2
    d.container_stopped(f"{298:064x}")
    d.container_stopped(f"{299:064x}")
    assert _entries(loaded, "containers") == 0
    # only the every-container ruleset of containers not registered yet is left
    assert _rulesets_with_rules(loaded) == {_starting_ruleset(loaded)}
    assert _entries(loaded, "counters") == 0


def test_containers_selecting_the_same_policies_share_one_ruleset(daemon: tuple[Daemon, Loaded]) -> None:
    d, loaded = daemon
    d.container_started(_info(1, "web-1"))
    one = _entries(loaded, "path_rules")
    d.container_started(_info(2, "web-2"))
    assert _entries(loaded, "path_rules") == one  # shared, not copied
    d.container_started(_info(3, "db-1"))  # other policies: the every-container ruleset
    assert _entries(loaded, "path_rules") == one
    abi = loaded.abi
    rulesets = {abi.layout("container").decode(v)["ruleset"] for _, v in loaded.maps["containers"].items()}
    assert len(rulesets) == 2
    db = loaded.maps["containers"].lookup((10_003).to_bytes(8, "little"))
    assert db is not None and abi.layout("container").decode(db)["ruleset"] == _starting_ruleset(loaded)


def test_a_rename_that_changes_the_selection_moves_the_container_to_the_new_ruleset(
    daemon: tuple[Daemon, Loaded],
) -> None:
    d, loaded = daemon
    d.container_started(_info(1, "db-1"))
    d.container_renamed(_info(1, "web-1"))  # now also selected by "web": exec rule added
    value = loaded.maps["containers"].lookup((10_001).to_bytes(8, "little"))
    assert value is not None
    fields = loaded.abi.layout("container").decode(value)
    assert fields["flags"] & loaded.abi.const("CT_EXEC_RULES")
    # the old ruleset is gone (db-1 had shared the every-container one, which stays)
    assert _rulesets_with_rules(loaded) == {fields["ruleset"], _starting_ruleset(loaded)}


def _rulesets_with_rules(loaded: Loaded) -> set[int]:
    layout = loaded.abi.layout("path_key")
    return {layout.decode(k)["ruleset"] for k in loaded.maps["path_rules"].keys()}


def test_a_restarted_daemon_takes_over_the_pinned_state_without_a_gap(
    daemon: tuple[Daemon, Loaded], tmp_path: Path
) -> None:
    first, loaded = daemon
    first.container_started(_info(1, "web-1"))
    first.container_started(_info(2, "db-2"))
    before = {k: v for k, v in loaded.maps["containers"].items() if k != STARTING_KEY}

    # A second daemon on the same pins and state (the first was kill -9'ed: nothing cleaned).
    second = Daemon(
        DaemonConfig(tmp_path, pin_root=first._config.pin_root, state_dir=tmp_path / "state"),
        AuditWriter(io.StringIO()),
    )
    second.use_kernel(loaded, first._policies)
    # untouched until it knows better; the entry of containers not registered yet is rewritten
    after = dict(loaded.maps["containers"].items())
    assert {k: v for k, v in after.items() if k != STARTING_KEY} == before
    assert _starting_ruleset(loaded) is not None

    second.container_started(_info(1, "web-1"))  # reconcile finds web-1 still running...
    second.containers_reconciled({f"{1:064x}"})  # ...and db-2 gone
    entries = dict(loaded.maps["containers"].items())
    assert sorted(entries) == sorted([STARTING_KEY, (10_001).to_bytes(8, "little")])
    new_ruleset = loaded.abi.layout("container").decode(entries[(10_001).to_bytes(8, "little")])["ruleset"]
    old_rulesets = {loaded.abi.layout("container").decode(v)["ruleset"] for v in before.values()}
    assert new_ruleset not in old_rulesets  # written beside the old ones, then flipped
    assert _rulesets_with_rules(loaded) == {new_ruleset, _starting_ruleset(loaded)}
    # Rule ids mean the same thing to both daemons (counters and events stay attributable).
    assert second._table.to_json() == first._table.to_json()


def test_containers_not_registered_yet_get_the_every_container_policies_and_follow_reloads(
    daemon: tuple[Daemon, Loaded],
) -> None:
    d, loaded = daemon
    # "everyone" has no selector: its rules hold for a container before the daemon knows it
    first = _starting_ruleset(loaded)
    assert first is not None
    value = loaded.maps["containers"].lookup(STARTING_KEY)
    assert value is not None
    assert loaded.abi.layout("container").decode(value)["flags"] & loaded.abi.const("CT_FILE_RULES")
    starting = d._rulesets.get(d._starting_key)
    assert starting is not None and starting.users == {"(containers not registered yet)"}

    # a policy edit moves the entry to the new ruleset and drops the old one
    parsed, errors = parse_text(POLICIES.replace("/root/.ssh", "/root/.gnupg"), "test.yaml")
    assert not errors
    d._policies = PolicySet(tuple(parsed))
    d._write_starting_entry()
    second = _starting_ruleset(loaded)
    assert second not in (None, first)
    assert first not in _rulesets_with_rules(loaded)

    # no policy selects every container: no entry, nothing is judged before registration
    only_web, _ = parse_text(POLICIES.split("---")[1], "test.yaml")
    d._policies = PolicySet(tuple(only_web))
    d._write_starting_entry()
    assert _starting_ruleset(loaded) is None
    assert _rulesets_with_rules(loaded) == set()
