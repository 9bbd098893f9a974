"""The metric catalogue: ``METRICS`` (name → :class:`MetricSpec`), the task-type capability matrix, and
``score``, the one generic entry point a job runner uses.

Registration is explicit (a literal table below); importing this module has no other side effects.

Pool-level scores (ETran's and NCTI's final scores) are not registry metrics: they min–max normalise
per-model parts over the candidate pool. Their parts are registered (``pool`` names the score they feed)
and :data:`POOL_SCORES` lists each combination with its parts, for the ranking to call once every
candidate is scored.

Not provided, by decision (see :data:`NOT_PROVIDED`): EMMS (Meng et al., NeurIPS 2023) needs label
embeddings from foundation models (CLIP, BERT, GPT-2 text encoders), which cannot be loaded here; the
GMM variants of PACTran (``pac_ndir``, ``pac_ngam``) fit at least 0.1·N mixture components; OTCE's
full score needs regression weights fitted on auxiliary tasks (``otce`` is its auxiliary-free −CE).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from .baselines import knn_accuracy, knn_accuracy_resampled, linear_probe_accuracy
from .difficulty import task_difficulty
from .etran import ETRAN_PARTS, etran_combine, etran_energy, etran_energy_resampled, etran_lda
from .gbc import gbc, gbc_resampled
from .hscore import hscore, hscore_resampled, hscore_shrinkage, hscore_shrinkage_resampled
from .leep import leep, leep_resampled, nce, nce_resampled, nleep
from .lfc import lfc
from .logme import logme, logme_resampled
from .ncti import NCTI_PARTS, ncti_combine, ncti_ncc, ncti_seli, ncti_vc
from .otce import otce
from .otdd import otdd
from .pactran import pactran_dirichlet, pactran_gamma, pactran_gaussian
from .parc import parc
from .rsa import dds, rsa
from .sfda import sfda, sfda_resampled
from .similarity import frechet_distance, mmd, proxy_a_distance
from .transrate import transrate, transrate_resampled

__all__ = [
    "TASK_TYPES",
    "MetricSpec",
    "METRICS",
    "POOL_SCORES",
    "NOT_PROVIDED",
    "PoolScore",
    "UnknownMetricError",
    "UnsupportedTaskError",
    "get_metric",
    "check_capability",
    "capability_matrix",
    "score",
    "resampled_kernel",
    "default_metrics",
    "similarity_metrics",
    "label_free_metrics",
    "subset_metric",
    "spec_of",
    "far_domain_metric",
]

CLASSIFICATION = "classification"
REGRESSION = "regression"
MULTILABEL = "multilabel"
TASK_TYPES: tuple[str, ...] = (CLASSIFICATION, REGRESSION, MULTILABEL)
DIRECTIONS = ("higher_is_better", "lower_is_better", "per_field")
COSTS = ("cheap", "expensive")

# Input names a job runner can supply. "labels_or_targets" means: class labels for a classification
# task, the (n, k) target matrix for regression / multi-label tasks.
INPUT_NAMES = (
    "features",
    "labels",
    "labels_or_targets",
    "source_probs",
    "source_logits",
    "a",
    "b",
    "source_features",
    "source_labels",
    "target_features",
    "target_labels",
)


class UnknownMetricError(ValueError):
    """The metric name is not in ``METRICS``."""


class UnsupportedTaskError(ValueError):
    """The metric does not support the requested task type (see :func:`capability_matrix`)."""


@dataclass(frozen=True)
class MetricSpec:
    """Catalogue entry of one metric.

    Attributes
    ----------
    name : str
    fn : callable
        The public function.
    inputs : tuple of str
        Positional inputs, in call order (names from ``INPUT_NAMES``).
    task_types : tuple of str
        Supported task types (subset of ``TASK_TYPES``).
    direction : {"higher_is_better", "lower_is_better", "per_field"}
        ``"per_field"`` only for ``task_difficulty``, whose fields document their own direction.
    kind : {"transferability", "similarity", "difficulty", "baseline"}
    reference : str
        Paper and the reference code the implementation is equal to.
    variant : str
        Which reference variant is implemented (stored with each score).
    version : str
        Bumped whenever the computed number changes for the same input.
    target_kwargs : mapping
        Extra keyword arguments used for regression / multi-label tasks.
    random_state : bool
        The function takes a ``random_state`` keyword (a seeded PCA, GMM or OT subsample); the job passes
        its seed so that the same request gives the same number.
    bootstrap : bool
        Cheap enough to recompute in every bootstrap replicate of the rank intervals.
    default_for : tuple of str
        Task types for which a ranking that names no metrics computes this one (transferability and
        baseline metrics), or for which ``similarity=true`` computes it (similarity metrics).
    pool : str
        Name of the pool-level score (key of :data:`POOL_SCORES`) this per-model part feeds; ``""`` for a
        metric that is a score on its own.
    cost : {"cheap", "expensive"}
        ``"expensive"``: a ranking computes it only at a backbone's candidate layers (the last one and the
        best by the cheap metrics), not at every layer it embeds. Measured, not guessed (``bench/metrics.py``).
    job_kwargs : mapping
        Keyword arguments the ranking job passes to the function (e.g. a per-side sample cap where the
        exact computation on every row buys nothing); stored with each score and part of its cache key.
    resampled : callable or None
        The metric's bootstrap kernel factory: called with the metric's inputs and keyword arguments, it
        validates them once and returns ``kernel(counts) -> float``, equal (up to rounding) to the metric on
        the resample that draws row ``i`` ``counts[i]`` times, computed from the original rows' weighted
        statistics. ``None``: a bootstrap replicate recomputes the metric on the materialised resample.
        This field is the one place that says which metric has such a kernel (:func:`resampled_kernel`).
    """

    name: str
    fn: Callable[..., Any]
    inputs: tuple[str, ...]
    task_types: tuple[str, ...]
    direction: str
    kind: str
    reference: str
    variant: str
    version: str = "1"
    target_kwargs: Mapping[str, Any] = field(default_factory=dict)
    random_state: bool = False
    bootstrap: bool = False
    default_for: tuple[str, ...] = ()
    pool: str = ""
    cost: str = "cheap"
    job_kwargs: Mapping[str, Any] = field(default_factory=dict)
    resampled: Callable[..., Callable[[np.ndarray], float]] | None = None

    def __post_init__(self) -> None:
        if self.cost not in COSTS:
            raise ValueError(f"metric {self.name!r}: cost must be one of {COSTS}, got {self.cost!r}")
        if self.resampled is not None and not self.bootstrap:
            raise ValueError(f"metric {self.name!r}: a resampled kernel serves the bootstrap; set bootstrap=True")
        if not set(self.default_for) <= set(self.task_types):
            raise ValueError(f"metric {self.name!r}: default_for {self.default_for} names task types it does not "
                             f"support ({self.task_types})")

    @property
    def needs_source_head(self) -> bool:
        """Reads the source head's output (probabilities: LEEP, NCE, PACTran-Dirichlet/Gamma; logits: RSA,
        DDS): one value per backbone, not per layer, and only for backbones that have a head."""
        return "source_probs" in self.inputs or "source_logits" in self.inputs

    @property
    def head_only(self) -> bool:
        """Reads the source head and no layer's features (LEEP, NCE, PACTran-Dirichlet/Gamma): one value per
        backbone, stored at its last layer. RSA and DDS need the head too, but score each layer's features."""
        return self.needs_source_head and "features" not in self.inputs

    def supports(self, task_type: str) -> bool:
        return task_type in self.task_types

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (without the callable)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "direction": self.direction,
            "inputs": list(self.inputs),
            "task_types": list(self.task_types),
            "reference": self.reference,
            "variant": self.variant,
            "version": self.version,
            "needs_source_head": self.needs_source_head,
            "head_only": self.head_only,
            "random_state": self.random_state,
            "bootstrap": self.bootstrap,
            "default_for": list(self.default_for),
            "pool": self.pool,
            "cost": self.cost,
            "job_kwargs": dict(self.job_kwargs),
            "resampled_kernel": self.resampled is not None,
        }


