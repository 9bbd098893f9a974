"""The verdict as a sentence a user can act on. Only wording lives here; the numbers come from
``app.probes.verdict`` (fixed seeds) and ``app.probes.sequential`` (sequential seeds). This module imports
only the plain records of ``app.probes.paired`` and ``app.probes.types``, never the modules that call it."""

from __future__ import annotations

from app.enums import Verdict
from app.probes.paired import PairedStats
from app.probes.types import ArmSummary, VerdictRecord

_TEST_NAMES = {"wilcoxon": "Wilcoxon signed-rank", "t": "paired t-test"}

_HEADLINES = {
    Verdict.negative_transfer: "Negative transfer: fine-tuning {cid} does worse on the target than the same "
                               "architecture trained from scratch with the same recipe and budget.",
    Verdict.positive: "Positive transfer: fine-tuning {cid} beats the same architecture trained from scratch.",
    Verdict.no_benefit: "No benefit: fine-tuning {cid} and training the same architecture from scratch perform "
                        "the same within the practical margin δ = {margin:g}.",
    Verdict.inconclusive: "Inconclusive: the probe cannot yet tell whether the weights of {cid} help or hurt "
                          "on this target.",
}


def describe(cid: str, verdict: Verdict, s: PairedStats | None, *, margin: float, metric: str, extra: int | None,
             p: float | None, p_adj: float | None, test: str, alpha: float, small_gain: float,
             steps: int | None, n_candidates: int) -> str:
    parts = [_HEADLINES[verdict].format(cid=cid, margin=margin)]
    if s is None:
        parts.append(f"Fewer than 2 seeds have both a fine-tune and a scratch result; run at least {extra} more.")
        return " ".join(parts)
    budget = f" at {steps} steps per arm" if steps else ""
    parts.append(
        f"Mean Δ {metric} (fine-tune − scratch) = {s.mean:+.3f}, 95% bootstrap CI [{s.ci_low:+.3f}, "
        f"{s.ci_high:+.3f}] over {s.n} paired seeds{budget}; one-sided {_TEST_NAMES[test]} p = {p:.3g}"
        + (f" (Holm-adjusted over {n_candidates} candidates: {p_adj:.3g})." if n_candidates > 1 else ".")
    )
    if verdict in (Verdict.negative_transfer, Verdict.positive) and (p_adj is None or p_adj >= alpha):
        parts.append(f"The paired test is not significant at α = {alpha:g}; more seeds would firm this up.")
    if verdict is Verdict.negative_transfer:
        parts.append("Short probe budgets favour pretrained weights (He et al., 2019), so a deficit at this "
                     "budget is strong evidence of negative transfer.")
    elif 0 < s.mean <= small_gain * margin:
        parts.append("The gain is small, and short probe budgets favour pretrained weights (He et al., 2019: "
                     "training from scratch catches up given enough iterations), so treat it as weak evidence "
                     "of benefit.")
    if verdict is Verdict.inconclusive and s.sd == 0:
        parts.append("Δ is identical in every seed (zero spread): the arms did not vary, so the paired test "
                     f"cannot tell an effect from noise; run at least {extra} more seeds or a longer budget.")
    elif verdict is Verdict.inconclusive and extra:
        parts.append(f"About {extra} more paired seeds would settle it if the observed spread "
                     f"(SD {s.sd:.3f}) holds; a longer budget also helps.")
    return " ".join(parts)


_LINEAR_HEADLINE = ("Positive transfer: the frozen features of {cid} with a trained linear head already beat the "
                   "same architecture trained from scratch with the same recipe and budget.")

_STOPS = {
    "settled": "stopped once settled",
    "max_seeds": "stopped at the design's maximum of {max_seeds} seeds",
    "futile": "stopped early: the observed spread could not settle it within {max_seeds} seeds",
    "time_budget": "stopped by the job's time budget",
    "abandoned": "abandoned by successive halving at a short budget, so the verdict speaks for that budget only",
    "continue": "still running",
}


