"""StatusDocument -> what a person reads (rich tables)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from enforcer.status.model import StatusDocument

FILL_WARN = 0.8  # a map this full is shown in red: the next ruleset or container may fail


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d" if d else "") + (f"{h}h" if h or d else "") + f"{m}m{s:02d}s"


def render(doc: StatusDocument, console: Console) -> None:
    docker = "[green]connected[/]" if doc.docker_connected else "[red]not connected[/]"
    console.print(
        f"[bold]enforcer[/] pid {doc.pid}, up {_duration(doc.uptime_seconds)} (since {doc.started_at}); docker {docker}"
    )
    console.print(f"policies: {doc.policies_dir}   pins: {doc.pin_root}")
    console.print("kernel: " + (", ".join(doc.kernel_features) or "[red]nothing attached[/]"))

    console.print(_containers(doc))
    if doc.start_window:
        console.print(f"[bold yellow]Start window:[/] {doc.start_window}")
    console.print(_policy_files(doc))
    if doc.not_enforced:
        console.print("[bold yellow]Not enforced on this host:[/]")
        for ne in doc.not_enforced:
            who = f" (policies: {', '.join(ne.policies)})" if ne.policies else ""
            console.print(f"  [yellow]{ne.what}[/]{who}: {ne.why}")
    console.print(_audit(doc))


def _containers(doc: StatusDocument) -> Table:
    t = Table(title=f"Containers ({len(doc.containers)})", title_justify="left")
    t.add_column("CONTAINER", overflow="fold")
    t.add_column("POLICIES", overflow="fold")
    t.add_column("RULE", no_wrap=True)
    t.add_column("ACTION")
    t.add_column("COUNT", justify="right")
    for c in doc.containers:
        name = f"{c.name}\n[dim]{c.id[:12]}\n{c.image}[/]"
        if not c.enforced:
            name += f"\n[bold red]NOT ENFORCED[/] [red]{c.error}[/] (retrying)"
        elif c.error:
            name += f"\n[yellow]update failed, previous ruleset in force: {c.error}[/] (retrying)"
        if c.start_window_seconds:
            name += f"\n[yellow]start window {c.start_window_seconds:.3f} s[/]"
        policies = "\n".join(c.policies) or "[dim](none)[/]"
        if not c.counters:
            t.add_row(name, policies, "[dim]-[/]", "", "0")
            continue
        rules = "\n".join(f"{rc.policy}/{rc.rule}" for rc in c.counters)
        actions = Text("\n").join(
            Text(rc.action, style="red" if rc.action == "deny" else "yellow") for rc in c.counters
        )
        counts = "\n".join(str(rc.count) for rc in c.counters)
        t.add_row(name, policies, rules, actions, counts)
    return t


def _policy_files(doc: StatusDocument) -> Group | Table:
    t = Table(title="Policy files", title_justify="left")
    t.add_column("FILE", no_wrap=True)
    t.add_column("RESULT")
    t.add_column("POLICIES", overflow="fold")
    errors: list[str] = []
    for f in doc.policy_files:
        if f.ok:
            result = Text("ok", style="green")
        elif f.kept_previous:
            result = Text("rejected (previous version kept)", style="red")
        else:
            result = Text("rejected", style="red")
        t.add_row(f.file, result, ", ".join(f.policies) or "-")
        errors.extend(f.errors)
    if doc.policy_reload_failures:
        t.caption = f"{doc.policy_reload_failures} reload(s) failed since start"
    if not errors:
        return t
    return Group(t, *(Text(e, style="red") for e in errors))


def _audit(doc: StatusDocument) -> Table:
    a = doc.audit
    t = Table(title=f"Audit (log: {a.log})", title_justify="left", show_header=False)
    t.add_column("what")
    t.add_column("n", justify="right")
    t.add_row("denied (kernel total)", str(a.denied))
    t.add_row("audited (kernel total)", str(a.audited))
    t.add_row("records written", str(a.records))
    t.add_row("events folded into them", str(a.folded))
    t.add_row(Text("records dropped (ring buffer full)", style="red" if a.dropped else ""), str(a.dropped))
    t.add_row("not itemised, accounted in audit_loss records", str(a.losses))
    t.add_row(Text("records not written (log errors)", style="red" if a.write_errors else ""), str(a.write_errors))
    t.add_row("unresolvable paths (denied)", str(a.unresolved))
    if (oc := doc.open_cache) is not None:
        t.add_row("opens allowed from the decision cache", str(oc.hits) if oc.enabled else f"off: {oc.why_off}")
    if a.kill_failed:
        t.add_row(Text("cgroup escapes not stopped (kill failed)", style="red"), str(a.kill_failed))
    if a.scratch_busy or a.counter_full:
        t.add_row("scratch busy (denied)", str(a.scratch_busy))
        t.add_row("counter map full", str(a.counter_full))
    for m in doc.maps:
        style = "red" if m.ratio >= FILL_WARN else ""
        t.add_row(Text(f"map {m.name}", style=style), f"{m.entries}/{m.max_entries} ({m.ratio:.1%})")
    return t
