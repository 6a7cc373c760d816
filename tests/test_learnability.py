"""The random forest and the GRU beat the predict-the-mean baseline on a generated sample set."""

import numpy as np
import pytest

from audioreg import stages
from audioreg.judge import metrics
from audioreg.models import ForestRegressor, GRURegressor, forest
from audioreg.targets import clip_to_valid

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("learn")
    params = {"root": str(root), "metadata_path": "data/raw/learn/metadata.csv", "audio_dir": "data/raw/learn",
              "synth_n": 120, "synth_seconds": 8.0, "seed": 0, "workers": 2, "progress": False}
    sp = stages.split(params)
    parts = {s: stages.part(sp.table, s) for s in ("train", "val", "test")}
    return params, parts


def _smse(parts, pred):
    return metrics.per_target(stages.targets(parts["test"]), pred)["smse"]


def test_random_forest_beats_the_mean(sample):
    _, parts = sample
    X = {s: forest.aggregate(stages.sequences(p)) for s, p in parts.items()}
    model = ForestRegressor(n_iter=2, cv=2, random_state=0, n_jobs=2).fit(X["train"], stages.targets(parts["train"]))
    smse = _smse(parts, clip_to_valid(model.predict(X["test"])))
    baseline = _smse(parts, metrics.mean_baseline(stages.targets(parts["train"]), len(parts["test"])))
    assert smse.mean() < 0.9 * baseline.mean()
    assert (smse < 1).sum() >= 6, smse  # most targets beat predicting the mean


def test_gru_beats_the_mean(sample, tmp_path):
    _, parts = sample
    model = GRURegressor(hidden_size=64, num_layers=2, dropout=0.1, lr=3e-3, epochs=25, batch_size=16, frame_pool=8,
                         checkpoint_dir=tmp_path, random_state=0, device="cpu")
    model.fit(stages.sequences(parts["train"]), stages.targets(parts["train"]),
              eval_set=(stages.sequences(parts["val"]), stages.targets(parts["val"])))
    pred = clip_to_valid(model.predict(stages.sequences(parts["test"])))
    smse = _smse(parts, pred)
    baseline = _smse(parts, metrics.mean_baseline(stages.targets(parts["train"]), len(parts["test"])))
    assert np.isfinite(smse.mean()) and smse.mean() < baseline.mean()
    assert (smse < 1).sum() >= 6, smse
