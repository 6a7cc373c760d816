"""The learnability study behind ``analysis/learnability.ipynb``: how each target's score grows
with the training part (learning curves), which feature group each target needs (ablation), and
how far each model sits below the noise ceiling.

Every score is measured on the SAME test part, in each target's own terms (R^2 for the
continuous targets, with the denominator fixed by the FULL training part's variance; MIREX or
tonic accuracy for key; accuracy for time_signature), beside the mean baseline, with a 95 %
interval from a bootstrap over the test part's split groups (artists,
:func:`audioreg.judge.uncertainty.group_weights`). Differences are paired: the same bootstrap
weights applied to per-track differences on the same test rows. These intervals cover the
sampling of the test part only, not the randomness of the forest or of the training subset.

Nothing here writes files; every function returns DataFrames (or dataclasses of them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from sklearn.base import clone

from ._pandas import pd
from .data.split import leakage_groups
from .errors import NotEnoughData
from .features import frames
from .judge import metrics, uncertainty
from .models.forest import ForestRegressor
from .models.inputs import TRACK_FEATURES, expert_columns
from .targets import TARGETS, clip_to_valid

__all__ = [
    "ABLATION_VERDICTS",
    "Ablation",
    "LearningCurve",
    "StudyData",
    "Subset",
    "ablation",
    "ablation_text",
    "ceiling_dict",
    "ceiling_from_run",
    "feature_groups",
    "learning_curve",
    "nested_group_subsets",
    "parse_list",
    "read_run_metrics",
    "run_settings",
    "small_forest",
    "study_ceiling",
    "study_data",
    "trend_text",
    "verdict_matrix",
]

#: The name of the forest trained on every input column, in the ablation's tables.
ALL_FEATURES = "all features"
#: The group name of the expert estimates (beat-tracker log2 tempo, 24 key-profile correlations).
EXPERTS_GROUP = "experts"
#: How a paired difference's verdict (:func:`audioreg.judge.uncertainty.verdict`) reads in the ablation:
#: ``without`` compares all features with the forest without the group (positive: the group helps);
#: ``alone`` compares the forest on the group alone with the mean baseline.
ABLATION_VERDICTS: dict[str, dict[str, str]] = {
    "without": {"better": "needed", "worse": "hurts", "no difference shown": "not shown"},
    "alone": {"better": "learns alone", "worse": "worse than baseline", "no difference shown": "not shown"},
}
#: Readable names of the score each target is judged on.
METRIC_LABELS = {"r2": "R²", "accuracy": "accuracy", "mirex": "MIREX", "tonic": "tonic accuracy"}


# --------------------------------------------------------------------------------------------
# settings and data


def run_settings(namespace: Mapping[str, Any]) -> dict:
    """The merged parameters of the run a study notebook reads, without recording anything.

    Call right after the ``parameters`` cell: ``params = audioreg.study.run_settings(globals())``.
    A name papermill injected that the ``parameters`` cell does not declare is an
    :class:`~audioreg.params.UnknownParameterError` (as :func:`audioreg.params.pick`). Only
    ``root`` and ``run_id`` are taken from ``namespace``: the data, the split and its seed are
    the run's (``runs/<run_id>/params.yaml``, else ``params/base.yaml``), and nothing is written
    back to the run, so a study never changes a finished run's parameters.

    Parameters
    ----------
    namespace : mapping
        The notebook's ``globals()`` (``In`` is read to check the injected cell).

    Returns
    -------
    params : dict
        ``params/base.yaml`` < the run's saved parameters < ``root`` and ``run_id``.
    """
    from .params import check_injected, run_params

    check_injected(namespace.get("In"))
    return run_params({k: namespace[k] for k in ("root", "run_id") if k in namespace}, save=False)


def parse_list(text: str, *, kind=float) -> list:
    """``"0.1, 0.5,1"`` -> ``[0.1, 0.5, 1.0]``: a list parameter given as one literal string."""
    return [kind(part.strip()) for part in str(text).split(",") if part.strip()]


@dataclass
class StudyData:
    """The training and test parts of a split as the forest reads them.

    Attributes
    ----------
    x_train, x_test : np.ndarray [shape=(n, p)]
        Song statistics (:func:`audioreg.stages.song_features`), columns named by ``names``.
    y_train, y_test : np.ndarray [shape=(n, 11)]
        Targets in raw units, :data:`audioreg.targets.TARGETS` order (NaN: no label).
    groups_train, groups_test : np.ndarray [shape=(n,)]
        Split groups (:func:`audioreg.data.split.leakage_groups`): no group is ever divided.
    names : list of (str, str, int)
        ``(feature, statistic, index)`` of each column.
    mode_train, mode_test : np.ndarray [shape=(n,)] or None
        Modes (1 major, 0 minor) for the MIREX key score; None when the data has none.
    test_ids : np.ndarray [shape=(n_test,)]
        The test tracks' ids.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    groups_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    groups_test: np.ndarray
    names: list
    mode_train: np.ndarray | None = None
    mode_test: np.ndarray | None = None
    test_ids: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))

    @property
    def n_test_groups(self) -> int:
        return len(set(map(str, self.groups_test)))

    def summary(self) -> pd.DataFrame:
        """Tracks, split groups and input columns of each part."""
        return pd.DataFrame({"tracks": [len(self.x_train), len(self.x_test)],
                             "split groups (artists)": [len(set(map(str, self.groups_train))), self.n_test_groups],
                             "input columns": [self.x_train.shape[1], self.x_test.shape[1]]},
                            index=pd.Index(["train", "test"], name="part"))

    def caveat(self) -> str | None:
        """A sentence when the test part is too small for its intervals to mean anything
        (fewer than :data:`audioreg.judge.uncertainty.MIN_GROUPS` groups or
        :data:`~audioreg.judge.uncertainty.MIN_TRACKS` tracks)."""
        n, g = len(self.x_test), self.n_test_groups
        if g >= uncertainty.MIN_GROUPS and n >= uncertainty.MIN_TRACKS:
            return None
        return (f"The test part holds {n} tracks in {g} split group(s): too small to judge (at least "
                f"{uncertainty.MIN_TRACKS} tracks and {uncertainty.MIN_GROUPS} groups are needed), so no verdict is drawn; the numbers are shown, "
                "not interpreted.")


