"""Audit records -> short human text: one table row (or line, when following) per record."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from enforcer.audit.reader import Record

COLUMNS = ("TIME (UTC)", "CONTAINER", "ACTION", "TARGET", "POLICY/RULE", "PROCESS", "N")


def target_text(hook: str, t: Any) -> str:
    if not isinstance(t, dict):
        return str(t)
    if "path" in t:
        return f"{t['path']} ({t.get('access', '?')})" if hook != "exec" else str(t["path"])
    if "major" in t:
        return f"{t.get('type', '?')} {t['major']}:{t['minor']} ({t.get('access', '?')})"
    if "address" in t:
        addr = t["address"]
        addr = f"[{addr}]" if ":" in str(addr) else addr
        return f"{t.get('protocol', '?')} {addr}:{t.get('port', '?')}"
    if "family" in t:
        return f"{t['family']}/{t.get('type', 'any')}"
    return " ".join(f"{k}={v}" for k, v in t.items())


def row(r: Record) -> tuple[str, ...]:
    ts = str(r.get("timestamp", ""))
    c = r.get("container") or {}
    name = c.get("name") or (f"cgroup:{c['cgroup_id']}" if c.get("cgroup_id") else "?")
    p = r.get("process") or {}
    return (
        ts[:19].replace("T", " "),
        str(name),
        str(r.get("action", "?")),
        str(r.get("hook", "?")),
        target_text(str(r.get("hook", "")), r.get("target")),
        f"{r.get('policy', '?')}/{r.get('rule', '?')}",
        f"{p.get('comm', '?')}[{p.get('pid', '?')}] uid={p.get('uid', '?')}",
        str(r.get("count", 1)),
    )


def _action_style(action: str) -> str:
    return "red" if action == "deny" else "yellow"


def summary(records: list[Record]) -> str:
    return f"{len(records)} record(s), {sum(int(r.get('count', 1)) for r in records)} event(s)"


def table(records: list[Record]) -> Table:
    t = Table(caption=summary(records))
    for col in COLUMNS:
        t.add_column(
            col,
            justify="right" if col == "N" else "left",
            overflow="fold",
            min_width=10 if col == "TIME (UTC)" else None,
        )
    for r in records:
        ts, name, action, hook, target, rule, proc, count = row(r)
        what = Text(action, style=_action_style(action)) + Text(f"\n{hook}", style="dim")
        t.add_row(ts.replace(" ", "\n"), name, what, target, rule.replace("/", "\n", 1), proc.replace(" ", "\n"), count)
    return t


def line(r: Record, console: Console) -> None:
    """One record per line for --follow (a table cannot grow as records arrive)."""
    ts, name, action, hook, target, rule, proc, count = row(r)
    text = Text(f"{ts}  {name:<20} ")
    text.append(f"{action:<5}", style=_action_style(action))
    text.append(f"  {hook:<11} {target}  {rule}  {proc}" + (f"  x{count}" if count != "1" else ""))
    console.print(text, soft_wrap=True)
