"""The help screen: what each phase means, what the current scenario shows, every key."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from syncviz.engines.claims import claims_for
from syncviz.engines.events import Phase
from syncviz.engines.scenarios import SCENARIOS
from syncviz.tui.phases import EIGHTHS, IDLE_GLYPH, LOOKS
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

MUTED = "#8b93a7"
SUSPEND_KEY = (
    "ctrl+z",
    "suspend to the shell; fg resumes (engine processes serve on meanwhile; --in-process ones stop too)",
)
KEYS: tuple[tuple[str, str], ...] = (
    (
        f"1 … {len(SCENARIOS)}",
        "switch scenario (also ctrl+p, the command palette); the engines restart. The current"
        " scenario's key restarts it, and starts again any engine process that exited or stalled",
    ),
    ("c / C", "fewer / more clients per engine"),
    ("w / W", "smaller / larger thread pool (threaded engine)"),
    ("i / I", "less / more I/O wait per request (ms)"),
    ("u / U", "less / more CPU per request (ms)"),
    ("r / R", "lower / higher open-loop arrival rate (lowest: closed loop)"),
    ("l / L", "fewer / more slow clients per engine (they trickle their requests over seconds)"),
    ("p / P", "fewer / more prefork worker processes (with --engines ...,prefork)"),
    ("m", "slow motion: workloads x10, x40, back to x1 (the zoom follows)"),
    ("- / +", "zoom the time axis: more / fewer ms per column"),
    ("space", "pause the picture (the engines keep running and the last 5 minutes stay buffered); again: live"),
    (
        "← / →",
        "paused: back / forward a tenth of the visible window (shift: a whole window); the status bar"
        " says how far back, the counters are those of that moment",
    ),
    ("end / home", "back to live / to the oldest moment buffered (a replay: play on / play from the start)"),
    ("< / >", "replay: slower / faster (0.1x to 10x)"),
    ("ctrl+s", "save the buffered minutes as a recording (syncviz replay FILE opens it); says where"),
    (
        "↓ ↑ / j k",
        "inspect: move a cursor over a panel's worker lanes and request rows (a click selects too); the detail"
        " panel shows a request's phases, workers, latency and blocked call, or a lane's busy share and the"
        " requests it served; selecting pauses",
    ),
    ("] / [", "inspect the next / previous panel's lane or row"),
    ("esc", "close the detail panel"),
    ("s", "save an SVG screenshot in the current directory"),
    ("f", "perf line: frames/s, ms per frame, the app's CPU, each engine's CPU, stream events/s"),
    ("?", "this help"),
    ("q", "quit (stops the engines, leaves nothing running)"),
    SUSPEND_KEY,
)


def claims_rows(grid: Table, scenario: str) -> None:
    """The claims this scenario shows (each sentence), then every scenario's claims by id."""
    own = claims_for(scenario)
    grid.add_row(Text("Claims it shows", "bold underline"), "" if own else Text("none of the catalogue's", MUTED))
    for claim in own:
        grid.add_row(Text(claim.id, "bold"), f"“{claim.claim}”")
    for i, sc in enumerate(SCENARIOS.values()):
        shown = [c.id for c in claims_for(sc.name)]
        if sc.name != scenario and shown:
            grid.add_row(Text(f"{i + 1} {sc.name}", MUTED), Text(", ".join(shown), MUTED))
    grid.add_row("", Text("measure one: syncviz claims --id ID · see each as a scene: syncviz --present", MUTED))
    grid.add_row("", "")


def help_text(scenario: str, keys: tuple[tuple[str, str], ...] = KEYS) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_row(Text("Phases", "bold underline"), "")
    for phase in Phase:
        look = LOOKS[phase]
        grid.add_row(Text(f"{look.glyph * 3} {look.name}", look.color), look.meaning)
    grid.add_row(Text(f"{IDLE_GLYPH * 3} idle", "#4b5063"), "no request holds this worker lane")
    grid.add_row(
        Text(f"{EIGHTHS[2]}{EIGHTHS[5]}{EIGHTHS[8]} partial", "#8b93a7"),
        "lanes: held for that part of the column (colour: the main phase); "
        "queued / ready lanes: mean depth over the column, full height = all clients",
    )
    grid.add_row("", "")
    grid.add_row(Text("Reading it", "bold underline"), "")
    grid.add_row(
        "worker lanes",
        "one row per pool thread (w0…), the event loop (loop), the gevent hub (hub), anyio's threads (t1…); "
        "#n is the request holding it",
    )
    grid.add_row(
        "request rows",
        "recent and in-flight requests, each a run of its measured phases; a row hosts one request after another; "
        "…#n: begun left of the window while every row was busy, drawn from where its row came free",
    )
    grid.add_row("time axis", "shared by the three panels; now is the right edge")
    grid.add_row(
        "bound",
        "Little's law: concurrency / time per request (and one core for CPU work); offered: an open loop's "
        "arrivals bind, and this is what its clients sent a second, measured over the same window as req/s",
    )
    grid.add_row(
        "counters",
        "req/s, done, latency: what the load generator's clients saw; served/s, srv failed: the servers' own "
        "counts (every client, outside ones too)",
    )
    grid.add_row(
        "where they wait",
        "connecting: a client's connection not open yet · backlog: connected, not accepted yet (the kernel's "
        "queue) · conns waiting: accepted, bytes to read, no worker free · reading: a request still arriving · "
        "queued: sent, no worker has taken it",
    )
    grid.add_row("", "")
    sc = SCENARIOS.get(scenario)
    if sc is not None:
        grid.add_row(Text(f"Scenario {sc.name}", "bold underline"), "")
        grid.add_row("", Text(sc.description, "bold"))
        for line in sc.caption:
            grid.add_row("", f"▸ {line}")
        grid.add_row("", "")
        claims_rows(grid, sc.name)
    grid.add_row(Text("Keys", "bold underline"), "")
    for key, what in keys:
        grid.add_row(Text(key, "bold #56b4e9"), what)
    return grid


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "close help"),
    ]

    def __init__(self, scenario: str, keys: tuple[tuple[str, str], ...] = KEYS) -> None:
        super().__init__()
        self.scenario = scenario
        self.keys = keys

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(help_text(self.scenario, self.keys), id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help-box").border_title = "syncviz help  (esc closes)"

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
