"""Label-distribution helpers, and the synthetic labels' calibration against the Echo Nest table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from audioreg import synth
from audioreg.judge import labels


def frame(n: int = 500, *, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    """Uniform danceability, valence = danceability + noise (r ~ 0.7), tempo ~ N(120 + shift, 30)."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(0, 1, n)
    return pd.DataFrame({
        "track_id": np.arange(n),
        "danceability": d,
        "valence": np.clip(d + rng.normal(0, 0.2, n), 0, 1),
        "tempo": rng.normal(120 + shift, 30, n),
        "other": rng.normal(size=n),
    })


def test_load_echonest_reads_the_targets_and_drops_zero_tempi(tmp_path):
    df = pd.DataFrame({"track_id": [1, 2, 3], **{t: [0.1, 0.2, 0.3] for t in labels.ECHONEST_TARGETS}})
    df.loc[1, "tempo"] = 0.0
    df["extra"] = "x"
    path = tmp_path / "echonest.csv"
    df.to_csv(path, index=False)
    out = labels.load_echonest(path)
    assert list(out.columns) == ["track_id", *labels.ECHONEST_TARGETS]
    assert np.isnan(out.loc[1, "tempo"]) and out.loc[0, "tempo"] == 0.1
    assert labels.load_echonest(path, zero_tempo_as_missing=False).loc[1, "tempo"] == 0.0
    df.drop(columns="valence").to_csv(path, index=False)
    with pytest.raises(ValueError, match="valence"):
        labels.load_echonest(path)


def test_label_summary_matches_numpy():
    df = frame()
    df.loc[0, "tempo"] = np.nan
    s = labels.label_summary(df)
    assert list(s.index) == ["danceability", "valence", "tempo"]  # TARGETS order, only targets
    assert list(s.columns) == ["count", "mean", "std", "min", "q10", "q25", "q50", "q75", "q90", "max"]
    t = df["tempo"].dropna().to_numpy()
    assert s.loc["tempo", "count"] == len(df) - 1
    assert s.loc["tempo", "mean"] == pytest.approx(t.mean())
    assert s.loc["tempo", "q90"] == pytest.approx(np.quantile(t, 0.9))
    assert s.loc["tempo", "std"] == pytest.approx(t.std(ddof=1))


def test_compare_distributions_ks_is_zero_for_equal_and_large_for_shifted():
    a = frame(seed=1)
    same = labels.compare_distributions(a, a)
    assert (same["ks"] == 0).all()
    assert (same["mean_synth"] == same["mean_real"]).all()
    shifted = labels.compare_distributions(a, frame(seed=2, shift=60.0), targets=["tempo", "valence"])
    assert list(shifted.index) == ["tempo", "valence"]
    assert shifted.loc["tempo", "ks"] > 0.6 and shifted.loc["valence", "ks"] < 0.1
    assert shifted.loc["tempo", "mean_real"] == pytest.approx(180, abs=5)
    assert {"q10_synth", "q50_real", "q90_synth", "n_real"} <= set(shifted.columns)
    with pytest.raises(ValueError):
        labels.compare_distributions(a, frame(), targets=["energy"])


def test_compare_correlations_puts_pairs_side_by_side():
    a, b = frame(seed=3), frame(seed=4)
    b["valence"] = b["valence"].sample(frac=1, random_state=0).to_numpy()  # breaks the correlation
    c = labels.compare_correlations(a, b)
    assert list(c.index) == [("danceability", "valence"), ("danceability", "tempo"), ("valence", "tempo")]
    assert c.loc[("danceability", "valence"), "corr_synth"] == pytest.approx(a["danceability"].corr(a["valence"]))
    assert c.loc[("danceability", "valence"), "corr_synth"] > 0.6
    assert abs(c.loc[("danceability", "valence"), "corr_real"]) < 0.15
    assert np.allclose(c["diff"], c["corr_synth"] - c["corr_real"])


def test_noise_summary():
    a = frame(seed=5)
    b = a.copy()
    b["valence"] = a["valence"] + np.random.default_rng(0).normal(0, 0.1, len(a))
    s = labels.noise_summary(b, a, targets=["danceability", "valence"])
    assert s.loc["danceability", "noise_sd"] == 0 and s.loc["danceability", "r2_ceiling"] == 1
    assert s.loc["valence", "noise_sd"] == pytest.approx(0.1, rel=0.15)
    assert 0.5 < s.loc["valence", "r2_ceiling"] < 0.95
    with pytest.raises(ValueError, match="row-aligned"):
        labels.noise_summary(a, a.iloc[:10])


def test_plots_return_figures_with_one_panel_per_target():
    a, b = frame(seed=6), frame(seed=7, shift=20)
    fig = labels.plot_label_comparison(a, b)
    assert isinstance(fig, Figure) and fig.get_gid() == labels.FIGURE_IDS["plot_label_comparison"]
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["danceability", "valence", "tempo"]
    assert all(len(ax.patches) == 2 * 30 for ax in visible)  # two histograms of 30 bins
    fig = labels.plot_correlation_comparison(a, b)
    assert isinstance(fig, Figure) and fig.get_gid() == labels.FIGURE_IDS["plot_correlation_comparison"]
    heat = [ax for ax in fig.axes if ax.get_title() in ("synthetic", "Echo Nest")]
    assert len(heat) == 2 and all(len(ax.texts) == 9 for ax in heat)
    assert [t.get_text() for t in heat[0].get_yticklabels()] == ["danceability", "valence", "tempo"]


def test_synthetic_labels_are_calibrated_to_the_echo_nest_table(shared_data):
    """The calibration documented in docs/SAMPLE_SET.md holds (KS and correlations)."""
    real = labels.load_echonest(shared_data / "labels/echonest_audio_features_first8000.csv")
    assert len(real) == 8000
    synth_df = synth.sample_labels(n=2000, seed=0)
    dist = labels.compare_distributions(synth_df, real)
    assert list(dist.index) == ["danceability", "energy", "valence", "tempo", "liveness", "speechiness",
                                "instrumentalness", "acousticness"]
    assert (dist["ks"] < 0.16).all(), dist["ks"]
    assert (dist["mean_synth"] - dist["mean_real"]).abs().drop("tempo").max() < 0.06
    corr = labels.compare_correlations(synth_df, real)
    assert corr["diff"].abs().max() < 0.15, corr
    for pair in [("energy", "acousticness"), ("danceability", "valence"), ("speechiness", "instrumentalness")]:
        key = pair if pair in corr.index else pair[::-1]
        assert np.sign(corr.loc[key, "corr_synth"]) == np.sign(corr.loc[key, "corr_real"])
        assert abs(corr.loc[key, "corr_real"]) > 0.2
