"""Tests of audioreg.models: aggregation, the random forest search and the GRU network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import GroupKFold

from audioreg.models import forest, network
from audioreg.models.moments import streaming_moments
from audioreg.targets import TARGETS


pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL_GRID = {
    "n_estimators": [10, 20],
    "max_depth": [None, 4],
    "max_features": ["sqrt", 1.0],
    "bootstrap": [True, False],
}


def make_sequences(rng, n, *, n_features=46, min_len=5, max_len=60):
    return [
        rng.normal(3.0, 2.0, size=(int(rng.integers(min_len, max_len)), n_features)).astype(
            np.float32
        )
        for _ in range(n)
    ]


def make_regression(rng, n, *, scale_first=1.0):
    """Features X and 11 targets that are smooth functions of X, first target scaled."""
    X = rng.normal(size=(n, 6))
    Y = np.column_stack(
        [np.tanh(2 * X[:, k % 6]) + 0.5 * X[:, (k + 1) % 6] for k in range(len(TARGETS))]
    )
    Y += 0.1 * rng.normal(size=Y.shape)
    Y[:, 0] *= scale_first
    return X, Y


# ------------------------------------------------------------------------------- aggregate


def test_aggregate_matches_numpy_mean_and_std():
    rng = np.random.default_rng(0)
    seqs = make_sequences(rng, 5)
    X = forest.aggregate(seqs)
    assert X.shape == (5, 2 * 46)
    for row, seq in zip(X, seqs):
        seq64 = seq.astype(np.float64)
        np.testing.assert_allclose(row[:46], seq64.mean(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(row[46:], seq64.std(axis=0), rtol=1e-10, atol=1e-12)


def test_aggregate_streams_chunks_exactly():
    # Many tiny chunks must combine to the same moments as one pass.
    rng = np.random.default_rng(1)
    seq = (1e4 + rng.normal(size=(101, 3))).astype(np.float32)  # large offset: no cancellation
    n, mean, m2 = streaming_moments(seq, chunk_frames=7)
    assert n == 101
    np.testing.assert_allclose(mean, seq.astype(np.float64).mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(np.sqrt(m2 / n), seq.astype(np.float64).std(axis=0), rtol=1e-9)


def test_aggregate_works_on_memmaps(tmp_path):
    rng = np.random.default_rng(2)
    seqs = make_sequences(rng, 3, min_len=1, max_len=20000)
    paths = []
    for i, seq in enumerate(seqs):
        paths.append(tmp_path / f"{i}.npy")
        np.save(paths[-1], seq)
    mapped = [np.load(p, mmap_mode="r") for p in paths]
    assert all(isinstance(m, np.memmap) for m in mapped)
    np.testing.assert_allclose(forest.aggregate(mapped), forest.aggregate(seqs), rtol=1e-12)


def test_aggregate_rejects_bad_input():
    with pytest.raises(ValueError):
        forest.aggregate([])
    with pytest.raises(ValueError):
        forest.aggregate([np.zeros((0, 46), np.float32)])
    with pytest.raises(ValueError):
        forest.aggregate([np.zeros((3, 46)), np.zeros((3, 45))])


def test_aggregate_names_order_matches_aggregate():
    frame_names = [("mfcc", 0), ("mfcc", 1), ("chroma", 0)]
    names = forest.aggregate_names(frame_names)
    assert names == [
        ("mfcc", "mean", 0),
        ("mfcc", "mean", 1),
        ("chroma", "mean", 0),
        ("mfcc", "std", 0),
        ("mfcc", "std", 1),
        ("chroma", "std", 0),
    ]
    seq = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 6.0]])
    X = forest.aggregate([seq])[0]
    assert X[names.index(("chroma", "mean", 0))] == 4.0
    assert X[names.index(("mfcc", "std", 0))] == 1.0


# ------------------------------------------------------------------------------ RF search


def test_rf_search_follows_sklearn_conventions():
    rng = np.random.default_rng(3)
    X, Y = make_regression(rng, 90)
    search = forest.fit_rf_search(
        X, Y, n_iter=3, cv=3, param_distributions=SMALL_GRID, random_state=0, n_jobs=1
    )
    assert hasattr(search, "best_estimator_") and hasattr(search, "cv_results_")
    assert set(search.best_params_) == {f"regressor__{k}" for k in SMALL_GRID}
    for key, value in search.best_params_.items():
        assert value in SMALL_GRID[key.removeprefix("regressor__")]
    assert len(search.cv_results_["params"]) == 3
    pred = search.predict(X[:7])
    assert pred.shape == (7, len(TARGETS))


def test_rf_search_predicts_raw_units():
    rng = np.random.default_rng(4)
    X, Y = make_regression(rng, 90)
    Y[:, TARGETS.index("tempo")] = 120 + 30 * Y[:, TARGETS.index("tempo")]
    Y[:, TARGETS.index("loudness")] = -10 + 3 * Y[:, TARGETS.index("loudness")]
    search = forest.fit_rf_search(
        X, Y, n_iter=2, cv=3, param_distributions=SMALL_GRID, random_state=0, n_jobs=1
    )
    pred = search.predict(X)
    # A forest predicts averages of training targets: inside their raw range, near their mean.
    assert np.all(pred >= Y.min(axis=0) - 1e-9) and np.all(pred <= Y.max(axis=0) + 1e-9)
    assert np.all(np.abs(pred.mean(axis=0) - Y.mean(axis=0)) < 0.2 * Y.std(axis=0))
    tempo = TARGETS.index("tempo")
    assert 50 < pred[:, tempo].min() and pred[:, tempo].max() < 210  # BPM, not z-scores
    assert pred[:, tempo].std() > 0.5 * Y[:, tempo].std()


def test_rf_search_scores_on_standardized_targets():
    rng = np.random.default_rng(5)
    X, Y = make_regression(rng, 90)
    kwargs = {"n_iter": 4, "cv": 3, "param_distributions": SMALL_GRID, "random_state": 0}
    plain = forest.fit_rf_search(X, Y, n_jobs=1, **kwargs)
    scaled_Y = Y.copy()
    scaled_Y[:, 0] *= 1000.0  # one target on a scale 1000x the others (variance 1e6x)
    scaled = forest.fit_rf_search(X, scaled_Y, n_jobs=1, **kwargs)
    # Rescaling one target leaves the scores unchanged up to split ties that floating-point
    # rounding breaks differently (~1 %); MSE in raw units would grow ~1e6 / 11 times.
    np.testing.assert_allclose(
        scaled.cv_results_["mean_test_score"], plain.cv_results_["mean_test_score"], rtol=0.05
    )
    # The score is minus the MSE averaged over standardized targets.
    est = scaled.best_estimator_
    mu, sd = scaled_Y.mean(axis=0), scaled_Y.std(axis=0)
    expected = -np.mean(((est.predict(X) - mu) / sd - (scaled_Y - mu) / sd) ** 2)
    assert forest.standardized_mse_score(est, X, scaled_Y) == pytest.approx(expected, rel=1e-9)
    # ... which is on the order of 1, not of the large target's variance.
    assert -1.0 < scaled.best_score_ < 0.0


def test_rf_search_uses_group_folds(monkeypatch):
    seen = []
    original = GroupKFold.split

    def spy(self, X, y=None, groups=None):
        for train, test in original(self, X, y, groups):
            seen.append((set(groups[train]), set(groups[test])))
            yield train, test

    monkeypatch.setattr(GroupKFold, "split", spy)
    rng = np.random.default_rng(6)
    X, Y = make_regression(rng, 60)
    groups = np.repeat(np.arange(15), 4)  # 15 "artists", 4 songs each
    forest.fit_rf_search(
        X, Y, n_iter=1, cv=3, param_distributions=SMALL_GRID, groups=groups, n_jobs=1
    )
    assert len(seen) == 3
    for train_groups, test_groups in seen:
        assert train_groups.isdisjoint(test_groups)


def test_rf_search_beats_the_mean_on_held_out_data():
    rng = np.random.default_rng(7)
    X, Y = make_regression(rng, 300, scale_first=1000.0)
    train, test = slice(0, 240), slice(240, None)
    search = forest.fit_rf_search(
        X[train], Y[train], n_iter=3, cv=3, param_distributions=SMALL_GRID
    )
    sd = Y[train].std(axis=0)
    mse_model = np.mean(((search.predict(X[test]) - Y[test]) / sd) ** 2, axis=0)
    mse_mean = np.mean(((Y[train].mean(axis=0) - Y[test]) / sd) ** 2, axis=0)
    assert np.all(mse_model < mse_mean)
    assert mse_model.mean() < 0.6 * mse_mean.mean()


def test_rf_default_distributions_are_valid():
    rng = np.random.default_rng(8)
    X, Y = make_regression(rng, 40)
    search = forest.fit_rf_search(X, Y, n_iter=1, cv=2, random_state=1)
    for key, value in search.best_params_.items():
        assert value in forest.DEFAULT_RF_PARAM_DISTRIBUTIONS[key.removeprefix("regressor__")]


def test_forest_estimator_follows_the_scikit_learn_contract():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    rng = np.random.default_rng(11)
    X, Y = make_regression(rng, 60)
    est = forest.ForestRegressor(n_iter=2, cv=2, n_jobs=1, random_state=3, param_distributions=SMALL_GRID)
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        est.predict(X)
    assert est.fit(X, Y) is est and est.n_features_in_ == X.shape[1]
    search = forest.fit_rf_search(X, Y, n_iter=2, cv=2, n_jobs=1, random_state=3, param_distributions=SMALL_GRID)
    assert est.best_params_ == search.best_params_ and est.best_score_ == search.best_score_
    np.testing.assert_array_equal(est.predict(X[:5]), search.predict(X[:5]))


def test_forest_fits_each_group_of_targets_on_their_labelled_rows():
    """Partial labels: targets labelled on the same rows share a forest fitted on those rows;
    an absent target, or one with too few labelled tracks for the search, is not trained and
    predicts NaN, with the reason in ``skipped_``."""
    rng = np.random.default_rng(12)
    X, Y = make_regression(rng, 60)
    Y[:20, 3] = np.nan  # energy labelled on 40 rows
    Y[:, 5] = np.nan  # an absent target column
    Y[1:, 7] = np.nan  # one labelled row
    est = forest.ForestRegressor(n_iter=2, cv=2, n_jobs=1, random_state=3, param_distributions=SMALL_GRID).fit(X, Y)
    assert [(f["targets"], f["n"]) for f in est.fits_] == [([0, 1, 2, 4, 6, 8, 9, 10], 60), ([3], 40)]
    assert set(est.skipped_) == {5, 7} and "1 labelled training tracks" in est.skipped_[7]
    pred = est.predict(X[:6])
    assert np.isnan(pred[:, [5, 7]]).all() and np.isfinite(np.delete(pred, [5, 7], axis=1)).all()
    alone = forest.fit_rf_search(X[20:], Y[20:, [3]], n_iter=2, cv=2, n_jobs=1, random_state=3,
                                 param_distributions=SMALL_GRID)
    np.testing.assert_array_equal(pred[:, 3], alone.predict(X[:6]).ravel())
    np.testing.assert_allclose(est.tree_predictions(X[:6], target=3).mean(axis=0), pred[:, 3])
    with pytest.raises(ValueError, match="target 5 was not trained"):
        est.tree_predictions(X[:6], target=5)
    with pytest.raises(ValueError, match="no target has enough labelled training tracks"):
        forest.ForestRegressor(cv=3).fit(X[:2], Y[:2])


def test_forest_estimator_from_run_parameters():
    est = forest.ForestRegressor.from_params({"rf_n_iter": 5, "rf_cv": 4, "rf_n_jobs": 2, "seed": 7, "lr": 0.1})
    assert est.get_params() == {"n_iter": 5, "cv": 4, "n_jobs": 2, "random_state": 7, "param_distributions": None}


# ------------------------------------------------------------------------------------- GRU


def net_config(**kw):
    return network.GRUConfig(**{"n_features": 46, "n_outputs": 11, "hidden_size": 16, "num_layers": 2,
                                "dropout": 0.3, "layer_norm": True, **kw})


def test_gru_output_shape_and_config():
    net = network.GRUNet(net_config(n_features=46, hidden_size=16, num_layers=3, n_outputs=11))
    x = torch.randn(4, 30, 46)
    y = net(x, torch.tensor([30, 12, 1, 7]))
    assert y.shape == (4, 11)
    assert net.config.as_dict() == {
        "n_features": 46,
        "n_outputs": 11,
        "hidden_size": 16,
        "num_layers": 3,
        "dropout": 0.3,
        "layer_norm": True,
        "heads": (11,),
        "per_target_heads": False,
    }
    assert len(net.gru.all_weights) == 3 and net.gru.hidden_size == 16
    assert isinstance(network.GRUNet(net_config(layer_norm=False)).norm, torch.nn.Identity)
    with pytest.raises(ValueError, match="dropout"):
        net_config(dropout=1.5)


def test_gru_ignores_padding():
    gen = torch.Generator().manual_seed(0)
    net = network.GRUNet(net_config(n_features=5, hidden_size=8, num_layers=2)).eval()
    seqs = [torch.randn(n, 5, generator=gen) for n in (9, 4, 13)]
    alone = [net(s[None], torch.tensor([len(s)]))[0] for s in seqs]
    batch = torch.full((3, 20, 5), 1e3)  # garbage beyond each length
    for i, s in enumerate(seqs):
        batch[i, : len(s)] = s
    together = net(batch, torch.tensor([len(s) for s in seqs]))
    for i in range(3):
        torch.testing.assert_close(together[i], alone[i], rtol=1e-5, atol=1e-6)
    # And the valid frames do matter.
    changed = batch.clone()
    changed[1, 2] += 1.0
    assert not torch.allclose(net(changed, torch.tensor([9, 4, 13]))[1], together[1])


def test_gru_rejects_bad_lengths():
    net = network.GRUNet(net_config(n_features=3, hidden_size=4))
    with pytest.raises(ValueError):
        net(torch.zeros(2, 5, 3), torch.tensor([5, 6]))
    with pytest.raises(ValueError):
        net(torch.zeros(2, 5, 3), torch.tensor([0, 5]))


@pytest.mark.parametrize("classes", [False, True])
def test_the_history_records_each_targets_validation_loss(tmp_path, classes, one_torch_thread):
    """history.csv and the result hold ``val_<target>`` per head, an epoch's validation loss of that
    target alone; with equal loss weights their mean is the epoch's ``val_loss``."""
    import pandas as pd

    from conftest import random_labels, train_gru_with

    rng = np.random.default_rng(3)
    seqs = [rng.normal(size=(int(rng.integers(8, 20)), 5)).astype(np.float32) for _ in range(12)]
    Y = random_labels(12, seed=3)
    Y[9, TARGETS.index("valence")] = np.nan  # a partial label: that target's mean skips the row
    result = train_gru_with(seqs[:8], Y[:8], seqs[8:], Y[8:], checkpoint_dir=tmp_path, hidden_size=4, num_layers=1,
                            batch_size=4, epochs=2, key_classes=classes, meter_classes=classes, tempo_log2=classes)
    columns = [f"val_{t}" for t in TARGETS if not (classes and t in ("key", "time_signature"))]
    columns += ["val_key", "val_time_signature"] if classes else []
    history = result.history
    assert [c for c in history.columns if c.startswith("val_") and c != "val_loss"] == columns
    assert np.allclose(history[columns].mean(axis=1), history["val_loss"], rtol=1e-9)
    assert (history[columns].to_numpy() >= 0).all()
    stored = pd.read_csv(tmp_path / "history.csv")
    pd.testing.assert_frame_equal(stored.drop(columns="seconds"), history.drop(columns="seconds"), check_dtype=False)
