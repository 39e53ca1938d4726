"""`enforcer check` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from enforcer.commands.check import command
from tests.policy.conftest import SAMPLES, doc

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(command, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_good_file() -> None:
    code, out, err = run(str(SAMPLES / "spec_example.yaml"))
    assert (code, out, err) == (0, f"OK {SAMPLES}/spec_example.yaml (1 policy)\n", "")


def test_bad_file_errors_on_stderr_exit_1() -> None:
    path = SAMPLES / "bad_unknown_key.yaml"
    code, out, err = run(str(path), str(SAMPLES / "multi.yaml"))
    assert code == 1
    assert out == f"OK {SAMPLES}/multi.yaml (2 policies)\n"
    assert err == (
        f"{path}:8:7: spec.file[0]: unknown key 'path' (did you mean 'paths'? allowed: action, paths, dirs, access)\n"
    )


def test_directory_and_duplicates_across_paths(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(doc("dup"))
    (tmp_path / "b.yaml").write_text(doc("dup"))
    (tmp_path / "a.yaml~").write_text("garbage: [")
    code, out, err = run(str(tmp_path))
    assert code == 1
    assert out == f"OK {tmp_path}/a.yaml (1 policy)\n"
    assert err.startswith(f"{tmp_path}/b.yaml:4:9: duplicate policy name 'dup'")


def test_missing_path(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "nope.yaml"))
    assert code == 1 and err == f"{tmp_path}/nope.yaml: cannot read: No such file or directory\n"


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path))
    assert code == 1 and "no policy files found" in err


def test_json(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(doc("a"))
    (tmp_path / "b.yaml").write_text(doc("b", "spec: {mode: x}"))
    code, out, _ = run("--json", str(tmp_path))
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert [(f["ok"], f["policies"]) for f in data["files"]] == [(True, ["a"]), (False, [])]
    assert data["errors"] == [
        {
            "file": f"{tmp_path}/b.yaml",
            "line": 5,
            "col": 14,
            "message": "spec.mode: Input should be 'enforce' or 'audit', got 'x'",
        }
    ]


def test_shipped_policies_pass() -> None:
    code, out, err = run(str(REPO / "policies"))
    assert code == 0, err
    assert err == ""
    assert out.count("OK ") == len(list((REPO / "policies").glob("*.yaml")))


def test_help_says_where_output_goes() -> None:
    code, out, _ = run("--help")
    assert code == 0 and "stderr" in out and "FILE:LINE:COL" in out
