"""Fixed reference inputs and the golden outputs of the unmodified public reference implementations.

The case builders reproduce, bit for bit, the project's research script
``research/reference-values/make_cases.py`` (pure numpy, PCG64, fixed draw order); the golden values are
the ``scores`` of its ``<case>.v2.json`` files (reference repositories at the commits listed in
``research/metrics-v2.md`` §0, run with the conventions stated there: float32 inputs up-cast to float64,
source probabilities = softmax of the float64 logits, ``np.random.seed(0)`` before each PACTran call,
NCTI seeded 1, OTCE under POT 0.7.0 with float32 torch features, pool-normalised scores over the pool
``features``, ``tanh(features)``, ``relu(features)``). Keys are the JSON's.
"""

import numpy as np


def _balanced_labels(rng, n, c, p=None, min_per_class=2):
    forced = np.repeat(np.arange(c), min_per_class)
    free = rng.choice(c, size=n - forced.size, p=p)
    return rng.permutation(np.concatenate([forced, free])).astype(np.int64)


def _classification(seed, n, d, c, cs, sep, p=None, min_per_class=2, n_src=0, src_shift=0.5):
    rng = np.random.default_rng(seed)
    y = _balanced_labels(rng, n, c, p=p, min_per_class=min_per_class)
    means = rng.normal(0.0, sep, size=(c, d))
    x = means[y] + rng.normal(0.0, 1.0, size=(y.size, d))
    w = rng.normal(0.0, 1.0, size=(d, cs))
    logits = 2.0 * (x @ w) / np.sqrt(d) + rng.normal(0.0, 0.5, size=(n, cs))
    out = {"features": x.astype(np.float32), "labels": y, "source_logits": logits.astype(np.float32)}
    if n_src:
        ys = _balanced_labels(rng, n_src, c)
        shift = src_shift * rng.normal(0.0, 1.0, size=(d,))
        xs = means[ys] + shift + rng.normal(0.0, 1.0, size=(n_src, d))
        out.update(src_features=xs.astype(np.float32), src_labels=ys)
    return out


def _regression(seed=6, n=500, d=64, k=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, size=(n, d))
    b = rng.normal(0.0, 1.0, size=(d, k)) / np.sqrt(d)
    t = x @ b + 0.5 * rng.normal(0.0, 1.0, size=(n, k))
    return {"features": x.astype(np.float32), "targets": t.astype(np.float32)}


def _imbalanced_probs(c=8, ratio=0.5):
    p = ratio ** np.arange(c)
    return p / p.sum()


def make_case(name: str) -> dict:
    """The arrays of case ``name`` (float32 features as stored; up-cast them to float64 to compare)."""
    if name == "small":
        return _classification(seed=1, n=200, d=32, c=5, cs=10, sep=0.3, n_src=200)
    if name == "medium":
        return _classification(seed=2, n=2000, d=256, c=10, cs=50, sep=0.1, n_src=500)
    if name == "imbalanced":
        return _classification(seed=3, n=1000, d=64, c=8, cs=20, sep=0.25, p=_imbalanced_probs(),
                               min_per_class=3, n_src=300)
    if name == "regression":
        return _regression()
    raise KeyError(name)


#: microsoft/otdd 72f1b22d6c68 ``DatasetDistance(inner_ot_method="exact", entreg=0.1, p=2,
#: debiased_loss=True)`` on the cases' (src_features, src_labels) vs (features, labels); metrics-v2.md §2.1.
MICROSOFT_OTDD = {"small": 51.589, "imbalanced": 113.019, "medium": 493.227}

