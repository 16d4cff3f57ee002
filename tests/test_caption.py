"""The caption says when the settings shown are not the scenario's own, which its words describe."""

from __future__ import annotations

from dataclasses import replace

from syncviz.engines.scenarios import SCENARIOS
from syncviz.tui.knobs import changed_knobs
from syncviz.tui.widgets.bars import caption_text


def test_the_caption_names_the_knobs_that_differ_from_the_scenario_s_own() -> None:
    own = SCENARIOS["io-bound"].settings
    assert changed_knobs(own, own) == []
    assert "changed" not in caption_text("io-bound", own).plain
    turned = caption_text("io-bound", replace(own, io_ms=0.0, clients=1000)).plain
    assert "waits 50 ms" in turned  # the scenario's words stay, said to be of its own settings
    assert "said of its own settings; changed: clients 100 → 1000, io 50 ms → 0 ms" in turned


def test_every_scenario_s_caption_reads_plain_on_its_own_settings() -> None:
    for name, scenario in SCENARIOS.items():
        assert "changed" not in caption_text(name, scenario.settings).plain, name
