"""Tests for audioreg.judge.metrics: closed-form cases and properties."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from audioreg.judge import metrics
from audioreg.targets import TARGETS
from conftest import random_labels

TEMPO = TARGETS.index("tempo")
KEY = TARGETS.index("key")
METER = TARGETS.index("time_signature")


def _labels(n: int, *, seed: int) -> np.ndarray:
    return random_labels(n, seed=seed)


@pytest.fixture
def y_true() -> np.ndarray:
    return _labels(60, seed=0)


@pytest.fixture
def y_noisy(y_true) -> np.ndarray:
    rng = np.random.default_rng(1)
    return y_true + rng.normal(0.0, 0.5, y_true.shape) * y_true.std(axis=0)


# ---------------------------------------------------------------------------------------------
# per_target


def test_perfect_prediction_scores_perfectly(y_true):
    table = metrics.per_target(y_true, y_true)
    assert (table["mse"] == 0).all()
    assert (table["mae"] == 0).all()
    assert (table["smse"] == 0).all()
    assert (table["r2"] == 1).all()
    assert table.loc["key", "accuracy"] == 1
    assert table.loc["time_signature", "accuracy"] == 1
    assert table.loc["tempo", "acc1"] == 1
    assert table.loc["tempo", "acc2"] == 1


def test_the_baseline_of_the_same_rows_gives_smse_exactly_one_on_continuous_targets(y_true):
    baseline = metrics.mean_baseline(y_true, len(y_true))
    table = metrics.per_target(y_true, baseline, y_train=y_true)
    continuous = list(metrics.CONTINUOUS_TARGETS)
    assert table.loc[continuous, "smse"].tolist() == [1.0] * len(continuous)
    assert table.loc[continuous, "r2"].tolist() == [0.0] * len(continuous)


def test_smse_divides_by_the_training_variance_not_the_test_one():
    """The denominator is fixed before the test part is seen: a test part with little spread
    does not make a good model look worse than the mean."""
    train = np.array([[0.0], [1.0], [0.0], [1.0]])  # variance 0.25
    test, pred = np.array([[0.5], [0.6]]), np.array([[0.55], [0.55]])  # test variance 0.0025
    table = metrics.per_target(test, pred, y_train=train, targets=("speechiness",))
    assert table.loc["speechiness", "variance"] == 0.25
    assert table.loc["speechiness", "smse"] == pytest.approx(0.0025 / 0.25)
    assert metrics.per_target(test, pred, targets=("speechiness",)).loc["speechiness", "smse"] == pytest.approx(1.0)


def test_the_baseline_predicts_the_majority_class_of_key_and_time_signature():
    train = np.array([[4.0, 2.0, 0.5], [4.0, 7.0, 0.7], [3.0, 7.0, 0.3]])
    base = metrics.mean_baseline(train, 2, targets=("time_signature", "key", "energy"))
    np.testing.assert_array_equal(base, [[4.0, 7.0, 0.5], [4.0, 7.0, 0.5]])


def test_key_wraps_around_and_the_mirex_score_credits_related_keys():
    ref = np.array([0.0, 0.0, 0.0, 0.0, 0.0])
    est = np.array([11.7, 7.0, 9.0, 0.2, 6.0])  # C (wrapped), G (a fifth), A, C, F#
    ref_mode, est_mode = np.array([1, 1, 1, 1, 1]), np.array([1, 1, 0, 0, 1])
    np.testing.assert_array_equal(metrics.key_hits(ref, est), [True, False, False, True, False])
    # same key; fifth; relative minor (A minor of C major); parallel (C minor); unrelated
    np.testing.assert_allclose(metrics.mirex_key_scores(ref, ref_mode, est, est_mode), [1.0, 0.5, 0.3, 0.2, 0.0])
    from audioreg.targets import clip_to_valid

    wrapped = clip_to_valid(np.tile([0.5, 0.5, 0.5, 100.0, 0.5, 0.5, 0.5, 0.5, -8.0, 4.0, 11.7], (1, 1)))
    assert wrapped[0, list(TARGETS).index("key")] == pytest.approx(11.7)  # wrapped, not clipped to 11
    table = metrics.per_target(np.array([[0.0]]), np.array([[11.7]]), targets=("key",), mode_true=[1], mode_pred=1)
    assert table.loc["key", "accuracy"] == 1.0 and table.loc["key", "mirex"] == 1.0


def test_table_layout_and_where_metrics_apply(y_true, y_noisy):
    table = metrics.per_target(y_true, y_noisy)
    assert tuple(table.index) == TARGETS
    assert table.index.name == "target"
    assert tuple(table.columns) == metrics.METRIC_COLUMNS
    assert set(table.index[table["accuracy"].notna()]) == {"key", "time_signature"}
    assert set(table.index[table["acc1"].notna()]) == {"tempo"}
    assert set(table.index[table["acc2"].notna()]) == {"tempo"}
    assert table[["mse", "smse", "r2", "mae"]].notna().all().all()


def test_target_order_follows_targets_argument(y_true, y_noisy):
    order = tuple(reversed(TARGETS))
    table = metrics.per_target(y_true[:, ::-1], y_noisy[:, ::-1], targets=order)
    assert tuple(table.index) == order
    pd.testing.assert_frame_equal(
        table.loc[list(TARGETS)], metrics.per_target(y_true, y_noisy), check_names=False
    )


def test_agrees_with_scikit_learn(y_true, y_noisy):
    table = metrics.per_target(y_true, y_noisy)
    mse = mean_squared_error(y_true, y_noisy, multioutput="raw_values")
    mae = mean_absolute_error(y_true, y_noisy, multioutput="raw_values")
    r2 = r2_score(y_true, y_noisy, multioutput="raw_values")
    np.testing.assert_allclose(table["mse"], mse, rtol=1e-12)
    np.testing.assert_allclose(table["mae"], mae, rtol=1e-12)
    np.testing.assert_allclose(table["r2"], r2, rtol=1e-10)
    np.testing.assert_allclose(table["smse"], 1 - r2, rtol=1e-10)


def test_dataframes_are_matched_by_column_name(y_true, y_noisy):
    shuffled = list(TARGETS[::2]) + list(TARGETS[1::2])
    true_df = pd.DataFrame(y_true, columns=list(TARGETS))[shuffled].assign(track_id="x")
    from_frames = metrics.per_target(true_df, pd.DataFrame(y_noisy, columns=list(TARGETS)))
    pd.testing.assert_frame_equal(from_frames, metrics.per_target(y_true, y_noisy))


def test_constant_reference_has_nan_smse_and_r2():
    y = np.column_stack([np.full(5, 0.3), np.linspace(0, 1, 5)])
    table = metrics.per_target(y, y + 0.1, targets=("energy", "valence"))
    assert math.isnan(table.loc["energy", "smse"])
    assert math.isnan(table.loc["energy", "r2"])
    assert table.loc["energy", "mse"] == pytest.approx(0.01)
    assert "n/a" in table.loc["energy", "own_terms"]
    assert not math.isnan(table.loc["valence", "smse"])


def test_own_terms_strings():
    # columns: tempo, loudness, key, energy
    y_true = np.array(
        [
            [100.0, -10.0, 0.0, 0.0],
            [100.0, -12.0, 5.0, 0.5],
            [100.0, -14.0, 7.0, 1.0],
            [100.0, -16.0, 11.0, 1.0],
        ]
    )
    y_pred = np.array(
        [
            [100.0, -12.0, 0.2, 0.0],  # tempo exact
            [200.0, -14.0, 5.0, 0.5],  # tempo doubled: Acc2 only
            [110.0, -12.0, 2.0, 1.0],  # tempo 10 % off: neither
            [100.0, -18.0, 9.0, 0.5],
        ]
    )
    table = metrics.per_target(y_true, y_pred, targets=("tempo", "loudness", "key", "energy"))
    assert table.loc["tempo", "own_terms"] == "MAE 27.5 BPM · Acc1 50 % · Acc2 75 %"
    assert table.loc["loudness", "own_terms"] == "MAE 2.0 dB"
    assert table.loc["key", "own_terms"] == "tonic 50 %"
    r2 = r2_score(y_true[:, 3], y_pred[:, 3])
    assert table.loc["energy", "own_terms"] == f"R^2 {r2:.2f}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda y: y[:, :5], "shape"),
        (lambda y: y[:-1], "rows"),
        (lambda y: np.where(np.eye(*y.shape, dtype=bool), np.nan, y), "NaN for danceability on 1 of its"),
        (lambda y: np.where(np.eye(*y.shape, dtype=bool), np.inf, y), "inf"),
    ],
)
def test_bad_predictions_raise(y_true, change, message):
    with pytest.raises(ValueError, match=message):
        metrics.per_target(y_true, change(y_true.copy()))


def test_missing_dataframe_column_raises(y_true):
    frame = pd.DataFrame(y_true, columns=list(TARGETS)).drop(columns="key")
    with pytest.raises(ValueError, match="key"):
        metrics.per_target(frame, y_true)


# ---------------------------------------------------------------------------------------------
# tempo


@pytest.mark.parametrize("factor", [2.0, 0.5, 3.0, 1.0 / 3.0])
def test_tempo_octave_errors_fail_acc1_and_pass_acc2(factor):
    ref = np.array([60.0, 95.0, 120.0, 174.0])
    est = ref * factor
    assert metrics.tempo_acc1(ref, est) == 0.0
    assert metrics.tempo_acc2(ref, est) == 1.0


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_tempo_tolerance_is_four_percent(sign):
    ref = np.array([80.0, 120.0, 150.0])
    assert metrics.tempo_acc1(ref, ref * (1 + sign * 0.03)) == 1.0
    assert metrics.tempo_acc1(ref, ref * (1 + sign * 0.05)) == 0.0
    assert metrics.tempo_acc2(ref, ref * (1 + sign * 0.05)) == 0.0
    assert metrics.tempo_acc1(ref, ref * (1 + sign * 0.05), tol=0.06) == 1.0


def test_tempo_hits_are_per_track():
    ref = np.array([100.0, 100.0, 100.0, 100.0])
    est = np.array([102.0, 200.0, 150.0, 33.4])
    assert metrics.tempo_hits1(ref, est).tolist() == [True, False, False, False]
    assert metrics.tempo_hits2(ref, est).tolist() == [True, True, False, True]


def test_tempo_rejects_zero_reference():
    with pytest.raises(ValueError, match="no beat"):
        metrics.tempo_acc1([0.0, 120.0], [120.0, 120.0])


# ---------------------------------------------------------------------------------------------
# key and time signature


def test_key_rounds_to_nearest_pitch_class_mod_12():
    ref = np.array([0, 11, 11, 0, 1, 4])
    est = np.array([11.6, 11.4, -0.6, -0.4, 0.5, 4.49])
    assert metrics.key_hits(ref, est).tolist() == [True] * 6
    assert metrics.key_accuracy(ref, est) == 1.0
    assert metrics.key_accuracy([0, 5], [11.4, 5.6]) == 0.0


def test_key_rejects_no_key_label():
    with pytest.raises(ValueError, match="key"):
        metrics.key_accuracy([-1, 3], [3, 3])


def test_time_signature_rounds_and_clips_to_3_to_7():
    ref = np.array([5, 7, 3, 5, 4])
    est = np.array([5.4, 9.0, 2.2, 4.5, 4.49])
    assert metrics.time_signature_hits(ref, est).tolist() == [True] * 5
    assert metrics.time_signature_accuracy([4, 4], [5.6, 4.6]) == 0.0


def test_time_signature_rejects_labels_outside_3_to_7():
    with pytest.raises(ValueError, match="time_signature"):
        metrics.time_signature_accuracy([1, 4], [4, 4])


# ---------------------------------------------------------------------------------------------
# baseline, comparison, summaries


def test_mean_baseline_predicts_the_training_mean(y_true):
    train = y_true[:20]
    baseline = metrics.mean_baseline(train, 7)
    assert baseline.shape == (7, len(TARGETS))
    continuous = [i for i, t in enumerate(TARGETS) if t in metrics.CONTINUOUS_TARGETS]
    np.testing.assert_allclose(baseline[:, continuous], np.tile(train.mean(axis=0)[continuous], (7, 1)), rtol=1e-15)
    for t in metrics.CLASS_TARGETS:  # the majority class, not a mean no track has
        j = TARGETS.index(t)
        values, counts = np.unique(train[:, j], return_counts=True)
        assert (baseline[:, j] == values[np.argmax(counts)]).all()


def test_compare_models_stacks_per_target_tables(y_true, y_noisy):
    baseline = metrics.mean_baseline(y_true[:30], len(y_true))
    table = metrics.compare_models(
        y_true, {metrics.BASELINE_NAME: baseline, "noisy": y_noisy}, y_train=y_true[:30]
    )
    assert table.index.names == ["model", "target"]
    assert list(dict.fromkeys(table.index.get_level_values("model"))) == ["mean baseline", "noisy"]
    pd.testing.assert_frame_equal(
        table.loc["noisy"], metrics.per_target(y_true, y_noisy, y_train=y_true[:30]), check_names=False
    )


def test_compare_models_requires_the_baseline(y_true, y_noisy):
    with pytest.raises(ValueError, match="mean baseline"):
        metrics.compare_models(y_true, {"noisy": y_noisy}, y_train=y_true)
    table = metrics.compare_models(y_true, {"noisy": y_noisy}, y_train=y_true, require_baseline=False)
    assert len(table) == len(TARGETS)


@pytest.fixture
def two_target_table() -> pd.DataFrame:
    # energy: MSE 0.25, variance 0.25; tempo: MSE 100, variance 400.
    y_true = np.array([[0.0, 100.0], [1.0, 140.0]])
    y_pred = np.array([[0.5, 110.0], [0.5, 130.0]])
    baseline = metrics.mean_baseline(y_true, 2, targets=("energy", "tempo"))
    return metrics.compare_models(
        y_true, {"mean baseline": baseline, "m": y_pred}, y_train=y_true, targets=("energy", "tempo")
    )


def test_summarize_reports_tempo_share(two_target_table):
    summary = metrics.summarize(two_target_table)
    assert list(summary.index) == ["mean baseline", "m"]
    row = summary.loc["m"]
    assert row["mean_raw_mse"] == pytest.approx((0.25 + 100.0) / 2)
    assert row["tempo_share_of_raw_mse"] == pytest.approx(100.0 / 100.25)
    assert row["mean_smse"] == pytest.approx((1.0 + 0.25) / 2)
    assert row["n_targets"] == 2
    assert summary.loc["mean baseline", "mean_smse"] == 1.0
    assert summary.loc["mean baseline", "tempo_share_of_raw_mse"] == pytest.approx(400 / 400.25)


def test_summarize_accepts_a_single_per_target_table(y_true, y_noisy):
    summary = metrics.summarize(metrics.per_target(y_true, y_noisy))
    assert list(summary.index) == ["model"]
    assert 0.9 < summary.loc["model", "tempo_share_of_raw_mse"] <= 1.0


def test_raw_mse_caveat_names_tempo_and_its_share(two_target_table):
    sentence = metrics.raw_mse_caveat(two_target_table.loc[["m"]])
    assert "tempo" in sentence
    assert "99.8 %" in sentence
    assert "50.12" in sentence
    assert "standardized" in sentence
    several = metrics.raw_mse_caveat(two_target_table)
    assert "(mean baseline)" in several and "(m)" in several


def test_raw_mse_caveat_without_tempo(y_true, y_noisy):
    sentence = metrics.raw_mse_caveat(
        metrics.per_target(y_true[:, :3], y_noisy[:, :3], targets=TARGETS[:3])
    )
    assert "tempo contributes" not in sentence
    assert "standardized" in sentence


def test_to_json_dict_is_strict_json(y_true, y_noisy):
    baseline = metrics.mean_baseline(y_true, len(y_true))
    table = metrics.compare_models(y_true, {"mean baseline": baseline, "noisy": y_noisy}, y_train=y_true)
    nested = metrics.to_json_dict(table)
    text = json.dumps(nested, allow_nan=False)
    assert json.loads(text) == nested
    assert list(nested) == ["mean baseline", "noisy"]
    assert list(nested["noisy"]) == list(TARGETS)
    assert nested["noisy"]["energy"]["acc1"] is None
    assert nested["noisy"]["tempo"]["acc1"] == table.loc[("noisy", "tempo"), "acc1"]
    assert nested["mean baseline"]["energy"]["smse"] == 1.0
    assert isinstance(nested["noisy"]["tempo"]["own_terms"], str)


# ---------------------------------------------------------------------------------------------
# properties

_targets_matrix = hnp.arrays(
    np.float64,
    shape=st.tuples(st.integers(2, 40), st.integers(1, 3)),
    elements=st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
)


@settings(deadline=None, max_examples=60)
@given(_targets_matrix)
def test_property_mean_predictor_has_smse_one(y):
    assume(np.all(np.ptp(y, axis=0) > 1e-3))
    names = tuple(f"t{i}" for i in range(y.shape[1]))
    exact = metrics.per_target(y, metrics.mean_baseline(y, len(y), targets=names), targets=names)
    assert exact["smse"].tolist() == [1.0] * y.shape[1]
    numpy_mean = np.tile(y.mean(axis=0), (len(y), 1))
    approx = metrics.per_target(y, numpy_mean, targets=names)
    np.testing.assert_allclose(approx["smse"], 1.0, rtol=1e-9)


_tempo = st.floats(1.0, 300.0)
_estimate = st.floats(0.0, 1000.0)


@settings(deadline=None)
@given(st.lists(st.tuples(_tempo, _estimate), min_size=1, max_size=30), st.floats(0.0, 0.2))
def test_property_acc2_at_least_acc1(pairs, tol):
    ref, est = (np.array(column) for column in zip(*pairs))
    hits1 = metrics.tempo_hits1(ref, est, tol=tol)
    hits2 = metrics.tempo_hits2(ref, est, tol=tol)
    assert np.all(hits2[hits1])
    assert metrics.tempo_acc2(ref, est, tol=tol) >= metrics.tempo_acc1(ref, est, tol=tol)


@settings(deadline=None)
@given(st.lists(st.tuples(_tempo, st.floats(-0.99, 0.99)), min_size=1, max_size=30))
def test_property_acc2_invariant_under_doubling_within_tolerance(pairs):
    ref = np.array([r for r, _ in pairs])
    est = ref * (1.0 + 0.04 * np.array([u for _, u in pairs]))
    assume(metrics.tempo_acc1(ref, est) == 1.0)
    assert metrics.tempo_acc2(ref, est) == 1.0
    assert metrics.tempo_acc2(ref, 2.0 * est) == 1.0
    assert metrics.tempo_acc2(ref, 0.5 * est) == 1.0


@settings(deadline=None)
@given(st.lists(st.tuples(_tempo, _estimate), min_size=1, max_size=30))
def test_property_acc2_hits_scale_with_the_tempo(pairs):
    ref, est = (np.array(column) for column in zip(*pairs))
    hits = metrics.tempo_hits2(ref, est)
    assert np.array_equal(metrics.tempo_hits2(2.0 * ref, 2.0 * est), hits)


# ---------------------------------------------------------------------------------------------
# partial labels


def test_partial_labels_score_each_target_on_its_own_labelled_rows(y_true):
    """A missing label (NaN) leaves its row out of that target only: every other target keeps
    the row, and each target's scores equal those of its labelled rows alone."""
    rng = np.random.default_rng(3)
    y_pred = y_true + rng.normal(0, 0.1, y_true.shape) * y_true.std(axis=0)
    partial = y_true.copy()
    j_energy, j_tempo = TARGETS.index("energy"), TARGETS.index("tempo")
    partial[::3, j_energy] = np.nan
    partial[:7, j_tempo] = np.nan
    got = metrics.per_target(partial, y_pred, y_train=y_true)
    for t, rows in (("energy", ~np.isnan(partial[:, j_energy])), ("tempo", ~np.isnan(partial[:, j_tempo]))):
        want = metrics.per_target(y_true[rows], y_pred[rows], y_train=y_true).loc[t]
        assert got.loc[t, "n"] == rows.sum()
        for m in ("mse", "smse", "mae", "acc1", "acc2"):
            np.testing.assert_allclose(got.loc[t, m], want[m], equal_nan=True)
    full = metrics.per_target(y_true, y_pred, y_train=y_true)
    assert got.loc["valence", "n"] == len(y_true)
    assert got.loc["valence", "mse"] == full.loc["valence", "mse"]


