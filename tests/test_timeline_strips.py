"""The timeline's strips: a strip the widget replaces is freed by its reference count, not by the collector."""

from __future__ import annotations

import sys

from syncviz.tui.widgets.timeline import _uncycle
from syncviz.tui.widgets.timeline_lines import Line


def test_a_replaced_strip_leaves_no_reference_cycle() -> None:
    strip = Line("lane").strip(20)
    before = sys.getrefcount(strip)
    assert strip.divide([20]) == [strip]  # what Textual's compositor does with a one-piece strip
    assert sys.getrefcount(strip) == before + 1  # its own divide cache holds it: a cycle
    _uncycle(strip)
    assert sys.getrefcount(strip) == before
    assert strip.divide([20]) == [strip]  # still usable: Textual fills the cache again
