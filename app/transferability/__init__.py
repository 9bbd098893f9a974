"""Transfer Scout's metric library: transferability, domain-similarity and task-difficulty metrics.

Direction contract
------------------
* **Transferability scores and baselines** (``logme``, ``leep``, ``nce``, ``nleep``, ``hscore``,
  ``hscore_shrinkage``, ``gbc``, ``sfda``, ``transrate``, ``parc``, ``knn_accuracy``,
  ``linear_probe_accuracy``, ``etran_lda``, ``etran_energy``, ``ncti_seli``, ``ncti_ncc``, ``otce``,
  ``lfc``, ``rsa``, ``dds``): **higher is better** — a higher value predicts better transfer of the
  source model to the target task.
* **Exceptions, lower is better**: the PACTran bounds (``pactran_dirichlet``, ``pactran_gamma``,
  ``pactran_gaussian``: PAC-Bayesian risk bounds) and ``ncti_vc`` (within-class variability, which
  NCTI subtracts). Their registry entries say ``lower_is_better``.
* **Pool-level scores** (``etran_combine``, ``ncti_combine``, listed in :data:`POOL_SCORES`): computed
  from the per-model parts of every candidate of a pool; higher is better.
* **Domain-similarity distances** (``otdd``, ``frechet_distance``, ``mmd``, ``proxy_a_distance``): **lower
  means closer**; their names say distance.
* ``task_difficulty`` returns a :class:`TaskDifficulty` whose fields each document their direction.

Every entry of :data:`METRICS` records its direction, kind, inputs and supported task types
(``"classification"``, ``"regression"``, ``"multilabel"``); :func:`check_capability` and
:func:`capability_matrix` serve that catalogue and :func:`score` dispatches a metric generically.

What lives here: pure numpy / scipy / scikit-learn / torch / POT functions. What must not: web, database
or executor imports (FastAPI, SQLAlchemy, Ray).

Conventions shared by every function: inputs are numpy arrays or torch tensors (CUDA tensors are
processed on their GPU where the metric does heavy linear algebra); they are validated once, at the
public function, with ``ValueError`` messages naming the offending value; computation is float64; inputs
are never modified; results are deterministic for a given ``random_state``; labels may be any hashable
values and are re-encoded to ``0..C-1`` in sorted order.
"""

from ._linalg import single_thread_blas, single_thread_compute
from .baselines import knn_accuracy, linear_probe_accuracy
from .difficulty import TaskDifficulty, task_difficulty
from .etran import etran_combine, etran_energy, etran_lda
from .gbc import gbc
from .hscore import hscore, hscore_shrinkage
from .leep import SubsampleWarning, leep, nce, nleep
from .lfc import lfc
from .logme import ConvergenceWarning, logme
from .ncti import NCTIComponents, ncti_combine, ncti_components, ncti_ncc, ncti_seli, ncti_vc
from .otce import OTCEComponents, otce, otce_components
from .otdd import otdd
from .pactran import pactran_dirichlet, pactran_gamma, pactran_gaussian
from .parc import parc
from .registry import (
    METRICS,
    NOT_PROVIDED,
    POOL_SCORES,
    TASK_TYPES,
    MetricSpec,
    PoolScore,
    UnknownMetricError,
    UnsupportedTaskError,
    capability_matrix,
    check_capability,
    default_metrics,
    far_domain_metric,
    get_metric,
    label_free_metrics,
    preload,
    resampled_kernel,
    score,
    similarity_metrics,
    spec_of,
    subset_metric,
)
from .rsa import dds, rsa
from .sfda import sfda
from .similarity import frechet_distance, mmd, proxy_a_distance
from .transrate import transrate

__all__ = [
    "preload",
    "logme",
    "leep",
    "nce",
    "nleep",
    "hscore",
    "hscore_shrinkage",
    "gbc",
    "sfda",
    "transrate",
    "parc",
    "knn_accuracy",
    "linear_probe_accuracy",
    "otdd",
    "frechet_distance",
    "mmd",
    "proxy_a_distance",
    "task_difficulty",
    "TaskDifficulty",
    "etran_lda",
    "etran_energy",
    "etran_combine",
    "pactran_dirichlet",
    "pactran_gamma",
    "pactran_gaussian",
    "ncti_components",
    "NCTIComponents",
    "ncti_seli",
    "ncti_ncc",
    "ncti_vc",
    "ncti_combine",
    "otce",
    "otce_components",
    "OTCEComponents",
    "lfc",
    "rsa",
    "dds",
    "METRICS",
    "POOL_SCORES",
    "NOT_PROVIDED",
    "PoolScore",
    "TASK_TYPES",
    "MetricSpec",
    "UnknownMetricError",
    "UnsupportedTaskError",
    "ConvergenceWarning",
    "SubsampleWarning",
    "capability_matrix",
    "check_capability",
    "get_metric",
    "score",
    "resampled_kernel",
    "single_thread_blas",
    "single_thread_compute",
    "default_metrics",
    "label_free_metrics",
    "similarity_metrics",
    "subset_metric",
    "spec_of",
    "far_domain_metric",
]