def test_an_absent_target_and_an_untrained_one_are_not_scored(y_true):
    partial = y_true.copy()
    j = TARGETS.index("liveness")
    partial[:, j] = np.nan  # the table has no liveness column
    base = metrics.mean_baseline(partial, len(partial))
    assert np.isnan(base[:, j]).all() and np.isfinite(np.delete(base, j, axis=1)).all()
    table = metrics.compare_models(partial, {"mean baseline": base, "model": y_true}, y_train=partial)
    row = table.loc[("model", "liveness")]
    assert row["n"] == 0 and np.isnan(row["mse"]) and row["own_terms"].startswith("not scored")
    skipped = y_true.copy()
    skipped[:, TARGETS.index("energy")] = np.nan  # a model that could not train energy
    table = metrics.per_target(y_true, skipped, y_train=y_true)
    assert table.loc["energy", "n"] == 0 and np.isnan(table.loc["energy", "r2"])
    assert table.loc["valence", "n"] == len(y_true)


def test_baselines_and_modes_use_the_labelled_training_rows_only():
    y_train = np.array([[1.0, 4.0], [np.nan, 4.0], [3.0, np.nan], [np.nan, 3.0]])
    base = metrics.mean_baseline(y_train, 2, targets=("energy", "time_signature"))
    assert base.tolist() == [[2.0, 4.0], [2.0, 4.0]]
    assert metrics.majority([np.nan, 1.0, 0.0, 0.0]) == 0.0 and np.isnan(metrics.majority([np.nan]))
    assert metrics.model_modes(["m"], mode_true=[1.0], mode_train=[np.nan, np.nan]) == {}


def test_a_key_without_a_mode_has_no_mirex_score_but_keeps_its_tonic():
    y_true = np.array([[0.0], [7.0], [9.0]])
    y_pred = np.array([[0.0], [7.0], [0.0]])
    table = metrics.per_target(y_true, y_pred, targets=("key",), mode_true=[1.0, np.nan, 0.0], mode_pred=[1.0, 1.0, 1.0])
    assert table.loc["key", "accuracy"] == pytest.approx(2 / 3)
    assert table.loc["key", "mirex"] == pytest.approx((1.0 + 0.3) / 2)  # C major hit; A minor read as C major: relative