#: per-side cap on the samples a ranking job hands OTDD: the source side is a stored sample of 256, and past
#: this the target side's share of the estimate's error is small next to the cost (exact inner OT over all
#: class pairs and three n×n Sinkhorn problems); the metric subsamples stratified and says so in a warning
OTDD_JOB_SAMPLES = 512

_C = (CLASSIFICATION,)
_ALL = TASK_TYPES
_FL = ("features", "labels")
_ST = ("source_features", "source_labels", "target_features", "target_labels")
_FR = ("features", "source_logits")

_SPECS = [
    MetricSpec("logme", logme, ("features", "labels_or_targets"), _ALL, "higher_is_better", "transferability",
               "You et al. ICML 2021 / JMLR 2022; thuml/LogME LogME._fit_icml, tllib ranking/logme.py",
               "logme.full_d_evidence", target_kwargs={"regression": True},
               bootstrap=True, default_for=_ALL, resampled=logme_resampled),
    MetricSpec("leep", leep, ("source_probs", "labels"), _C, "higher_is_better", "transferability",
               "Nguyen et al. ICML 2020; thuml/LogME LEEP.py, tllib ranking/leep.py", "leep.thuml",
               bootstrap=True, default_for=_C, resampled=leep_resampled),
    MetricSpec("nce", nce, ("source_probs", "labels"), _C, "higher_is_better", "transferability",
               "Tran et al. ICCV 2019; thuml/LogME NCE.py, tllib ranking/nce.py", "nce.thuml_eps_in_log",
               bootstrap=True, default_for=_C, resampled=nce_resampled),
    MetricSpec("nleep", nleep, _FL, _C, "higher_is_better", "transferability",
               "Li et al. CVPR 2021; google-research stable_transfer nleep.py (log form)",
               "nleep.log_pca0.8_k5c_seeded",
               random_state=True, cost="expensive"),
    MetricSpec("hscore", hscore, _FL, _C, "higher_is_better", "transferability",
               "Bao et al. ICIP 2019; README getHscore, tllib ranking/hscore.py::h_score", "hscore.bao_pinv",
               bootstrap=True, resampled=hscore_resampled),
    MetricSpec("hscore_shrinkage", hscore_shrinkage, _FL, _C, "higher_is_better", "transferability",
               "Ibrahim et al. arXiv:2110.06893; tllib ranking/hscore.py::regularized_h_score",
               "hscore.ledoit_wolf",
               bootstrap=True, default_for=_C, resampled=hscore_shrinkage_resampled),
    MetricSpec("gbc", gbc, _FL, _C, "higher_is_better", "transferability",
               "Pándy et al. CVPR 2022; google-research stable_transfer gbc.py", "gbc.diagonal_pca64",
               bootstrap=True, default_for=_C, resampled=gbc_resampled),
    MetricSpec("sfda", sfda, _FL, _C, "higher_is_better", "transferability",
               "Shao et al. ECCV 2022; TencentARC/SFDA metrics.py::SFDA_Score", "sfda.confmix",
               bootstrap=True, default_for=_C, resampled=sfda_resampled),
    MetricSpec("transrate", transrate, _FL, _C, "higher_is_better", "transferability",
               "Huang et al. ICML 2022; tllib ranking/transrate.py", "transrate.tllib_centred_eps1e-4",
               bootstrap=True, default_for=_C, resampled=transrate_resampled),
    MetricSpec("parc", parc, ("features", "labels_or_targets"), _ALL, "higher_is_better", "transferability",
               "Bolya et al. NeurIPS 2021; dbolya/parc methods.py::PARC", "parc.pca32_max5000",
               random_state=True, default_for=(REGRESSION, MULTILABEL), cost="expensive"),
    MetricSpec("knn_accuracy", knn_accuracy, _FL, _C, "higher_is_better", "baseline",
               "Sorkhei et al. arXiv:2503.18528; leave-one-out k-NN", "knn.loo_exact_euclidean_k5_ties_by_label", version="2",
               bootstrap=True, default_for=_C, resampled=knn_accuracy_resampled, cost="expensive"),
    MetricSpec("linear_probe_accuracy", linear_probe_accuracy, _FL, _C, "higher_is_better", "baseline",
               "Sorkhei et al. arXiv:2503.18528; stratified 5-fold logistic regression", "linear_probe.lbfgs_5fold",
               cost="expensive"),
    MetricSpec("otdd", otdd, _ST, _C, "lower_is_better", "similarity",
               "Alvarez-Melis & Fusi NeurIPS 2020; microsoft/otdd DatasetDistance (debiased Sinkhorn, p=2)",
               "otdd.microsoft_half_cost_abs_eps0.1_exact_inner_log_sinkhorn", version="2",
               random_state=True, cost="expensive",
               job_kwargs={"max_samples": OTDD_JOB_SAMPLES}),
    MetricSpec("frechet_distance", frechet_distance, ("a", "b"), _ALL, "lower_is_better", "similarity",
               "Dowson & Landau 1982; FID formula (pytorch-fid)", "frechet.unbiased_cov",
               default_for=_ALL),
    MetricSpec("mmd", mmd, ("a", "b"), _ALL, "lower_is_better", "similarity",
               "Gretton et al. JMLR 2012; unbiased MMD², RBF, median heuristic", "mmd2.unbiased_rbf_median",
               default_for=_ALL),
    MetricSpec("proxy_a_distance", proxy_a_distance, ("a", "b"), _ALL, "lower_is_better", "similarity",
               "Ben-David et al. NeurIPS 2006; logistic domain classifier, 5-fold", "pad.logistic_5fold",
               cost="expensive"),
    MetricSpec("task_difficulty", task_difficulty, _FL, _C, "per_field", "difficulty",
               "Facco et al. 2017 (TwoNN); normalised label entropy; LOO k-NN; Fisher variance ratio",
               "difficulty.v1_exact_knn_ties_by_label", version="2"),
    # ---- further metrics of the peers (none is a default)
    MetricSpec("etran_lda", etran_lda, _FL, _C, "higher_is_better", "transferability",
               "Gholami et al. ICCV 2023; mgholamikn/ETran metrics.py::LDA_Score", "etran.lda_score",
               bootstrap=True, pool="etran"),
    MetricSpec("etran_energy", etran_energy, ("features",), _ALL, "higher_is_better", "transferability",
               "Gholami et al. ICCV 2023; mgholamikn/ETran metrics.py::Energy_Score(features, 0.5, 'bot')",
               "etran.energy_features_bottom0.5pct",
               bootstrap=True, pool="etran", job_kwargs={"min_count": 1}, resampled=etran_energy_resampled),
    MetricSpec("pactran_dirichlet", pactran_dirichlet, ("source_probs", "labels"), _C, "lower_is_better",
               "transferability",
               "Ding et al. ECCV 2022; google-research/pactran_metrics compute_metrics.py::calculate_pac_dir",
               "pactran.dirichlet_alpha1", bootstrap=True),
    MetricSpec("pactran_gamma", pactran_gamma, ("source_probs", "labels"), _C, "lower_is_better",
               "transferability",
               "Ding et al. ECCV 2022; google-research/pactran_metrics compute_metrics.py::calculate_pac_gamma",
               "pactran.gamma_alpha1", bootstrap=True),
    MetricSpec("pactran_gaussian", pactran_gaussian, _FL, _C, "lower_is_better", "transferability",
               "Ding et al. ECCV 2022; google-research/pactran_metrics compute_metrics.py::calculate_pac_gauss",
               "pactran.gauss_lda1_s2_100_lbfgs100", random_state=True, cost="expensive"),
    MetricSpec("ncti_seli", ncti_seli, _FL, _C, "higher_is_better", "transferability",
               "Wang et al. ICCV 2023; BUserName/NCTI metrics.py::NCTI_Score (S_seli)", "ncti.seli_exact_pca64",
               bootstrap=True, pool="ncti", job_kwargs={"pca_dim": "auto"}),
    MetricSpec("ncti_ncc", ncti_ncc, _FL, _C, "higher_is_better", "transferability",
               "Wang et al. ICCV 2023; BUserName/NCTI metrics.py::NCTI_Score (S_ncc)", "ncti.ncc_exact_pca64",
               bootstrap=True, pool="ncti", job_kwargs={"pca_dim": "auto"}),
    MetricSpec("ncti_vc", ncti_vc, _FL, _C, "lower_is_better", "transferability",
               "Wang et al. ICCV 2023; BUserName/NCTI metrics.py::NCTI_Score (S_vc)", "ncti.vc_log_nuc_exact_pca64",
               bootstrap=True, pool="ncti", job_kwargs={"pca_dim": "auto"}),
    MetricSpec("otce", otce, _ST, _C, "higher_is_better", "transferability",
               "Tan et al. CVPR 2021; tanyang1231/OTCE_Transferability_CVPR21 compute_otce_demo.py "
               "(compute_coupling, compute_CE)", "otce.neg_ce_exact_ot_max1000",
               random_state=True, cost="expensive"),
    MetricSpec("lfc", lfc, _FL, _C, "higher_is_better", "transferability",
               "Deshpande et al. arXiv:2102.00084; public LFC(args).score method lfc-dot (Frobenius cosine)",
               "lfc.frobenius_global_mean", bootstrap=True),
    MetricSpec("rsa", rsa, _FR, _ALL, "higher_is_better", "transferability",
               "Dwivedi & Roig CVPR 2019; dbolya/parc methods.py::RSA (reference = source-head logits)",
               "rsa.parc_spearman_max5000", random_state=True, cost="expensive"),
    MetricSpec("dds", dds, _FR, _ALL, "higher_is_better", "transferability",
               "Dwivedi et al. ECCV 2020; dbolya/parc methods.py::DDS (reference = source-head logits)",
               "dds.parc_cosine_debiased_cka", cost="expensive"),
]

