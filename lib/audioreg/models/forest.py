"""The random forest on per-song statistics: :func:`aggregate` turns each track's frame
sequence into statistics, :class:`ForestRegressor` (via :func:`fit_rf_search`) tunes a
multi-output random forest on them. The GRU reads the frame sequences directly
(:mod:`audioreg.models.gru`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import GroupKFold, KFold, RandomizedSearchCV
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from audioreg.errors import NotEnoughData
from audioreg.models.moments import streaming_moments
from audioreg.params import estimator_settings

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_RF_PARAM_DISTRIBUTIONS",
    "ForestRegressor",
    "aggregate",
    "aggregate_names",
    "fit_rf_search",
    "standardized_mse_score",
]

#: Default search space of :func:`fit_rf_search`, sized for a few hundred songs.
DEFAULT_RF_PARAM_DISTRIBUTIONS: dict[str, list[Any]] = {
    "n_estimators": [100, 200, 400],
    "max_depth": [None, 8, 16, 32],
    "max_features": ["sqrt", 0.3, 0.6, 1.0],
    "bootstrap": [True, False],
}


# --------------------------------------------------------------------------------------------
# Song-level aggregation
# --------------------------------------------------------------------------------------------


def aggregate(sequences: Iterable[np.ndarray]) -> np.ndarray:
    """Per-song mean and standard deviation of every frame feature.

    Parameters
    ----------
    sequences : iterable of np.ndarray [shape=(t_i, d)]
        One frame sequence per track; lengths may differ. Memory-mapped arrays
        (``np.load(..., mmap_mode="r")``) are streamed in chunks, never loaded whole.

    Returns
    -------
    X : np.ndarray [shape=(n_tracks, 2 * d), dtype=float64]
        ``X[:, :d]`` holds the means and ``X[:, d:]`` the population standard deviations
        (``ddof=0``, as :func:`numpy.std`) of the ``d`` frame features. Column names come
        from :func:`aggregate_names`.

    Raises
    ------
    ValueError
        If a sequence is not 2-D, has no frames, or the feature counts differ.
    """
    rows = []
    n_dims = None
    for i, seq in enumerate(sequences):
        if seq.ndim != 2:
            raise ValueError(f"sequence {i}: expected [time, features], got shape {seq.shape}")
        if seq.shape[0] == 0:
            raise ValueError(f"sequence {i} has no frames")
        if n_dims is None:
            n_dims = seq.shape[1]
        elif seq.shape[1] != n_dims:
            raise ValueError(f"sequence {i} has {seq.shape[1]} features, expected {n_dims}")
        n, mean, m2 = streaming_moments(seq)
        rows.append(np.concatenate([mean, np.sqrt(m2 / n)]))
    if not rows:
        raise ValueError("no sequences to aggregate")
    return np.stack(rows)


def aggregate_names(frame_names: Sequence[tuple[str, int]]) -> list[tuple[str, str, int]]:
    """Column names of :func:`aggregate`'s output.

    Parameters
    ----------
    frame_names : sequence of (str, int), length d
        Names of the per-frame features, e.g. ``("mfcc", 3)``.

    Returns
    -------
    names : list of (str, str, int), length 2 * d
        ``(feature, "mean", index)`` for every frame feature, then ``(feature, "std", index)``,
        in the column order of :func:`aggregate`.
    """
    names = [tuple(name) for name in frame_names]
    for name in names:
        if len(name) != 2:
            raise ValueError(f"frame feature names are (feature, index) pairs, got {name!r}")
    return [(f, "mean", i) for f, i in names] + [(f, "std", i) for f, i in names]


# --------------------------------------------------------------------------------------------
# Random forest on aggregated features
# --------------------------------------------------------------------------------------------


def standardized_mse_score(estimator: TransformedTargetRegressor, X, y) -> float:
    """Scorer: minus the MSE between prediction and truth on *standardized* targets.

    Both are standardized with the target scaler the estimator fitted on its own training
    data (``estimator.transformer_``), so within a CV fold nothing is learned from the
    validation part, and every target weighs the same whatever its units (tempo in BPM would
    otherwise dominate the average). Greater is better, as scikit-learn scorers expect.

    Parameters
    ----------
    estimator : TransformedTargetRegressor
        Fitted, with a linear ``transformer_`` such as
        :class:`~sklearn.preprocessing.StandardScaler`.
    X : array-like [shape=(n, n_features)]
    y : array-like [shape=(n, n_targets)] or [shape=(n,)]
        Targets in raw units.

    Returns
    -------
    score : float
        ``-mean((z(y) - z(y_hat)) ** 2)`` over all samples and targets.
    """
    y = np.asarray(y, dtype=np.float64)
    y_hat = np.asarray(estimator.predict(X), dtype=np.float64)
    y = y.reshape(len(y), -1)
    y_hat = y_hat.reshape(len(y_hat), -1)
    transformer = estimator.transformer_
    return -float(np.mean(np.square(transformer.transform(y) - transformer.transform(y_hat))))


def _prefixed(param_distributions: Mapping[str, Any]) -> dict[str, Any]:
    """Route plain forest parameter names (``max_depth``) to ``regressor__max_depth``."""
    return {
        (key if key.startswith("regressor__") else f"regressor__{key}"): value
        for key, value in param_distributions.items()
    }


def fit_rf_search(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    n_iter: int,
    cv: int,
    random_state: int | None = 0,
    n_jobs: int | None = -1,
    param_distributions: Mapping[str, Any] | None = None,
    groups: np.ndarray | None = None,
) -> RandomizedSearchCV:
    """Tune a multi-output random forest by randomized search with cross-validation
    (what :meth:`ForestRegressor.fit` does; its defaults are the run's).

    The forest is fitted on standardized targets
    (``TransformedTargetRegressor(RandomForestRegressor, StandardScaler)``) and candidates are
    ranked by :func:`standardized_mse_score`, so all targets weigh the same in both the split
    criterion and model selection. ``predict`` of the result returns raw units.

    Parameters
    ----------
    X : np.ndarray [shape=(n_tracks, n_features)]
        Training features only (e.g. from :func:`aggregate`); the test split never enters here.
    Y : np.ndarray [shape=(n_tracks, n_targets)]
        Training targets in raw units, columns in :data:`audioreg.targets.TARGETS` order.
    n_iter : int
        Parameter settings sampled.
    cv : int
        Number of folds: :class:`~sklearn.model_selection.GroupKFold` when ``groups`` is given
        (a group, e.g. an artist, never sits on both sides of a fold), otherwise a shuffled
        :class:`~sklearn.model_selection.KFold`.
    random_state : int or None
        Seeds the parameter sampling, the fold shuffling and the forest.
    n_jobs : int or None
        Parallel jobs over (candidate, fold) fits; each forest itself runs single-threaded.
    param_distributions : mapping or None
        Search space for :class:`~sklearn.ensemble.RandomForestRegressor`, by plain parameter
        name (``"max_depth"``) or already routed (``"regressor__max_depth"``). Default:
        :data:`DEFAULT_RF_PARAM_DISTRIBUTIONS`.
    groups : np.ndarray [shape=(n_tracks,)] or None
        Group label of each track for grouped CV.

    Returns
    -------
    search : RandomizedSearchCV
        Fitted and refitted on all of ``X``. ``best_params_`` keys carry the
        ``regressor__`` prefix; ``search.predict(X)`` has shape (n_tracks, n_targets) in raw
        units; ``cv_results_["mean_test_score"]`` is minus the standardized MSE.
    """
    X = np.asarray(X)
    Y = np.asarray(Y, dtype=np.float64)
    if len(X) != len(Y):
        raise ValueError(f"X has {len(X)} rows but Y has {len(Y)}")
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != len(X):
            raise ValueError(f"groups has {len(groups)} entries but X has {len(X)} rows")
        splitter = GroupKFold(n_splits=cv)
    else:
        splitter = KFold(n_splits=cv, shuffle=True, random_state=random_state)
    estimator = TransformedTargetRegressor(
        regressor=RandomForestRegressor(random_state=random_state, n_jobs=1),
        transformer=StandardScaler(),
    )
    search = RandomizedSearchCV(
        estimator,
        param_distributions=_prefixed(
            DEFAULT_RF_PARAM_DISTRIBUTIONS if param_distributions is None else param_distributions
        ),
        n_iter=n_iter,
        scoring=standardized_mse_score,
        cv=splitter,
        refit=True,
        n_jobs=n_jobs,
        random_state=random_state,
    )
    search.fit(X, Y, groups=groups)
    logger.info(
        "RF search: best standardized MSE %.4f with %s",
        -search.best_score_,
        search.best_params_,
    )
    return search




class ForestRegressor(RegressorMixin, BaseEstimator):
    """The tuned random forest as one estimator: notebook 04's model, read like 05's GRU.

    ``fit`` runs :func:`fit_rf_search` (a randomized search over
    :data:`DEFAULT_RF_PARAM_DISTRIBUTIONS`, artist-grouped folds when ``groups`` is given,
    ranked by :func:`standardized_mse_score`) and keeps the refitted best forest.

    Parameters
    ----------
    n_iter : int
        Parameter settings sampled (the run parameter ``rf_n_iter``).
    cv : int
        Folds of the training part (``rf_cv``).
    n_jobs : int
        Parallel jobs of the search; -1 means all cores (``rf_n_jobs``).
    random_state : int
        Seeds the sampling, the folds and the forest (the run's ``seed``).
    param_distributions : mapping or None
        Search space; None: :data:`DEFAULT_RF_PARAM_DISTRIBUTIONS`.

    Attributes
    ----------
    fits_ : list of dict
        One per group of targets labelled on the same training rows (one group when every
        label is present): ``targets`` (column indices), ``n`` (tracks) and ``search`` (the
        fitted RandomizedSearchCV, whose best estimator predicts), most targets first.
    skipped_ : dict
        Column index -> why that target was not trained (too few labelled tracks).
    search_ : RandomizedSearchCV
        The first fit's search.
    best_params_ : dict
    best_score_ : float
        Minus the cross-validated standardized MSE of the first fit's best setting.
    n_features_in_ : int
    """

    #: Run parameters that set this estimator carry this prefix (``rf_n_iter`` -> ``n_iter``).
    PARAM_PREFIX = "rf_"
    #: Settings that change how a fit runs, not what it learns.
    RUN_SETTINGS = ("n_jobs",)
    #: What a saved (joblib) fit holds; part of its folder's key, so an older layout is refitted.
    #: 2: one forest per group of targets labelled on the same rows (``fits_``, ``skipped_``).
    SAVED_FORMAT = 2

    def __init__(self, *, n_iter: int = 12, cv: int = 3, n_jobs: int = -1, random_state: int = 0,
                 param_distributions: Mapping[str, Any] | None = None) -> None:
        self.n_iter = n_iter
        self.cv = cv
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.param_distributions = param_distributions

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **overrides) -> "ForestRegressor":
        """The estimator a run's merged parameters describe (``rf_*`` keys and ``seed``)."""
        return cls(**{**estimator_settings(cls, params), **overrides})

    def fit(self, X, y, *, groups=None) -> "ForestRegressor":
        """Search and refit on ``X`` ``[n, n_features]`` and raw targets ``y`` ``[n, k]``.

        Partial labels are data: a missing label is NaN. Targets labelled on the same rows
        share one multi-output forest, fitted on those rows (with every label present, that
        is one forest on all rows, as before). A target whose rows are too few for the
        search (fewer than ``cv`` labelled tracks, or fewer than ``cv`` split groups with
        ``groups``) is not trained: :meth:`predict` gives NaN for it and ``skipped_`` says why.
        """
        X = np.asarray(X)
        Y = np.asarray(y, dtype=np.float64)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        if np.any(np.isinf(Y)):
            raise ValueError("y contains inf; a missing label is NaN")
        labelled = np.isfinite(Y)
        by_rows: dict[bytes, list[int]] = {}
        for j in range(Y.shape[1]):
            by_rows.setdefault(labelled[:, j].tobytes(), []).append(j)
        self.fits_, self.skipped_ = [], {}
        for columns in sorted(by_rows.values(), key=lambda c: (-len(c), c[0])):
            rows = labelled[:, columns[0]]
            n_groups = len(set(np.asarray(groups)[rows].tolist())) if groups is not None else int(rows.sum())
            if rows.sum() < int(self.cv) or n_groups < int(self.cv):
                why = (f"{int(rows.sum())} labelled training tracks"
                       + (f" in {n_groups} split groups" if groups is not None else "")
                       + f"; the search's {int(self.cv)} folds need at least {int(self.cv)}")
                self.skipped_.update({j: why for j in columns})
                continue
            whole = bool(rows.all()) and len(columns) == Y.shape[1]  # every label present: the arrays as given
            # (the forest's fit depends on the memory layout of y: a copy in another order is another forest)
            part = Y if whole else np.ascontiguousarray(Y[rows][:, columns])
            search = fit_rf_search(X if whole else X[rows], part.ravel() if part.shape[1] == 1 else part,
                                   n_iter=int(self.n_iter), cv=int(self.cv), random_state=self.random_state,
                                   n_jobs=self.n_jobs, param_distributions=self.param_distributions,
                                   groups=groups if groups is None or whole else np.asarray(groups)[rows])
            self.fits_.append({"targets": columns, "n": int(rows.sum()), "search": search})
        if not self.fits_:
            raise NotEnoughData("no target has enough labelled training tracks for the forest: "
                             + "; ".join(f"target {j}: {why}" for j, why in sorted(self.skipped_.items())))
        self.search_ = self.fits_[0]["search"]  # the forest of the most targets
        self.best_params_, self.best_score_ = self.search_.best_params_, self.search_.best_score_
        self.n_targets_ = Y.shape[1]
        self.n_features_in_ = int(X.shape[1])
        return self

    def predict(self, X) -> np.ndarray:
        """``[n, k]`` predictions in raw target units (NaN for a target in ``skipped_``)."""
        check_is_fitted(self, "fits_")
        X = np.asarray(X)
        out = np.full((len(X), self.n_targets_), np.nan)
        for fit in self.fits_:
            out[:, fit["targets"]] = fit["search"].predict(X).reshape(len(X), -1)
        return out

    def _fit_of(self, target: int) -> tuple[dict, int]:
        for fit in self.fits_:
            if target in fit["targets"]:
                return fit, fit["targets"].index(target)
        raise ValueError(f"target {target} was not trained: {self.skipped_.get(target, 'unknown target')}")

    def tree_predictions(self, X, *, target: int) -> np.ndarray:
        """``[n_trees, n]``: every tree's predictions of column ``target`` in raw units (their
        mean is :meth:`predict`'s column)."""
        check_is_fitted(self, "fits_")
        fit, column = self._fit_of(target)
        best = fit["search"].best_estimator_
        X = np.asarray(X)
        return np.stack([best.transformer_.inverse_transform(tree.predict(X).reshape(len(X), -1))[:, column]
                         for tree in best.regressor_.estimators_])

    def class_probability(self, X, *, target: int, classes) -> tuple[np.ndarray, np.ndarray]:
        """For a class target regressed as a number (column ``target``): the ensemble's class
        (``classes(prediction)``, e.g. rounding) and the share of trees whose own prediction
        gives the same class, ``([n], [n])``."""
        trees = self.tree_predictions(X, target=target)
        ensemble = classes(trees.mean(axis=0))
        return ensemble, (classes(trees) == ensemble[None]).mean(axis=0)
