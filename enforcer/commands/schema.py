"""`enforcer schema`: print the JSON Schema of policy documents (for editors)."""

from __future__ import annotations

import json

import click


@click.command(name="schema")
def command() -> None:
    """Print the JSON Schema of a policy document, for editor completion and validation.

    \b
    enforcer schema > /etc/enforcer/policy.schema.json
    then start a policy file with:
    # yaml-language-server: $schema=/etc/enforcer/policy.schema.json
    """
    from enforcer.policy.schema import policy_schema

    click.echo(json.dumps(policy_schema(), indent=2))