METRICS: Mapping[str, MetricSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})
"""Every metric of the library, by name (read-only)."""


@dataclass(frozen=True)
class PoolScore:
    """A score defined over a pool of candidate models, combined from per-model registry metrics.

    Attributes
    ----------
    name : str
    parts : tuple of str
        Registry metrics computed for every candidate; their specs carry ``pool=name``.
    combine : callable
        ``combine({model: {part: value}}) -> {model: score}``; raises for a pool of fewer than 2.
    direction : str
        Of the combined score.
    reference : str
    """

    name: str
    parts: tuple[str, ...]
    combine: Callable[..., dict[str, float]]
    direction: str
    reference: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "parts": list(self.parts), "direction": self.direction,
                "reference": self.reference}


POOL_SCORES: Mapping[str, PoolScore] = MappingProxyType({
    "etran": PoolScore("etran", ETRAN_PARTS, etran_combine, "higher_is_better",
                       "Gholami et al. ICCV 2023; mgholamikn/ETran tw.py: 0.85·mm(S_cls) + 0.15·mm(S_en)"),
    "ncti": PoolScore("ncti", NCTI_PARTS, ncti_combine, "higher_is_better",
                      "Wang et al. ICCV 2023; BUserName/NCTI evaluate_metric_group1_cpu.py: "
                      "mm(ncc) + mm(seli) − mm(vc)"),
})
"""Pool-level scores, by name (read-only)."""

