"""`enforcer schema`: a JSON Schema editors can use, accepting every shipped policy and
rejecting the mistakes `enforcer check` rejects at the schema level."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from enforcer.cli import cli

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "policies").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    result = CliRunner().invoke(cli, ["schema"], catch_exceptions=False)
    assert result.exit_code == 0
    schema = json.loads(result.output)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def documents(text: str) -> list[Any]:
    return [json.loads(json.dumps(d)) for d in YAML(typ="safe").load_all(text) if d is not None]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_policies_validate(validator: Draft202012Validator, path: Path) -> None:
    docs = documents(path.read_text())
    assert docs
    for doc in docs:
        assert list(validator.iter_errors(doc)) == []


def test_spec_spellings_validate(validator: Draft202012Validator) -> None:
    doc = documents("""
apiVersion: enforcer/v1
kind: ContainerPolicy
metadata: {name: web}
spec:
  selector: {containerNames: ["web-*"], labels: {app: web}}
  device: [{action: deny, type: char, major: 1, minor: "*"}]
  network: [{action: deny, direction: egress, cidrs: [10.0.0.0/8], ports: [80, "8000-8100"]}]
""")[0]
    assert list(validator.iter_errors(doc)) == []


@pytest.mark.parametrize(
    "mistake",
    [
        {"spec": {"file": [{"action": "deny", "path": ["/etc/shadow"]}]}},  # typo: path
        {"spec": {"file": [{"action": "block", "paths": ["/etc/shadow"]}]}},  # unknown action
        {
            "spec": {"network": [{"action": "deny", "direction": "egress", "cidrs": ["10.0.0.0/8"], "ports": [70000]}]}
        },  # port range
        {"spec": {"device": [{"action": "deny", "type": "char", "major": "x", "minor": 1}]}},
        {"metadata": {"name": "Bad_Name"}},
    ],
)
def test_mistakes_are_schema_errors(validator: Draft202012Validator, mistake: dict[str, Any]) -> None:
    doc = {"apiVersion": "enforcer/v1", "kind": "ContainerPolicy", "metadata": {"name": "x"}, "spec": {}}
    for key, value in mistake.items():
        doc[key] = value
    assert list(validator.iter_errors(doc)) != []
