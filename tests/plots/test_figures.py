"""The layers plot keeps every backbone's line distinguishable, past the 10 colours of the default cycle."""

from __future__ import annotations

import matplotlib.colors as mcolors

from app.plots import layers_figure, render
from app.plots.figures import series_styles


def _look(line) -> tuple:
    return (mcolors.to_hex(line.get_color()), line.get_linestyle(), line.get_marker())


def test_series_styles_are_pairwise_distinct():
    for n in (1, 10, 11, 20, 21, 64, 81, 200):
        styles = series_styles(n)
        looks = {(mcolors.to_hex(s["color"]), s["linestyle"], s["marker"]) for s in styles}
        assert len(looks) == n, n
    assert len({mcolors.to_hex(s["color"]) for s in series_styles(10)}) == 10
    assert len({mcolors.to_hex(s["color"]) for s in series_styles(20)}) == 20


def test_layers_figure_with_25_backbones_draws_25_distinct_lines():
    rows = [{"backbone_id": f"zoo:net_{i}.x", "best_layer": "b",
             "layers": {"a": {"depth": 0.5, "aggregate": -2.0 + i / 100}, "b": {"depth": 1.0, "aggregate": -1.0}}}
            for i in range(25)]
    fig = layers_figure(rows)
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("zoo:")]
    assert len(lines) == 25 and len({_look(ln) for ln in lines}) == 25
    assert render(fig, "png")[:8] == b"\x89PNG\r\n\x1a\n"
