"""Honest metrics for the 11 targets: each target in its own terms, always beside the mean baseline.

The project standard:

* Every model is shown beside the predict-the-mean baseline (:func:`mean_baseline`, passed to
  :func:`compare_models` under the name :data:`BASELINE_NAME`).
* Every target is reported in its own terms (:data:`audioreg.targets.OWN_TERMS`): BPM error and
  octave-tolerant accuracy for tempo, accuracy for key and time signature, dB for loudness and
  R^2 for the unit-interval targets, as well as the raw MSE the field quotes.
* Raw MSE is never averaged across targets without saying that tempo dominates it
  (:func:`raw_mse_caveat`). The standardized MSE (``smse = MSE / Var(y_train)``) divides by the
  *training* part's variance, a denominator fixed before the test part is seen; it is unit-free,
  so its average across the continuous targets (:data:`CONTINUOUS_TARGETS`) is fair. Key and
  time signature are classes: they are scored by accuracy (and key by the MIREX weighted score)
  and never enter an MSE or R^2 average.
* Every score is a mean of per-track values (:func:`row_scores`), so the group bootstrap of
  :mod:`audioreg.judge.uncertainty` gives each one, and each paired difference, an interval.

All functions are pure: arrays (or DataFrames) in, numbers / DataFrames out. Inputs must be
finite; a NaN or inf anywhere raises ``ValueError`` rather than quietly turning into a score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from .._pandas import pd

from audioreg.targets import TARGETS, VALID_RANGES

__all__ = [
    "as_matrix",
    "by_model",
    "BASELINE_NAME",
    "CLASS_TARGETS",
    "CONTINUOUS_TARGETS",
    "METRIC_COLUMNS",
    "key_names",
    "mirex_key_scores",
    "row_scores",
    "TEMPO_FACTORS",
    "TEMPO_MULTIPLES",
    "tempo_error_classes",
    "compare_models",
    "key_accuracy",
    "key_hits",
    "mean_baseline",
    "per_target",
    "raw_mse_caveat",
    "summarize",
    "tempo_acc1",
    "tempo_acc2",
    "tempo_hits1",
    "tempo_hits2",
    "time_signature_accuracy",
    "time_signature_hits",
    "to_json_dict",
]

#: Name under which the predict-the-training-mean baseline is passed to :func:`compare_models`.
BASELINE_NAME = "mean baseline"

#: Columns of :func:`per_target`, in order.
METRIC_COLUMNS: tuple[str, ...] = (
    "mse",
    "smse",
    "r2",
    "mae",
    "accuracy",
    "acc1",
    "acc2",
    "mirex",
    "key_mode_accuracy",
    "variance",
    "n",
    "own_terms",
)

#: Targets that are classes, scored by accuracy against the majority class.
CLASS_TARGETS: tuple[str, ...] = ("key", "time_signature")
#: Targets whose standardized MSE and R^2 may be averaged.
CONTINUOUS_TARGETS: tuple[str, ...] = tuple(t for t in TARGETS if t not in CLASS_TARGETS)

#: Pitch-class names as ``mir_eval.key`` spells them (Spotify's key 0 = C).
_PITCHES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

#: The octave errors, by name: the multiples of the reference tempo (double, half, triple,
#: third) that Acc2 forgives and Acc1 does not.
TEMPO_MULTIPLES: dict[str, float] = {"x2": 2.0, "x1/2": 0.5, "x3": 3.0, "x1/3": 1.0 / 3.0}
#: Tempo multiples accepted by Acc2 (Gouyon et al. 2006): the reference itself and
#: :data:`TEMPO_MULTIPLES`.
TEMPO_FACTORS: tuple[float, ...] = (1.0, *TEMPO_MULTIPLES.values())

_TEMPO_TOL = 0.04
_ACCURACY_TARGETS = CLASS_TARGETS


# --------------------------------------------------------------------------------------------
# input handling


def _finite_1d(values, *, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; metrics need finite values")
    return arr


def _pair(ref, est) -> tuple[np.ndarray, np.ndarray]:
    ref_arr = _finite_1d(ref, name="ref")
    est_arr = _finite_1d(est, name="est")
    if ref_arr.shape != est_arr.shape:
        raise ValueError(f"ref and est differ in length: {ref_arr.size} != {est_arr.size}")
    return ref_arr, est_arr


def as_matrix(y, *, targets: Sequence[str], name: str, labels: bool = False) -> np.ndarray:
    """Return ``y`` as a float64 array [n, len(targets)] in ``targets`` order: finite, or with
    ``labels`` finite or NaN (a missing label: partial labels are data; infinities never are)."""
    targets = list(targets)
    if isinstance(y, pd.DataFrame):
        missing = [t for t in targets if t not in y.columns]
        if missing:
            raise ValueError(f"{name} lacks target columns {missing}")
        arr = y[targets].to_numpy(dtype=np.float64)
    else:
        arr = np.asarray(y, dtype=np.float64)
        if arr.ndim == 1 and len(targets) == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2 or arr.shape[1] != len(targets):
            raise ValueError(
                f"{name} must have shape [n, {len(targets)}] (one column per target in "
                f"{tuple(targets)}), got {arr.shape}"
            )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if labels:
        if np.any(np.isinf(arr)):
            raise ValueError(f"{name} contains inf; a missing label is NaN")
    elif not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; metrics need finite values")
    return arr


def prediction_matrix(df: pd.DataFrame, prefix: str = "pred_") -> np.ndarray:
    """``[n, 11]`` columns ``<prefix><target>`` of a model's saved predictions frame
    (``pred_<target>`` its predictions, ``true_<target>`` the labels)."""
    return df[[f"{prefix}{t}" for t in TARGETS]].to_numpy(dtype=np.float64)


def _column(arr: np.ndarray, j: int) -> np.ndarray:
    # Contiguous copy, so the column mean is computed the same way everywhere (exact baseline).
    return np.ascontiguousarray(arr[:, j])


def _labelled(arr: np.ndarray, j: int) -> np.ndarray:
    """Column ``j``'s labelled (finite) values, a contiguous copy."""
    col = _column(arr, j)
    return col[np.isfinite(col)]


