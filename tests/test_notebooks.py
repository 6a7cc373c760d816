"""The notebook chain: papermill on params/smoke.yaml into a tmp dir (the session's
``smoke_run``, see conftest.py), what it leaves, its reports, its parameters, and its
determinism. One file, so that one pytest-xdist worker (``--dist loadfile``) builds the chain.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from audioreg import cli, runner, stages
from audioreg.features.extract import array_name
from audioreg.params import UnknownParameterError, load_yaml, save_yaml
from audioreg.targets import TARGETS
from conftest import ARTIFACTS, REPO, SMOKE_RUN_ID, render_in_browser

pytestmark = pytest.mark.slow


@pytest.fixture
def smoke(smoke_twin, smoke_run):
    """The session's chain; its twin (for the determinism tests below) starts first, in the
    background, so the two run side by side."""
    return smoke_run.work, smoke_run.result


def test_every_stage_leaves_its_artifacts(smoke):
    work, result = smoke
    assert [p.name for p in result.executed] == [f"{nb}.ipynb" for nb in runner.NOTEBOOKS]
    assert (work / "data/raw/smoke/metadata.csv").is_file()
    manifests = list((work / "data/interim").glob("ingest-*/manifest.csv"))
    assert len(manifests) == 1
    feature_dirs = [d for d in (work / "data/features").iterdir() if (d / "meta.json").is_file()]
    assert len(feature_dirs) == 1 and len(list(feature_dirs[0].glob("*.npy"))) == 40
    assert len(list((work / "data/splits").glob("split-*.csv"))) == 1
    run = work / "runs/smoke"
    assert (run / "rf/predictions.csv").is_file() and (run / "gru/predictions.csv").is_file()
    assert (run / "gru/history.csv").is_file()
    models = work / "data/models"  # content-keyed: any run with the same settings and data reuses them
    assert len(list(models.glob("gru-*/best.pt"))) == 1 and len(list(models.glob("gru-*/last.pt"))) == 1
    assert len(list(models.glob("rf-*/model.joblib"))) == 1 and len(list(models.glob("*/meta.json"))) == 2
    assert (run / "params.yaml").is_file()


def test_executed_notebooks_have_the_injected_parameters(smoke):
    work, result = smoke
    nb = nbformat.read(str(result.run_dir / "05_gru.ipynb"), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "hidden_size = 32" in injected[0].source and "run_id = \"smoke\"" in injected[0].source


def test_metrics_json_has_every_model_and_target(smoke):
    work, result = smoke
    data = json.loads((result.report_dir / "metrics.json").read_text())
    assert set(data["metrics"]) == {"mean baseline", "random forest", "GRU", "dsp"}
    for model in data["metrics"].values():
        assert set(model) == set(TARGETS)
    assert data["params"]["hidden_size"] == 32 and data["params"]["run_id"] == "smoke"
    assert "tempo" in data["caveat"] and "training part's variance" in data["denominator"]
    # every score with its interval, on the test part and (where choices are made) on validation
    for block in (data["metrics"], data["val"]["metrics"]):
        energy = block["random forest"]["energy"]
        lo, hi = energy["ci95"]["smse"]
        assert lo <= energy["smse"] <= hi
        key = block["GRU"]["key"]
        assert 0 <= key["mirex"] <= 1 and key["ci95"]["mirex"][0] <= key["mirex"] <= key["ci95"]["mirex"][1]
    sizes = stored_split(work)["split"].value_counts()
    assert (data["n_test"], data["val"]["n"]) == (sizes["test"], sizes["val"]) and sizes["test"] >= 5
    assert {d["target"] for d in data["differences"]} == {*TARGETS, "mean"}
    # the smoke test part holds 2 artists: too few to say anything, and the report says so
    assert data["bootstrap"]["groups"] == 2 and "no verdict is drawn" in data["verdict"]
    assert {d["verdict"] for d in data["differences"]} == {"too few groups"}
    gru = data["model_params"]["GRU"]
    assert gru["epochs_trained"] == 3 and 1 <= gru["best_epoch"] <= 3
    # the best any model can reach on these rows: the labels without their noise
    ceiling = data["noise_ceiling"]
    assert set(ceiling) == set(TARGETS) and ceiling["tempo"] == 1.0 and ceiling["time_signature"] == 1.0
    assert all(ceiling[t] < 1.0 for t in ("danceability", "energy", "valence"))
    for model in ("random forest", "GRU"):
        assert data["metrics"][model]["valence"]["r2"] <= ceiling["valence"] + 0.3


def test_scores_equal_the_golden_file(smoke):
    """The smoke chain's scores, rounded to 4 decimals, against ``tests/golden/smoke_metrics.json``
    (regenerated only by ``python tests/golden/regenerate.py``, reviewed like code)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("regenerate", REPO / "tests/golden/regenerate.py")
    golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(golden)
    work, result = smoke
    got = golden.golden_view(json.loads((result.report_dir / "metrics.json").read_text()))
    want = json.loads(golden.GOLDEN.read_text())
    assert got == want


