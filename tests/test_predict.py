"""``audioreg predict`` (lib/audioreg/predict.py) and its split-conformal intervals.

The end-to-end predictions with the smoke chain's trained models are in test_notebooks.py,
beside the chain (one pytest-xdist worker builds it)."""

import numpy as np
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


def test_predict_without_a_trained_model_says_which_notebook_makes_it(tmp_path, capsys):
    (tmp_path / "runs" / "x").mkdir(parents=True)
    assert cli.main(["predict", str(tmp_path), "--run", str(tmp_path / "runs" / "x"), "--model", "rf"]) == 2
    assert "04_rf" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path), "--model", "gru"]) == 2
    assert "--run" in capsys.readouterr().err