GOLDEN = {
    "small": {
        "etran.energy_on_features": 3.445944714800283,
        "etran.lda_score": 0.591329125450787,
        "etran.energy_on_logits": 1.9203853539126496,
        "etran.lda_score[pool3:tanh]": 0.39788832820027153,
        "etran.energy_on_features[pool3:tanh]": 3.3273272473490145,
        "etran.lda_score[pool3:relu]": 0.35122921588622924,
        "etran.energy_on_features[pool3:relu]": 3.734975100184353,
        "etran.combined[pool3:features]": 0.8936470350424665,
        "etran.combined[pool3:tanh]": 0.1651822590806606,
        "etran.combined[pool3:relu]": 0.15,
        "pactran_gauss.etran_repo[lda=1]": 10.679427490024825,
        "pactran_dirichlet.google": 0.35584229464516187,
        "pactran_gamma.google": 1.343081311094384,
        "pactran_gauss.google[lda=10,s2=1000]": 13.195331458869767,
        "pactran_gauss.google[lda=10,s2=100]": 1.7728672735295927,
        "pactran_gauss_opt.google[lda=10]": 0.5037045862695733,
        "pactran_gauss.google[lda=1,s2=100]": 10.684975669617945,
        "pactran_gauss.google[lda=1,s2=10]": 1.6127872834564578,
        "pactran_gauss_opt.google[lda=1]": 0.6047663516607371,
        "pactran_gauss.google[lda=0.1,s2=10]": 8.569725104043444,
        "pactran_gauss.google[lda=0.1,s2=1]": 1.650874483740963,
        "pactran_gauss_opt.google[lda=0.1]": 0.8821133037073541,
        "otce.wasserstein.tanyang": 48.415579805374136,
        "otce.ce.tanyang": 1.4972371020398112,
        "lfc.spectral_norm_pub": 0.9635531085428486,
        "lfc.cosine_pub[dot]": 0.1832253959462512,
        "rsa.parc_repo[vs_source_logits]": 41.60776576953028,
        "dds.parc_repo[vs_source_logits]": 47.52195709282007,
    },
    "imbalanced": {
        "etran.energy_on_features": 4.255502733806889,
        "etran.lda_score": 0.8157005095801168,
        "etran.energy_on_logits": 2.9450022194075407,
        "etran.lda_score[pool3:tanh]": 0.6392313323847861,
        "etran.energy_on_features[pool3:tanh]": 4.143964500363242,
        "etran.lda_score[pool3:relu]": 0.5716290786980555,
        "etran.energy_on_features[pool3:relu]": 4.5004253864987,
        "etran.combined[pool3:features]": 0.8969356826156496,
        "etran.combined[pool3:tanh]": 0.23543073200356443,
        "etran.combined[pool3:relu]": 0.15,
        "pactran_gauss.etran_repo[lda=1]": 4.22538109604972,
        "pactran_dirichlet.google": 0.1637419271302051,
        "pactran_gamma.google": 1.1587108908859012,
        "pactran_gauss.google[lda=10,s2=1000]": 4.983156153079751,
        "pactran_gauss.google[lda=10,s2=100]": 0.6776750939445063,
        "pactran_gauss_opt.google[lda=10]": 0.19928830959614585,
        "pactran_gauss.google[lda=1,s2=100]": 4.232050535934327,
        "pactran_gauss.google[lda=1,s2=10]": 0.6536616694015221,
        "pactran_gauss_opt.google[lda=1]": 0.25606290645343266,
        "pactran_gauss.google[lda=0.1,s2=10]": 3.6513597493564975,
        "pactran_gauss.google[lda=0.1,s2=1]": 0.737336610709885,
        "pactran_gauss_opt.google[lda=0.1]": 0.4135562619713725,
        "ncti.seli": 271.37790572053575,
        "ncti.ncc": 0.8362971394923601,
        "ncti.vc_log_nuc": 4.5935281550455755,
        "ncti.seli[pool3:tanh]": 269.167123935395,
        "ncti.ncc[pool3:tanh]": 0.817481543022637,
        "ncti.vc_log_nuc[pool3:tanh]": 4.608385286803613,
        "ncti.seli[pool3:relu]": 262.08849990663407,
        "ncti.ncc[pool3:relu]": 0.7676707662474523,
        "ncti.vc_log_nuc[pool3:relu]": 4.65213848925892,
        "ncti.combined[pool3:features]": 2.0,
        "ncti.combined[pool3:tanh]": 1.234346026420142,
        "ncti.combined[pool3:relu]": -1.0,
        "otce.wasserstein.tanyang": 107.41812826029457,
        "otce.ce.tanyang": 1.252423255028784,
        "lfc.spectral_norm_pub": 0.8275806688269965,
        "lfc.cosine_pub[dot]": 0.2691337636774066,
        "rsa.parc_repo[vs_source_logits]": 45.54186935160394,
        "dds.parc_repo[vs_source_logits]": 48.15821474325783,
    },
    "regression": {
        "etran.energy_on_features": 4.211956065542756,
        "rsa.parc_repo[vs_targets]": 9.496924801285132,
        "dds.parc_repo[vs_targets]": 14.091545568099365,
    },
}


def make_d_gt_n() -> dict:
    """The ``d_gt_n`` case of make_cases.py (D = 512 > N = 100), used for the LogME disagreement."""
    return _classification(seed=4, n=100, d=512, c=4, cs=10, sep=0.1)