NOT_PROVIDED: Mapping[str, str] = MappingProxyType({
    "emms": "EMMS (Meng et al., NeurIPS 2023) regresses the features on label embeddings from foundation "
            "models (CLIP, BERT, GPT-2 text encoders of the class names); those models cannot be loaded here, "
            "and a surrogate (one-hot labels) would be a different metric",
    "pactran_dirichlet_gmm": "PACTran's GMM variants fit a mixture of at least 0.1·N full-covariance "
                             "components: infeasible at ranking sizes (77–89 s at N = 2000)",
    "pactran_gamma_gmm": "as pactran_dirichlet_gmm",
    "otce_full": "OTCE's λ₁·W + λ₂·CE + b needs λ, b regressed on auxiliary tasks of known transfer "
                 "accuracy; the registry's otce is the auxiliary-free −CE the reference README recommends",
})
"""Metrics of the peers that are deliberately not implemented, with the reason (the catalogue's notes)."""


#: the metric a multi-source subset is scored with, when the ranking computed it (else the first
#: feature metric of the request)
_SUBSET_PREFERENCE = ("logme",)


#: the domain distance whose farthest third the ranking flags ``far_domain``
_FAR_DOMAIN_DISTANCE = "frechet_distance"


def far_domain_metric() -> str:
    """The similarity metric by which a ranking flags sources whose domain is far from the target."""
    return _FAR_DOMAIN_DISTANCE


