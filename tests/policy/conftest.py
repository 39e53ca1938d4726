"""Helpers for policy tests: write YAML into tmp_path and load it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

SAMPLES = Path(__file__).parent / "samples"

HEADER = "apiVersion: enforcer/v1\nkind: ContainerPolicy\n"


def doc(name: str, spec: str = "spec: {}") -> str:
    """A policy document; `spec` is YAML starting at column 0 ('spec:' ...)."""
    return HEADER + f"metadata:\n  name: {name}\n" + textwrap.dedent(spec).strip("\n") + "\n"


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], str]:
    def _write(name: str, text: str) -> str:
        p = tmp_path / name
        p.write_text(textwrap.dedent(text) if text.startswith("\n") else text)
        return str(p)

    return _write
