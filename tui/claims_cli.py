"""``syncviz claims``: run the claims as experiments and print claim, figures and verdict.

With ``--json`` stdout is exactly one object, ``{"claims": [...]}``; progress goes to stderr
only when stderr is a terminal. An unknown ``--id`` raises SettingsError before anything
runs (the CLI prints it as one line and exits 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table


def run_claims(args: argparse.Namespace) -> int:
    from syncviz.engines.claims import get_claims
    from syncviz.engines.claims import run_claims as run
    from syncviz.engines.host import pin_to_one_cpu
    from syncviz.engines.placement import current_cpus

    get_claims(args.ids)  # unknown ids: SettingsError, exit 2, nothing started
    err = Console(stderr=True)
    progress = (lambda what: err.print(f"[dim]measuring {what} ...[/dim]")) if err.is_terminal else None
    cpus = current_cpus()  # the machine's, before the pin: prefork's workers need them (claim processes)
    pin_to_one_cpu()
    results = run(args.ids, quick=args.quick, progress=progress, engines=getattr(args, "engines", ()), cpus=cpus)
    if args.json:
        json.dump({"claims": results}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)
    console.print(table(results, quick=args.quick))
    return 0


def table(results: list[dict[str, Any]], quick: bool = False) -> Table:
    title = "syncviz claims" + (" (--quick)" if quick else "")
    t = Table(title=title, title_justify="left", header_style="bold", show_lines=True)
    t.add_column("claim", ratio=3)
    t.add_column("figures", ratio=3)
    t.add_column("verdict", ratio=2)
    for r in results:
        verdict = r["verdict"]
        style = "green" if verdict == "holds" else "yellow" if verdict.startswith("holds only") else "red"
        t.add_row(
            f"[bold]{r['id']}[/bold]\n{r['claim']}", format_figures(r["figures"]), f"[{style}]{verdict}[/{style}]"
        )
    return t


def format_figures(figures: dict[str, Any]) -> str:
    """One line a figure; sweeps and per-engine dicts on one line as ``key=value, ...``."""
    lines = []
    for key, value in figures.items():
        text = ", ".join(f"{k}={_num(v)}" for k, v in value.items()) if isinstance(value, dict) else _num(value)
        lines.append(f"{key}: {text}")
    return "\n".join(lines)


def _num(value: Any) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={_num(v)}" for k, v in value.items()) + ")"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
