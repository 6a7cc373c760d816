"""Determinism: the smoke chain run twice (same seed, data and parameters) gives the same
split, the same feature arrays and the same metrics on the CPU.

Each run gets its own data root, so the second run recomputes everything (sample set,
ingest, features, split, both models) instead of reusing the first run's content-keyed
caches. The runs are separate interpreters with different ``PYTHONHASHSEED`` values, so
nothing may depend on set or dict-of-str iteration order either.

The chain is the notebooks' own code: each notebook's code cells are executed in a fresh
namespace, with the merged parameters assigned after the ``parameters`` cell as papermill's
injected cell does. That is what ``audioreg run`` executes, without a kernel per notebook and
without the HTML rendering (``test_notebooks.py`` covers those): here the two runs side by
side take about 50 s, where one papermill run of the chain takes 65 s.

Two things legitimately differ between the roots and are normalized: absolute paths, and
content keys derived from the audio files' SHA-256. libsndfile writes a random Ogg stream
serial number, so a regenerated ``.ogg`` differs byte-wise while its decoded audio does not;
the keys of the features folder, the split file and the GRU checkpoint folder follow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audioreg import runner, stages, store
from audioreg.features.extract import array_name
from audioreg.params import load_yaml
from conftest import REPO

RUN_ID = "det"
TIMEOUT_S = 600

CHAIN = r"""
import sys
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nbformat
import torch

torch.set_num_threads(1)
from audioreg import params as P, runner

repo, root, run_id = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
decl = runner.declared(repo)
known = set().union(*decl.values())
params = runner.merged_params(repo, ["params/smoke.yaml"], {"root": root, "run_id": run_id}, known=known)
P.save_yaml(params, Path(root) / "runs" / run_id / "params.yaml")  # as `audioreg run` does
for name in runner.NOTEBOOKS:
    nb = nbformat.read(str(repo / "notebooks" / f"{name}.ipynb"), as_version=4)
    namespace, injected = {"__name__": "__main__"}, False
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        exec(compile(cell.source, f"{name}.ipynb[{i}]", "exec"), namespace)
        if "parameters" in cell.metadata.get("tags", []):
            namespace.update({k: v for k, v in params.items() if k in decl[name]})
            injected = True
    assert injected, f"{name}: no cell tagged parameters"
    plt.close("all")
"""


def start_chain(root: Path, *, hash_seed: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONHASHSEED": hash_seed, "MPLBACKEND": "Agg"}
    log = open(root.with_suffix(".log"), "wb")
    with log:  # a file, not a pipe: a full pipe would block the run
        return subprocess.Popen([sys.executable, "-c", CHAIN, str(REPO), str(root), RUN_ID],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # a process group: workers included


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("determinism").resolve()
    roots = [base / "a", base / "b"]
    # Side by side: each is mostly one process (extraction uses two), so on two cores the
    # pair takes little longer than one; the outputs must not depend on timing anyway.
    procs = [start_chain(root, hash_seed=seed) for root, seed in zip(roots, ("1", "2"))]
    try:
        for proc in procs:
            proc.wait(timeout=TIMEOUT_S)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    for root, proc in zip(roots, procs):
        assert proc.returncode == 0, root.with_suffix(".log").read_text()[-4000:]
    return roots


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
    return re.sub(r"ckpt-[0-9a-f]{12}", "ckpt-<key>", text)


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


def test_other_gru_settings_never_share_a_checkpoint_folder(tmp_path):
    """Same settings, same folder (so a run resumes); other settings, another folder.

    Otherwise a finished run re-run with, say, another ``grad_clip`` would "resume" the old
    folder, train nothing, and report the old model under the new parameters.
    """
    decl = runner.declared(REPO, ["03_split", "05_gru"])
    not_model = {"run_id", "epochs", "device", "resume"}  # the split key covers 03's parameters
    model_keys = sorted(set(decl["05_gru"]) - set(decl["03_split"]) - not_model)
    assert {"hidden_size", "dropout", "lr", "grad_clip", "frame_pool"} <= set(model_keys)
    params = {**load_yaml(REPO / "params/base.yaml"), "root": str(tmp_path)}
    folder = store.gru_checkpoint_dir(params, "splitkey")
    for key in ("epochs", "device", "resume", "progress"):
        assert store.gru_checkpoint_dir({**params, key: changed(params[key])}, "splitkey") == folder, key
    assert store.gru_checkpoint_dir(params, "othersplit") != folder
    for key in [*model_keys, "seed"]:
        other = {**params, key: changed(params[key])}
        assert store.gru_checkpoint_dir(other, "splitkey") != folder, key
