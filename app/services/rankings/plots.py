"""Plots of a ranking job, rendered from its stored rows."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import ProbeRun, VerdictRow
from app.errors import InvalidInput, NotFound, raises
from app.jobs.state import get_job
from app.plots import PLOT_FORMATS, layers_figure, probes_figure, ranking_figure, render
from app.services.rankings.reads import PLOT_NAMES, ranking_table, verdict_rung


def parse_plot_name(name: str, fmt: str | None) -> tuple[str, str]:
    """``ranking``, ``ranking.svg`` or ``ranking?format=svg`` → (plot, format)."""
    stem, dot, ext = name.partition(".")
    fmt = (ext if dot else None) or fmt or "png"
    if stem not in PLOT_NAMES:
        raise InvalidInput(f"plot {stem!r} does not exist; plots: {list(PLOT_NAMES)}")
    if fmt not in PLOT_FORMATS:
        raise InvalidInput(f"plot format {fmt!r} is not supported; formats: {sorted(PLOT_FORMATS)}")
    return stem, fmt


@raises(NotFound, InvalidInput)
def render_plot(session: Session, project_id: uuid.UUID, job_id: uuid.UUID, name: str,
                fmt: str | None) -> tuple[bytes, str]:
    plot, fmt = parse_plot_name(name, fmt)
    job = get_job(session, job_id, project_id)
    title = f"ranking {str(job.id)[:8]} ({job.status.lower()})"
    if plot == "probes":
        rows = list(session.scalars(select(VerdictRow).where(VerdictRow.job_id == job.id)))
        verdicts = {v.backbone_id: {"verdict": v.verdict, "delta_mean": v.delta_mean} for v in rows}
        rungs = {v.backbone_id: verdict_rung(v) for v in rows}  # each verdict's own runs
        runs = [{"backbone_id": r.backbone_id, "arm": r.arm, "seed": r.seed, "curve": r.curve}
                for r in session.scalars(select(ProbeRun).where(ProbeRun.job_id == job.id))
                if r.rung_steps == rungs.get(r.backbone_id, 0)]
        fig = probes_figure(runs, verdicts, title=f"Probe learning curves — {title}")
    else:
        rows = [row.model_dump() for row in ranking_table(session, job.id)]
        fig = ranking_figure(rows, title=f"Ranking — {title}") if plot == "ranking" else \
            layers_figure(rows, title=f"Score per layer — {title}")
    return render(fig, fmt), PLOT_FORMATS[fmt]
