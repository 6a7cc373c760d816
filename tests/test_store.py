"""The run's artifact store: fitted models are content-keyed and reused across runs."""

from __future__ import annotations

import numpy as np
import pytest

from audioreg import runner, stages, store
from audioreg.models import ForestRegressor, GRURegressor
from audioreg.params import load_yaml
from conftest import REPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GRID = {"n_estimators": [5, 10], "max_depth": [None, 3]}


def data(seed, n=30, d=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = np.column_stack([X[:, 0] * 2 + rng.normal(0, 0.1, n), X[:, 1] - X[:, 2]])
    return X, Y


def test_a_forest_fit_is_saved_once_and_reused_by_any_run_with_the_same_settings(tmp_path, monkeypatch):
    X, Y = data(0)
    params = {"root": str(tmp_path), "run_id": "one"}
    first = store.fit_model(params, ForestRegressor(n_iter=2, cv=2, n_jobs=1, param_distributions=GRID), X, Y,
                            data_key="k1")
    folder = store.model_dir(params, first, data_key="k1", inputs=store.input_signature(X))
    assert folder.parent == tmp_path / "data" / "models" and folder.name.startswith("rf-")
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "model.joblib"]

    def no_refit(self, *a, **k):
        raise AssertionError("refitted a model the store holds")

    monkeypatch.setattr(ForestRegressor, "fit", no_refit)
    # another run, another n_jobs (how it runs, not what it learns): the same fit
    again = store.fit_model({**params, "run_id": "two"},
                            ForestRegressor(n_iter=2, cv=2, n_jobs=2, param_distributions=GRID), X, Y, data_key="k1")
    np.testing.assert_array_equal(again.predict(X), first.predict(X))
    assert again.best_params_ == first.best_params_
    # other data, or other settings: fitted anew
    for other, key in ((ForestRegressor(n_iter=3, cv=2, n_jobs=1, param_distributions=GRID), "k1"),
                       (ForestRegressor(n_iter=2, cv=2, n_jobs=1, param_distributions=GRID), "k2")):
        with pytest.raises(AssertionError, match="refitted"):
            store.fit_model(params, other, X, Y, data_key=key)


def test_a_forest_folder_without_its_meta_is_fitted_again(tmp_path):
    X, Y = data(1)
    params = {"root": str(tmp_path)}
    est = ForestRegressor(n_iter=1, cv=2, n_jobs=1, param_distributions=GRID)
    folder = store.model_dir(params, est, data_key="k", inputs=store.input_signature(X))
    folder.mkdir(parents=True)
    (folder / "model.joblib").write_bytes(b"torn")  # a copy cut short, never marked complete
    fitted = store.fit_model(params, est, X, Y, data_key="k")
    assert fitted.predict(X).shape == Y.shape
    assert (folder / "meta.json").is_file() and (folder / "model.joblib").stat().st_size > 100


def test_a_gru_fit_resumes_from_the_store_and_a_finished_one_trains_nothing(tmp_path, caplog):
    rng = np.random.default_rng(2)
    seqs = [rng.normal(size=(int(rng.integers(8, 20)), 5)).astype(np.float32) for _ in range(12)]
    Y = rng.normal(size=(12, 11))
    settings = {"hidden_size": 4, "num_layers": 1, "batch_size": 4, "frame_pool": 2, "device": "cpu", "epochs": 2}
    params = {"root": str(tmp_path), "run_id": "one"}
    first = store.fit_model(params, GRURegressor(**settings), seqs[:9], Y[:9], data_key="k",
                            eval_set=(seqs[9:], Y[9:]))
    folder = store.model_dir(params, first, data_key="k", inputs=store.input_signature(seqs))
    assert first.best_checkpoint_ == folder / "best.pt" and folder.name.startswith("gru-")
    stamp = (folder / "last.pt").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="audioreg.models.train"):
        again = store.fit_model({**params, "run_id": "two"}, GRURegressor(**settings), seqs[:9], Y[:9], data_key="k",
                                eval_set=(seqs[9:], Y[9:]))
    assert "already holds 2 of 2 epochs" in caplog.text
    assert (folder / "last.pt").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.predict(seqs), first.predict(seqs))
    other = store.fit_model(params, GRURegressor(**{**settings, "lr": 0.01}), seqs[:9], Y[:9], data_key="k",
                            eval_set=(seqs[9:], Y[9:]))
    assert other.best_checkpoint_.parent != folder


def changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return f"{value}-other"
    return value + 1 if isinstance(value, int) else value * 2 + 0.25


@pytest.mark.parametrize("notebook, cls", [("05_gru", "GRURegressor"), ("04_rf", "ForestRegressor")])
def test_other_model_settings_never_share_a_model_folder(tmp_path, notebook, cls):
    """Same settings, same folder (so a run reuses or resumes the fit); other settings, another folder.

    Otherwise a finished run re-run with, say, another ``grad_clip`` would "resume" the old
    folder, train nothing, and report the old model under the new parameters.
    """
    from audioreg import models

    estimator = getattr(models, cls)
    declared = set(runner.declared(REPO, [notebook])[notebook]) - {"root", "run_id"}
    params = {**load_yaml(REPO / "params/base.yaml"), "root": str(tmp_path)}

    def folder(p, data_key="splitkey"):
        # the expert inputs are a choice of inputs, not a setting: they reach the key through the
        # inputs' signature, as the notebooks' inputs (stages.model_sequences / song_features) give it
        experts = p["expert_inputs" if notebook == "05_gru" else "rf_expert_inputs"]
        inputs = ["lufs", *stages.expert_columns()] if experts else ["lufs"]
        return store.model_dir(p, estimator.from_params(p), data_key=data_key, inputs=inputs)

    same = folder(params)
    assert same.parent == tmp_path / "data" / "models"
    assert folder(params, "othersplit") != same
    run_only = {getattr(estimator, "PARAM_PREFIX", "") + k for k in estimator.RUN_SETTINGS}
    assert run_only < declared | {"checkpoint_dir"}
    for key in sorted(declared):
        other = {**params, key: changed(params[key])}
        if key in run_only or key == "progress":
            assert folder(other) == same, key
        else:
            assert folder(other) != same, key