def default_metrics(task_type: str) -> tuple[str, ...]:
    """Transferability and baseline metrics a ranking computes when the request names none, in registry order."""
    return tuple(name for name, spec in METRICS.items()
                 if task_type in spec.default_for and spec.kind in ("transferability", "baseline"))


def label_free_metrics() -> tuple[str, ...]:
    """Metrics that never read the target's labels (ETran's energy, RSA, DDS, the label-free domain
    distances): they can say how a backbone responds to the target's inputs, not whether its features
    separate the target's classes."""
    return tuple(name for name, spec in METRICS.items()
                 if not {"labels", "labels_or_targets", "target_labels"} & set(spec.inputs))


def similarity_metrics(task_type: str) -> tuple[str, ...]:
    """Domain-similarity metrics a ranking computes between the target and each source's stored sample when
    the request does not name them (``similarity: true``): the cheap ones. OTDD is computed when named: it
    costs more than every other metric of a default job together and changes no decision (the far-domain
    flag reads Fréchet; OTDD is the weakest signal on our ground truth)."""
    return tuple(name for name, spec in METRICS.items() if spec.kind == "similarity" and task_type in spec.default_for)


def subset_metric(computed: tuple[str, ...] | list[str]) -> str | None:
    """The metric that scores a concatenation of several backbones' features: LogME when computed, else the
    first computed metric that takes features; ``None`` when there is none."""
    for name in _SUBSET_PREFERENCE:
        if name in computed:
            return name
    return next((m for m in computed if METRICS[m].inputs[0] == "features"), None)


