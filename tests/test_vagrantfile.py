"""vagrant/Vagrantfile parses and validates with both box flavours (`vagrant validate`, which
needs neither libvirtd nor a box). The full path, `vagrant up` and the suite inside, is
scripts/vagrant-check: minutes under emulation, so not part of every run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

VAGRANT_DIR = Path(__file__).resolve().parent.parent / "vagrant"


def validate(**env: str) -> subprocess.CompletedProcess[str]:
    vagrant = shutil.which("vagrant")
    if vagrant is None:
        pytest.skip("vagrant missing: scripts/provision installs it")
    return subprocess.run(
        [vagrant, "validate"],
        cwd=VAGRANT_DIR,
        env={**os.environ, "VAGRANT_CHECKPOINT_DISABLE": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("flavour", ["debian12", "ubuntu2404"])
def test_vagrantfile_validates(flavour: str) -> None:
    r = validate(ENFORCER_BOX=flavour)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "validated successfully" in r.stdout


@pytest.mark.parametrize("driver", ["kvm", "qemu"])
def test_vagrantfile_validates_with_either_libvirt_driver(driver: str) -> None:
    box = "enforcer/debian12-local"  # scripts/vagrant-check's box; validate does not need it added
    r = validate(ENFORCER_BOX="debian12", ENFORCER_VAGRANT_BOX=box, ENFORCER_LIBVIRT_DRIVER=driver)
    assert r.returncode == 0, r.stdout + r.stderr


def test_an_unknown_flavour_is_refused() -> None:
    r = validate(ENFORCER_BOX="centos")
    assert r.returncode != 0
    assert "ENFORCER_BOX must be one of debian12, ubuntu2404" in r.stdout + r.stderr
