"""What was run, as evidence: paired Δ per seed from stored runs, and the verdict record of each candidate.

What lives here: turning runs (``ArmRun`` or the dicts a ``probe_runs`` row gives) into (a) the paired
evidence the sequential rule reads — with timed-out runs kept out unless the caller says otherwise, and
(b) a :class:`~app.probes.types.VerdictRecord` per candidate: rounds, seeds, steps actually run per arm,
per-arm mean metrics, the chosen learning rates, time-outs, the stopping reason, the learning curves,
warnings and the text. What does not: the statistics (``sequential``), wording (``wording``), training.

A run *timed out* when it stopped on its wall clock before its step budget (``details.timed_out``). Such
a run measures a shorter recipe than its partner, so by default its seed is not evidence; the record
lists it in ``excluded_seeds``, and the warnings and text say so. With ``count_timed_out=True`` it
counts, and the warnings still say so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from app.enums import ProbeArm, Verdict
from app.probes.sequential import CandidateLook, SequentialDesign, look
from app.probes.types import ArmSummary, VerdictRecord
from app.probes.wording import describe_sequential

#: |sample skewness| of Δ above which the record warns (the sequence keeps its level up to skewness ≈ 1)
SKEW_WARNING = 1.5
_EVIDENCE_ARMS = (ProbeArm.finetune.value, ProbeArm.scratch.value)
FINETUNE_EVIDENCE = "finetune − scratch, paired by seed"
LINEAR_EVIDENCE = "linear − scratch, paired by seed (the frozen pretrained trunk with a trained head)"
_CLAIM = {Verdict.negative_transfer: "negative_transfer", Verdict.positive: "positive",
          Verdict.no_benefit: "no_benefit"}


def as_run(run: Any) -> dict[str, Any]:
    """A uniform view of an ``ArmRun`` or a ``probe_runs`` row as a mapping."""
    if hasattr(run, "to_dict"):
        run = run.to_dict()
    if not isinstance(run, Mapping):
        raise ValueError(f"a run must be an ArmRun or a mapping, got {type(run).__name__}")
    missing = {"arm", "seed"} - set(run)
    if missing:
        raise ValueError(f"a run needs the fields {sorted(missing)!r}")
    details = dict(run.get("details") or {})
    return {"arm": str(run["arm"]), "seed": int(run["seed"]), "metric": run.get("metric"),
            "steps": int(run.get("steps") or 0), "seconds": float(run.get("seconds") or 0.0),
            "curve": list(run.get("curve") or []), "details": details}


def timed_out(run: Mapping[str, Any]) -> bool:
    """Whether a run stopped on the wall clock before its step budget (any rate of its grid)."""
    return bool((run.get("details") or {}).get("timed_out"))


def _finite(v: Any) -> bool:
    return v is not None and math.isfinite(float(v))


def paired_evidence(runs: Iterable[Any], *, count_timed_out: bool = False,
                    arm: str = ProbeArm.finetune.value) -> tuple[dict[int, float], dict[int, str]]:
    """``({seed: Δ}, {seed: why not evidence})`` for one candidate's runs, Δ = ``arm`` − scratch
    (``finetune`` by default; ``linear`` for the linear-probe evidence).

    A seed counts when both arms have a finite metric and (unless ``count_timed_out``) neither arm timed
    out. Raises on two runs of the same (arm, seed), which would make the pairing ambiguous.
    """
    by: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for raw in runs:
        r = as_run(raw)
        if r["seed"] in by[r["arm"]]:
            raise ValueError(f"two {r['arm']!r} runs for seed {r['seed']}: the pairing would be ambiguous")
        by[r["arm"]][r["seed"]] = r
    ft, sc = by.get(arm, {}), by.get("scratch", {})
    deltas: dict[int, float] = {}
    excluded: dict[int, str] = {}
    for seed in sorted(set(ft) | set(sc)):
        pair = {arm: ft.get(seed), "scratch": sc.get(seed)}
        missing = [a for a, r in pair.items() if r is None]
        if missing:
            excluded[seed] = f"no {' or '.join(missing)} run yet"
            continue
        bad = [a for a, r in pair.items() if not _finite(r["metric"])]
        if bad:
            excluded[seed] = f"{' and '.join(bad)} produced no finite metric (diverged or failed)"
            continue
        late = [a for a, r in pair.items() if timed_out(r)]
        if late and not count_timed_out:
            excluded[seed] = f"{' and '.join(late)} timed out before the step budget"
            continue
        deltas[seed] = float(pair[arm]["metric"]) - float(pair["scratch"]["metric"])
    return deltas, excluded


def arm_summary(arm: str, runs: Sequence[Mapping[str, Any]]) -> ArmSummary:
    """What one arm ran, over all its seeds."""
    rs = sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["seed"])
    vals = [float(r["metric"]) for r in rs if _finite(r["metric"])]
    return ArmSummary(
        arm=arm, seeds=[r["seed"] for r in rs],
        metric_mean=float(np.mean(vals)) if vals else None,
        metric_sd=float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
        metrics={r["seed"]: (float(r["metric"]) if _finite(r["metric"]) else None) for r in rs},
        steps_run={r["seed"]: r["steps"] for r in rs},
        budget_steps={r["seed"]: (r["details"].get("budget") or {}).get("steps") for r in rs},
        learning_rates={r["seed"]: r["details"].get("lr") for r in rs},
        timed_out=[r["seed"] for r in rs if timed_out(r)],
        seconds=round(sum(r["seconds"] for r in rs), 4),
        curves={r["seed"]: r["curve"] for r in rs},
        shared_from={r["seed"]: r["details"]["shared_from"] for r in rs if r["details"].get("shared_from")},
    )


def verdict_records(runs_by_candidate: Mapping[str, Iterable[Any]], design: SequentialDesign, *,
                    rounds: Mapping[str, int] | int, stopped: Mapping[str, str] | None = None,
                    metric_name: str | None = None, count_timed_out: bool = False,
                    family_size: int | None = None, linear_evidence: bool = False,
                    halving: Mapping[str, Mapping[str, Any]] | None = None) -> list[VerdictRecord]:
    """The verdict records of one job's probed candidates (Holm runs across all of them).

    Parameters
    ----------
    runs_by_candidate : mapping backbone id → runs
        Every run of the candidate (any arm, any seed): ``ArmRun`` objects or ``probe_runs`` rows as
        mappings with ``arm``, ``seed``, ``metric``, ``steps``, ``seconds``, ``curve``, ``details``.
    design : SequentialDesign
    rounds : mapping backbone id → rounds run, or one count for all
    stopped : mapping backbone id → stop reason, optional
        What the job decided (``"settled"``, ``"max_seeds"``, ``"futile"``, ``"time_budget"``); a candidate
        absent here takes the reason the final look gives (``"continue"`` if it would get more seeds).
    metric_name : str, optional
        Defaults to the runs' ``details.metric_name``, else ``"accuracy"``.
    count_timed_out : bool
        Count seeds whose runs timed out as evidence (they are always named in the warnings).
    family_size : int, optional
        Passed to :func:`~app.probes.sequential.look` (candidates × rungs under successive halving).
    linear_evidence : bool
        Let the linear arm settle ``positive`` (``look(..., linear=…)``); the record's ``decided_by`` and
        ``evidence`` say which arm decided, ``stats["linear"]`` holds the linear − scratch evidence.
    halving : mapping backbone id → rung record, optional
        Under successive halving, the rung each verdict speaks for (``rung_steps``, ``budget_steps``,
        ``full_steps``, ``rungs``): stored in the record and said in its text.
    """
    ids = list(runs_by_candidate)
    if not ids:
        raise ValueError("verdict_records() needs at least one candidate")
    runs = {cid: [as_run(r) for r in runs_by_candidate[cid]] for cid in ids}
    evidence = {cid: paired_evidence(runs[cid], count_timed_out=count_timed_out) for cid in ids}
    attempted = {cid: {r["seed"] for r in runs[cid] if r["arm"] in _EVIDENCE_ARMS} for cid in ids}
    linear = ({cid: paired_evidence(runs[cid], count_timed_out=count_timed_out, arm=ProbeArm.linear.value)[0]
               for cid in ids} if linear_evidence else None)
    looks = look({cid: evidence[cid][0] for cid in ids}, design, stopped=stopped, attempted=attempted,
                 family_size=family_size, linear=linear)
    metric = metric_name or next((r["details"]["metric_name"] for cid in ids for r in runs[cid]
                                  if r["details"].get("metric_name")), "accuracy")
    out = []
    for cid in ids:
        n_rounds = rounds if isinstance(rounds, int) else int(rounds.get(cid, 0))
        if n_rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {n_rounds!r} for {cid}")
        out.append(_record(cid, looks[cid], runs[cid], evidence[cid][1], design, n_rounds, metric,
                           family_size or len(ids), count_timed_out,
                           None if halving is None or cid not in halving else dict(halving[cid])))
    return out


def _record(cid: str, lk: CandidateLook, runs: list[dict[str, Any]], excluded: dict[int, str],
            design: SequentialDesign, rounds: int, metric: str, m: int, count_timed_out: bool,
            halving: dict[str, Any] | None = None) -> VerdictRecord:
    arms = {a: arm_summary(a, runs) for a in dict.fromkeys(r["arm"] for r in runs)}
    s = lk.stats
    claim = "positive_linear" if lk.decided_by == "linear" else _CLAIM.get(lk.verdict)
    if claim is None:  # inconclusive: report the claim the evidence leans to
        claim = "no_benefit" if s.mean is None or abs(s.mean) <= design.margin else (
            "negative_transfer" if s.mean < 0 else "positive")
    record = VerdictRecord(
        backbone_id=cid, verdict=lk.verdict.value, delta_mean=s.mean, ci_low=s.cs_low, ci_high=s.cs_high,
        p_value=lk.p_holm.get(claim), n_seeds=s.n, text="", stop_reason=lk.action, rounds=rounds,
        seeds=list(s.seeds), metric_name=metric, arms=arms, excluded_seeds=dict(excluded),
        warnings=_warnings(arms, excluded, lk, design, count_timed_out), p_holm=dict(lk.p_holm),
        stats={**s.to_dict(), "n_candidates": m, "next_seeds": list(lk.next_seeds),
               "linear": None if lk.linear is None else lk.linear.to_dict()}, design=design.to_dict(),
        reason=lk.reason, decided_by=lk.decided_by,
        evidence=LINEAR_EVIDENCE if lk.decided_by == "linear" else FINETUNE_EVIDENCE, halving=halving)
    record.text = describe_sequential(record)
    return record


def _warnings(arms: Mapping[str, ArmSummary], excluded: Mapping[int, str], lk: CandidateLook,
              design: SequentialDesign, count_timed_out: bool) -> list[str]:
    out = []
    for name, arm in arms.items():
        if not arm.timed_out:
            continue
        ran = [f"seed {s}: {arm.steps_run[s]} of {arm.budget_steps[s] if arm.budget_steps[s] is not None else '?'}"
               for s in arm.timed_out]
        fate = ("counted as evidence anyway (count_timed_out)" if count_timed_out or name not in _EVIDENCE_ARMS
                else "not counted as evidence")
        out.append(f"{len(arm.timed_out)} of {len(arm.seeds)} {name} runs timed out before their step budget "
                   f"({'; '.join(ran)} steps); {fate}. Raise budget_seconds or lower budget_steps.")
    other = {s: why for s, why in excluded.items() if "timed out" not in why and not why.startswith("no ")}
    if other:
        out.append("seeds not counted: " + "; ".join(f"{s} ({why})" for s, why in sorted(other.items())))
    if lk.action == "time_budget":
        out.append(f"the job's time budget ended this candidate after {lk.stats.n} paired seeds, before its "
                   f"verdict settled or it reached {design.max_seeds} seeds")
    skew = _skewness(lk.stats.deltas)
    if skew is not None and abs(skew) > SKEW_WARNING:
        out.append(f"Δ across seeds is strongly skewed (sample skewness {skew:+.2f}); the confidence sequence "
                   "assumes roughly symmetric seed noise and may undercover, so read the verdict with care")
    if lk.stats.n and lk.stats.sd == 0:
        out.append("Δ is identical in every seed (zero spread); the verdict stays inconclusive")
    return out


def _skewness(deltas: Sequence[float]) -> float | None:
    x = np.asarray(deltas, dtype=np.float64)
    if x.size < 5 or x.std() == 0:
        return None
    return float(np.mean((x - x.mean()) ** 3) / x.std() ** 3)