def study_data(table: pd.DataFrame, *, experts: bool) -> StudyData:
    """:class:`StudyData` of a stored split table (:func:`audioreg.stages.split`).

    Parameters
    ----------
    table : pandas.DataFrame
        The split table: ``split``, the feature files, the targets, ``artists``, optionally ``mode``.
    experts : bool
        Add the expert estimates to the inputs (as the run parameter ``rf_expert_inputs``).

    Raises
    ------
    NotEnoughData
        When the training or test part is empty.
    """
    from . import stages

    train, test = stages.part(table, "train"), stages.part(table, "test")
    if not len(train) or not len(test):
        raise NotEnoughData(f"the study needs a training and a test part; this split has {len(train)} training and "
                            f"{len(test)} test tracks")
    has_mode = "mode" in table.columns and table["mode"].notna().all()
    return StudyData(
        x_train=stages.song_features(train, experts=experts), y_train=stages.targets(train),
        groups_train=np.asarray(leakage_groups(train)),
        x_test=stages.song_features(test, experts=experts), y_test=stages.targets(test),
        groups_test=np.asarray(leakage_groups(test)),
        names=stages.song_feature_names(experts=experts),
        mode_train=train["mode"].to_numpy(dtype=np.float64) if has_mode else None,
        mode_test=test["mode"].to_numpy(dtype=np.float64) if has_mode else None,
        test_ids=test["track_id"].astype(str).to_numpy())


def feature_groups(names: Sequence[tuple[str, str, int]]) -> dict[str, list[int]]:
    """Column indices of each feature group among ``names``.

    The frame-feature blocks (:data:`audioreg.features.frames.BLOCKS`: mfcc, chroma, contrast,
    tonnetz, zcr; mean and std of each), the track's integrated loudness (``lufs``) and the
    expert estimates (:data:`EXPERTS_GROUP`); a group absent from ``names`` is left out.

    Parameters
    ----------
    names : sequence of (str, str, int)
        :func:`audioreg.stages.song_feature_names` (``(feature, statistic, index)``).

    Returns
    -------
    groups : dict of str to list of int
        Every column belongs to exactly one group.

    Raises
    ------
    ValueError
        If a column belongs to no group.
    """
    which = {block: block for block, _ in frames.BLOCKS}
    which.update({name: name for name in TRACK_FEATURES})
    which.update({name: EXPERTS_GROUP for name in expert_columns()})
    order = [block for block, _ in frames.BLOCKS] + list(TRACK_FEATURES) + [EXPERTS_GROUP]
    out: dict[str, list[int]] = {g: [] for g in order}
    for j, name in enumerate(names):
        if name[0] not in which:
            raise ValueError(f"column {j} {tuple(name)!r} belongs to no feature group")
        out[which[name[0]]].append(j)
    return {g: cols for g, cols in out.items() if cols}


def small_forest(*, n_estimators: int = 200, max_features: float = 0.3, cv: int = 2, n_jobs: int = 1,
                 random_state: int = 0) -> ForestRegressor:
    """A :class:`~audioreg.models.ForestRegressor` with one fixed setting (no search to speak
    of: one candidate, ``cv`` artist-grouped folds), quick enough to fit dozens of times.

    Parameters
    ----------
    n_estimators : int
        Trees.
    max_features : float
        Share of the input columns tried at each split.
    cv : int
        Folds of its (single-candidate) search; a training subset needs at least ``cv`` split groups.
    n_jobs : int
        Parallel jobs of the search.
    random_state : int
        Seeds the forest.
    """
    return ForestRegressor(n_iter=1, cv=cv, n_jobs=n_jobs, random_state=random_state,
                           param_distributions={"n_estimators": [int(n_estimators)],
                                                "max_features": [float(max_features)],
                                                "max_depth": [None], "bootstrap": [True]})


