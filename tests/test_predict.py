"""``audioreg predict`` (lib/audioreg/predict.py) and its split-conformal intervals."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from audioreg import cli
from audioreg.judge import uncertainty
from audioreg.targets import TARGETS, VALID_RANGES


def test_conformal_quantile_is_the_finite_sample_rank():
    r = np.arange(1.0, 10.0)  # 9 residuals: ceil(10 * 0.9) = 9th smallest
    assert uncertainty.conformal_quantile(r, level=0.9) == 9.0
    assert uncertainty.conformal_quantile(np.arange(1.0, 20.0), level=0.9) == 18.0  # ceil(20 * .9) = 18
    assert uncertainty.conformal_quantile(r[:8], level=0.9) == np.inf  # too few rows: the whole range
    assert uncertainty.conformal_quantile([np.nan, 1.0, 2.0], level=0.5) == 2.0  # NaN (missing label) left out


def test_conformal_intervals_cover_new_rows_at_the_level():
    rng = np.random.default_rng(0)
    hits = []
    for _ in range(400):
        y_val, y_test = rng.normal(size=30), rng.normal(size=30)
        q = uncertainty.conformal_quantile(np.abs(y_val), level=0.9)  # the prediction 0 for every row
        hits.append(np.mean(np.abs(y_test) <= q))
    assert 0.88 < np.mean(hits) < 0.95  # >= 0.9 in expectation, at most 0.9 + 1/31


def test_tempo_intervals_are_relative_and_clipped_to_the_documented_range():
    lo, hi = uncertainty.conformal_interval("tempo", np.array([100.0, 250.0]), 1.0)
    np.testing.assert_allclose(lo, [50.0, 125.0])
    np.testing.assert_allclose(hi, [200.0, VALID_RANGES["tempo"][1]])
    assert uncertainty.conformal_residuals("tempo", [120.0], [60.0])[0] == pytest.approx(1.0)
    table = uncertainty.conformal_table(np.full((12, 11), 4.0), np.full((12, 11), 4.0), np.full((5, 11), 4.0),
                                        np.full((5, 11), 4.0))
    assert set(table.index) == {t for t in TARGETS if t not in ("key", "time_signature")}
    assert (table["test_coverage"] == 1.0).all() and (table["half_width"] == 0.0).all()


@pytest.fixture(scope="module")
def folder(smoke_run, tmp_path_factory):
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
def test_predict_lists_broken_files_and_writes_every_readable_one(smoke_run, folder, model, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    rc = cli.main(["predict", str(folder), "--run", str(smoke_run.run_dir), "--model", model, "--out", str(out),
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


def test_predict_reports_its_coverage_and_the_run_keeps_it(smoke_run, folder, tmp_path, capsys):
    cli.main(["predict", str(folder / "a"), "--run", str(smoke_run.run_dir), "--model", "gru",
              "--out", str(tmp_path / "p.csv"), "--no-progress"])
    assert "coverage measured on the run's test part" in capsys.readouterr().out
    doc = json.loads((smoke_run.run_dir / "metrics.json").read_text())
    assert doc["conformal"]["level"] == 0.9
    assert set(doc["conformal"]["models"]) == {"random forest", "GRU", "dsp"}
    assert "dsp" in doc["metrics"]


def test_predict_without_a_trained_model_says_which_notebook_makes_it(tmp_path, capsys):
    (tmp_path / "runs" / "x").mkdir(parents=True)
    assert cli.main(["predict", str(tmp_path), "--run", str(tmp_path / "runs" / "x"), "--model", "rf"]) == 2
    assert "04_rf" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path), "--model", "gru"]) == 2
    assert "--run" in capsys.readouterr().err
