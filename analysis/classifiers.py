"""Rule classifiers on trajectory features, following scikit-learn's estimator contract.

The three families Nayebi et al. 2020 (NeurIPS, "Identifying learning rules from neural network
observables") compared, each tuned by inner cross-validation grouped by run:

- `linear`: standardised features -> multinomial logistic regression (or a linear SVM),
  p(y = k | x) = softmax_k(w_k . z + b_k), z = (x - mean) / std; C by inner CV.
- `forest`: a random forest (Breiman 2001); max_features and min_samples_leaf by inner CV.
- `temporal`: a small 1D convolutional net over time (`TemporalConvNet`) in torch: the C*T
  trajectory features are reshaped to (C channels, T time points), two conv layers with ReLU,
  mean- and max-pooling over time, concatenated with the static features (relative depth), then
  a linear softmax layer; trained with Adam on the cross-entropy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from lrsim.analysis.splits import groups_per_label
from lrsim.errors import ConfigError

CLASSIFIERS = ("linear", "forest", "temporal")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class LinearClassifier(ClassifierMixin, BaseEstimator):
    """Standardised linear classifier: z = (x - mean) / std, then multinomial logistic
    regression (`kind="logistic"`, p = softmax(W z + b)) or a linear SVM (`kind="svm"`,
    one-vs-rest squared hinge loss; `predict_proba` = softmax of the decision
    function, a monotone score, not a calibrated probability)."""

    def __init__(self, kind: str = "logistic", C: float = 1.0, max_iter: int = 2000):
        self.kind = kind
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any) -> LinearClassifier:
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        if self.kind == "logistic":
            model = LogisticRegression(C=self.C, max_iter=self.max_iter)
        elif self.kind == "svm":
            model = LinearSVC(C=self.C, max_iter=self.max_iter)
        else:
            raise ConfigError(f"LinearClassifier kind must be 'logistic' or 'svm' "
                              f"(got {self.kind!r})")
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError("LinearClassifier needs at least 2 classes; got 1 class")
        self.pipeline_ = make_pipeline(StandardScaler(), model).fit(X, y)
        self.n_iter_ = int(np.max(model.n_iter_))
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.pipeline_.decision_function(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        if self.kind == "logistic":
            return self.pipeline_.predict_proba(X)
        d = self.pipeline_.decision_function(X)
        if d.ndim == 1:
            d = np.stack([-d, d], axis=1)
        return _softmax(d)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.pipeline_.predict(X)


class _ConvNet(torch.nn.Module):
    def __init__(self, n_channels: int, n_static: int, width: int, kernel: int, n_out: int,
                 dropout: float):
        super().__init__()
        pad = kernel // 2
        self.conv = torch.nn.Sequential(
            torch.nn.Conv1d(n_channels, width, kernel, padding=pad), torch.nn.ReLU(),
            torch.nn.Conv1d(width, width, kernel, padding=pad), torch.nn.ReLU())
        self.drop = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(2 * width + n_static, n_out)

    def forward(self, seq: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        h = self.conv(seq)  # (batch, width, time)
        pooled = torch.cat([h.mean(dim=-1), h.amax(dim=-1), static], dim=-1)
        return self.head(self.drop(pooled))


class TemporalConvNet(ClassifierMixin, BaseEstimator):
    """A small temporal 1D-conv classifier in torch with the scikit-learn contract.

    X is flat: the first C*T columns are C channels of T time points each (channel-major, as
    `TrajectoryFeatures` writes them), the last `n_static` columns are static inputs (depth).
    `n_times=None` reads all non-static columns as one channel. Inputs are standardised per
    column with the training mean and std. Training: Adam (Kingma & Ba 2015), `epochs` passes
    of minibatches of `batch_size`, L2 `weight_decay`, seeded by `random_state`.
    """

    def __init__(self, n_times: int | None = None, n_static: int = 0, width: int = 32,
                 kernel_size: int = 3, epochs: int = 60, batch_size: int = 64,
                 learning_rate: float = 3e-3, weight_decay: float = 1e-4, dropout: float = 0.1,
                 random_state: int = 0):
        self.n_times = n_times
        self.n_static = n_static
        self.width = width
        self.kernel_size = kernel_size
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.random_state = random_state

    def _split(self, X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        z = (X - self.mean_) / self.scale_
        n_seq = X.shape[1] - self.n_static
        seq = z[:, :n_seq].reshape(len(X), self.n_channels_, self.n_times_)
        static = z[:, n_seq:]
        return (torch.as_tensor(seq, dtype=torch.float32),
                torch.as_tensor(static, dtype=torch.float32))

    def fit(self, X: Any, y: Any) -> TemporalConvNet:
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        n_seq = X.shape[1] - self.n_static
        if n_seq < 1 or self.n_static < 0:
            raise ValueError(f"n_static={self.n_static} leaves no sequence columns in "
                             f"{X.shape[1]} features")
        self.n_times_ = n_seq if self.n_times is None else int(self.n_times)
        if self.n_times_ < 1 or n_seq % self.n_times_:
            raise ValueError(f"{n_seq} sequence columns are not a whole number of channels "
                             f"of n_times={self.n_times}")
        self.n_channels_ = n_seq // self.n_times_
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        target = torch.as_tensor(encoder.transform(y), dtype=torch.long)
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        seq, static = self._split(X)
        gen = torch.Generator().manual_seed(int(self.random_state))
        torch_state = torch.random.get_rng_state()
        torch.manual_seed(int(self.random_state))
        net = _ConvNet(self.n_channels_, self.n_static, self.width, self.kernel_size,
                       len(self.classes_), self.dropout)
        torch.random.set_rng_state(torch_state)
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate,
                               weight_decay=self.weight_decay)
        n = len(X)
        batch = max(1, min(self.batch_size, n))
        net.train()
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=gen)
            for i in range(0, n, batch):
                idx = order[i:i + batch]
                logits = _forward_with_dropout(net, seq[idx], static[idx], gen)
                loss = torch.nn.functional.cross_entropy(logits, target[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        net.eval()
        self.module_ = net
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        seq, static = self._split(X)
        with torch.no_grad():
            logits = self.module_(seq, static)
        return torch.softmax(logits, dim=-1).numpy().astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _forward_with_dropout(net: _ConvNet, seq: torch.Tensor, static: torch.Tensor,
                          gen: torch.Generator) -> torch.Tensor:
    """Training forward pass with dropout drawn from `gen` (so fits do not touch the global
    torch RNG and repeat exactly for a given `random_state`)."""
    h = net.conv(seq)
    pooled = torch.cat([h.mean(dim=-1), h.amax(dim=-1), static], dim=-1)
    if net.drop.p > 0:
        keep = (torch.rand(pooled.shape, generator=gen) >= net.drop.p).to(pooled.dtype)
        pooled = pooled * keep / (1 - net.drop.p)
    return net.head(pooled)


def param_grid(name: str, quick: bool = False) -> dict[str, list[Any]]:
    """The hyperparameter grid searched by inner cross-validation for classifier `name`."""
    if name == "linear":
        return {"C": [0.01, 1.0]} if quick else {"C": [0.001, 0.01, 0.1, 1.0, 10.0]}
    if name == "forest":
        return ({"max_features": ["sqrt", 0.1]} if quick else
                {"max_features": ["sqrt", 0.1, 0.3], "min_samples_leaf": [1, 3]})
    if name == "temporal":
        return ({"weight_decay": [1e-3]} if quick else
                {"weight_decay": [1e-4, 1e-2], "width": [16, 32]})
    raise ConfigError(f"unknown classifier '{name}'; allowed: {', '.join(CLASSIFIERS)}")


def base_estimator(name: str, *, n_times: int | None = None, n_static: int = 0,
                   quick: bool = False, random_state: int = 0, n_jobs: int = 1,
                   linear_kind: str = "logistic") -> BaseEstimator:
    """An untuned classifier `name` (one of `CLASSIFIERS`) with the study's defaults."""
    if name == "linear":
        return LinearClassifier(kind=linear_kind)
    if name == "forest":
        return RandomForestClassifier(n_estimators=100 if quick else 300,
                                      random_state=random_state, n_jobs=n_jobs)
    if name == "temporal":
        return TemporalConvNet(n_times=n_times, n_static=n_static, epochs=40 if quick else 80,
                               random_state=random_state)
    raise ConfigError(f"unknown classifier '{name}'; allowed: {', '.join(CLASSIFIERS)}")