def test_fewer_epochs_than_the_stored_model_stop_with_a_message_naming_epochs(smoke, tmp_path):
    work, _ = smoke
    with pytest.raises(runner.RunError, match=r"05_gru failed: ValueError: .*holds a run of 3 epochs and this run "
                                              r"asks for epochs=2"):
        runner.run(["params/smoke.yaml"], {"root": str(work), "epochs": 2}, run_id="fewer", root=REPO,
                   notebooks=["05_gru"])


def test_html_report_has_heatmap_and_curves(smoke):
    work, result = smoke
    page = (result.report_dir / "06_error_analysis.html").read_text(encoding="utf-8")
    assert 'id="audioreg-mse-heatmap"' in page
    assert 'id="audioreg-training-curves"' in page
    assert "def " not in page and "audioreg.stages" not in page  # --no-input: code hidden
    for nb in ("04_rf", "05_gru", "06_error_analysis"):  # the pages' tables: no empty column, no NaN cell
        text = (result.report_dir / f"{nb}.html").read_text(encoding="utf-8")
        assert not re.search(r">\s*(NaN|nan|None)\s*<", text), nb
    index = (result.report_dir / "index.html").read_text(encoding="utf-8")
    for nb in runner.NOTEBOOKS:
        assert f'href="{nb}.html"' in index and (result.report_dir / f"{nb}.html").is_file()


def test_rerun_reuses_the_caches(smoke):
    work, result = smoke
    again = runner.run(["params/smoke.yaml"], {"root": str(work)}, run_id="smoke-again", root=REPO,
                       notebooks=["02_extract"])
    nb = nbformat.read(str(again.executed[0]), as_version=4)
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/markdown", ""))
                   for c in nb.cells for o in c.get("outputs", []))
    assert "computed now: 0" in text


