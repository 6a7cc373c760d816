"""Determinism: the smoke chain run twice (same seed, data and parameters) gives the same
split, the same feature arrays and the same metrics on the CPU.

Each run gets its own data root, so the second run recomputes everything (sample set,
ingest, features, split, both models) instead of reusing the first run's content-keyed
caches. The runs are separate interpreters with different ``PYTHONHASHSEED`` values, so
nothing may depend on set or dict-of-str iteration order either.

Both runs are ``audioreg run`` on ``params/smoke.yaml``: the session's ``smoke_run``
(which ``test_notebooks.py`` checks too) and its twin, a command started in the
background at the same time (see conftest.py).

Two things legitimately differ between the roots and are normalized: absolute paths, and
content keys derived from the audio files' SHA-256. libsndfile writes a random Ogg stream
serial number, so a regenerated ``.ogg`` differs byte-wise while its decoded audio does not;
the keys of the features folder, the split file and the model folders follow.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audioreg import runner, stages, store
from audioreg.features.extract import array_name
from audioreg.params import load_yaml
from conftest import REPO, SMOKE_RUN_ID

RUN_ID = SMOKE_RUN_ID


@pytest.fixture(scope="module")
def two_runs(smoke_twin, smoke_run):
    """The session's smoke chain and its twin (started first, so they run side by side)."""
    return [smoke_run.work, smoke_twin.wait().work]


def only(paths) -> Path:
    paths = list(paths)
    assert len(paths) == 1, paths
    return paths[0]


def stored_split(root: Path) -> pd.DataFrame:
    return stages.read_split(only((root / "data/splits").glob("split-*.csv")))


def features_dir(root: Path) -> Path:
    return only(d for d in (root / "data/features").iterdir() if (d / "meta.json").is_file())


@pytest.mark.slow
def test_each_run_computed_its_own_caches(two_runs):
    a, b = two_runs
    for root in two_runs:
        feats = features_dir(root)
        assert feats.is_relative_to(root)
        assert all(Path(f).is_relative_to(feats) for f in stored_split(root)["file"])
    # The runs' audio was generated twice: its decoded content is the same (the features
    # below), its Ogg bytes are not, so the content keys differ and nothing was shared.
    assert features_dir(a).name != features_dir(b).name


@pytest.mark.slow
def test_same_split(two_runs):
    a, b = (stored_split(root) for root in two_runs)
    assert a["track_id"].tolist() == b["track_id"].tolist()
    assert a["split"].tolist() == b["split"].tolist()
    assert set(a["split"]) == {"train", "val", "test"}
    for table, root in zip((a, b), two_runs):
        table["path"] = [Path(p).relative_to(root).as_posix() for p in table["path"]]
        table["file"] = [Path(f).name for f in table["file"]]
    ogg = a["path"].str.endswith(".ogg")
    assert ogg.any() and not ogg.all()
    assert a.loc[~ogg, "sha256"].tolist() == b.loc[~ogg, "sha256"].tolist()  # wav, flac: same bytes
    pd.testing.assert_frame_equal(a.drop(columns="sha256"), b.drop(columns="sha256"), check_exact=True)


@pytest.mark.slow
def test_same_feature_arrays(two_runs):
    dirs = [features_dir(root) for root in two_runs]
    names = [sorted(p.name for p in d.glob("*.npy")) for d in dirs]
    track_ids = stored_split(two_runs[0])["track_id"]
    assert names[0] == names[1] == sorted(array_name(t) for t in track_ids)
    assert len(names[0]) == 40
    for name in names[0]:
        x, y = (np.load(d / name) for d in dirs)
        assert x.dtype == y.dtype == np.float32 and x.shape == y.shape, name
        assert np.array_equal(x, y), name
    index = [pd.read_csv(d / "index.csv", dtype={"track_id": str}) for d in dirs]
    keep = [c for c in index[0].columns if c != "seconds"]  # extraction wall time
    pd.testing.assert_frame_equal(index[0][keep], index[1][keep], check_exact=True)
    failures = [pd.read_csv(d / "failures.csv", dtype={"track_id": str}) for d in dirs]
    assert len(failures[0]) == len(failures[1]) == 0


def normalized_text(path: Path, root: Path) -> str:
    text = path.read_text(encoding="utf-8").replace(str(root), "<root>")
    return re.sub(r"\b(rf|gru)-[0-9a-f]{12}", r"\1-<key>", text)


@pytest.mark.slow
def test_same_metrics_and_predictions(two_runs):
    a, b = two_runs
    metrics = [json.loads(normalized_text(r / "runs" / RUN_ID / "metrics.json", r)) for r in two_runs]
    assert set(metrics[0]["metrics"]) == {"mean baseline", "random forest", "GRU"}
    assert metrics[0]["metrics"] == metrics[1]["metrics"]  # exact float equality, every target
    assert metrics[0]["summary"] == metrics[1]["summary"]
    assert metrics[0] == metrics[1]  # and everything else: parameters, best epoch, ...
    for model in ("rf", "gru"):
        preds = [pd.read_csv(r / "runs" / RUN_ID / model / "predictions.csv", dtype={"track_id": str})
                 for r in two_runs]
        pd.testing.assert_frame_equal(preds[0], preds[1], check_exact=True)
    history = [pd.read_csv(r / "runs" / RUN_ID / "gru/history.csv").drop(columns="seconds") for r in two_runs]
    pd.testing.assert_frame_equal(history[0], history[1], check_exact=True)


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
        return store.model_dir(p, estimator.from_params(p), data_key=data_key)

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