def make_classifier(name: str, *, n_times: int | None = None, n_static: int = 0,
                    quick: bool = False, random_state: int = 0, n_jobs: int = 1,
                    inner_splits: int = 3, tune: bool = True) -> BaseEstimator:
    """Classifier `name`, its hyperparameters chosen by inner cross-validation: a
    `GridSearchCV` over `param_grid(name)` with `StratifiedGroupKFold(inner_splits)`, so pass
    `groups=` (run ids) to `fit` and the inner folds are grouped by run too. A grid of one point
    (or `tune=False`) gives the plain estimator."""
    est = base_estimator(name, n_times=n_times, n_static=n_static, quick=quick,
                         random_state=random_state, n_jobs=n_jobs)
    grid = param_grid(name, quick)
    if not tune or all(len(v) == 1 for v in grid.values()):
        return est.set_params(**{k: v[0] for k, v in grid.items()})
    cv = StratifiedGroupKFold(n_splits=inner_splits, shuffle=True, random_state=random_state)
    return GridSearchCV(est, grid, cv=cv, scoring="accuracy", refit=True, n_jobs=1)


def fit_grouped(est: BaseEstimator, X: np.ndarray, y: np.ndarray,
                groups: np.ndarray) -> BaseEstimator:
    """Fit `est`, passing `groups` to a `GridSearchCV` (inner CV grouped by run, or by the
    coarser groups the outer splits keep together, which may hold several classes). Inner folds
    shrink to the number of groups holding the rarest class when there are few."""
    if isinstance(est, GridSearchCV):
        k = int(min(est.cv.n_splits,
                    min(len(g) for g in groups_per_label(groups, y).values())))
        if k < 2:
            return est.estimator.fit(X, y)
        est.cv = StratifiedGroupKFold(n_splits=k, shuffle=True,
                                      random_state=est.cv.random_state)
        return est.fit(X, y, groups=groups)
    return est.fit(X, y)


def best_params(est: BaseEstimator) -> dict[str, Any]:
    """The hyperparameters inner CV chose (empty for an untuned estimator)."""
    return dict(getattr(est, "best_params_", {}))
