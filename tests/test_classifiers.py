"""Classifiers: scikit-learn's own estimator checks, an independent reference for the linear
model, a temporal pattern only a model of time can use, and grouped inner cross-validation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import check_estimator

from lrsim.analysis.classifiers import (
    LinearClassifier,
    TemporalConvNet,
    fit_grouped,
    make_classifier,
    param_grid,
)
from lrsim.errors import ConfigError


@pytest.mark.parametrize("est", [LinearClassifier(), LinearClassifier(kind="svm"),
                                 TemporalConvNet(epochs=15, width=8)],
                         ids=["logistic", "svm", "temporal"])
def test_sklearn_estimator_checks(est):
    check_estimator(est)


def test_logistic_equals_sklearn_on_standardised_features():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6)) * [1, 10, 100, 0.1, 1, 5] + [0, 3, -50, 1, 0, 0]
    y = np.where(X[:, 0] + (X[:, 3] - 1) * 10 > 0.2, "a", "b")
    ours = LinearClassifier(C=0.5).fit(X, y)
    z = (X - X.mean(axis=0)) / X.std(axis=0)
    ref = LogisticRegression(C=0.5, max_iter=2000).fit(z, y)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(z), atol=1e-4)


def _temporal_task(n: int, seed: int):
    """Channel 1 rises or falls over time (the label); its mean and every single time point
    have the same distribution in both classes only after shuffling the time order, so the
    label lives in the temporal order."""
    rng = np.random.default_rng(seed)
    T, C = 12, 3
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, C, T))
    ramp = np.linspace(-1, 1, T)
    x[:, 1] += 2.0 * np.where(y[:, None] == 1, ramp, -ramp)
    depth = rng.uniform(size=(n, 1))
    return np.concatenate([x.reshape(n, C * T), depth], axis=1), np.array(["down", "up"])[y]


def test_temporal_net_learns_a_temporal_pattern():
    X, y = _temporal_task(300, 0)
    Xt, yt = _temporal_task(200, 1)
    net = TemporalConvNet(n_times=12, n_static=1, epochs=30, random_state=3).fit(X, y)
    assert net.n_channels_ == 3 and list(net.classes_) == ["down", "up"]
    assert np.mean(net.predict(Xt) == yt) >= 0.9
    again = TemporalConvNet(n_times=12, n_static=1, epochs=30, random_state=3).fit(X, y)
    np.testing.assert_array_equal(net.predict_proba(Xt), again.predict_proba(Xt))


def test_temporal_net_refuses_ragged_channels():
    X, y = _temporal_task(20, 0)
    with pytest.raises(ValueError, match="whole number of channels"):
        TemporalConvNet(n_times=5, n_static=1).fit(X, y)


def test_inner_cv_is_grouped_by_run():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 3)
    y = np.repeat(np.array(["a", "b", "c"])[np.arange(30) % 3], 3)
    X = rng.normal(size=(90, 5))
    est = make_classifier("forest", quick=True, random_state=0)
    assert isinstance(est, GridSearchCV)
    fit_grouped(est, X, y, groups)
    for train, test in est.cv.split(X, y, groups):
        assert not set(groups[train]) & set(groups[test])
    assert est.best_params_["max_features"] in param_grid("forest", quick=True)["max_features"]


def test_unknown_classifier_is_refused():
    with pytest.raises(ConfigError, match="allowed: linear, forest, temporal"):
        make_classifier("xgboost")