def test_papermill_from_notebooks_folder_reads_the_upstream_settings_of_its_run(smoke, tmp_path):
    """`papermill 05_gru.ipynb out.ipynb -p dropout 0.5` from notebooks/: 05 declares only its own
    settings and reads the data's from runs/<run_id>/params.yaml, here the one 01-03 would
    have left when run alone on the smoke data."""
    work, _ = smoke
    upstream = load_yaml(work / "runs/smoke/params.yaml")
    declared = runner.declared(REPO, ["05_gru"])["05_gru"]
    save_yaml({k: v for k, v in upstream.items() if k not in declared or k in ("root", "seed")},
              work / "runs/direct/params.yaml")
    args = [sys.executable, "-m", "papermill", "05_gru.ipynb", str(tmp_path / "out.ipynb"), "-p", "root", str(work),
            "-p", "dropout", "0.5", "-p", "run_id", "direct"]
    for k in ("hidden_size", "epochs", "batch_size", "progress"):  # the smoke run's tiny model, as a user types it
        args += ["-p", k, str(upstream[k])]
    proc = subprocess.run(args, cwd=REPO / "notebooks", capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads((work / "runs/direct/gru/params.json").read_text())
    assert saved["params"]["dropout"] == 0.5 and saved["params"]["synth_n"] == upstream["synth_n"]
    assert saved["model"]["dropout"] == 0.5 and saved["model"]["hidden_size"] == upstream["hidden_size"]
    assert load_yaml(work / "runs/direct/params.yaml")["dropout"] == 0.5  # recorded for 06
    assert sorted(p.name for p in (work / "data/raw").iterdir()) == ["smoke"]  # no other data built
    smoke_pred = (work / "runs/smoke/gru/predictions.csv").read_text().splitlines()
    direct_pred = (work / "runs/direct/gru/predictions.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in direct_pred] == [r.split(",")[0] for r in smoke_pred]  # the same test part
    assert len(list((work / "data/models").glob("gru-*/best.pt"))) == 2  # another setting, another model


def test_another_run_with_the_same_settings_reuses_the_models(smoke):
    work, _ = smoke
    before = {p: p.stat().st_mtime_ns for p in (work / "data/models").glob("*/*") if p.suffix in (".pt", ".joblib")}
    again = runner.run(["params/smoke.yaml"], {"root": str(work)}, run_id="smoke-models", root=REPO,
                       notebooks=["04_rf", "05_gru"])
    after = {p: p.stat().st_mtime_ns for p in (work / "data/models").glob("*/*") if p.suffix in (".pt", ".joblib")}
    assert after == before  # nothing refitted, nothing retrained
    for model in ("rf", "gru"):
        assert ((again.run_dir / model / "predictions.csv").read_text()
                == (work / "runs/smoke" / model / "predictions.csv").read_text())


def test_only_keeps_the_run_index_complete(smoke):
    """A rerun of one notebook (``--only``) rewrites its page; the index still links every page."""
    work, result = smoke
    again = runner.run(["params/smoke.yaml"], {"root": str(work)}, run_id="smoke", root=REPO,
                       notebooks=["06_error_analysis"])
    index = again.index.read_text(encoding="utf-8")
    for nb in runner.NOTEBOOKS:
        assert f'href="{nb}.html"' in index, nb


def test_plain_papermill_refuses_a_mistyped_parameter(smoke, tmp_path):
    """papermill only warns about ``-p dropuot 0.5``; the notebook itself stops, before any work."""
    work, _ = smoke
    proc = subprocess.run([sys.executable, "-m", "papermill", "notebooks/06_error_analysis.ipynb",
                           str(tmp_path / "out.ipynb"), "-p", "root", str(work), "-p", "run_id", "typo",
                           "-p", "rnu_id", "x"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "UnknownParameterError" in proc.stderr and "'rnu_id' (did you mean 'run_id'?)" in proc.stderr
    assert not (work / "runs/typo").exists()


def test_unknown_parameter_stops_the_run_before_any_notebook(tmp_path):
    with pytest.raises(UnknownParameterError, match="dropuot"):
        runner.run([], {"root": str(tmp_path), "dropuot": 0.5}, run_id="x", root=REPO)
    assert not (tmp_path / "runs").exists()


def test_analysis_notebook_runs_headless(tmp_path):
    import papermill as pm

    out = tmp_path / "analysis.ipynb"
    pm.execute_notebook(str(REPO / "analysis/sample_set_vs_echonest.ipynb"), str(out), parameters={"n_labels": 400},
                        cwd=str(REPO / "analysis"), progress_bar=False)
    nb = nbformat.read(str(out), as_version=4)
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


# ------------------------------------------------------------------------------ determinism
# Determinism: the smoke chain run twice (same seed, data and parameters) gives the same
# split, the same feature arrays and the same metrics on the CPU.
#
# Each run gets its own data root, so the second run recomputes everything (sample set,
# ingest, features, split, both models) instead of reusing the first run's content-keyed
# caches. The runs are separate interpreters with different ``PYTHONHASHSEED`` values, so
# nothing may depend on set or dict-of-str iteration order either.
#
# Both runs are ``audioreg run`` on ``params/smoke.yaml``: the session's ``smoke_run``
# (which ``test_notebooks.py`` checks too) and its twin, a command started in the
# background at the same time (see conftest.py).
#
# Two things legitimately differ between the roots and are normalized: absolute paths, and
# content keys derived from the audio files' SHA-256. libsndfile writes a random Ogg stream
# serial number, so a regenerated ``.ogg`` differs byte-wise while its decoded audio does not;
# the keys of the features folder, the split file and the model folders follow.

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


def test_each_run_computed_its_own_caches(two_runs):
    a, b = two_runs
    for root in two_runs:
        feats = features_dir(root)
        assert feats.is_relative_to(root)
        assert all(Path(f).is_relative_to(feats) for f in stored_split(root)["file"])
    # The runs' audio was generated twice: its decoded content is the same (the features
    # below), its Ogg bytes are not, so the content keys differ and nothing was shared.
    assert features_dir(a).name != features_dir(b).name


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


def test_same_metrics_and_predictions(two_runs):
    a, b = two_runs
    metrics = [json.loads(normalized_text(r / "runs" / RUN_ID / "metrics.json", r)) for r in two_runs]
    assert set(metrics[0]["metrics"]) == {"mean baseline", "random forest", "GRU", "dsp"}
    assert metrics[0]["metrics"] == metrics[1]["metrics"]  # exact float equality, every target
    assert metrics[0]["summary"] == metrics[1]["summary"]
    assert metrics[0]["data"]["key"] == metrics[1]["data"]["key"]  # the same tracks, parts and labels
    for doc in metrics:  # when each was written, and the stored split's key and path, which hash the Ogg bytes
        del doc["written"], doc["data"]["split_key"], doc["data"]["split_path"]
    assert metrics[0] == metrics[1]  # and everything else: parameters, best epoch, data, versions...
    for model in ("rf", "gru"):
        preds = [pd.read_csv(r / "runs" / RUN_ID / model / "predictions.csv", dtype={"track_id": str})
                 for r in two_runs]
        pd.testing.assert_frame_equal(preds[0], preds[1], check_exact=True)
    history = [pd.read_csv(r / "runs" / RUN_ID / "gru/history.csv").drop(columns="seconds") for r in two_runs]
    pd.testing.assert_frame_equal(history[0], history[1], check_exact=True)


# ------------------------------------------------------------------ audioreg predict with the chain's models


@pytest.fixture(scope="module")
def predict_folder(smoke_run, tmp_path_factory):
    """Real-looking input: a smoke track under a Unicode name in a nested folder, an upper-case
    extension, a broken file and a file that is not audio."""
    src = sorted((smoke_run.work / "data" / "raw" / "smoke").rglob("*.wav"))[:2]
    root = tmp_path_factory.mktemp("predict")
    (root / "a" / "b").mkdir(parents=True)
    shutil.copy(src[0], root / "a" / "b" / "Mötley – ünï.wav")
    shutil.copy(src[1], root / "a" / "UPPER.WAV")
    (root / "broken.flac").write_bytes(b"not audio at all" * 100)
    (root / "notes.txt").write_text("not audio")
    return root


@pytest.mark.parametrize("model", ["gru", "rf", "dsp"])
def test_predict_lists_broken_files_and_writes_every_readable_one(smoke_run, predict_folder, model, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    rc = cli.main(["predict", str(predict_folder), "--run", str(smoke_run.run_dir), "--model", model, "--out", str(out),
                   "--no-progress"])
    assert rc == 0
    df = pd.read_csv(out)
    assert sorted(p.split("/")[-1] for p in df["path"]) == ["Mötley – ünï.wav", "UPPER.WAV"]
    failures = pd.read_csv(tmp_path / "pred.failures.csv")
    assert failures["path"].str.endswith("broken.flac").tolist() == [True]
    assert "broken.flac" in capsys.readouterr().err
    assert {*TARGETS, "mode", "key_prob", "mode_prob", "time_signature_prob"} <= set(df.columns)
    if model == "dsp":  # what the experts measure, and nothing invented for the rest
        assert df["tempo"].between(30, 300).all() and df["loudness"].between(-70, 0).all()
        assert df["key"].between(-1, 11).all() and df["energy"].isna().all()
        assert not any(c.endswith("_lo") for c in df.columns)
        return
    for t in TARGETS:
        if t in ("key", "time_signature"):
            continue
        lo, hi = df[f"{t}_lo"], df[f"{t}_hi"]
        assert ((lo <= df[t] + 1e-9) & (df[t] <= hi + 1e-9)).all(), t
    assert set(df["key"]) <= set(range(12)) and set(df["time_signature"]) <= {3, 4, 5, 6, 7}
    if model == "rf":  # the share of trees that agree with the forest's class
        assert df["key_prob"].between(0, 1).all() and df["time_signature_prob"].between(0, 1).all()


@pytest.mark.parametrize("model", ["rf", "dsp"])
def test_predict_with_worker_processes_gives_the_same_rows(smoke_run, predict_folder, model):
    """Each file's inputs (decoding, features, loudness, expert estimates) computed in worker
    processes, or here: the same rows and failures; workers that die leave the rest computed
    here, still the same."""
    import os
    import signal

    from audioreg import predict as pr

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: predict computes every file in its own process")
    predictor = pr.load(smoke_run.run_dir, model)
    plain, plain_failures = pr.predict([predict_folder], predictor)
    need = {"features": predictor.needs_features(), "experts": predictor.needs_experts()}
    with pr.Workers([predict_folder], **need) as workers:
        assert workers.pool is not None and len(workers.pool._processes) >= 2
        beside, beside_failures = pr.predict([predict_folder], predictor, workers=workers)
    with pr.Workers([predict_folder], **need) as workers:
        for pid in list(workers.pool._processes):  # the workers die (as a crashing decoder would take them)
            os.kill(pid, signal.SIGKILL)
        orphaned, orphaned_failures = pr.predict([predict_folder], predictor, workers=workers)
        assert workers.pool is None
    for df, failures in ((beside, beside_failures), (orphaned, orphaned_failures)):
        pd.testing.assert_frame_equal(df.drop(columns="seconds"), plain.drop(columns="seconds"), check_exact=True)
        pd.testing.assert_frame_equal(failures, plain_failures)
    with pytest.raises(ValueError, match="needs features"):  # workers computing less than the model needs
        pr.predict([predict_folder], predictor, workers=pr.Workers([predict_folder], features=not need["features"],
                                                                   experts=need["experts"], processes=0))


def test_the_predict_command_leaves_the_audio_libraries_to_its_workers(smoke_run, predict_folder, tmp_path):
    """`audioreg predict --model gru`: the command's own process loads torch and the model, and never
    imports numba, librosa, scipy.signal or scikit-learn; the workers do, while the model loads
    (about 1.5 s of a one-file prediction with expert inputs)."""
    code = ("import sys\nfrom audioreg import cli\n"
            f"rc = cli.main(['predict', {str(predict_folder)!r}, '--run', {str(smoke_run.run_dir)!r}, '--model', 'gru', "
            f"'--out', {str(tmp_path / 'p.csv')!r}, '--no-progress'])\n"
            "print(rc, sorted(m for m in ('numba', 'librosa', 'scipy.signal', 'sklearn', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    assert out == "0 ['torch']"
    assert len(pd.read_csv(tmp_path / "p.csv")) == 2


def test_predicting_with_the_gru_needs_no_scikit_learn_and_predicts_as_the_estimator(smoke_run):
    """`audioreg predict --model gru` loads the checkpoint without the estimator class (and so
    without scikit-learn, about 1 s of a one-file prediction): the same table as the estimator's."""
    from audioreg import predict as pr
    from audioreg.models import GRURegressor

    code = ("import sys\nfrom audioreg import predict as pr\n"
            f"pr.load({str(smoke_run.run_dir)!r}, 'gru')\nprint('sklearn' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
    folder = Path(json.loads((smoke_run.run_dir / "gru" / "model.json").read_text())["model_dir"])
    arrays = [np.random.default_rng(i).standard_normal((300, 46)).astype(np.float32) for i in range(3)]
    rows = pd.DataFrame({"lufs": [-9.0, -14.0, -20.0]})
    ours = pr.load(smoke_run.run_dir, "gru").model.predict_table(stages.TrackSequences(rows, arrays=arrays))
    theirs = GRURegressor.from_checkpoint(folder / "best.pt", device="cpu").predict_table(
        stages.TrackSequences(rows, arrays=arrays))
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


def test_predict_reports_its_coverage_and_the_run_keeps_it(smoke_run, predict_folder, tmp_path, capsys):
    cli.main(["predict", str(predict_folder / "a"), "--run", str(smoke_run.run_dir), "--model", "gru",
              "--out", str(tmp_path / "p.csv"), "--no-progress"])
    assert "coverage measured on the run's test part" in capsys.readouterr().out
    doc = json.loads((smoke_run.run_dir / "metrics.json").read_text())
    assert doc["conformal"]["level"] == 0.9
    assert set(doc["conformal"]["models"]) == {"random forest", "GRU", "dsp"}
    assert "dsp" in doc["metrics"]


def test_metrics_json_says_what_the_scores_were_measured_on(smoke_run):
    """A run's metrics.json names its data (the generated set here), the stored split whose test part
    was scored, and the versions of what computed it: what a comparison across runs needs."""
    import platform

    doc = json.loads((smoke_run.run_dir / "metrics.json").read_text())
    data = doc["data"]
    assert data["set"] == "sample" and data["parts"]["test"] == doc["n_test"] and data["parts"]["val"] == doc["val"]["n"]
    assert Path(data["split_path"]).is_file() and data["split_key"] in Path(data["split_path"]).name
    assert len(data["key"]) == 12 and data["key"] in data["name"]
    assert sum(data["parts"].values()) == data["n_tracks"] == len(pd.read_csv(data["split_path"]))
    assert doc["versions"]["numpy"] == np.__version__ and doc["versions"]["python"] == platform.python_version()
    assert doc["written"][:4].isdigit()


def test_evaluate_scores_the_runs_models_beside_the_experts_on_one_decoding_per_row(smoke_run, tmp_path, capsys):
    """``audioreg evaluate --run``: the chain's rf and gru scored beside the experts on labelled smoke
    tracks, one of them as two stems; every file is decoded once, and a single file's model
    predictions are those ``audioreg predict`` makes of it."""
    import soundfile as sf

    from audioreg import evaluate as ev
    from audioreg import predict as pr
    from audioreg.data import audio
    from audioreg.features import frames

    raw = smoke_run.work / "data" / "raw" / "smoke"
    meta = pd.read_csv(raw / "metadata.csv").head(3)
    y, _ = audio.load_audio(raw / meta["path"][2], sr=frames.SR)
    sf.write(tmp_path / "stem_a.wav", 0.25 * y, frames.SR, subtype="FLOAT")
    sf.write(tmp_path / "stem_b.wav", 0.75 * y, frames.SR, subtype="FLOAT")
    paths = [str(raw / meta["path"][0]), str(raw / meta["path"][1]), f"{tmp_path / 'stem_a.wav'}+{tmp_path / 'stem_b.wav'}"]
    pd.DataFrame({"path": paths, "bpm": meta["tempo"], "key": meta["key"], "mode": meta["mode"],
                  "time_signature": meta["time_signature"]}).to_csv(tmp_path / "ann.csv", index=False)
    decodes = []
    decode = audio.load_audio

    def counting_decode(path, *args, **kwargs):
        decodes.append(path)
        return decode(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(audio, "load_audio", counting_decode)
        mp.setattr(ev, "load_audio", counting_decode)
        assert cli.main(["evaluate", str(tmp_path / "ann.csv"), "--run", str(smoke_run.run_dir),
                         "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert len(decodes) == 4  # two files and two stems, once each, for the experts and both models
    doc = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    models = ["rf [smoke]", "gru [smoke]"]
    assert doc["failures"] == [] and doc["models"] == models and len(doc["predictions"]) == 6
    for attr in ("tempo", "key", "time_signature"):
        assert doc["scores"][attr]["n"] == 3 and all(m in doc["scores"][attr] for m in models), attr
    preds = pd.DataFrame(doc["predictions"])
    key = doc["scores"]["key"]
    for m in models:
        has_mode = preds.loc[preds["model"] == m, "mode"].notna().all()
        assert ("mirex" in key[m]) == has_mode and (key.get("notes", {}).get(m) == ev.NO_MODE) != has_mode, m
    assert key["notes"]["rf [smoke]"] == ev.NO_MODE  # the forest predicts no mode
    out = capsys.readouterr().out
    assert "tempo (n=3) gru [smoke]: Acc1" in out and "time_signature (n=3) rf [smoke]: accuracy" in out
    page = (tmp_path / "out" / "evaluation.html").read_text(encoding="utf-8")
    assert "<td>time_signature</td><td>gru [smoke]</td><td>3</td>" in page and "<td>key</td><td>rf [smoke]</td>" in page
    for kind in ("rf", "gru"):
        want = pr.predict_file(raw / meta["path"][0], pr.load(smoke_run.run_dir, kind))
        got = preds[(preds["model"] == f"{kind} [smoke]") & (preds["row"] == 2)].iloc[0]
        assert got["tempo"] == pytest.approx(want["tempo"], rel=1e-9), kind
        assert (got["key"], got["time_signature"]) == (want["key"], want["time_signature"]), kind
    assert list(ev.load_models([smoke_run.run_dir], ["gru"])) == ["gru [smoke]"]


# ------------------------------------------------------------------ the report pages in a real browser


def test_the_run_report_and_its_pages_render_in_a_browser(smoke_run, browser):
    """Headless Chromium opens the smoke run's report and each notebook page: every image loads with
    a size, every figure has a size, no reference is broken or leaves this machine, no console
    error, each page has its own title; the screenshots are kept in test-artifacts/reports/smoke/."""
    report = smoke_run.result.report_dir
    pages = [report / "index.html", *sorted(report.glob("0*.html"))]
    assert len(pages) == 1 + len(runner.NOTEBOOKS)
    titles = set()
    for page in pages:
        facts, problems = render_in_browser(browser, page, ARTIFACTS / "reports" / SMOKE_RUN_ID / f"{page.stem}.png")
        assert not problems, (page.name, problems)
        assert SMOKE_RUN_ID in facts["title"], (page.name, facts["title"])
        titles.add(facts["title"])
        if page.name in ("index.html", "06_error_analysis.html"):
            assert len(facts["svgs"]) + len(facts["images"]) >= 2, page.name  # the figures are there, with a size
    assert len(titles) == len(pages)
    assert (ARTIFACTS / "reports" / SMOKE_RUN_ID / "index.png").stat().st_size > 10_000


def test_the_cross_run_report_ranks_two_runs_side_by_side_in_a_browser(smoke_run, browser, tmp_path):
    """The runner rebuilds reports/index.html after a run; with a second run of the same data it
    shows both in one data set, and renders in Chromium with its heatmap (screenshot in
    test-artifacts/reports/index.png)."""
    from audioreg.judge.leaderboard import write_cross_run_index

    assert SMOKE_RUN_ID in (smoke_run.work / "reports" / "index.html").read_text(encoding="utf-8")
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    shutil.copytree(smoke_run.result.report_dir, reports / SMOKE_RUN_ID)
    doc = json.loads((smoke_run.run_dir / "metrics.json").read_text())
    for run_id, dropout in ((SMOKE_RUN_ID, doc["params"]["dropout"]), ("smoke-second", 0.5)):
        (runs / run_id).mkdir(parents=True)
        second = {**doc, "run_id": run_id, "params": {**doc["params"], "run_id": run_id, "dropout": dropout}}
        (runs / run_id / "metrics.json").write_text(json.dumps(second))
    page = write_cross_run_index(runs, reports / "index.html")
    facts, problems = render_in_browser(browser, page, ARTIFACTS / "reports" / "index.png")
    assert not problems, problems
    html = page.read_text(encoding="utf-8")
    assert html.count('<section class="dataset"') == 1  # one data set: the two runs ranked together
    assert f'href="{SMOKE_RUN_ID}/index.html"' in html and "smoke-second" in html and "dropout" in html
    assert any(min(s["box"]) > 100 for s in facts["svgs"])  # the heatmap, drawn at a readable size


def test_the_explorer_runs_headlessly_as_a_static_view(smoke_run, tmp_path):
    """analysis/explorer.ipynb under papermill (no widget frontend, ``interactive`` left False):
    the worst-predicted test track of the smoke run as plain figures and a table, no widgets."""
    import papermill as pm

    out = tmp_path / "explorer.ipynb"
    pm.execute_notebook(str(REPO / "analysis/explorer.ipynb"), str(out),
                        parameters={"root": str(smoke_run.work), "run_id": "smoke"},
                        cwd=str(REPO / "analysis"), progress_bar=False)
    outputs = [o for c in nbformat.read(str(out), as_version=4).cells for o in c.get("outputs", [])]
    assert not any(o.get("output_type") == "error" for o in outputs)
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    figures = [o for o in outputs if "image/svg+xml" in o.get("data", {}) or "image/png" in o.get("data", {})]
    html = "".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert len(figures) == 2
    assert "audioreg-track-predictions" in html and "audioreg-track-features" in html
    assert "<audio" in html and "prediction [90 % interval]" in html


def test_the_learnability_study_runs_headlessly(smoke_run, tmp_path):
    """analysis/learnability.ipynb on the smoke chain's data (a test part of a few tracks): it
    runs through, shows the learning-curve, ablation and noise-ceiling tables, and says the
    test part is too small to judge instead of drawing verdicts."""
    import papermill as pm

    out = tmp_path / "learnability.ipynb"
    pm.execute_notebook(str(REPO / "analysis/learnability.ipynb"), str(out),
                        parameters={"root": str(smoke_run.work), "run_id": SMOKE_RUN_ID, "fractions": "0.5,1.0",
                                    "repeats": 1, "n_trees": 10, "n_boot": 100},
                        cwd=str(REPO / "analysis"), progress_bar=False)
    nb = nbformat.read(str(out), as_version=4)
    outputs = {c.get("id"): c.get("outputs", []) for c in nb.cells if c.cell_type == "code"}
    assert not any(o.get("output_type") == "error" for os_ in outputs.values() for o in os_)

    def shown(cell_id, mime):
        return "\n".join(str(o.get("data", {}).get(mime, "")) for o in outputs[cell_id])

    assert "too small to judge" in shown("a1f0c005", "text/markdown")  # the caveat, not a crash
    assert "fraction" in shown("a1f0c008", "text/html")  # the learning-curve table
    assert "last_gain" in shown("a1f0c010", "text/html") and "too few" in shown("a1f0c010", "text/markdown")
    assert "mfcc" in shown("a1f0c013", "text/html") and "chroma" in shown("a1f0c014", "text/html")  # ablation verdicts
    assert "ceiling" in shown("a1f0c017", "text/html") and "ceiling" in shown("a1f0c018", "text/html")
    assert sum("image/svg+xml" in o.get("data", {}) for os_ in outputs.values() for o in os_) >= 3  # the figures
