"""Probe fine-tunes and the negative-transfer verdict (pure domain code: no web, no database, no Ray).

``runner``      arms finetune / linear / scratch / reference on identical data, order and head per seed
``data``        the target rows a seed fixes; ``ProbeDataCache`` decodes them once per job
``sequential``  paired seeds in rounds: anytime-valid confidence sequence, Holm, settle / continue
``record``      paired evidence from stored runs and the ``VerdictRecord`` of what was run
``halving``     successive halving over many candidates, fitted to the sequential rounds
``verdict``     the fixed-seeds rule (bootstrap CI, one-sided tests, Holm), kept for comparison
``evaluation``  probe-run scores, and scoring the verdict rule against ground truth
``simulation``  operating characteristics of a sequential design (tests, benchmarks)
"""

from app.probes.budget import ProbeBudget, ProbeCancelled
from app.probes.data import ProbeData, ProbeDataCache
from app.probes.record import paired_evidence, verdict_records
from app.probes.runner import ArmRun, ProbeResult, ReferenceArm, RunCache, arch_key, run_arm, run_probe
from app.probes.sequential import CandidateLook, SequentialDesign, look
from app.probes.types import ArmSummary, VerdictRecord
from app.probes.verdict import VerdictResult, judge

__all__ = ["ArmRun", "ArmSummary", "CandidateLook", "ProbeBudget", "ProbeCancelled", "ProbeData", "ProbeDataCache",
           "ProbeResult", "ReferenceArm", "RunCache", "SequentialDesign", "VerdictRecord", "VerdictResult",
           "arch_key", "judge", "look", "paired_evidence", "run_arm", "run_probe", "verdict_records"]
