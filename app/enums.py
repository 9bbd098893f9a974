"""Vocabulary shared by tables, schemas and services: modalities, task types, probe arms, verdicts.

Job statuses live with the job layer (:mod:`app.jobs.status`).
"""

from __future__ import annotations

from enum import StrEnum


class Modality(StrEnum):
    image = "image"
    text = "text"
    features = "features"


class TaskType(StrEnum):
    classification = "classification"
    regression = "regression"
    multilabel = "multilabel"


class ProbeArm(StrEnum):
    finetune = "finetune"
    linear = "linear"
    scratch = "scratch"
    reference = "reference"


class Verdict(StrEnum):
    positive = "positive"
    no_benefit = "no_benefit"
    negative_transfer = "negative_transfer"
    inconclusive = "inconclusive"
