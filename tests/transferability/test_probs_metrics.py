"""LEEP, NCE, NLEEP and PARC against loop implementations and closed forms."""

import math
import warnings

import numpy as np
import pytest
import scipy.stats
from conftest import make_classification, make_probs
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from app.transferability import SubsampleWarning, leep, nce, nleep, parc


def slow_leep(theta, y):
    n, cs = theta.shape
    classes = sorted(set(y))
    joint = {(c, z): 0.0 for c in classes for z in range(cs)}
    for i in range(n):
        for z in range(cs):
            joint[(y[i], z)] += theta[i, z] / n
    pz = {z: sum(joint[(c, z)] for c in classes) for z in range(cs)}
    total = 0.0
    for i in range(n):
        total += math.log(sum(joint[(y[i], z)] / pz[z] * theta[i, z] for z in range(cs)))
    return total / n


def slow_nce(theta, y):
    z = [int(np.argmax(row)) for row in theta]
    n = len(y)
    joint, pz = {}, {}
    for zi, yi in zip(z, y, strict=True):
        joint[(yi, zi)] = joint.get((yi, zi), 0) + 1 / n
        pz[zi] = pz.get(zi, 0) + 1 / n
    return sum(p * math.log(p / pz[zz]) for (_, zz), p in joint.items())


def test_leep_matches_loops():
    p, y = make_probs(n=60, cs=4, c=3)
    assert leep(p, y) == pytest.approx(slow_leep(p, y), rel=1e-12)


def test_leep_closed_form_perfect_source():
    # θ one-hot equal to the target label: P(y|z) = 1[y=z] → LEEP = 0.
    y = np.array([0, 1, 2, 0, 1, 2])
    assert leep(np.eye(3)[y], y) == pytest.approx(0.0, abs=1e-15)


def test_leep_uninformative_source_is_log_prior():
    y = np.array([0, 0, 0, 1])
    p = np.full((4, 2), 0.5)
    assert leep(p, y) == pytest.approx(np.mean(np.log([0.75, 0.75, 0.75, 0.25])), rel=1e-12)


def test_leep_zero_eep_is_finite():
    # Hard θ that never co-occurs with some label: EEP = 0 → log(tiny) instead of -inf.
    theta = np.eye(2)[[0, 1, 1]]
    assert np.isfinite(leep(theta, [0, 1, 1]))
    theta = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # source class 2 empty
    assert leep(theta, [0, 1]) == pytest.approx(0.0, abs=1e-15)


def test_leep_rejects_logits():
    with pytest.raises(ValueError, match="negative value"):
        leep(np.array([[-1.0, 2.0], [0.5, 0.5]]), [0, 1])
    with pytest.raises(ValueError, match="sums to 3"):
        leep(np.array([[1.0, 2.0], [0.5, 0.5]]), [0, 1])


def test_nce_matches_loops_and_hard_labels():
    p, y = make_probs(n=60, cs=4, c=3, seed=3)
    assert nce(p, y) == pytest.approx(slow_nce(p, y), rel=1e-12)
    assert nce(np.argmax(p, axis=1), y) == pytest.approx(slow_nce(p, y), rel=1e-12)
    assert nce(np.array(["s", "t", "u", "v"])[np.argmax(p, axis=1)], y) == pytest.approx(slow_nce(p, y), rel=1e-12)


def test_nce_closed_forms():
    y = np.array([0, 1, 0, 1])
    assert nce(np.eye(2)[y], y) == pytest.approx(0.0, abs=1e-15)  # Z determines Y
    assert nce(np.zeros(4, dtype=int), y) == pytest.approx(-math.log(2), rel=1e-12)  # Z carries nothing


def test_nce_argmax_ties_go_to_lowest_index():
    p = np.array([[0.5, 0.5], [0.5, 0.5], [0.2, 0.8]])
    assert nce(p, [0, 1, 1]) == nce(np.array([0, 0, 1]), [0, 1, 1])


def slow_nleep(f, y, random_state=0, k=5):
    x = PCA(n_components=0.8, svd_solver="full").fit_transform(f)
    classes = np.unique(y)
    gmm = GaussianMixture(n_components=k * len(classes), covariance_type="full", reg_covar=1e-6,
                          random_state=random_state).fit(x)
    return slow_leep(gmm.predict_proba(x), list(y))


