"""What each metric of the registry means, for a reader of the ranked table (``GET /v1/metrics``, the
README): a sentence and the range its value lies in, taken from each metric's definition in this package
(``C`` = target classes, ``D`` = feature width); the direction is the spec's own. Raw values compare candidates on
one target only; the table's normalised scores and ranks are what compare across metrics.

Every metric of the registry must have an entry here (checked by ``tests/api/test_metrics_guide.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MetricGuide:
    """``meaning``: what the number measures; ``range``: where its values lie, and what the ends mean."""

    meaning: str
    range: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


GUIDE: dict[str, MetricGuide] = {name: MetricGuide(meaning=m, range=r) for name, (m, r) in {
    "logme": ("Log marginal evidence per sample of a Bayesian linear model from the features to the labels "
              "(evidence maximised over its two precisions): how well the features explain the target "
              "without overfitting.", "unbounded real; higher = better"),
    "leep": ("Log expected empirical prediction: how well the source head's predictions, mapped to target "
             "classes through their empirical co-occurrence, predict the target labels.",
             "(-inf, 0]; 0 = perfect prediction"),
    "nce": ("Negative conditional entropy of the target labels given the source head's hard predictions.",
            "[-log C, 0]; 0 = source predictions determine the target label"),
    "nleep": ("LEEP with a Gaussian mixture fitted on the features in place of the source head.",
              "(-inf, 0]; 0 = perfect prediction"),
    "hscore": ("H-score: trace of the inverse feature covariance times the covariance of the class-"
               "conditional means (a Fisher-style class separability of the features).",
               "[0, C-1]; higher = better separated classes"),
    "hscore_shrinkage": ("H-score with a shrinkage (Ledoit-Wolf) covariance estimate, stable when D is "
                         "large against the sample count.", "[0, C-1]; higher = better separated classes"),
    "gbc": ("Gaussian Bhattacharyya coefficient: minus the summed overlap of per-class Gaussians over all "
            "ordered class pairs, in a PCA of the features.", "[-C(C-1), 0]; 0 = fully separable classes"),
    "sfda": ("Self-challenging Fisher discriminant analysis: mean posterior of the true class after a "
             "regularised Fisher projection.", "(0, 1]; 1 = every sample confidently in its class"),
    "transrate": ("Coding-rate difference R(Z) - R(Z|Y): how much information the features carry about the "
                  "labels, as a rate-distortion quantity.", "[0, +inf), grows with D; higher = better"),
    "parc": ("Pairwise annotation representation comparison: Spearman correlation between the features' "
             "and the labels' sample-dissimilarity matrices, times 100.", "[-100, 100]; higher = better"),
    "knn_accuracy": ("Leave-one-out k-nearest-neighbour accuracy in the feature space (a trivial baseline).",
                     "[0, 1]; 1 = every sample's neighbours share its label"),
    "linear_probe_accuracy": ("Cross-validated logistic-regression accuracy on the features (a trivial "
                              "baseline).", "[0, 1]"),
    "otdd": ("Optimal-transport dataset distance between the source's stored sample and the target, with "
             "labels as distributions over features.", "[0, +inf); 0 = same labelled distribution; lower = closer"),
    "frechet_distance": ("Fréchet distance between Gaussians fitted to the source sample and the target "
                         "features (the FID formula).", "[0, +inf); 0 = same mean and covariance; lower = closer"),
    "mmd": ("Unbiased squared maximum mean discrepancy with an RBF kernel (median-heuristic bandwidth).",
            "about [0, 2], can dip slightly below 0 by sampling; lower = closer"),
    "proxy_a_distance": ("Proxy A-distance 2(1 - 2·error) of a domain classifier telling source from target "
                         "features.", "[0, 2] in practice; 0 = indistinguishable, 2 = perfectly separable; lower = closer"),
    "etran_lda": ("ETran's classification part: how well a linear discriminant analysis fitted on the features "
                  "predicts the target labels.", "unbounded real; higher = better"),
    "etran_energy": ("ETran's energy part: the features' mean free energy (log-sum-exp), how in-distribution the "
                     "target looks to the source model.", "unbounded real; higher = better"),
    "pactran_dirichlet": ("PACTran: a PAC-Bayesian bound on the target loss of a linear head on the source "
                          "head's outputs, Dirichlet prior.", "unbounded real (a loss bound); lower = better"),
    "pactran_gamma": ("PACTran: a PAC-Bayesian bound on the target loss of a linear head, Gamma prior.",
                      "unbounded real (a loss bound); lower = better"),
    "pactran_gaussian": ("PACTran: a PAC-Bayesian bound on the target loss of a linear head on the features, "
                         "Gaussian prior (optimised).", "unbounded real (a loss bound); lower = better"),
    "ncti_seli": ("NCTI's separability part: how linearly separable the target classes are in the features "
                  "(S_seli).", "unbounded real; higher = better"),
    "ncti_ncc": ("NCTI's nearest-class-centre part: how well the nearest class mean classifies the samples "
                 "(S_ncc).", "unbounded real; higher = better"),
    "ncti_vc": ("NCTI's variability-collapse part: within-class spread relative to the spread between class "
                "means (S_vc).", "[0, +inf); lower = better (more collapsed)"),
    "otce": ("OTCE: minus the conditional entropy of the target labels given the source labels, through an "
             "optimal-transport coupling of the source's stored sample and the target.",
             "(-inf, 0]; 0 = source labels determine target labels; higher = better"),
    "lfc": ("Label-feature correlation: cosine (Frobenius) between the centred feature Gram matrix and the "
            "label-agreement matrix.", "[-1, 1]; higher = better"),
    "rsa": ("Representation similarity analysis: Spearman correlation between the sample-dissimilarity "
            "matrices of the target features and of the source head's logits, times 100.", "[-100, 100]; higher = better"),
    "dds": ("Duality-diagram similarity between the target features and the source head's logits (kernel "
            "alignment of their sample-similarity matrices).", "about [0, 1]; higher = better"),
    "task_difficulty": ("How hard the target is in this feature space: k-NN error, Fisher separability, "
                        "intrinsic dimension (TwoNN) and class imbalance.",
                        "per field: knn_error in [0, 1] (lower = easier), fisher_separability >= 0 (higher = "
                        "easier), intrinsic_dimension >= 0, imbalance in [0, 1] (0 = balanced)"),
}.items()}
