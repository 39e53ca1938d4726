"""JSON Schema of a policy document (one YAML document of a policy file), for editors.

Generated from the pydantic model (enforcer.policy.model), so it cannot drift from what
`enforcer check` accepts; fields whose validators accept more spellings than the stored
type (ports as 80 or "8000-8100", device numbers or "*") get their input form here.
"""

from __future__ import annotations

from typing import Any

from enforcer.policy.model import MAX_MAJOR, MAX_MINOR, Policy

SCHEMA_ID = "https://enforcer.invalid/schemas/policy-v1.json"
_PORT = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": 65535},
        {"type": "string", "pattern": r"^\s*\d+\s*(-\s*\d+\s*)?$", "description": 'a range "A-B"'},
    ]
}


def _device_number(limit: int) -> dict[str, Any]:
    return {"anyOf": [{"type": "integer", "minimum": 0, "maximum": limit}, {"const": "*"}]}


def policy_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema(mode="validation")
    defs = schema["$defs"]
    defs["NetworkRule"]["properties"]["ports"]["items"] = _PORT
    defs["DeviceRule"]["properties"]["major"] = {"title": "Major", **_device_number(MAX_MAJOR)}
    defs["DeviceRule"]["properties"]["minor"] = {"title": "Minor", **_device_number(MAX_MINOR)}
    defs["Metadata"]["properties"]["name"]["pattern"] = r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "enforcer ContainerPolicy (apiVersion enforcer/v1)",
        "description": "One YAML document of an enforcer policy file. `enforcer check` validates "
        "the rest (globs, CIDRs, duplicate names) with FILE:LINE:COL errors.",
        **schema,
    }