# --------------------------------------------------------------------------------------------
# scores, per track, and their bootstrap


def _metric_of(target: str, *, have_modes: bool, key_metric: str | None = None) -> str:
    if target == "key":
        return key_metric or ("mirex" if have_modes else "accuracy")
    if target == "time_signature":
        return "accuracy"
    return "r2"


def _metric_label(target: str, metric: str) -> str:
    return METRIC_LABELS["tonic" if (target == "key" and metric == "accuracy") else metric]


def _row_values(data: StudyData, pred: np.ndarray, *, key_metric: str | None = None,
                mode_pred: np.ndarray | float | None = None, y_train: np.ndarray | None = None) -> np.ndarray:
    """``[n_test, 11]`` per-track scores, higher is better, whose means are the scores:
    ``1 - smse`` (denominator: the full training part's variance) for continuous targets,
    MIREX or tonic accuracy for key, accuracy for time_signature. NaN: no label or not predicted."""
    have_modes = data.mode_test is not None and data.mode_train is not None
    if have_modes and mode_pred is None:
        mode_pred = metrics.majority(data.mode_train)  # the forest predicts no mode
    rows = metrics.row_scores(data.y_test, pred, y_train=data.y_train if y_train is None else y_train,
                              mode_true=data.mode_test if have_modes else None,
                              mode_pred=mode_pred if have_modes else None)
    out = np.full(data.y_test.shape, np.nan)
    for j, t in enumerate(TARGETS):
        m = _metric_of(t, have_modes=have_modes, key_metric=key_metric)
        out[:, j] = 1.0 - rows["smse"][:, j] if m == "r2" else rows[m][:, j]
    return out


