"""The uncertainty of every score: a bootstrap that resamples the evaluation part's split
groups (artists), so tracks of one artist, which are not independent, move together.

Every score of :func:`audioreg.judge.metrics.per_target` is a mean of per-track values
(:func:`audioreg.judge.metrics.row_scores`) and its denominator is fixed by the training
part, so one matrix of bootstrap weights gives every score, every cross-target average and
every paired difference (model minus baseline, model minus model) its 95 % interval. Where
a difference's interval covers 0, the data shows no difference (:func:`verdicts`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from .._pandas import pd

from audioreg.targets import TARGETS

from . import metrics

#: Bootstrap replicates.
N_BOOT = 2000
#: Two-sided interval level.
LEVEL = 0.95
#: Fewer split groups than this in a part, and the bootstrap has too few distinct
#: replicates to mean anything: no verdict is drawn.
MIN_GROUPS = 8
#: Fewer tracks than this in the test part, and its scores say that the chain runs, not what
#: the models learn: the reports say so beside them.
MIN_TRACKS = 20


def group_weights(groups, *, n_boot: int = N_BOOT, random_state: int = 0) -> np.ndarray:
    """``[n_boot, n]`` counts: how often each row enters each replicate when whole groups are
    drawn with replacement (as many draws as there are groups)."""
    codes, uniques = pd.factorize(pd.Series(list(groups)), sort=True)
    n_groups = len(uniques)
    if n_groups < 2:
        raise ValueError("a bootstrap over groups needs at least 2 groups in the evaluation part")
    rng = np.random.default_rng(random_state)
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    counts = np.stack([np.bincount(d, minlength=n_groups) for d in draws]).astype(np.float64)
    return counts[:, codes]


def _boot(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Weighted means of ``values`` [n] (or [n, k]) per replicate: [n_boot] (or [n_boot, k]).
    A NaN value (a row without that label) is left out of its column's mean; a replicate that
    drew no labelled row of a column gives NaN there."""
    finite = np.isfinite(values)
    if finite.all():
        return (weights @ values) / weights.sum(axis=1).reshape((-1,) + (1,) * (values.ndim - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ np.where(finite, values, 0.0)) / (weights @ finite.astype(np.float64))


def _no_interval(samples: np.ndarray) -> list[None]:
    return [None, None]


def _interval(samples: np.ndarray) -> list[float | None]:
    if np.all(np.isnan(samples)):
        return [None, None]
    tail = 100 * (1 - LEVEL) / 2
    lo, hi = np.nanpercentile(samples, [tail, 100 - tail])
    return [float(lo), float(hi)]


def _row_means(values: np.ndarray) -> np.ndarray:
    """Each row's mean over its finite entries (NaN for a row with none): the per-track
    continuous-target average, over the targets that row is labelled for."""
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite, values, 0.0).sum(axis=1) / finite.sum(axis=1)


#: The score each target's verdict rests on, and whether higher is better.
def primary_metric(target: str, *, have_modes: bool) -> tuple[str, bool]:
    if target == "key":
        return ("mirex", True) if have_modes else ("accuracy", True)
    if target == "time_signature":
        return "accuracy", True
    return "smse", False


