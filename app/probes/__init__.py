"""Probe fine-tunes and the negative-transfer verdict (pure domain code: no web, no database, no Ray).

``runner``    arms finetune / linear / scratch / reference on identical data, order and head per seed
``halving``   successive halving over many candidates, scratch shared per architecture
``verdict``   paired Δ = finetune − scratch, bootstrap CI, one-sided tests, Holm, practical margin δ
"""

from app.probes.budget import ProbeBudget, ProbeCancelled
from app.probes.data import ProbeData
from app.probes.runner import ArmRun, ProbeResult, ReferenceArm, RunCache, arch_key, run_arm, run_probe
from app.probes.verdict import VerdictResult, judge

__all__ = ["ArmRun", "ProbeBudget", "ProbeCancelled", "ProbeData", "ProbeResult", "ReferenceArm", "RunCache",
           "VerdictResult", "arch_key", "judge", "run_arm", "run_probe"]
