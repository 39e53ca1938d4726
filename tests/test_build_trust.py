"""BPF objects and vmlinux.h are loaded into the kernel as root: they are never built into
or loaded from a directory another user can write, or swap through an ancestor (issue 13
item 7). The world-writable /tmp fallback is gone; an unsafe directory is refused with a
reason, even when named by ENFORCER_BPF_BUILD_DIR."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from enforcer.errors import EnforcerError
from enforcer.kernel import build
from enforcer.kernel.build import (
    build_dir,
    ensure_built,
    untrusted_file,
    untrusted_reason,
)

NOBODY = 65534


@pytest.fixture
def base() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="enforcer-build-trust-"))  # root-owned 0700 in /tmp (sticky)
    yield d
    shutil.rmtree(d)


def test_a_root_owned_private_directory_under_sticky_tmp_is_trusted(base: Path) -> None:
    assert untrusted_reason(base / "objects") is None  # not there yet: mkdir makes it ours


def test_a_world_writable_directory_is_refused(base: Path) -> None:
    d = base / "shared"
    d.mkdir()
    os.chmod(d, 0o777)
    assert "writable by others" in (untrusted_reason(d) or "")
    assert "writable by others" in (untrusted_reason(d / "objects") or "")  # anything below it too


def test_a_directory_owned_by_another_user_is_refused(base: Path) -> None:
    d = base / "theirs"
    d.mkdir(mode=0o700)
    os.chown(d, NOBODY, NOBODY)
    assert f"owned by uid {NOBODY}" in (untrusted_reason(d) or "")


def test_a_symlink_another_user_owns_on_the_way_is_refused(base: Path) -> None:
    target = base / "real"
    target.mkdir(mode=0o700)
    link = base / "link"
    link.symlink_to(target)
    os.lchown(link, NOBODY, NOBODY)
    assert f"owned by uid {NOBODY}" in (untrusted_reason(link / "objects") or "")


def test_the_resolved_target_of_a_symlink_is_checked_too(base: Path) -> None:
    target = base / "open"
    target.mkdir()
    os.chmod(target, 0o777)
    link = base / "link"
    link.symlink_to(target)  # the link is ours; where it points is not safe
    assert "writable by others" in (untrusted_reason(link) or "")


def test_an_unsafe_build_dir_given_explicitly_is_an_error_with_a_reason(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = base / "shared"
    d.mkdir()
    os.chmod(d, 0o1777)  # sticky but world-writable: another user could have put files in it
    monkeypatch.setenv("ENFORCER_BPF_BUILD_DIR", str(d))
    with pytest.raises(EnforcerError, match=r"cannot hold BPF objects safely.*writable by others"):
        build_dir()


def test_without_a_safe_checkout_dir_the_cache_is_a_private_directory_never_tmp(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = base / "src"
    (src / "build").mkdir(parents=True)
    os.chown(src / "build", NOBODY, NOBODY)  # a checkout's build dir someone else owns
    cache = base / "cache" / "bpf"
    monkeypatch.delenv("ENFORCER_BPF_BUILD_DIR", raising=False)
    monkeypatch.setattr(build, "CACHE_DIR", cache)
    assert build_dir(src) == cache
    assert oct(cache.stat().st_mode & 0o777) == oct(0o700)


def test_with_no_safe_directory_at_all_the_build_refuses(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = base / "src"
    (src / "build").mkdir(parents=True)
    os.chmod(src / "build", 0o777)
    cache = base / "cache"
    cache.mkdir()
    os.chown(cache, NOBODY, NOBODY)
    monkeypatch.delenv("ENFORCER_BPF_BUILD_DIR", raising=False)
    monkeypatch.setattr(build, "CACHE_DIR", cache / "bpf")
    with pytest.raises(EnforcerError, match="no safe directory for BPF objects"):
        build_dir(src)


def test_a_planted_object_or_header_is_rebuilt_not_loaded(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = base / "out"
    shutil.copytree(ensure_built().directory, out)  # a fresh, good build in a private directory
    os.chmod(out, 0o700)
    monkeypatch.setenv("ENFORCER_BPF_BUILD_DIR", str(out))
    obj = ensure_built().path("cgroup_dev")
    obj.write_bytes(b"planted")
    os.chown(obj, NOBODY, NOBODY)  # as if another user had managed to write it
    header = out / "vmlinux.h"
    os.chmod(header, 0o666)
    assert untrusted_file(obj) and untrusted_file(header)
    again = ensure_built()
    assert again.path("cgroup_dev").read_bytes().startswith(b"\x7fELF")  # rebuilt, not the plant
    assert untrusted_file(obj) is None and untrusted_file(header) is None
