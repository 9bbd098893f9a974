"""A ranking as a file: CSV (one row per candidate, one column per metric), JSON (the service's ranking
document) or HTML (one self-contained page: the table, the ranking plot inlined as SVG, and each verdict's
text). Pure functions of the ranking and the plot; nothing here talks to the service."""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Any, Literal

from app.schemas.rankings import RankingRead

ExportFormat = Literal["csv", "json", "html"]
FORMATS: tuple[str, ...] = ("csv", "json", "html")


def _metrics(job: RankingRead) -> list[str]:
    names: dict[str, None] = {}
    for row in job.table:
        names.update(dict.fromkeys(row.scores))
    return list(names)


def to_csv(job: RankingRead) -> str:
    """One line per candidate: rank, interval, aggregate, each metric's raw and normalised value, verdict."""
    metrics = _metrics(job)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "backbone_id", "status", "best_layer", "aggregate", "rank_ci_low", "rank_ci_high",
                     "p_top1", *[f"{m}_{part}" for m in metrics for part in ("raw", "normalised")],
                     "verdict", "delta_mean", "delta_ci_low", "delta_ci_high", "p_value", "n_seeds", "flags",
                     "error"])
    for row in job.table:
        v = row.verdict
        scores = [row.scores.get(m, {}).get(part) for m in metrics for part in ("raw", "normalised")]
        writer.writerow(_blank([row.rank, row.backbone_id, row.status, row.best_layer, row.aggregate,
                                *(row.rank_ci or (None, None)), row.p_top1, *scores,
                                v.verdict if v else None, v.delta_mean if v else None, v.ci_low if v else None,
                                v.ci_high if v else None, v.p_value if v else None, v.n_seeds if v else None,
                                "|".join(row.flags), row.error]))
    return out.getvalue()


def _blank(values: list[Any]) -> list[Any]:
    return ["" if v is None else v for v in values]


def to_json(job: RankingRead) -> str:
    return json.dumps(job.model_dump(mode="json"), indent=2) + "\n"


def _num(value: Any, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else html.escape(str(value))


def candidate_label(job: RankingRead, backbone_id: str) -> str:
    """``backbone_id``, with the dataset name of a feature-set candidate (``features:<id> (resnet50.npz)``)."""
    named = ((job.request or {}).get("resolved") or {}).get("feature_sets") or {}
    name = (named.get(backbone_id) or {}).get("name")
    return f"{backbone_id} ({name})" if name else backbone_id


def to_html(job: RankingRead, ranking_svg: str | None) -> str:
    """One page with no external reference: styles inline, the plot's SVG embedded."""
    e = html.escape
    rows = []
    for row in job.table:
        v = row.verdict
        ci = f"{row.rank_ci[0]:.1f}–{row.rank_ci[1]:.1f}" if row.rank_ci else ""
        delta = "" if v is None or v.delta_mean is None else \
            f"{v.delta_mean:+.3f} ({_num(v.ci_low)}, {_num(v.ci_high)})"
        cls = {"negative_transfer": "neg", "positive": "pos"}.get(v.verdict if v else "", "")
        if row.status == "failed":
            cls = "failed"
        rows.append(f"<tr class='{cls}'><td>{_num(row.rank)}</td><td>{e(candidate_label(job, row.backbone_id))}</td>"
                    f"<td>{e(row.best_layer or '')}</td><td>{_num(row.aggregate)}</td><td>{ci}</td>"
                    f"<td>{e(v.verdict) if v else ''}</td><td>{delta}</td><td>{e(', '.join(row.flags))}</td>"
                    f"<td>{e(row.error or '')}</td></tr>")
    verdicts = "".join(f"<li><b>{e(candidate_label(job, row.backbone_id))}</b> — <i>{e(row.verdict.verdict)}</i>: {e(row.verdict.text)}</li>"
                       for row in job.table if row.verdict)
    warnings = "".join(f"<li>{e(w)}</li>" for w in job.warnings)
    plot = ranking_svg if ranking_svg and ranking_svg.lstrip().startswith(("<svg", "<?xml")) else ""
    if plot.lstrip().startswith("<?xml"):
        plot = plot[plot.index("<svg"):]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Transfer Scout ranking {e(str(job.id))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ border-bottom: 1px solid #ddd; padding: .3em .7em; text-align: left; }}
tr.neg td {{ color: #b00020; }} tr.pos td {{ color: #1b5e20; }} tr.failed td {{ color: #777; font-style: italic; }}
.plot svg {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>Ranking {e(str(job.id))}</h1>
<p>Status <b>{e(job.status.value)}</b> · dataset {e(str(job.dataset_id))} · created {e(job.created_at.isoformat())}</p>
<h2>Table</h2>
<table><thead><tr><th>rank</th><th>backbone</th><th>layer</th><th>aggregate</th><th>rank 95% CI</th>
<th>verdict</th><th>Δ fine-tune − scratch (95% CI)</th><th>flags</th><th>error</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<h2>Ranking plot</h2><div class="plot">{plot or '<p>(no plot)</p>'}</div>
<h2>Verdicts</h2>{f'<ul>{verdicts}</ul>' if verdicts else '<p>No candidate was probed.</p>'}
{f'<h2>Warnings</h2><ul>{warnings}</ul>' if warnings else ''}
</body></html>
"""


def render(job: RankingRead, fmt: str, ranking_svg: str | None = None) -> str:
    """The export of ``job`` in ``fmt`` (csv, json or html; html embeds ``ranking_svg``)."""
    if fmt == "csv":
        return to_csv(job)
    if fmt == "json":
        return to_json(job)
    if fmt == "html":
        return to_html(job, ranking_svg)
    raise ValueError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
