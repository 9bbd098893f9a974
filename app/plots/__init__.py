"""Headless matplotlib figures of a ranking job (PNG or SVG bytes). Pure: takes plain data, no DB."""

from app.plots.figures import PLOT_FORMATS, layers_figure, probes_figure, ranking_figure, render

__all__ = ["PLOT_FORMATS", "layers_figure", "probes_figure", "ranking_figure", "render"]