def describe_sequential(record: VerdictRecord) -> str:
    """The sequential verdict in words: headline, estimate and interval, what was run, why it stopped,
    and every caveat (time-outs, excluded seeds, the short-budget bias)."""
    d = record.design
    margin, alpha = float(d["margin"]), float(d["alpha"])
    m = int(record.stats.get("n_candidates", 1))
    verdict = Verdict(record.verdict)
    parts = [_HEADLINES[verdict].format(cid=record.backbone_id, margin=margin)]
    if record.decided_by == "linear":
        parts = [_LINEAR_HEADLINE.format(cid=record.backbone_id)]
        lin = record.stats.get("linear") or {}
        interval = (f"[{lin['cs_low']:+.3f}, {lin['cs_high']:+.3f}]" if lin.get("cs_low") is not None
                    else "still unbounded")
        p = "" if record.p_value is None else f"; anytime-valid p = {record.p_value:.3g} (Holm-adjusted)"
        parts.append(f"Decided by the linear probe: mean Δ {record.metric_name} (linear − scratch) = "
                     f"{lin.get('mean', float('nan')):+.3f} over {lin.get('n', 0)} paired seeds, confidence "
                     f"sequence {interval}{p}; the fine-tune evidence alone had not settled it.")
    simultaneous = f" (simultaneous over {m} candidates)" if m > 1 else ""
    if record.delta_mean is None:
        parts.append("No seed has both a fine-tune and a scratch result that count as evidence.")
    else:
        interval = (f"[{record.ci_low:+.3f}, {record.ci_high:+.3f}]" if record.ci_low is not None
                    else "still unbounded at this many seeds")
        p = "" if record.p_value is None else (
            f"; anytime-valid p = {record.p_value:.3g}" + (" (Holm-adjusted)" if m > 1 else ""))
        parts.append(f"Mean Δ {record.metric_name} (fine-tune − scratch) = {record.delta_mean:+.3f} over "
                     f"{record.n_seeds} paired seeds; {100 * (1 - alpha):g}% confidence sequence{simultaneous} {interval}{p}.")
    parts.append(_what_ran(record))
    stop = _STOPS.get(record.stop_reason, record.stop_reason).format(max_seeds=d.get("max_seeds"))
    parts.append(f"Sequential design: {record.rounds} round(s), {stop}.")
    if record.halving is not None:
        h = record.halving
        rungs = h.get("rungs") or []
        at = ("the full budget" if not h.get("rung_steps")
              else f"a short budget of {h['budget_steps']} of {h['full_steps']} steps")
        parts.append(f"Successive halving over {len(rungs[0]['candidates']) if rungs else '?'} candidates in "
                     f"{len(h.get('schedule') or rungs)} rungs: this verdict is at {at}.")
    if verdict is Verdict.inconclusive and record.reason:
        parts.append(f"Why inconclusive: {record.reason}.")
    if verdict is Verdict.negative_transfer:
        parts.append("Short probe budgets favour pretrained weights (He et al., 2019), so a deficit at this "
                     "budget is strong evidence of negative transfer.")
    elif verdict is Verdict.positive and record.delta_mean is not None and record.delta_mean <= 3 * margin:
        parts.append("The gain is small, and short probe budgets favour pretrained weights (He et al., 2019), "
                     "so treat it as weak evidence of benefit.")
    for warning in record.warnings:
        parts.append(f"Warning: {warning}")
    return " ".join(parts)


def _what_ran(record: VerdictRecord) -> str:
    bits = []
    for name in ("finetune", "scratch"):
        arm: ArmSummary | None = record.arms.get(name)
        if arm is None or not arm.seeds:
            continue
        steps = sorted(set(arm.steps_run.values()))
        budgets = sorted({b for b in arm.budget_steps.values() if b is not None})
        lrs = sorted({lr for lr in arm.learning_rates.values() if lr is not None})
        acc = f"mean {record.metric_name} {arm.metric_mean:.3f}" if arm.metric_mean is not None else "no metric"
        ran = (f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}–{steps[-1]}") + " steps"
        of = f" of {budgets[-1]}" if budgets else ""
        lr = ("lr " + "/".join(f"{v:g}" for v in lrs)) if lrs else "no lr"
        bits.append(f"{name} {acc} ({len(arm.seeds)} seeds, {ran}{of}, {lr})")
    return ("Runs: " + "; ".join(bits) + ".") if bits else "No runs yet."