def bootstrap(y_true, predictions: Mapping[str, object], *, y_train, groups, targets: Sequence[str] = TARGETS,
              mode_true=None, mode_train=None, mode_preds=None, n_boot: int = N_BOOT, random_state: int = 0) -> dict:
    """Intervals of every score, of the continuous-target average, and of paired differences.

    Parameters
    ----------
    y_true, predictions, y_train, targets, mode_true, mode_train, mode_preds
        As :func:`audioreg.judge.metrics.compare_models`; ``predictions`` must hold the
        baseline under :data:`audioreg.judge.metrics.BASELINE_NAME`.
    groups : array_like [shape=(n,)]
        The split group (artist) of each evaluation row.

    Returns
    -------
    result : dict
        ``ci95``: ``{model: {target: {metric: [lo, hi]}}}`` (``r2`` included);
        ``summary_ci95``: ``{model: {"mean_smse": [lo, hi]}}`` over the continuous targets;
        ``differences``: a list of ``{"model", "versus", "target", "metric", "difference",
        "ci95", "better_is"}`` rows, each model against the baseline and against each other
        model, per target on its primary score (:func:`primary_metric`) and on the
        continuous-target ``mean_smse`` (target ``"mean"``); differences are "model better"
        when positive.
    """
    targets = tuple(targets)
    if metrics.BASELINE_NAME not in predictions:
        raise ValueError(f"predictions must include the {metrics.BASELINE_NAME!r}")
    modes = metrics.model_modes(predictions, mode_true=mode_true, mode_train=mode_train, mode_preds=mode_preds)
    rows = {m: metrics.row_scores(y_true, p, y_train=y_train, targets=targets, mode_true=mode_true,
                                  mode_pred=modes.get(m)) for m, p in predictions.items()}
    n_groups = len(set(map(str, groups)))
    if n_groups < 2:  # one group (one artist): no resample differs from the part itself, no interval
        weights = np.ones((1, len(groups)))
        _ci = _no_interval
    else:
        weights = group_weights(groups, n_boot=n_boot, random_state=random_state)
        _ci = _interval
    if weights.shape[1] != len(next(iter(rows.values()))["mse"]):
        raise ValueError("groups must have one entry per evaluation row")
    continuous = [j for j, t in enumerate(targets) if t not in metrics.CLASS_TARGETS]
    have_modes = bool(modes)
    ci, summary_ci, per_model_boot = {}, {}, {}
    for model, scores in rows.items():
        ci[model] = {t: {} for t in targets}
        boots = {m: _boot(weights, scores[m]) for m in metrics.ROW_METRICS}
        boots["r2"] = 1.0 - boots["smse"]
        for j, t in enumerate(targets):
            for m, b in boots.items():
                if not np.all(np.isnan(scores.get(m, scores["smse"])[:, j])) or m == "r2":
                    ci[model][t][m] = _ci(b[:, j])
        mean_rows = _row_means(scores["smse"][:, continuous])
        summary_ci[model] = {"mean_smse": _ci(_boot(weights, mean_rows))}
        per_model_boot[model] = (scores, mean_rows)

    differences = []
    names = list(predictions)
    pairs = [(m, metrics.BASELINE_NAME) for m in names if m != metrics.BASELINE_NAME]
    others = [m for m in names if m != metrics.BASELINE_NAME]
    pairs += [(a, b) for i, a in enumerate(others) for b in others[i + 1:]]
    for model, versus in pairs:
        (a, a_mean), (b, b_mean) = per_model_boot[model], per_model_boot[versus]
        for j, t in enumerate(targets):
            metric, higher = primary_metric(t, have_modes=have_modes)
            gain = (a[metric][:, j] - b[metric][:, j]) * (1 if higher else -1)
            if np.all(np.isnan(gain)):
                continue
            differences.append({"model": model, "versus": versus, "target": t, "metric": metric,
                                "difference": float(np.nanmean(gain)), "ci95": _ci(_boot(weights, gain)),
                                "better_is": "higher" if higher else "lower"})
        gain = b_mean - a_mean
        if np.all(np.isnan(gain)):
            continue
        differences.append({"model": model, "versus": versus, "target": "mean", "metric": "mean_smse",
                            "difference": float(np.nanmean(gain)), "ci95": _ci(_boot(weights, gain)),
                            "better_is": "lower"})
    return {"ci95": ci, "summary_ci95": summary_ci, "differences": differences,
            "n_groups": n_groups, "n_boot": int(n_boot) if n_groups > 1 else 0, "level": LEVEL}


def verdict(ci95: Sequence[float | None], *, n_groups: int = MIN_GROUPS) -> str:
    """``"better"`` when a difference's interval lies above 0, ``"worse"`` below, else
    ``"no difference shown"``; ``"too few groups"`` below :data:`MIN_GROUPS`."""
    if n_groups < MIN_GROUPS:
        return "too few groups"
    lo, hi = ci95
    if lo is None or hi is None:
        return "not scored"
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "no difference shown"


def verdicts(differences: Sequence[Mapping], *, n_groups: int = MIN_GROUPS) -> pd.DataFrame:
    """One row per (model, versus, target) difference with its :func:`verdict`."""
    df = pd.DataFrame(list(differences))
    if df.empty:
        return df
    df["verdict"] = [verdict(c, n_groups=n_groups) for c in df["ci95"]]
    return df


def verdict_text(differences: Sequence[Mapping], *, n_groups: int = MIN_GROUPS) -> str:
    """Markdown: per model, the targets the data shows it learns (interval of its gain over
    the baseline above 0), those it cannot tell from the baseline, those it is worse on,
    and what the data says between models. With fewer than :data:`MIN_GROUPS` split groups
    in the part, it says that the part is too small to judge, and draws no verdict."""
    if n_groups < MIN_GROUPS:
        return (f"The evaluated part holds only {n_groups} split group(s) (artists): too few for the intervals to "
                f"mean anything (at least {MIN_GROUPS} are needed), so no verdict is drawn. Use more data or a "
                "larger test_fraction.")
    df = verdicts(differences)
    if df.empty:
        return "No model to judge."
    lines = []
    base = df[df["versus"] == metrics.BASELINE_NAME]
    for model, part in base.groupby("model", sort=False):
        per = part[part["target"] != "mean"]
        learned = per.loc[per["verdict"] == "better", "target"].tolist()
        unclear = per.loc[per["verdict"] == "no difference shown", "target"].tolist()
        worse = per.loc[per["verdict"] == "worse", "target"].tolist()
        lines.append(f"- **{model}** beats the baseline, with 95 % intervals above 0, on "
                     f"{', '.join(learned) or 'no target'}; the data cannot tell it from the baseline on "
                     f"{', '.join(unclear) or 'no target'}" + (f"; it is worse on {', '.join(worse)}" if worse else "") + ".")
    between = df[(df["versus"] != metrics.BASELINE_NAME) & (df["target"] == "mean")]
    for _, row in between.iterrows():
        lo, hi = row["ci95"]
        if row["verdict"] == "no difference shown":
            lines.append(f"- **{row['model']}** versus **{row['versus']}** (mean standardized MSE over the continuous "
                         f"targets): the data shows no difference (difference {row['difference']:+.3f}, 95 % CI "
                         f"[{lo:+.3f}, {hi:+.3f}]).")
        else:
            lines.append(f"- **{row['model']}** is {row['verdict']} than **{row['versus']}** on the mean standardized "
                         f"MSE over the continuous targets ({row['difference']:+.3f}, 95 % CI [{lo:+.3f}, {hi:+.3f}]).")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# split-conformal prediction intervals

