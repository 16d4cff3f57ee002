"""Start the app's event source (child process, in-process host, or a recording) and run the app.

By default each engine server runs in its own process and the load in another
(:mod:`syncviz.engines.child`), placed by :mod:`syncviz.engines.placement`; this process keeps
to the UI's CPUs, so drawing never takes a server's GIL or core.
"""

from __future__ import annotations

import argparse
from typing import Any

from syncviz.engines.host import EngineHost, pin_to_one_cpu
from syncviz.engines.placement import set_cpus
from syncviz.engines.source import EventSource


def make_source(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[EventSource, dict[str, Any]]:
    """The started event source for these flags, and its first status info."""
    if args.replay:
        from syncviz.engines.recording import Replay

        replay = Replay.from_file(args.replay)
        return replay, replay.info
    kwargs = dict(scenario=args.scenario, host=args.host, port=args.port, **overrides)
    if args.in_process:
        pin_to_one_cpu()
        host = EngineHost(**kwargs).start()
        return host, host.info()
    from syncviz.engines.child import ChildHost

    child = ChildHost(**kwargs).start()
    set_cpus(child.placement.ui)  # the drawing keeps off the engines' cores
    return child, child.info()


def launch_app(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """Run the app; 0 on ``q``, 128 + signum after SIGTERM, SIGINT or SIGHUP (see :mod:`.signals`).

    Whatever ends it, the terminal is restored first and the source closed last.
    """
    from syncviz.engines.scenarios import get_scenario
    from syncviz.tui.signals import LaunchGuard

    get_scenario(args.scenario)  # a typo fails before anything starts
    with LaunchGuard() as guard:
        source, info = make_source(args, overrides)
        guard.on_stuck = source.close
        try:
            if guard.status is not None:  # signalled while the engines started: never open the app
                return guard.status
            from syncviz.tui.app import run_app

            code = run_app(source, in_process=bool(args.in_process), start_info=info, present=args.present)
        finally:
            source.close()
        return guard.status if guard.status is not None else code