def test_nleep_matches_pipeline_and_is_deterministic():
    f, y = make_classification(n=60, d=4, c=2, seed=30)
    a = nleep(f, y, components_per_class=2)
    assert a == pytest.approx(slow_nleep(f, y, k=2), rel=1e-10)
    assert nleep(f, y, components_per_class=2) == a
    assert a <= 0


def test_nleep_retries_with_more_regularisation(monkeypatch):
    calls = []
    original = GaussianMixture.fit

    def flaky(self, x, y=None):
        calls.append(self.reg_covar)
        if len(calls) == 1:
            raise ValueError("Fitting the mixture model failed because some components have ill-defined empirical covariance")
        return original(self, x, y)

    monkeypatch.setattr(GaussianMixture, "fit", flaky)
    f, y = make_classification(n=40, d=3, c=2, seed=31)
    with pytest.warns(RuntimeWarning, match="retrying"):
        value = nleep(f, y, components_per_class=1)
    assert np.isfinite(value)
    assert calls == pytest.approx([1e-6, 1e-5])


def test_nleep_subsamples_deterministically():
    f, y = make_classification(n=80, d=3, c=2, seed=32)
    with pytest.warns(SubsampleWarning):
        a = nleep(f, y, components_per_class=1, max_samples=40)
    with pytest.warns(SubsampleWarning):
        b = nleep(f, y, components_per_class=1, max_samples=40)
    assert a == b


def test_nleep_degenerate_d_gt_n_is_finite():
    f, y = make_classification(n=24, d=60, c=2, seed=33)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isfinite(nleep(f, y, components_per_class=2))


def slow_parc(f, y_mat, n_dims):
    if n_dims is not None:
        f = PCA(n_components=n_dims, svd_solver="randomized", random_state=1919, iterated_power=1).fit_transform(f)
    f = StandardScaler().fit_transform(f)
    # np.corrcoef returns 0 or 2.2e-16 for identical one-hot rows, splitting a tie group of Spearman's
    # ranks; the definition has exact ties, so both sides are rounded (the library does the same).
    r1 = np.round(1 - np.corrcoef(f), 12)
    r2 = np.round(1 - np.corrcoef(y_mat), 12)
    iu = np.triu_indices(len(f), 1)
    return scipy.stats.spearmanr(r1[iu], r2[iu])[0] * 100


@pytest.mark.parametrize("n_dims", [None, 3])
def test_parc_matches_reference_pipeline(n_dims):
    f, y = make_classification(n=50, d=6, c=3, seed=34)
    assert parc(f, y, n_dims=n_dims) == pytest.approx(slow_parc(f, np.eye(3)[y], n_dims), rel=1e-9)


def test_parc_regression_and_multilabel_targets():
    rng = np.random.default_rng(35)
    f = rng.normal(size=(40, 5))
    t = f[:, :3] @ rng.normal(size=(3, 3))
    assert parc(f, t, n_dims=None) == pytest.approx(slow_parc(f, t, None), rel=1e-9)
    ml = (rng.random((40, 4)) < 0.5).astype(float)
    ml[ml.sum(axis=1) == 0, 0] = 1
    ml[ml.sum(axis=1) == 4, 0] = 0
    assert parc(f, ml, n_dims=None) == pytest.approx(slow_parc(f, ml, None), rel=1e-9)
    with pytest.raises(ValueError, match="at least 2 columns"):
        parc(f, t[:, :1], n_dims=None)


def test_parc_subsample_warns_and_is_deterministic():
    f, y = make_classification(n=60, d=4, c=3, seed=36)
    with pytest.warns(SubsampleWarning, match="stratified"):
        a = parc(f, y, max_samples=30)
    with pytest.warns(SubsampleWarning):
        assert parc(f, y, max_samples=30) == a


def test_parc_constant_row_is_finite():
    f, y = make_classification(n=30, d=4, c=3, seed=37)
    f = f.copy()
    f[0] = 0.0
    assert np.isfinite(parc(f, y, n_dims=None))