def _mean_or_nan(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def _mse(ref: np.ndarray, est) -> float:
    return float(np.mean((ref - est) ** 2))


def _round_half_up(values: np.ndarray) -> np.ndarray:
    """Nearest integer, halves up (11.5 -> 12, -0.5 -> 0), exact for every finite float.

    ``floor(x + 0.5)`` is not: the sum rounds, so 0.49999999999999994 gives 1 and odd
    integers above 2**52 gain 1. ``x - floor(x)`` is exact, and so is its comparison with 0.5.
    """
    low = np.floor(values)
    return low + (values - low >= 0.5)


def key_class(est) -> np.ndarray:
    """The pitch class a real-valued key estimate stands for: rounded to the nearest integer
    (halves up: 11.5 -> 12), modulo 12 (negative estimates wrap: -0.6 -> -1 -> 11)."""
    return np.mod(_round_half_up(np.asarray(est, dtype=np.float64)), 12.0)


def meter_class(est) -> np.ndarray:
    """The meter a real-valued time-signature estimate stands for: rounded to the nearest
    integer (halves up: 4.5 -> 5) and clipped to Spotify's documented 3..7."""
    low, high = VALID_RANGES["time_signature"]
    return np.clip(_round_half_up(np.asarray(est, dtype=np.float64)), low, high)


def _check_integer_labels(ref: np.ndarray, *, target: str) -> None:
    low, high = VALID_RANGES[target]
    bad = (ref != np.round(ref)) | (ref < low) | (ref > high)
    if np.any(bad):
        examples = np.unique(ref[bad])[:5].tolist()
        raise ValueError(
            f"{target} reference labels must be integers in {low:g}..{high:g} "
            f"(audioreg.targets.VALID_RANGES); found {examples}. Drop invalid rows at ingest."
        )


# --------------------------------------------------------------------------------------------
# tempo


def _within(scaled_ref: np.ndarray, est: np.ndarray, tol: float) -> np.ndarray:
    return np.abs(est - scaled_ref) <= tol * scaled_ref


def _check_tempo(ref: np.ndarray, tol: float) -> None:
    if not (tol >= 0):
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if np.any(ref <= 0):
        raise ValueError(
            "tempo reference must be > 0 BPM (Spotify's 0 means 'no beat detected' and is not "
            "a label); drop those rows at ingest"
        )


def tempo_hits1(ref, est, *, tol: float = _TEMPO_TOL) -> np.ndarray:
    """Per-track Acc1 hits: the estimate is within ``tol`` of the reference tempo.

    Parameters
    ----------
    ref : array_like [shape=(n,)]
        Reference tempi in BPM, all > 0.
    est : array_like [shape=(n,)]
        Estimated tempi in BPM.
    tol : float
        Relative tolerance; 0.04 (4 %) is the convention of Gouyon et al. (2006).

    Returns
    -------
    hits : np.ndarray [shape=(n,), dtype=bool]
        ``|est - ref| <= tol * ref``.
    """
    ref_arr, est_arr = _pair(ref, est)
    _check_tempo(ref_arr, tol)
    return _within(ref_arr, est_arr, tol)


def tempo_hits2(ref, est, *, tol: float = _TEMPO_TOL) -> np.ndarray:
    """Per-track Acc2 hits: Acc1 "up to octave errors" (Gouyon et al., 2006).

    The estimate counts as correct when it is within ``tol`` of the reference times any of
    :data:`TEMPO_FACTORS` = {1, 2, 3, 1/2, 1/3}; the tolerance is relative to the scaled
    reference (``|est - f * ref| <= tol * f * ref``). Factors 3 and 1/3 are included, as is
    standard for Acc2, so the name "octave errors" is loose: triple-meter confusions also pass.

    Parameters
    ----------
    ref : array_like [shape=(n,)]
        Reference tempi in BPM, all > 0.
    est : array_like [shape=(n,)]
        Estimated tempi in BPM.
    tol : float
        Relative tolerance (default 4 %).

    Returns
    -------
    hits : np.ndarray [shape=(n,), dtype=bool]
        A superset of :func:`tempo_hits1`.

    References
    ----------
    F. Gouyon, A. Klapuri, S. Dixon, M. Alonso, G. Tzanetakis, C. Uhle and P. Cano, "An
    experimental comparison of audio tempo induction algorithms", IEEE Trans. Audio, Speech
    and Language Processing 14(5), 2006.
    """
    ref_arr, est_arr = _pair(ref, est)
    _check_tempo(ref_arr, tol)
    hits = np.zeros(ref_arr.shape, dtype=bool)
    for factor in TEMPO_FACTORS:
        hits |= _within(factor * ref_arr, est_arr, tol)
    return hits


def tempo_error_classes(true, pred, *, tol: float = _TEMPO_TOL) -> np.ndarray:
    """Each track's tempo estimate as ``"correct"`` (within ``tol`` of the true tempo: Acc1),
    an octave error named in :data:`TEMPO_MULTIPLES` (within ``tol`` of that multiple of it:
    what Acc2 also accepts) or ``"other"``; ``""`` where the label or the estimate is missing."""
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    out = np.full(true.shape, "", dtype=object)
    ok = np.isfinite(true) & np.isfinite(pred) & (true > 0)
    out[ok] = "other"
    for name, factor in [("correct", 1.0), *TEMPO_MULTIPLES.items()][::-1]:  # "correct" last: it wins
        out[ok & _within(factor * true, pred, tol)] = name
    return out


def tempo_acc1(ref, est, *, tol: float = _TEMPO_TOL) -> float:
    """Fraction of tracks whose tempo estimate is within ``tol`` (4 %) of the reference.

    See :func:`tempo_hits1`.

    Returns
    -------
    acc1 : float
        In [0, 1].
    """
    return float(np.mean(tempo_hits1(ref, est, tol=tol)))


def tempo_acc2(ref, est, *, tol: float = _TEMPO_TOL) -> float:
    """Fraction of tracks within ``tol`` of the reference up to octave errors (x2, x3, /2, /3).

    See :func:`tempo_hits2` (Gouyon et al., 2006). Always ``>= tempo_acc1``.

    Returns
    -------
    acc2 : float
        In [0, 1].
    """
    return float(np.mean(tempo_hits2(ref, est, tol=tol)))


# --------------------------------------------------------------------------------------------
# key and time signature


def key_hits(ref, est) -> np.ndarray:
    """Per-track key hits: ``est`` rounded to the nearest integer, modulo 12, equals ``ref``.

    Halves round up (11.5 -> 12 -> 0). Negative estimates wrap (-0.6 -> -1 -> 11).

    Parameters
    ----------
    ref : array_like [shape=(n,)]
        Reference pitch class of the tonic, integers 0..11 (C = 0). Spotify's -1 ("no key")
        is not a label and raises ``ValueError``.
    est : array_like [shape=(n,)]
        Real-valued estimates (a regressor's output).

    Returns
    -------
    hits : np.ndarray [shape=(n,), dtype=bool]
    """
    ref_arr, est_arr = _pair(ref, est)
    _check_integer_labels(ref_arr, target="key")
    return key_class(est_arr) == ref_arr


def key_accuracy(ref, est) -> float:
    """Fraction of tracks whose rounded key estimate (mod 12) equals the reference.

    See :func:`key_hits`. No credit for relative/parallel keys or fifths: exact pitch class only.

    Returns
    -------
    accuracy : float
        In [0, 1].
    """
    return float(np.mean(key_hits(ref, est)))


def key_names(key, mode) -> list[str]:
    """``"C major"``-style names (``mir_eval.key``'s) of pitch classes 0..11 and modes (1 major, 0 minor)."""
    return [f"{_PITCHES[int(k) % 12]} {'major' if int(m) == 1 else 'minor'}" for k, m in zip(key, mode)]


def _mirex_table() -> np.ndarray:
    """``[24, 24]`` MIREX weighted scores, indexed ``mode * 12 + key`` (reference, estimate)."""
    global _MIREX
    if _MIREX is None:
        import mir_eval

        names = key_names([k for _ in (0, 1) for k in range(12)], [m for m in (0, 1) for _ in range(12)])
        _MIREX = np.array([[mir_eval.key.weighted_score(r, e) for e in names] for r in names])
    return _MIREX


_MIREX: np.ndarray | None = None


def mirex_key_scores(ref_key, ref_mode, est_key, est_mode) -> np.ndarray:
    """Per-track MIREX weighted key score (``mir_eval.key.weighted_score``): 1 for the same key
    and mode, 0.5 a fifth away, 0.3 the relative key, 0.2 the parallel key, else 0.

    Parameters
    ----------
    ref_key, ref_mode : array_like [shape=(n,)]
        Reference tonic (0..11) and mode (1 major, 0 minor).
    est_key : array_like [shape=(n,)]
        Estimates, rounded to the nearest integer modulo 12 as :func:`key_hits` does (so
        11.7 is C, wrap-around kept).
    est_mode : array_like [shape=(n,)] or scalar
        Estimated mode; a model without one predicts the training part's majority mode.
    """
    ref_arr, est_arr = _pair(ref_key, est_key)
    _check_integer_labels(ref_arr, target="key")
    est_pc = key_class(est_arr).astype(int)
    ref_m = np.asarray(ref_mode, dtype=np.float64).reshape(-1)
    est_m = np.broadcast_to(np.asarray(est_mode, dtype=np.float64), ref_arr.shape)
    if ref_m.shape != ref_arr.shape or not np.all(np.isin(ref_m, (0.0, 1.0))) or not np.all(np.isin(est_m, (0.0, 1.0))):
        raise ValueError("modes must be 0 (minor) or 1 (major), one per track")
    table = _mirex_table()
    return table[ref_m.astype(int) * 12 + ref_arr.astype(int), est_m.astype(int) * 12 + est_pc]


def time_signature_hits(ref, est) -> np.ndarray:
    """Per-track meter hits: ``est`` rounded to the nearest integer and clipped to 3..7 equals ``ref``.

    Halves round up (4.5 -> 5).

    Parameters
    ----------
    ref : array_like [shape=(n,)]
        Reference beats per bar, integers 3..7 (Spotify's documented range).
    est : array_like [shape=(n,)]
        Real-valued estimates.

    Returns
    -------
    hits : np.ndarray [shape=(n,), dtype=bool]
    """
    ref_arr, est_arr = _pair(ref, est)
    _check_integer_labels(ref_arr, target="time_signature")
    return meter_class(est_arr) == ref_arr


def time_signature_accuracy(ref, est) -> float:
    """Fraction of tracks whose rounded, clipped (3..7) meter estimate equals the reference.

    See :func:`time_signature_hits`. Most tracks are in 4/4, so compare against the baseline.

    Returns
    -------
    accuracy : float
        In [0, 1].
    """
    return float(np.mean(time_signature_hits(ref, est)))


# --------------------------------------------------------------------------------------------
# per-target table


def _pct(fraction: float) -> str:
    return f"{100.0 * fraction:.0f} %"


def _own_terms(target: str, row: Mapping[str, float]) -> str:
    if not row["n"]:
        return "not scored (no labelled row, or not predicted)"
    if target == "tempo":
        return f"MAE {row['mae']:.1f} BPM · Acc1 {_pct(row['acc1'])} · Acc2 {_pct(row['acc2'])}"
    if target == "loudness":
        return f"MAE {row['mae']:.1f} dB"
    if target == "key":
        mirex = "" if math.isnan(row["mirex"]) else f" · MIREX {row['mirex']:.2f}"
        return f"tonic {_pct(row['accuracy'])}{mirex}"
    if target in _ACCURACY_TARGETS:
        return f"accuracy {_pct(row['accuracy'])}"
    if math.isnan(row["r2"]):
        return "R^2 n/a (constant training labels)"
    return f"R^2 {row['r2']:.2f}"


#: Per-track scores of :func:`row_scores`; each column of :func:`per_target` but ``r2``,
#: ``variance`` and ``own_terms`` is their mean.
ROW_METRICS: tuple[str, ...] = ("mse", "smse", "mae", "accuracy", "acc1", "acc2", "mirex", "key_mode_accuracy")


def _variances(y_train: np.ndarray) -> np.ndarray:
    """Each column's population variance over its labelled rows (NaN with none)."""
    out = []
    for j in range(y_train.shape[1]):
        col = _labelled(y_train, j)
        out.append(_mse(col, col.mean()) if col.size else math.nan)
    return np.array(out, dtype=np.float64)


def row_scores(y_true, y_pred, *, y_train=None, targets: Sequence[str] = TARGETS,
               mode_true=None, mode_pred=None) -> dict[str, np.ndarray]:
    """Per-track, per-target scores whose means are :func:`per_target`'s columns.

    Returns ``{metric: array [n, k]}`` for :data:`ROW_METRICS` (NaN where a metric does not
    apply to a target), plus ``"variance"`` [k], the denominator of ``smse``: the training
    part's population variance when ``y_train`` is given, else ``y_true``'s (NaN for a
    constant column). ``mirex`` and ``key_mode_accuracy`` need ``mode_true`` and
    ``mode_pred`` (see :func:`mirex_key_scores`).

    Partial labels: a NaN in ``y_true`` (and ``y_train``) is a missing label; that row gets NaN
    scores for that target and the others are scored as usual (a row without a mode has no
    MIREX score). A model that could not be trained for a target predicts NaN on every row of
    it: that target is not scored for it. A NaN prediction for some labelled rows only is an
    error.
    """
    targets = tuple(targets)
    if len(set(targets)) != len(targets):
        raise ValueError(f"duplicate target names in {targets}")
    true = as_matrix(y_true, targets=targets, name="y_true", labels=True)
    pred = as_matrix(y_pred, targets=targets, name="y_pred", labels=True)
    if true.shape[0] != pred.shape[0]:
        raise ValueError(f"y_true has {true.shape[0]} rows but y_pred has {pred.shape[0]}")
    train = true if y_train is None else as_matrix(y_train, targets=targets, name="y_train", labels=True)
    variance = _variances(train)
    constant = np.array([bool(col.size and np.all(col == col[0])) for col in (_labelled(train, j) for j in range(len(targets)))])
    variance = np.where(constant | (variance == 0.0), np.nan, variance)
    n, k = true.shape
    out = {m: np.full((n, k), np.nan) for m in ROW_METRICS}
    out["variance"] = variance
    modes = None if mode_true is None or mode_pred is None else (
        np.asarray(mode_true, dtype=np.float64).reshape(-1),
        np.broadcast_to(np.asarray(mode_pred, dtype=np.float64), (n,)))
    for j, target in enumerate(targets):
        ref, est = _column(true, j), _column(pred, j)
        rows = np.isfinite(ref)
        missing = rows & np.isnan(est)
        if not rows.any() or missing[rows].all():
            continue  # no label, or no prediction (a target the model was not trained on)
        if missing.any():
            raise ValueError(f"y_pred has NaN for {target} on {int(missing.sum())} of its {int(rows.sum())} labelled rows")
        if not rows.all():
            ref, est = ref[rows], est[rows]
        out["mse"][rows, j] = (ref - est) ** 2
        out["smse"][rows, j] = out["mse"][rows, j] / variance[j]
        out["mae"][rows, j] = np.abs(ref - est)
        if target == "tempo":
            out["acc1"][rows, j] = tempo_hits1(ref, est)
            out["acc2"][rows, j] = tempo_hits2(ref, est)
        elif target == "key":
            out["accuracy"][rows, j] = key_hits(ref, est)
            if modes is not None:
                with_mode = rows & np.isfinite(modes[0]) & np.isfinite(modes[1])
                if with_mode.any():
                    mirex = mirex_key_scores(_column(true, j)[with_mode], modes[0][with_mode],
                                             _column(pred, j)[with_mode], modes[1][with_mode])
                    out["mirex"][with_mode, j] = mirex
                    out["key_mode_accuracy"][with_mode, j] = mirex == 1.0
        elif target == "time_signature":
            out["accuracy"][rows, j] = time_signature_hits(ref, est)
    return out


def per_target(y_true, y_pred, *, y_train=None, targets: Sequence[str] = TARGETS,
               mode_true=None, mode_pred=None) -> pd.DataFrame:
    """Score one model on every target, in raw units and in the target's own terms.

    Parameters
    ----------
    y_true, y_pred : np.ndarray [shape=(n, k)] or pandas.DataFrame
        Reference and predicted targets. Arrays have one column per entry of ``targets``, in
        that order; DataFrames are indexed by column name. A missing label is NaN in
        ``y_true``; a model predicts every row of a target or none of them (NaN: not trained).
    y_train : np.ndarray [shape=(m, k)] or pandas.DataFrame or None
        The training part's targets: their variance is the denominator of ``smse`` and
        ``r2``, fixed before the test part is seen. None: ``y_true``'s variance (then
        predicting the mean of ``y_true`` scores exactly 1).
    targets : sequence of str
        Target names, ``k`` of them (default :data:`audioreg.targets.TARGETS`). ``"tempo"``,
        ``"loudness"``, ``"key"`` and ``"time_signature"`` get their own terms; any other
        name is scored by R^2.
    mode_true, mode_pred : array_like [shape=(n,)] or scalar, or None
        Reference and predicted modes (1 major, 0 minor), for the MIREX key score.

    Returns
    -------
    table : pandas.DataFrame [shape=(k, 11)]
        Indexed by ``target`` (in ``targets`` order) with columns :data:`METRIC_COLUMNS`:

        ``mse``
            Mean squared error in raw units (BPM^2 for tempo, dB^2 for loudness, ...).
        ``smse``
            ``mse`` divided by ``variance``; lower is better. NaN when that variance is 0.
        ``r2``
            ``1 - smse``: > 0 is closer than the training part's spread around its mean.
        ``mae``
            Mean absolute error in raw units.
        ``accuracy``
            ``key`` (tonic, rounded modulo 12: 11.7 is C) and ``time_signature`` only
            (:func:`key_accuracy`, :func:`time_signature_accuracy`); NaN elsewhere.
        ``acc1``, ``acc2``
            ``tempo`` only (:func:`tempo_acc1`, :func:`tempo_acc2`); NaN elsewhere.
        ``mirex``, ``key_mode_accuracy``
            ``key`` only, with modes given: mean MIREX weighted score and the share of exact
            key + mode (:func:`mirex_key_scores`).
        ``variance``
            The denominator of ``smse``: the training part's variance (or ``y_true``'s).
        ``n``
            The rows scored: those with a label for the target (partial labels are data: a
            missing label, NaN in ``y_true``, leaves its row out of that target's scores only);
            0 when none is labelled or the model does not predict the target (its scores NaN).
        ``own_terms``
            A readable summary, e.g. ``"MAE 12.3 BPM · Acc1 41 % · Acc2 63 %"``,
            ``"MAE 2.1 dB"``, ``"tonic 35 % · MIREX 0.48"``, ``"R^2 0.42"``.

    Raises
    ------
    ValueError
        On shape mismatches, missing columns, non-finite values, or invalid reference labels
        (tempo <= 0, key outside 0..11, time signature outside 3..7).
    """
    targets = tuple(targets)
    scores = row_scores(y_true, y_pred, y_train=y_train, targets=targets, mode_true=mode_true, mode_pred=mode_pred)
    rows = []
    for j, target in enumerate(targets):
        row = {m: _mean_or_nan(_labelled(scores[m], j)) for m in ROW_METRICS}
        row["variance"] = float(scores["variance"][j])
        row["smse"] = row["mse"] / row["variance"]  # exact: the mean baseline of the same rows gives 1
        row["r2"] = 1.0 - row["smse"]
        row["n"] = int(np.isfinite(scores["mse"][:, j]).sum())
        row["own_terms"] = _own_terms(target, row)
        rows.append(row)
    table = pd.DataFrame(rows, index=pd.Index(targets, name="target"), columns=METRIC_COLUMNS)
    numeric = list(METRIC_COLUMNS[:-1])
    table[numeric] = table[numeric].astype(np.float64)
    return table


def mean_baseline(y_train, n: int, *, targets: Sequence[str] = TARGETS) -> np.ndarray:
    """The baseline: the training mean of every continuous target, the training part's
    majority class of key and time signature (:data:`CLASS_TARGETS`), for ``n`` rows.

    Parameters
    ----------
    y_train : np.ndarray [shape=(m, k)] or pandas.DataFrame
        Training targets (same conventions as :func:`per_target`).
    n : int
        Number of rows to predict (the size of the evaluation set).
    targets : sequence of str
        Target names, ``k`` of them.

    Returns
    -------
    y_pred : np.ndarray [shape=(n, k)]
        Every row equals the column means (or majority classes, the smallest on a tie) of
        ``y_train`` over its labelled rows (NaN for a target without any: nothing to predict).
        ``per_target(y, mean_baseline(y, len(y)), y_train=y)`` gives ``smse == 1`` exactly for
        every non-constant continuous target.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    targets = tuple(targets)
    train = as_matrix(y_train, targets=targets, name="y_train", labels=True)
    means = np.array([_mean_or_nan(_labelled(train, j)) for j in range(len(targets))], dtype=np.float64)
    for j, target in enumerate(targets):
        if target in CLASS_TARGETS:
            means[j] = majority(_column(train, j))
    return np.tile(means, (n, 1))


def majority(values) -> float:
    """The most frequent value (the smallest on a tie; missing values, NaN, not counted): the
    majority-class baseline. NaN when no value is given."""
    values = np.asarray(values, dtype=np.float64)
    uniq, counts = np.unique(values[np.isfinite(values)], return_counts=True)
    return float(uniq[np.argmax(counts)]) if uniq.size else math.nan


def model_modes(models, *, mode_true, mode_train, mode_preds: Mapping[str, object] | None = None) -> dict:
    """Each model's mode predictions for the MIREX key score: its own (``mode_preds``; a missing
    value, NaN, is filled with the training majority) or, for a model that predicts no mode, the
    training part's majority mode. Empty when the modes are unknown."""
    if mode_true is None or mode_train is None:
        return {}
    fallback = majority(mode_train)
    if math.isnan(fallback):  # no training row has a mode
        return {}
    out = {}
    for m in models:
        own = (mode_preds or {}).get(m)
        own = None if own is None else np.asarray(own, dtype=np.float64)
        out[m] = fallback if own is None else np.where(np.isfinite(own), own, fallback)
    return out


