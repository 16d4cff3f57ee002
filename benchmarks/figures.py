"""What every section of ``benchmarks/run.py`` shares: spreads of repeated runs, the lock, the machine.

A figure of the report is never one run: :class:`Spread` keeps every run's value and prints the
median with the min and max (``1,930 (1,901-1,950)``); a figure that could not be measured is
``n/a``. :class:`Lock` holds the bench lock (:func:`syncviz.engines.bench.bench_lock`, the one
other engineers' benchmarks take) for the whole run and says how long it waited for them;
:func:`restore_cpus` puts this process back on all its CPUs after a bench run kept it to the UI's;
:func:`machine` describes where the figures come from.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field

from syncviz.engines.bench import BENCH_LOCK, _inherited_fd, bench_lock
from syncviz.engines.placement import allowed_cpus, set_cpus

NA = "n/a"
PACKAGES = (
    "syncviz",
    "textual",
    "rich",
    "gevent",
    "greenlet",
    "httptools",
    "hdrhistogram",
    "psutil",
    "anyio",
    "uvloop",
    "trio",
    "pytest",
)


@dataclass
class Spread:
    """The values of one figure over repeated runs (``None`` where a run could not measure it)."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float | None) -> None:
        if value is not None:
            self.values.append(float(value))

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def as_dict(self) -> dict[str, float | int | None]:
        v = self.values
        return {"median": self.median, "min": min(v, default=None), "max": max(v, default=None), "runs": len(v)}

    def fmt(self, digits: int = 0, suffix: str = "", scale: float = 1.0) -> str:
        """``median (min-max)`` with ``digits`` decimals; one run: the value alone; none: ``n/a``."""
        if not self.values:
            return NA

        def f(x: float) -> str:
            return f"{x * scale:,.{digits}f}{suffix}"

        if len(self.values) == 1:
            return f(self.values[0])
        return f"{f(self.median)} ({f(min(self.values))}-{f(max(self.values))})"  # type: ignore[arg-type]

    def pct(self, digits: int = 0) -> str:
        """A ratio as percent: ``97% (95-99%)``; ``digits`` decimals beside a goal (69.7% is not 70%)."""
        return self.fmt(digits, "%", 100.0)


def ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


class Lock:
    """The bench lock, held for the whole run (as ``flock LOCK python benchmarks/run.py`` would hold
    it; one inherited from ``flock`` is reused). ``bench_lock`` in this process finds it held, and a
    subprocess gets it with ``pass_fds=(lock.fd,)``; :attr:`waited_s` is how long it waited for others."""

    def __init__(self) -> None:
        self.waited_s = 0.0
        self.fd = -1
        self._held = contextlib.ExitStack()

    def __enter__(self) -> Lock:
        t0 = time.monotonic()
        self._held.enter_context(bench_lock())
        self.waited_s = time.monotonic() - t0
        self.fd = _inherited_fd(BENCH_LOCK) or -1
        return self

    def __exit__(self, *exc: object) -> None:
        self._held.close()


def restore_cpus() -> None:
    """Back on every CPU this process started with: a bench run keeps it to the UI's CPUs, and
    what it starts or places next (``syncviz serve``, the bare servers, the app, pytest) would
    inherit that."""
    set_cpus(allowed_cpus())


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or NA


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def source_commit() -> str:
    """The commit the measured code is from (the checkout this script is in), ``+ changes`` when its
    tracked files differ from it; n/a outside a git checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode == 0 and head.stdout.strip():
            dirty = subprocess.run(
                ["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            return head.stdout.strip() + (" + changes" if dirty.stdout.strip() else "")
    return NA


def wrk_version(path: str | None) -> str:
    if path is None:
        return NA
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        first = (done.stdout or done.stderr).strip().splitlines()
        if first:
            return first[0].split(" Copyright")[0]
    return NA


def machine(wrk: str | None) -> dict[str, object]:
    """Cores, CPU model, OS, Python, package versions, wrk, load when the run started."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cores": os.cpu_count(),
        "cpus_allowed": allowed_cpus(),
        "cpu_model": cpu_model(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": package_versions(),
        "wrk": wrk_version(wrk or shutil.which("wrk")),
        "commit": source_commit(),
        "loadavg_at_start": None if load is None else [round(x, 2) for x in load],
    }