def spec_of(fn: Callable[..., Any]) -> MetricSpec:
    """The spec of a metric function (e.g. ``spec_of(task_difficulty).variant``)."""
    for spec in METRICS.values():
        if spec.fn is fn:
            return spec
    raise UnknownMetricError(f"{getattr(fn, '__name__', fn)!r} is not a registered metric function")


def get_metric(name: str) -> MetricSpec:
    try:
        return METRICS[name]
    except KeyError:
        raise UnknownMetricError(f"unknown metric {name!r}; known metrics: {sorted(METRICS)}") from None


def check_capability(metric: str, task_type: str) -> MetricSpec:
    """Return the spec of ``metric`` if it supports ``task_type``; raise a ``ValueError`` subclass otherwise.

    Raises
    ------
    UnknownMetricError
        Unknown metric name.
    UnsupportedTaskError
        Unknown task type, or a task type the metric does not support.
    """
    spec = get_metric(metric)
    if task_type not in TASK_TYPES:
        raise UnsupportedTaskError(f"unknown task type {task_type!r}; known task types: {list(TASK_TYPES)}")
    if not spec.supports(task_type):
        raise UnsupportedTaskError(
            f"metric {metric!r} does not support task type {task_type!r} (supported: {list(spec.task_types)})"
        )
    return spec


def capability_matrix() -> dict[str, Any]:
    """JSON-able catalogue: task types, per metric its description and a task-type → bool map, the
    pool-level scores with their parts, and the notes on metrics not provided."""
    return {
        "task_types": list(TASK_TYPES),
        "metrics": {
            name: {**spec.to_dict(), "supports": {t: spec.supports(t) for t in TASK_TYPES}}
            for name, spec in METRICS.items()
        },
        "pool_scores": {name: pool.to_dict() for name, pool in POOL_SCORES.items()},
        "not_provided": dict(NOT_PROVIDED),
    }


def _check_multilabel(targets: Any) -> None:
    arr = targets.detach().cpu().numpy() if hasattr(targets, "detach") else np.asarray(targets)
    if arr.ndim != 2:
        raise ValueError(f"multilabel targets must be a 2-D (n_samples, n_labels) 0/1 matrix, got shape {arr.shape}")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        raise ValueError(f"multilabel targets must be 0/1; found {arr[bad].reshape(-1)[0]!r}")


def score(
    name: str,
    *,
    task_type: str = CLASSIFICATION,
    features: Any = None,
    labels: Any = None,
    targets: Any = None,
    source_probs: Any = None,
    source_logits: Any = None,
    a: Any = None,
    b: Any = None,
    source_features: Any = None,
    source_labels: Any = None,
    target_features: Any = None,
    target_labels: Any = None,
    **params: Any,
) -> float:
    """Compute metric ``name`` from the inputs its spec declares and return a float.

    Classification tasks pass ``labels``; regression and multi-label tasks pass ``targets`` (n, k)
    (multi-label: a 0/1 matrix), which metrics with a ``labels_or_targets`` input receive in place of
    labels (LogME then runs its regression form). ``source_logits`` (n, k) is the other representation
    of the same samples that RSA and DDS compare the features with (the source head's logits). Extra
    keyword ``params`` go to the metric function.

    Raises
    ------
    UnknownMetricError, UnsupportedTaskError
        See :func:`check_capability`.
    ValueError
        A required input is missing, or the metric does not return a scalar (``task_difficulty``).

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import score
    >>> f = np.array([[0.0, 1.0], [1.0, 0.0], [4.0, 1.0], [5.0, 2.0]])
    >>> round(score("hscore", features=f, labels=[0, 0, 1, 1]), 4)
    0.9444
    """
    spec = check_capability(name, task_type)
    if spec.direction == "per_field":
        raise ValueError(f"{name!r} returns a structured result, not a score; call {spec.fn.__name__}() directly")
    args, kwargs = _call_arguments(spec, task_type, params, features=features, labels=labels, targets=targets,
                                   source_probs=source_probs, source_logits=source_logits, a=a, b=b,
                                   source_features=source_features, source_labels=source_labels,
                                   target_features=target_features, target_labels=target_labels)
    return float(spec.fn(*args, **kwargs))