def compare_models(
    y_true,
    predictions: Mapping[str, object],
    *,
    y_train,
    targets: Sequence[str] = TARGETS,
    mode_true=None,
    mode_train=None,
    mode_preds: Mapping[str, object] | None = None,
    require_baseline: bool = True,
) -> pd.DataFrame:
    """Score several models on the same evaluation set.

    Parameters
    ----------
    y_true : np.ndarray [shape=(n, k)] or pandas.DataFrame
        Reference targets.
    predictions : mapping of str to np.ndarray [shape=(n, k)] or pandas.DataFrame
        Predictions per model name, in display order. Include the baseline under
        :data:`BASELINE_NAME` (``"mean baseline"``), e.g.
        ``{"mean baseline": mean_baseline(y_train, len(y_test)), "rf": rf.predict(X_test)}``.
    y_train : np.ndarray [shape=(m, k)] or pandas.DataFrame
        The training part's targets: the fixed denominator of ``smse`` and ``r2``.
    targets : sequence of str
        Target names (default :data:`audioreg.targets.TARGETS`).
    mode_true, mode_train : array_like or None
        The evaluation rows' modes and the training part's (for the MIREX key score).
    mode_preds : mapping of str to array_like, or None
        The modes a model predicts, by model name; a model without one is scored with the
        training majority mode (:func:`model_modes`).
    require_baseline : bool
        When True (the default), raise ``ValueError`` if ``"mean baseline"`` is missing:
        the project never shows a model without its baseline.

    Returns
    -------
    table : pandas.DataFrame
        The :func:`per_target` columns with a (``model``, ``target``) MultiIndex.
    """
    if not predictions:
        raise ValueError("predictions is empty")
    if require_baseline and BASELINE_NAME not in predictions:
        raise ValueError(
            f"predictions must include the {BASELINE_NAME!r} (mean_baseline(y_train, n)); "
            "pass require_baseline=False to score models without it"
        )
    modes = model_modes(predictions, mode_true=mode_true, mode_train=mode_train, mode_preds=mode_preds)
    tables = [per_target(y_true, pred, y_train=y_train, targets=targets, mode_true=mode_true, mode_pred=modes.get(m))
              for m, pred in predictions.items()]
    return pd.concat(tables, keys=list(predictions), names=["model", "target"])


