"""Start the app's event source (child process, in-process host, or a recording) and run the app.

By default each engine server runs in its own process and the load in another
(:mod:`syncviz.engines.child`), placed by :mod:`syncviz.engines.placement`; this process keeps
to the UI's CPUs, so drawing never takes a server's GIL or core. ``syncviz serve`` without
``--headless`` (:func:`launch_serve`) runs the same app on engines at fixed ports with the
built-in load off, drawing whatever clients arrive.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from syncviz.engines.events import DEFAULT_ENGINES
from syncviz.engines.host import EngineHost, pin_to_one_cpu
from syncviz.engines.placement import set_cpus
from syncviz.engines.source import EventSource

Started = tuple[EventSource, dict[str, Any]]


def make_source(args: argparse.Namespace, overrides: dict[str, Any]) -> Started:
    """The started event source for these flags, and its first status info."""
    if getattr(args, "replay", None):
        from syncviz.engines.recording import Replay

        replay = Replay.from_file(args.replay)
        return replay, replay.info
    engines = tuple(getattr(args, "engines", None) or DEFAULT_ENGINES)
    kwargs = dict(scenario=args.scenario, engines=engines, host=args.host, port=args.port, **overrides)
    if getattr(args, "in_process", False):
        pin_to_one_cpu()
        host = EngineHost(**kwargs).start()
        return host, host.info()
    from syncviz.engines.child import ChildHost

    child = ChildHost(stream="digest", **kwargs).start()  # digested in the engine processes
    set_cpus(child.placement.ui)  # the drawing keeps off the engines' cores
    return child, child.info()


def launch_app(args: argparse.Namespace, overrides: dict[str, Any], start: Callable[[], Started] | None = None) -> int:
    """Run the app; 0 on ``q``, 128 + signum after SIGTERM, SIGINT or SIGHUP (see :mod:`.signals`).

    ``start`` makes the source instead of :func:`make_source`. Whatever ends it, the terminal
    is restored first and the source closed last.
    """
    from syncviz.engines.scenarios import get_scenario
    from syncviz.tui.memory import tune_allocator, tune_collector
    from syncviz.tui.signals import LaunchGuard

    get_scenario(args.scenario)  # a typo fails before anything starts
    with LaunchGuard() as guard:
        if not getattr(args, "in_process", False):  # before any thread starts; in-process engines keep the defaults
            tune_allocator()
            tune_collector()
        source, info = start() if start is not None else make_source(args, overrides)
        guard.on_stuck = source.close
        try:
            if guard.status is not None:  # signalled while the engines started: never open the app
                return guard.status
            from syncviz.tui.app import run_app

            code = run_app(
                source,
                in_process=bool(getattr(args, "in_process", False)),
                start_info=info,
                present=bool(getattr(args, "present", False)),
            )
        finally:
            source.close()
        return guard.status if guard.status is not None else code


def launch_serve(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """``syncviz serve``: the engines on P, P+1, P+2 (URLs on stdout, left above the app when it
    ends), the built-in load off unless ``--load``, and the app drawing whatever arrives.

    A port in use raises :class:`~syncviz.engines.serve.PortInUse` before anything is running.
    """
    from syncviz.engines.serve import start_host, url

    def start() -> Started:
        engines = getattr(args, "engines", None) or DEFAULT_ENGINES  # serve --engines (tui/cli.py)
        child = start_host(args.scenario, args.host, args.port, args.load, tuple(engines), **overrides)
        set_cpus(child.placement.ui)
        for name in child.engine_names:
            print(f"{name:<9} {url(args.host, child.ports[name])}", flush=True)
        return child, child.info()

    return launch_app(args, overrides, start)