def resampled_kernel(name: str, *, task_type: str = CLASSIFICATION, **inputs: Any) -> Callable[[np.ndarray], float] | None:
    """The bootstrap kernel of metric ``name`` on these inputs (the keywords of :func:`score`), or ``None``
    when the registry gives the metric none (:attr:`MetricSpec.resampled`).

    ``kernel(counts)`` equals ``score(name, ...)`` on the resample that draws row ``i`` ``counts[i]`` times,
    e.g. ``features[idx]`` and ``labels[idx]`` for ``counts = np.bincount(idx, minlength=n)``, up to
    floating-point rounding; it raises the metric's ``ValueError`` for a resample the metric refuses. The
    inputs are validated here, once (the same errors as :func:`score`).

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import resampled_kernel, score
    >>> f = np.array([[0.0, 1.0], [1.0, 0.0], [4.0, 1.0], [5.0, 2.0], [4.5, 0.5]])
    >>> kernel = resampled_kernel("hscore", features=f, labels=[0, 0, 1, 1, 1])
    >>> idx = np.array([0, 0, 1, 2, 4])
    >>> bool(np.isclose(kernel(np.bincount(idx, minlength=5)), score("hscore", features=f[idx],
    ...                                                             labels=np.array([0, 0, 1, 1, 1])[idx])))
    True
    """
    spec = check_capability(name, task_type)
    if spec.resampled is None:
        return None
    params = {k: v for k, v in inputs.items() if k not in _SCORE_INPUTS}
    data = {k: v for k, v in inputs.items() if k in _SCORE_INPUTS}
    args, kwargs = _call_arguments(spec, task_type, params, **data)
    return spec.resampled(*args, **kwargs)


_SCORE_INPUTS = ("features", "labels", "targets", "source_probs", "source_logits", "a", "b", "source_features",
                 "source_labels", "target_features", "target_labels")


def _call_arguments(spec: MetricSpec, task_type: str, params: Mapping[str, Any], *, targets: Any = None,
                    **given: Any) -> tuple[list[Any], dict[str, Any]]:
    """The positional inputs (in the spec's order) and keyword arguments of one call of ``spec.fn``."""
    name = spec.name
    supplied = {k: given.get(k) for k in _SCORE_INPUTS if k != "targets"}
    if task_type == CLASSIFICATION:
        supplied["labels_or_targets"] = supplied["labels"]
    else:
        if targets is not None and task_type == MULTILABEL:
            _check_multilabel(targets)
        supplied["labels_or_targets"] = targets
    args = []
    for inp in spec.inputs:
        value = supplied[inp]
        if value is None:
            wanted = ("labels" if task_type == CLASSIFICATION else "targets") if inp == "labels_or_targets" else inp
            raise ValueError(f"metric {name!r} needs input {wanted!r} for task type {task_type!r}")
        args.append(value)
    kwargs = dict(params)
    if task_type != CLASSIFICATION:
        kwargs = {**spec.target_kwargs, **kwargs}
    return args, kwargs


#: the libraries metrics import on first use (kept out of ``import app.transferability``, which the API
#: process and the CLI pay for): POT for the optimal-transport metrics, scikit-learn's estimators
LAZY_IMPORTS = ("ot", "sklearn.decomposition", "sklearn.discriminant_analysis", "sklearn.exceptions",
                "sklearn.linear_model", "sklearn.mixture", "sklearn.model_selection", "sklearn.pipeline",
                "sklearn.preprocessing")


def preload() -> None:
    """Import :data:`LAZY_IMPORTS` now (about 0.5 s, most of it POT), so that a worker's first job does not
    pay for them inside its score stage; the executors call it when they start."""
    import importlib

    for name in LAZY_IMPORTS:
        importlib.import_module(name)