class _Bootstrap:
    """One matrix of group-bootstrap weights over the test rows, shared by every score and
    difference of a study, so differences are paired."""

    def __init__(self, groups, *, n_boot: int, random_state: int):
        self.n_groups = len(set(map(str, groups)))
        self.weights = (uncertainty.group_weights(groups, n_boot=n_boot, random_state=random_state)
                        if self.n_groups >= 2 else None)

    @staticmethod
    def mean(values: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            finite = np.isfinite(values)
            return np.where(finite, values, 0.0).sum(axis=0) / finite.sum(axis=0)

    def interval(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """95 % interval of each column's mean; NaN without at least 2 groups."""
        k = values.shape[1]
        if self.weights is None:
            return np.full(k, np.nan), np.full(k, np.nan)
        finite = np.isfinite(values)
        with np.errstate(invalid="ignore", divide="ignore"):
            boots = (self.weights @ np.where(finite, values, 0.0)) / (self.weights @ finite.astype(np.float64))
        tail = 100 * (1 - uncertainty.LEVEL) / 2
        lo, hi = np.full(k, np.nan), np.full(k, np.nan)
        for j in range(k):
            col = boots[:, j]
            if np.isfinite(col).any():
                lo[j], hi[j] = np.nanpercentile(col, [tail, 100 - tail])
        return lo, hi

    def verdict(self, lo: float, hi: float) -> str:
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return "too few groups" if self.n_groups < uncertainty.MIN_GROUPS else "not scored"
        return uncertainty.verdict([float(lo), float(hi)], n_groups=self.n_groups)


def _fit_predict(model, x_train, y_train, groups, x_test, *, random_state: int) -> tuple[np.ndarray | None, str]:
    """A fresh clone of ``model`` fitted and asked for the test rows (clipped to the valid
    ranges), or ``(None, why)`` when the training rows are too few for it."""
    est = clone(model)
    if "random_state" in est.get_params():
        est.set_params(random_state=int(random_state))
    try:
        est.fit(x_train, y_train, groups=groups)
    except NotEnoughData as exc:
        return None, str(exc)
    return clip_to_valid(est.predict(x_test)), ""


# --------------------------------------------------------------------------------------------
# learning curves


class Subset(NamedTuple):
    """Training rows of one (fraction, repeat) of a learning curve."""

    fraction: float
    repeat: int
    rows: np.ndarray


def nested_group_subsets(groups, *, fractions: Sequence[float], repeats: int, random_state: int) -> list[Subset]:
    """Nested subsets of the training rows, drawn by whole split groups.

    For each repeat the groups are put in a random order, and the subset for ``fraction`` is
    the shortest prefix of that order holding at least ``fraction`` of the rows (at least one
    group): so within a repeat, each subset contains every smaller one, and no group (artist)
    is ever divided.

    Parameters
    ----------
    groups : array_like [shape=(n,)]
        Split group of each training row.
    fractions : sequence of float
        In (0, 1]; 1 gives every row.
    repeats : int
        Independent orders of the groups.
    random_state : int
        Seeds the orders.

    Returns
    -------
    subsets : list of Subset
        Sorted by repeat, then fraction; ``rows`` are sorted row indices.
    """
    fractions = sorted(float(f) for f in fractions)
    if not fractions or fractions[0] <= 0 or fractions[-1] > 1:
        raise ValueError(f"fractions must lie in (0, 1], got {fractions}")
    if int(repeats) < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    codes, uniques = pd.factorize(pd.Series(list(map(str, groups))), sort=True)
    sizes = np.bincount(codes, minlength=len(uniques))
    rng = np.random.default_rng(random_state)
    out = []
    for r in range(int(repeats)):
        order = rng.permutation(len(uniques))
        cumulative = np.cumsum(sizes[order])
        for f in fractions:
            k = int(np.searchsorted(cumulative, f * len(codes) - 1e-9)) + 1
            out.append(Subset(f, r, np.flatnonzero(np.isin(codes, order[:k]))))
    return out


@dataclass
class LearningCurve:
    """A learning curve's tables.

    Attributes
    ----------
    points : pandas.DataFrame
        One row per model ("random forest", "mean baseline") x target x fraction: ``metric``,
        ``n_tracks`` and ``n_groups`` (training rows and groups, mean over repeats),
        ``fitted`` (repeats the model could be trained on), ``score`` (the mean over repeats
        of each test track's score, averaged over the test tracks), ``lo``/``hi`` (its 95 %
        interval over the test part's groups), ``repeat_min``/``repeat_max`` (the spread of
        single repeats' scores) and ``note`` (why a point is missing).
    trend : pandas.DataFrame
        One row per target: the gain from the smallest fitted fraction to the largest
        (``gain``, ``gain_lo``, ``gain_hi``), the last step's gain (``last_gain``...), the
        forest against the baseline at the largest fraction (``vs_baseline``...), each paired
        on the same test rows, and ``verdict``.
    n_test_groups : int
    """

    points: pd.DataFrame
    trend: pd.DataFrame
    n_test_groups: int


def learning_curve(data: StudyData, *, model, fractions: Sequence[float], repeats: int, random_state: int,
                   n_boot: int = uncertainty.N_BOOT) -> LearningCurve:
    """Error against training-set size: ``model`` trained on nested subsets of the training
    part (:func:`nested_group_subsets`), every fit scored on the same test part with the
    denominators of the FULL training part, beside the mean baseline of the same subset.

    Parameters
    ----------
    data : StudyData
    model : estimator
        Cloned for each fit (``random_state`` set to ``random_state + repeat`` when it has one);
        its ``fit`` takes ``groups=`` (as :class:`~audioreg.models.ForestRegressor`), and may
        raise :class:`~audioreg.errors.NotEnoughData` for a subset too small: that point is
        then missing, with a note.
    fractions : sequence of float
        Shares of the training rows, in (0, 1].
    repeats : int
        Random orders of the training groups; a subset equal to one already fitted (all
        groups, at fraction 1) reuses that fit.
    random_state : int
        Seeds the subsets, the forests and the bootstrap.
    n_boot : int
        Bootstrap replicates.

    Returns
    -------
    curve : LearningCurve
    """
    subsets = nested_group_subsets(data.groups_train, fractions=fractions, repeats=repeats, random_state=random_state)
    fracs = sorted({s.fraction for s in subsets})
    boot = _Bootstrap(data.groups_test, n_boot=n_boot, random_state=random_state)
    have_modes = data.mode_test is not None
    done: dict[bytes, tuple[np.ndarray | None, str]] = {}
    per = {(m, f): [] for m in ("random forest", metrics.BASELINE_NAME) for f in fracs}
    sizes, notes = {f: [] for f in fracs}, {f: [] for f in fracs}
    for s in subsets:
        key = s.rows.tobytes()
        if key not in done:
            done[key] = _fit_predict(model, data.x_train[s.rows], data.y_train[s.rows], data.groups_train[s.rows],
                                     data.x_test, random_state=random_state + s.repeat)
        pred, why = done[key]
        sizes[s.fraction].append((len(s.rows), len(set(map(str, data.groups_train[s.rows])))))
        base = metrics.mean_baseline(data.y_train[s.rows], len(data.x_test))
        mode_base = (metrics.majority(data.mode_train[s.rows]) if have_modes else None)
        per[(metrics.BASELINE_NAME, s.fraction)].append(_row_values(data, base, mode_pred=mode_base))
        if pred is None:
            notes[s.fraction].append(why)
        else:
            per[("random forest", s.fraction)].append(_row_values(data, pred))
    rows, averaged = [], {}
    for (model_name, f), values in per.items():
        n_tracks, n_groups = np.mean([a for a, _ in sizes[f]]), np.mean([b for _, b in sizes[f]])
        if values:
            stack = np.stack(values)
            with np.errstate(invalid="ignore"):
                mean_rows = np.nanmean(stack, axis=0) if np.isfinite(stack).any() else stack[0]
            averaged[(model_name, f)] = mean_rows
            score, (lo, hi) = boot.mean(mean_rows), boot.interval(mean_rows)
            single = np.stack([boot.mean(v) for v in values])
        else:
            score = lo = hi = np.full(len(TARGETS), np.nan)
            single = np.full((1, len(TARGETS)), np.nan)
        note = "" if values else ("not trained: " + notes[f][0] if notes[f] else "")
        for j, t in enumerate(TARGETS):
            rows.append({"model": model_name, "target": t,
                         "metric": _metric_label(t, _metric_of(t, have_modes=have_modes)), "fraction": f,
                         "n_tracks": float(n_tracks), "n_groups": float(n_groups), "fitted": len(values),
                         "score": score[j], "lo": lo[j], "hi": hi[j],
                         "repeat_min": np.nanmin(single[:, j]) if np.isfinite(single[:, j]).any() else np.nan,
                         "repeat_max": np.nanmax(single[:, j]) if np.isfinite(single[:, j]).any() else np.nan,
                         "note": note})
    points = pd.DataFrame(rows)
    return LearningCurve(points=points, trend=_trend(averaged, fracs, boot, have_modes=have_modes),
                         n_test_groups=boot.n_groups)


def _trend(averaged: dict, fracs: list[float], boot: _Bootstrap, *, have_modes: bool) -> pd.DataFrame:
    fitted = [f for f in fracs if ("random forest", f) in averaged]
    rows = []
    for j, t in enumerate(TARGETS):
        row: dict[str, Any] = {"target": t, "metric": _metric_label(t, _metric_of(t, have_modes=have_modes))}
        if len(fitted) < 2:
            row.update(verdict="too few fitted sizes" if fitted else "not trained")
            rows.append(row)
            continue
        first, prev, last = fitted[0], fitted[-2], fitted[-1]
        rf = {f: averaged[("random forest", f)][:, j:j + 1] for f in (first, prev, last)}
        row.update(first_fraction=first, last_fraction=last, score_first=float(boot.mean(rf[first])[0]),
                   score_last=float(boot.mean(rf[last])[0]))
        for name, diff in (("gain", rf[last] - rf[first]), ("last_gain", rf[last] - rf[prev]),
                           ("vs_baseline", rf[last] - averaged[(metrics.BASELINE_NAME, last)][:, j:j + 1])):
            lo, hi = boot.interval(diff)
            row.update({name: float(boot.mean(diff)[0]), f"{name}_lo": float(lo[0]), f"{name}_hi": float(hi[0])})
        overall = boot.verdict(row["gain_lo"], row["gain_hi"])
        step = boot.verdict(row["last_gain_lo"], row["last_gain_hi"])
        if overall in ("too few groups", "not scored"):
            verdict = overall
        elif step == "better":
            verdict = "still rising"
        elif overall == "better":
            verdict = "rises (last step not shown)"
        elif overall == "worse":
            verdict = "falls"
        else:
            verdict = "flat (no gain shown)"
        row["verdict"] = verdict
        row["beats_baseline"] = boot.verdict(row["vs_baseline_lo"], row["vs_baseline_hi"])
        rows.append(row)
    return pd.DataFrame(rows)


def trend_text(trend: pd.DataFrame, *, n_test_groups: int) -> str:
    """Markdown: which targets keep improving with more training data, and which are flat."""
    if n_test_groups < uncertainty.MIN_GROUPS:
        return (f"The test part holds {n_test_groups} split group(s): too few to say whether any curve rises "
                f"(at least {uncertainty.MIN_GROUPS} are needed).")
    lines = []
    for verdict, text in (("still rising", "still rising at the last step (its gain has a 95 % interval above 0)"),
                          ("rises (last step not shown)", "better with the whole training part than with the "
                           "smallest subset, but the last step's gain is not shown"),
                          ("flat (no gain shown)", "flat: no gain from more data is shown"),
                          ("falls", "worse with more data")):
        names = trend.loc[trend["verdict"] == verdict, "target"].tolist()
        if names:
            lines.append(f"- **{text}**: {', '.join(names)}")
    other = trend.loc[~trend["verdict"].isin(["still rising", "rises (last step not shown)",
                                              "flat (no gain shown)", "falls"]), ["target", "verdict"]]
    if len(other):
        lines.append("- not judged: " + ", ".join(f"{t} ({v})" for t, v in other.itertuples(index=False)))
    if "beats_baseline" in trend.columns:
        beats = trend.loc[trend["beats_baseline"] == "better", "target"].tolist()
        lines.append(f"- at the largest size the forest beats the mean baseline on {', '.join(beats) or 'no target'}.")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# feature-group ablation


@dataclass
class Ablation:
    """A feature-group ablation's tables.

    Attributes
    ----------
    scores : pandas.DataFrame
        One row per variant x target: ``variant`` (``"all features"``, ``"without <g>"``,
        ``"<g> alone"``, ``"mean baseline"``), ``group``, ``mode`` (``"all"``, ``"without"``,
        ``"alone"``, ``"baseline"``), ``n_columns``, ``metric``, ``score``, ``lo``, ``hi``, ``note``.
    differences : pandas.DataFrame
        One row per group x mode x target: ``difference`` (``without``: all features minus
        without the group; ``alone``: the group alone minus the baseline; positive: the group
        helps), ``lo``, ``hi`` (paired 95 % interval) and ``verdict`` (:data:`ABLATION_VERDICTS`).
    predictions : dict of str to np.ndarray [shape=(n_test, 11)]
        Each fitted variant's test predictions (raw units).
    n_test_groups : int
    """

    scores: pd.DataFrame
    differences: pd.DataFrame
    predictions: dict
    n_test_groups: int


def ablation(data: StudyData, *, model, modes: Sequence[str] = ("without", "alone"),
             groups: Mapping[str, Sequence[int]] | None = None, random_state: int,
             n_boot: int = uncertainty.N_BOOT) -> Ablation:
    """Which targets need which feature group: ``model`` trained on the whole training part
    with all input columns, without each group, and on each group alone, all scored on the
    same test rows; paired differences against all features (``without``) and against the
    mean baseline (``alone``).

    Parameters
    ----------
    data : StudyData
    model : estimator
        As in :func:`learning_curve`; every variant gets ``random_state``.
    modes : sequence of {"without", "alone"}
    groups : mapping of str to column indices, optional
        Default: :func:`feature_groups` of ``data.names``.
    random_state : int
        Seeds the forests and the bootstrap.
    n_boot : int
        Bootstrap replicates.

    Returns
    -------
    result : Ablation
    """
    modes = tuple(modes)
    if unknown := set(modes) - set(ABLATION_VERDICTS):
        raise ValueError(f"unknown ablation mode(s) {sorted(unknown)}; use {list(ABLATION_VERDICTS)}")
    groups = feature_groups(data.names) if groups is None else {g: list(c) for g, c in groups.items()}
    p = data.x_train.shape[1]
    have_modes = data.mode_test is not None
    boot = _Bootstrap(data.groups_test, n_boot=n_boot, random_state=random_state)
    variants = [(ALL_FEATURES, "", "all", list(range(p)))]
    for g, cols in groups.items():
        rest = [j for j in range(p) if j not in set(cols)]
        if "without" in modes and rest:
            variants.append((f"without {g}", g, "without", rest))
        if "alone" in modes:
            variants.append((f"{g} alone", g, "alone", list(cols)))
    base = metrics.mean_baseline(data.y_train, len(data.x_test))
    values = {metrics.BASELINE_NAME: _row_values(data, base)}
    preds, score_rows = {}, []
    info = {metrics.BASELINE_NAME: ("", "baseline", 0, "")}
    for name, g, mode, cols in variants:
        pred, why = _fit_predict(model, data.x_train[:, cols], data.y_train, data.groups_train, data.x_test[:, cols],
                                 random_state=random_state)
        info[name] = (g, mode, len(cols), why and "not trained: " + why)
        if pred is not None:
            preds[name] = pred
            values[name] = _row_values(data, pred)
    for name, (g, mode, n_cols, note) in info.items():
        v = values.get(name)
        if v is None:
            score = lo = hi = np.full(len(TARGETS), np.nan)
        else:
            score, (lo, hi) = boot.mean(v), boot.interval(v)
        for j, t in enumerate(TARGETS):
            score_rows.append({"variant": name, "group": g, "mode": mode, "n_columns": n_cols, "target": t,
                               "metric": _metric_label(t, _metric_of(t, have_modes=have_modes)),
                               "score": score[j], "lo": lo[j], "hi": hi[j], "note": note})
    diff_rows = []
    for name, (g, mode, _, _) in info.items():
        if mode not in ("without", "alone"):
            continue
        ref = ALL_FEATURES if mode == "without" else metrics.BASELINE_NAME
        if name not in values or ref not in values:
            diffs = np.full(data.y_test.shape, np.nan)
        else:
            diffs = values[ref] - values[name] if mode == "without" else values[name] - values[ref]
        mean, (lo, hi) = boot.mean(diffs), boot.interval(diffs)
        for j, t in enumerate(TARGETS):
            raw = boot.verdict(lo[j], hi[j]) if np.isfinite(mean[j]) else "not scored"
            diff_rows.append({"group": g, "mode": mode, "target": t,
                              "metric": _metric_label(t, _metric_of(t, have_modes=have_modes)),
                              "difference": mean[j], "lo": lo[j], "hi": hi[j],
                              "verdict": ABLATION_VERDICTS[mode].get(raw, raw)})
    return Ablation(scores=pd.DataFrame(score_rows), differences=pd.DataFrame(diff_rows), predictions=preds,
                    n_test_groups=boot.n_groups)


def verdict_matrix(differences: pd.DataFrame, *, mode: str = "without") -> pd.DataFrame:
    """Targets (rows) x feature groups (columns) of the ablation's verdicts for one ``mode``,
    each with its difference and interval: ``"needed (+0.21 [+0.08, +0.35])"``."""
    part = differences[differences["mode"] == mode]
    if part.empty:
        return pd.DataFrame()
    text = [f"{v} ({d:+.2f} [{lo:+.2f}, {hi:+.2f}])" if np.isfinite(lo) and np.isfinite(hi)
            else (f"{v} ({d:+.2f})" if np.isfinite(d) else v)
            for v, d, lo, hi in part[["verdict", "difference", "lo", "hi"]].itertuples(index=False)]
    out = part.assign(cell=text).pivot(index="target", columns="group", values="cell")
    return out.reindex(index=[t for t in TARGETS if t in out.index],
                       columns=list(dict.fromkeys(part["group"])))


def ablation_text(differences: pd.DataFrame, *, n_test_groups: int) -> str:
    """Markdown: per target, the feature groups it needs (removing them costs score, with a
    95 % interval above 0), those that hurt it, and the groups that learn it alone."""
    if n_test_groups < uncertainty.MIN_GROUPS:
        return (f"The test part holds {n_test_groups} split group(s): too few to say which target needs which "
                f"feature group (at least {uncertainty.MIN_GROUPS} are needed).")
    lines = []
    for t in TARGETS:
        part = differences[differences["target"] == t]
        needed = part.loc[(part["mode"] == "without") & (part["verdict"] == "needed"), "group"].tolist()
        hurts = part.loc[(part["mode"] == "without") & (part["verdict"] == "hurts"), "group"].tolist()
        alone = part.loc[(part["mode"] == "alone") & (part["verdict"] == "learns alone"), "group"].tolist()
        bits = [f"needs {', '.join(needed)}" if needed else "no single group shown needed"]
        if hurts:
            bits.append(f"better without {', '.join(hurts)}")
        if (part["mode"] == "alone").any():
            bits.append(f"beats the baseline alone: {', '.join(alone) or 'none'}")
        lines.append(f"- **{t}**: " + "; ".join(bits))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the noise ceiling


def read_run_metrics(params: Mapping[str, Any]) -> dict | None:
    """The finished run's ``runs/<run_id>/metrics.json`` (None when it has none)."""
    from .stages import config

    path = config(dict(params)).run_dir / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _ceiling_metric(target: str) -> str:
    """The noise ceiling is an R^2 for continuous targets and an accuracy (tonic accuracy for key)."""
    return "accuracy" if target in metrics.CLASS_TARGETS else "r2"


def _ceiling_verdict(ceiling: float, lo: float, hi: float) -> str:
    if ceiling is None or not np.isfinite(ceiling):
        return "no ceiling"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval"
    if hi < ceiling:
        return "below the ceiling"
    return "ceiling not excluded"


def ceiling_from_run(doc: Mapping[str, Any]) -> pd.DataFrame:
    """Each model of a finished run against the noise ceiling, from its ``metrics.json``.

    Scores are R^2 for the continuous targets, tonic accuracy for key and accuracy for
    time_signature (the terms the ceiling is stated in), with the run's 95 % intervals.
    ``gap`` is the ceiling minus the score, ``gap_lo``/``gap_hi`` the ceiling minus the
    interval's ends (not paired: metrics.json holds no per-track scores); ``ceiling_verdict``
    is "below the ceiling" when the interval's upper end lies under it. ``verdict`` is the
    run's paired verdict against the baseline where it was drawn on the same metric, else
    "not scored".

    Returns
    -------
    table : pandas.DataFrame
        Columns ``target``, ``model``, ``metric``, ``score``, ``lo``, ``hi``, ``ceiling``, ``gap``,
        ``gap_lo``, ``gap_hi``, ``ceiling_verdict``, ``verdict``; empty without a ceiling.
    """
    ceiling = doc.get("noise_ceiling") or {}
    n_groups = int((doc.get("bootstrap") or {}).get("groups") or 0)
    against = {(d["model"], d["target"], d["metric"]): d for d in doc.get("differences", [])
               if d.get("versus") == metrics.BASELINE_NAME}
    rows = []
    for t in TARGETS:
        metric = _ceiling_metric(t)
        for model, table in doc.get("metrics", {}).items():
            entry = table.get(t) or {}
            score = entry.get(metric)
            lo, hi = (entry.get("ci95") or {}).get(metric) or [None, None]
            score, lo, hi = (float("nan") if v is None else float(v) for v in (score, lo, hi))
            c = ceiling.get(t)
            c = float("nan") if c is None else float(c)
            diff = against.get((model, t, "smse" if metric == "r2" else metric))
            verdict = ("" if model == metrics.BASELINE_NAME else
                       uncertainty.verdict(diff["ci95"], n_groups=n_groups) if diff else "not scored")
            rows.append({"target": t, "model": model, "metric": _metric_label(t, metric), "score": score,
                         "lo": lo, "hi": hi, "ceiling": c, "gap": c - score, "gap_lo": c - hi, "gap_hi": c - lo,
                         "ceiling_verdict": _ceiling_verdict(c, lo, hi), "verdict": verdict})
    return pd.DataFrame(rows)


def study_ceiling(data: StudyData, predictions: Mapping[str, np.ndarray], *, clean: np.ndarray,
                  random_state: int, n_boot: int = uncertainty.N_BOOT) -> pd.DataFrame:
    """Models of this study against the noise ceiling, paired on the same test rows.

    The noise ceiling is the score the labels without their noise (``clean``) reach as a
    prediction of the noisy test labels; each model's gap to it is bootstrapped per track.
    Scores as in :func:`ceiling_from_run` (R^2; tonic accuracy for key; accuracy for
    time_signature); the mean baseline is added as a row.

    Parameters
    ----------
    data : StudyData
    predictions : mapping of str to np.ndarray [shape=(n_test, 11)]
    clean : np.ndarray [shape=(n_test, 11)]
        :func:`audioreg.store.noise_free_labels` of ``data.test_ids``.
    random_state : int
        Seeds the bootstrap.
    n_boot : int

    Returns
    -------
    table : pandas.DataFrame
        The columns of :func:`ceiling_from_run`; ``gap_lo``/``gap_hi`` are paired here.
    """
    boot = _Bootstrap(data.groups_test, n_boot=n_boot, random_state=random_state)
    models = {metrics.BASELINE_NAME: metrics.mean_baseline(data.y_train, len(data.x_test)), **predictions}
    vals = {m: _row_values(data, p, key_metric="accuracy") for m, p in models.items()}
    ceiling_rows = _row_values(data, np.asarray(clean, dtype=np.float64), key_metric="accuracy")
    ceiling = boot.mean(ceiling_rows)
    rows = []
    for t_j, t in enumerate(TARGETS):
        for m, v in vals.items():
            score = boot.mean(v[:, t_j:t_j + 1])[0]
            lo, hi = (x[0] for x in boot.interval(v[:, t_j:t_j + 1]))
            gap = ceiling_rows[:, t_j:t_j + 1] - v[:, t_j:t_j + 1]
            glo, ghi = (x[0] for x in boot.interval(gap))
            verdict = ""
            if m != metrics.BASELINE_NAME:
                d = v[:, t_j:t_j + 1] - vals[metrics.BASELINE_NAME][:, t_j:t_j + 1]
                verdict = boot.verdict(*(x[0] for x in boot.interval(d)))
            gap_verdict = boot.verdict(glo, ghi)
            rows.append({"target": t, "model": m, "metric": _metric_label(t, _ceiling_metric(t)), "score": score,
                         "lo": lo, "hi": hi, "ceiling": ceiling[t_j], "gap": boot.mean(gap)[0], "gap_lo": glo,
                         "gap_hi": ghi,
                         "ceiling_verdict": {"better": "below the ceiling", "no difference shown": "ceiling not excluded",
                                             "worse": "above the ceiling"}.get(gap_verdict, gap_verdict),
                         "verdict": verdict})
    return pd.DataFrame(rows)


def ceiling_dict(table: pd.DataFrame) -> dict[str, float]:
    """``{target: ceiling}`` of a ceiling table (for :func:`audioreg.judge.plots.learnability`)."""
    return {t: float(c) for t, c in table.groupby("target", sort=False)["ceiling"].first().items()
            if c is not None and math.isfinite(float(c))}


def run_ceiling_view(params: Mapping[str, Any], *, run_id: str, caveat: str | None = None) -> list:
    """What the notebook shows of the run's own models against the noise ceiling: a Markdown line,
    and when the run's ``metrics.json`` has a noise ceiling, its :func:`ceiling_from_run` table and
    the :func:`audioreg.judge.plots.learnability` figure with the ceiling drawn."""
    from IPython.display import Markdown

    from .judge import plots

    doc = read_run_metrics(params)
    if not doc or not doc.get("noise_ceiling"):
        return [Markdown(f"Run `{run_id}`: no metrics.json with a noise ceiling: only the study's forest is "
                         "compared below.")]
    table = ceiling_from_run(doc)
    return [Markdown(f"Run `{run_id}`: {doc['n_test']} test tracks, {doc['bootstrap']['groups']} artist groups."),
            table.round(3), plots.learnability(table, ceiling=ceiling_dict(table), caveat=caveat)]


def study_ceiling_view(params: Mapping[str, Any], data: StudyData, predictions: Mapping[str, np.ndarray], *,
                       random_state: int, n_boot: int) -> list:
    """The study's forest (the ablation's ``all features`` predictions) against the score of the
    labels without their noise, paired per track (:func:`study_ceiling`), or a Markdown line saying
    why there is none (not the generated sample set, or no such predictions)."""
    from IPython.display import Markdown

    from .store import noise_free_labels

    clean = noise_free_labels(dict(params), data.test_ids)
    if clean is None or "all features" not in predictions:
        return [Markdown("No labels without noise for this data (not the generated sample set), or no forest "
                         "on all features: no ceiling.")]
    table = study_ceiling(data, {"random forest (study)": predictions["all features"]}, clean=clean,
                          random_state=random_state, n_boot=n_boot)
    return [Markdown("The study's forest (all features, whole training part):"), table.round(3)]
