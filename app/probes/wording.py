"""The verdict as a sentence a user can act on. Only wording lives here; the numbers come from
``app.probes.verdict``."""

from __future__ import annotations

from app.enums import Verdict
from app.probes.paired import PairedStats

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
    if verdict is Verdict.inconclusive and extra:
        parts.append(f"About {extra} more paired seeds would settle it if the observed spread "
                     f"(SD {s.sd:.3f}) holds; a longer budget also helps.")
    return " ".join(parts)