#: Coverage the prediction intervals of ``audioreg predict`` are calibrated for.
CONFORMAL_LEVEL = 0.9
#: Targets whose interval is relative (residuals in log2 units): an octave is one error at any tempo.
LOG_SCALE_TARGETS = ("tempo",)


def conformal_residuals(target: str, y_true, y_pred) -> np.ndarray:
    """Nonconformity scores of one target: ``|y - yhat|``, or ``|log2 y - log2 yhat|`` for
    :data:`LOG_SCALE_TARGETS` (NaN where a label or prediction is missing or not positive)."""
    y, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if target in LOG_SCALE_TARGETS:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.abs(np.where((y > 0) & (p > 0), np.log2(y) - np.log2(p), np.nan))
    return np.abs(y - p)


def conformal_quantile(residuals, *, level: float = CONFORMAL_LEVEL) -> float:
    """Split-conformal half-width: the ``ceil((n + 1) level)``-th smallest of the ``n`` finite
    calibration residuals (infinite when ``n`` is too small for ``level``). With exchangeable
    rows, a new row's residual is at most this with probability >= ``level``."""
    r = np.sort(np.asarray(residuals, dtype=np.float64)[np.isfinite(residuals)])
    k = int(np.ceil((len(r) + 1) * level))
    return float(r[k - 1]) if 1 <= k <= len(r) else float("inf")


def conformal_interval(target: str, y_pred, q: float) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` around predictions of ``target`` with half-width ``q`` (a factor ``2**q``
    for :data:`LOG_SCALE_TARGETS`), clipped to the target's documented range."""
    from audioreg.targets import VALID_RANGES

    p = np.asarray(y_pred, dtype=np.float64)
    lo, hi = (p * 2.0 ** -q, p * 2.0 ** q) if target in LOG_SCALE_TARGETS else (p - q, p + q)
    a, b = VALID_RANGES[target]
    return np.clip(lo, a, b), np.clip(hi, a, b)


def conformal_table(y_val, pred_val, y_test, pred_test, *, level: float = CONFORMAL_LEVEL,
                    targets: Sequence[str] = TARGETS) -> pd.DataFrame:
    """Per continuous target: the half-width calibrated on the validation rows, and the
    coverage and mean width of those intervals measured on the test rows.

    Columns: ``n_val``, ``half_width`` (log2 units for :data:`LOG_SCALE_TARGETS`), ``n_test``,
    ``test_coverage``, ``coverage_ci95_lo``/``_hi`` (Wilson interval) and ``mean_width`` (in
    the target's units)."""
    rows = {}
    for j, t in enumerate(targets):
        if t in metrics.CLASS_TARGETS:
            continue
        r_val = conformal_residuals(t, np.asarray(y_val)[:, j], np.asarray(pred_val)[:, j])
        q = conformal_quantile(r_val, level=level)
        r_test = conformal_residuals(t, np.asarray(y_test)[:, j], np.asarray(pred_test)[:, j])
        ok = np.isfinite(r_test)
        hit = r_test[ok] <= q
        lo, hi = conformal_interval(t, np.asarray(pred_test)[ok, j], q)
        ci = _wilson(int(hit.sum()), len(hit))
        rows[t] = {"n_val": int(np.isfinite(r_val).sum()), "half_width": q, "n_test": int(len(hit)),
                   "test_coverage": float(hit.mean()) if len(hit) else float("nan"),
                   "coverage_ci95_lo": ci[0], "coverage_ci95_hi": ci[1],
                   "mean_width": float(np.mean(hi - lo)) if len(hit) else float("nan")}
    return pd.DataFrame.from_dict(rows, orient="index")


def conformal_of_predictions(df: pd.DataFrame, *, level: float = CONFORMAL_LEVEL) -> pd.DataFrame:
    """:func:`conformal_table` of one model's saved predictions (columns ``split``,
    ``true_<target>``, ``pred_<target>``): calibrated on its ``val`` rows, coverage measured
    on its ``test`` rows."""
    val, test = df[df["split"] == "val"], df[df["split"] == "test"]
    pm = metrics.prediction_matrix
    return conformal_table(pm(val, "true_"), pm(val), pm(test, "true_"), pm(test), level=level)


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)