# --------------------------------------------------------------------------------------------
# summaries and export


def by_model(table: pd.DataFrame, *, model: str = "model") -> pd.DataFrame:
    """Return ``table`` with a (model, target) MultiIndex; a single-model table gets ``model``."""
    if isinstance(table.index, pd.MultiIndex):
        if table.index.nlevels != 2:
            raise ValueError("expected a (model, target) index")
        return table
    return pd.concat([table], keys=[model], names=["model", table.index.name or "target"])


def _models(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table.index.get_level_values(0)))


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model: the fair cross-target average and the raw one with tempo's share.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`compare_models` (or of :func:`per_target`, treated as one model
        named ``"model"``).

    Returns
    -------
    summary : pandas.DataFrame
        Indexed by ``model`` (table order) with columns:

        ``mean_smse``
            Mean standardized MSE over the continuous targets (:data:`CONTINUOUS_TARGETS`;
            unit-free, so fair to average; the denominators are the training part's
            variances; lower is better). Targets with NaN sMSE are skipped.
        ``mean_raw_mse``
            Mean of the raw per-target MSEs, the number the field quotes. Dominated by tempo
            (BPM^2): never quote it without ``tempo_share_of_raw_mse``.
        ``tempo_share_of_raw_mse``
            Tempo's MSE divided by the summed raw MSE (NaN if tempo is not scored or the sum
            is 0).
        ``n_targets``
            Number of targets scored (whether a model beats the baseline on each, with its
            interval, is :func:`audioreg.judge.uncertainty.verdicts`).
    """
    table = by_model(table)
    rows = {}
    for model in _models(table):
        scores = table.xs(model, level=0)
        total = float(scores["mse"].sum())
        tempo = float(scores.loc["tempo", "mse"]) if "tempo" in scores.index else math.nan
        continuous = scores.loc[[t for t in scores.index if t not in CLASS_TARGETS], "smse"]
        rows[model] = {
            "mean_smse": float(continuous.mean()),
            "mean_raw_mse": float(scores["mse"].mean()),
            "tempo_share_of_raw_mse": tempo / total if total > 0 else math.nan,
            "n_targets": int(len(scores)),
        }
    summary = pd.DataFrame.from_dict(rows, orient="index")
    summary.index.name = "model"
    return summary


def _join_and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def raw_mse_caveat(table: pd.DataFrame) -> str:
    """One sentence to print beside any averaged raw MSE: how much of it is tempo.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`compare_models` or :func:`per_target`.

    Returns
    -------
    sentence : str
        E.g. "Averaged raw MSE is 812.4, of which tempo contributes 99.7 % — it measures
        tempo, not the other targets; use standardized MSE to compare across targets."
    """
    summary = summarize(table)
    several = len(summary) > 1

    def label(model: str) -> str:
        return f" ({model})" if several else ""

    raw = ", ".join(f"{row.mean_raw_mse:.4g}{label(m)}" for m, row in summary.iterrows())
    shares = summary["tempo_share_of_raw_mse"]
    if shares.isna().all():
        return (
            f"Averaged raw MSE is {raw}; it weighs each target by the square of its units, "
            "so use standardized MSE to compare across targets."
        )
    pct = _join_and([f"{100.0 * s:.1f} %" for s in shares])
    respectively = " respectively" if several else ""
    return (
        f"Averaged raw MSE is {raw}, of which tempo contributes {pct}{respectively} — it "
        "measures tempo, not the other targets; use standardized MSE to compare across targets."
    )


def _json_value(value):
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def to_json_dict(table: pd.DataFrame) -> dict[str, dict[str, dict[str, object]]]:
    """Nest a metrics table as ``{model: {target: {metric: value}}}`` for ``metrics.json``.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`compare_models` (or :func:`per_target`, stored under ``"model"``).

    Returns
    -------
    nested : dict
        Plain Python types; NaN and inf become ``None``, so
        ``json.dumps(nested, allow_nan=False)`` succeeds.
    """
    table = by_model(table)
    nested: dict[str, dict[str, dict[str, object]]] = {}
    for (model, target), row in table.iterrows():
        nested.setdefault(str(model), {})[str(target)] = {
            str(column): _json_value(value) for column, value in row.items()
        }
    return nested
