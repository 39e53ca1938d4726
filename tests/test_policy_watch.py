"""Hot reload trigger: an editor's multi-step save gives one reload, after it settled."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from enforcer.policy.errors import PolicyError
from enforcer.policy.watch import PolicyWatcher


def _watch(tmp_path: Path, quiet: float = 0.2) -> tuple[PolicyWatcher, list[float], threading.Event]:
    fired: list[float] = []
    event = threading.Event()

    def on_settled() -> None:
        fired.append(time.monotonic())
        event.set()

    w = PolicyWatcher(tmp_path, on_settled, quiet)
    w.start()
    return w, fired, event


def test_a_burst_of_writes_gives_one_reload_after_the_quiet_period(tmp_path: Path) -> None:
    w, fired, event = _watch(tmp_path)
    try:
        f = tmp_path / "p.yaml"
        for i in range(10):  # truncate + write in chunks
            with f.open("w") as fh:
                fh.write("a" * i)
            time.sleep(0.03)
        last = time.monotonic()
        assert event.wait(3)
        time.sleep(0.5)
        assert len(fired) == 1
        assert fired[0] - last >= 0.15
    finally:
        w.stop()


def test_write_to_temp_then_rename_over_is_seen(tmp_path: Path) -> None:
    target = tmp_path / "p.yaml"
    target.write_text("old")
    w, _fired, event = _watch(tmp_path)
    try:
        tmp = tmp_path / ".p.yaml.swp"
        tmp.write_text("new")
        os.replace(tmp, target)
        assert event.wait(3)
    finally:
        w.stop()


def test_deleting_a_policy_file_is_seen(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("x")
    w, _fired, event = _watch(tmp_path)
    try:
        (tmp_path / "p.yaml").unlink()
        assert event.wait(3)
    finally:
        w.stop()


def test_a_reload_parses_only_the_files_whose_text_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from enforcer.policy import loader

    (tmp_path / "a.yaml").write_text("apiVersion: enforcer/v1\nkind: ContainerPolicy\nmetadata: {name: a}\nspec: {}\n")
    (tmp_path / "b.yaml").write_text("apiVersion: enforcer/v1\nkind: ContainerPolicy\nmetadata: {name: b}\nspec: {}\n")
    cache: loader.ParseCache = {}
    first = loader.load_directory(tmp_path, cache=cache)
    parsed: list[str] = []
    real = loader.parse_text

    def counting(text: str, file: str) -> tuple[list[loader.LoadedPolicy], list[PolicyError]]:
        parsed.append(file)
        return real(text, file)

    monkeypatch.setattr(loader, "parse_text", counting)
    (tmp_path / "b.yaml").write_text("apiVersion: enforcer/v1\nkind: ContainerPolicy\nmetadata: {name: b2}\nspec: {}\n")
    second = loader.load_directory(tmp_path, previous=first, cache=cache)
    assert parsed == [str(tmp_path / "b.yaml")]
    assert second.names == ("a", "b2")
    assert len(cache) == 2  # one version per file
