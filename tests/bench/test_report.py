"""The benchmark report: the project README gets the machine and every target, the bench
README the whole run, each between its markers and nothing else touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.report import update_readmes

RESULTS = {
    "machine": {
        "when": "2026-11-25T00:00:00+00:00",
        "kernel": "6.1.0-test",
        "cpu": "Test CPU",
        "cpus": 2,
        "memory_mb": 4000,
        "vm_guest": True,
        "loadavg_at_end": ["0.1", "0.2", "0.3"],
        "commit": "abc1234",
    },
    "mode": "full",
    "duration_s": 1.0,
    "targets": [
        {"figure": "open+close by a host process", "value": 1.01, "target": "<= 1.02", "met": True},
        {
            "figure": "10,000 rules live, natively (incl. YAML parse) (s)",
            "value": 1.5,
            "target": "<= 1 s",
            "met": False,
        },
    ],
}


def readme(tmp_path: Path, name: str) -> Path:
    p = tmp_path / name
    p.write_text("# Title\nbefore\n<!-- bench:latest -->\nold table\n<!-- /bench:latest -->\nafter\n")
    return p


def test_both_readmes_get_the_latest_run_between_their_markers(tmp_path: Path) -> None:
    bench_md, project_md = readme(tmp_path, "bench.md"), readme(tmp_path, "project.md")
    update_readmes(RESULTS, bench_md, project_md)
    for p in (bench_md, project_md):
        text = p.read_text()
        assert text.startswith("# Title\nbefore\n<!-- bench:latest -->\nRun 2026-11-25")
        assert text.endswith("<!-- /bench:latest -->\nafter\n") and "old table" not in text
        assert "kernel 6.1.0-test, 2 x Test CPU" in text and "QEMU TCG guest" in text
        assert "| open+close by a host process | 1.010 | <= 1.02 | yes |" in text
        assert "| 10,000 rules live, natively (incl. YAML parse) (s) | 1.500 | <= 1 s | **NO** |" in text


def test_a_readme_without_markers_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    bench_md, project_md = readme(tmp_path, "bench.md"), tmp_path / "project.md"
    project_md.write_text("# no markers\n")
    with pytest.raises(ValueError, match="no <!-- bench:latest --> marker"):
        update_readmes(RESULTS, bench_md, project_md)
