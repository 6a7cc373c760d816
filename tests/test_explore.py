"""audioreg.explore on small synthetic run folders: ranking, intervals, the static view and the
interactive explorer (the headless notebook run is in test_notebooks.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from matplotlib.figure import Figure

from audioreg import explore
from audioreg.features import frames
from audioreg.judge import uncertainty
from audioreg.targets import TARGETS

RUN_ID = "tiny"
N_FRAMES = 40
#: Test tracks and gru's tempo factor / energy offset on each: t1 is worst on tempo, t3 on energy.
TEST = {"t0": (1.1, 0.05), "t1": (2.0, 0.10), "t2": (1.0, 0.02), "t3": (0.7, 0.40)}


def _labels(rng, n: int) -> dict[str, np.ndarray]:
    out = {t: rng.uniform(0.2, 0.5, n) for t in TARGETS}  # predictions stay in [0, 1]
    out["tempo"] = rng.uniform(80, 160, n)
    out["loudness"] = rng.uniform(-20, -6, n)
    out["time_signature"] = np.full(n, 4.0)
    out["key"] = rng.integers(0, 12, n).astype(float)
    return out


@pytest.fixture
def tiny_run(tmp_path):
    """root/runs/tiny: 8 train, 12 val and 4 test tracks; rf, gru and dsp predictions; a
    feature array per track and a 1 s 440 Hz WAV per test track; metrics.json names the split
    table by a path relative to the root."""
    rng = np.random.default_rng(0)
    root = tmp_path / "root"
    (root / "data" / "splits").mkdir(parents=True)
    (root / "data" / "features").mkdir(parents=True)
    (root / "audio").mkdir()
    ids = [f"a{i}" for i in range(8)] + [f"v{i}" for i in range(12)] + list(TEST)
    split = ["train"] * 8 + ["val"] * 12 + ["test"] * len(TEST)
    table = pd.DataFrame({"track_id": ids, "split": split, **_labels(rng, len(ids))})
    table["mode"] = 1
    table["artists"] = [f"Artist {i % 5}" for i in range(len(ids))]
    table["track_name"] = [f"Song {tid}" for tid in ids]
    table["path"] = [f"audio/{tid}.wav" for tid in ids]  # relative to the root
    table["file"] = [str(root / "data" / "features" / f"{tid}.npy") for tid in ids]
    for i, tid in enumerate(ids):
        feats = rng.normal(size=(N_FRAMES, frames.N_FEATURES)).astype(np.float32)
        feats[:, 0] = i  # identifies the track in its array
        np.save(root / "data" / "features" / f"{tid}.npy", feats)
    t = np.arange(22050) / 22050
    for tid in TEST:
        sf.write(root / "audio" / f"{tid}.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    table.to_csv(root / "data" / "splits" / "split.csv", index=False)

    run_dir = root / "runs" / RUN_ID
    scored = table[table["split"] != "train"].reset_index(drop=True)
    for m, scale in (("rf", 0.5), ("gru", 1.0), ("dsp", 1.5)):
        df = scored[["track_id", "split"]].copy()
        for target in TARGETS:
            true = scored[target].to_numpy(dtype=float)
            noise = rng.normal(0, 0.05 * scale, len(scored)) * (np.abs(true).mean())
            pred = true + noise
            if target == "tempo":
                pred = np.where(scored["split"] == "test", true * scored["track_id"].map(lambda k: TEST.get(k, (1, 0))[0]), pred)
            if target == "energy":
                pred = np.where(scored["split"] == "test", true + scored["track_id"].map(lambda k: TEST.get(k, (1, 0))[1]), pred)
            df[f"true_{target}"], df[f"pred_{target}"] = true, pred
        (run_dir / m).mkdir(parents=True)
        df.to_csv(run_dir / m / "predictions.csv", index=False)
    (run_dir / "metrics.json").write_text(json.dumps({"run_id": RUN_ID, "data": {"split_path": "data/splits/split.csv"}}))
    return root


@pytest.fixture
def run(tiny_run):
    return explore.load_run(tiny_run, RUN_ID)


def test_the_track_list_is_sorted_by_error_and_labelled_with_artist_and_title(run):
    errors = explore.track_errors(run, target="tempo", model="gru")
    assert list(errors["track_id"]) == ["t1", "t3", "t0", "t2"]  # |log2 factor|: 1, 0.51, 0.14, 0
    assert np.allclose(errors["error"], np.abs(np.log2([2.0, 0.7, 1.1, 1.0])))
    assert errors["label"].iloc[0] == "Artist 1 - Song t1"
    energy = explore.track_errors(run, target="energy", model="gru")
    assert list(energy["track_id"]) == ["t3", "t1", "t0", "t2"]
    options = explore.track_options(run, target="tempo", model="gru")
    assert [v for _, v in options] == ["t1", "t3", "t0", "t2"]
    assert options[0][0].startswith("1. Artist 1 - Song t1")


def test_the_worst_track_is_picked_by_default_and_a_given_one_is_kept(run):
    assert explore.default_track(run, target="tempo", model="gru") == "t1"
    assert explore.default_track(run, target="energy", model="gru") == "t3"
    assert explore.default_track(run, target="tempo", model="gru", track_id="t2") == "t2"
    with pytest.raises(ValueError, match="no predictions"):
        explore.default_track(run, target="tempo", model="gru", track_id="nope")
    with pytest.raises(ValueError, match="model 'svm'"):
        explore.track_errors(run, target="tempo", model="svm")


def test_every_model_and_the_baseline_have_intervals_that_contain_the_prediction(run):
    summary = explore.track_summary(run, "t1")
    assert set(summary["model"]) == {"rf", "gru", "dsp", "mean baseline"}
    assert len(summary) == len(TARGETS) * 4
    continuous = summary[~summary["target"].isin(["key", "time_signature"])]
    assert np.isfinite(continuous[["lo", "hi"]].to_numpy()).all()
    assert ((continuous["lo"] <= continuous["pred"]) & (continuous["pred"] <= continuous["hi"])).all()
    assert (continuous["hi"] > continuous["lo"]).all()
    assert summary[summary["target"].isin(["key", "time_signature"])][["lo", "hi"]].isna().all().all()
    # gru's energy interval is its split-conformal half-width around the prediction
    val = run.predictions["gru"][run.predictions["gru"]["split"] == "val"]
    q = uncertainty.conformal_quantile(np.abs(val["true_energy"] - val["pred_energy"]))
    row = summary[(summary["target"] == "energy") & (summary["model"] == "gru")].iloc[0]
    assert row["lo"] == pytest.approx(max(row["pred"] - q, 0.0)) and row["hi"] == pytest.approx(min(row["pred"] + q, 1.0))
    # the baseline predicts the training mean
    train = run.table[run.table["split"] == "train"]
    base = summary[(summary["target"] == "danceability") & (summary["model"] == "mean baseline")].iloc[0]
    assert base["pred"] == pytest.approx(train["danceability"].mean())
    table = explore.prediction_table(summary)
    assert list(table.index) == list(TARGETS) and list(table.columns[:2]) == ["unit", "true"]
    assert table.loc["tempo", "unit"] == "BPM" and "[" in table.loc["tempo", "gru"]


def _widgets_in(objs) -> list:
    import ipywidgets

    return [o for o in objs if isinstance(o, ipywidgets.Widget)
            or "application/vnd.jupyter.widget-view+json" in (getattr(o, "_repr_mimebundle_", lambda: {})() or {})]


def test_the_static_view_shows_the_worst_track_as_plain_figures_and_a_table(run):
    from IPython.display import Audio, Markdown

    view = explore.static_view(run, target="tempo", model="gru")
    heading, audio, table, pred_fig, feat_fig = view
    assert isinstance(heading, Markdown) and "`t1`" in heading.data and "1 of 4" in heading.data
    assert isinstance(audio, Audio) and "<audio" in audio._repr_html_()
    assert isinstance(table, pd.DataFrame) and len(table) == len(TARGETS)
    assert isinstance(pred_fig, Figure) and pred_fig.get_gid() == "audioreg-track-predictions"
    assert isinstance(feat_fig, Figure) and feat_fig.get_gid() == "audioreg-track-features"
    assert not _widgets_in(view)
    # units on the axes, legends
    xlabels = [ax.get_xlabel() for ax in pred_fig.axes]
    assert "BPM" in xlabels and "dB LUFS" in xlabels
    assert pred_fig.legends and {t.get_text() for t in pred_fig.legends[0].get_texts()} == {
        "90 % interval", "prediction", "true value"}
    assert "(explored)" in [ax.get_title() for ax in pred_fig.axes if "tempo" in ax.get_title()][0]
    image_axes = [ax for ax in feat_fig.axes if ax.images]
    assert len(image_axes) == 4  # mfcc, chroma, contrast, tonnetz; zcr is a line
    assert feat_fig.axes[4].get_xlabel().startswith("time (s)")
    assert feat_fig.axes[4].get_xlim()[1] == pytest.approx(N_FRAMES * frames.HOP_LENGTH / frames.SR)
    assert feat_fig.axes[4].get_legend() is not None
    # the figure shows this track's array (its first MFCC is the track's row number)
    assert np.all(image_axes[0].images[0].get_array()[0] == list(run.table.index).index("t1"))


def test_a_chosen_track_is_shown_and_missing_audio_is_said(run, tiny_run):
    from IPython.display import Markdown

    view = explore.static_view(run, target="tempo", model="gru", track_id="t2")
    assert "`t2`" in view[0].data and "4 of 4" in view[0].data
    (tiny_run / "audio" / "t2.wav").unlink()
    note = explore.track_audio(run, "t2")
    assert isinstance(note, Markdown) and "No audio" in note.data


def test_a_run_without_metrics_json_is_refused(tiny_run):
    (tiny_run / "runs" / RUN_ID / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        explore.load_run(tiny_run, RUN_ID)


def test_the_interactive_explorer_redraws_when_a_track_or_target_is_chosen(run):
    import ipywidgets

    ex = explore.explorer(run, target="tempo", model="gru")
    assert isinstance(ex.widget, ipywidgets.VBox)
    assert "application/vnd.jupyter.widget-view+json" in ex._repr_mimebundle_()
    assert ex.track.value == "t1" and [v for _, v in ex.track.options] == ["t1", "t3", "t0", "t2"]
    first = ex.output.outputs
    kinds = [sorted(o["data"]) for o in first]
    assert ["text/markdown", "text/plain"] in kinds and ["image/png", "text/plain"] in kinds
    assert "`t1`" in first[0]["data"]["text/markdown"]

    ex.track.value = "t0"  # as a user picking another track
    assert ex.output.outputs != first and "`t0`" in ex.output.outputs[0]["data"]["text/markdown"]

    ex.target.value = "energy"  # re-ranked, the chosen track kept
    assert [v for _, v in ex.track.options] == ["t3", "t1", "t0", "t2"] and ex.track.value == "t0"
    assert "on energy" in ex.output.outputs[0]["data"]["text/markdown"]


def test_view_is_static_unless_interactive(run):
    assert not _widgets_in(explore.view(run, interactive=False, target="tempo", model="rf"))
    (only,) = explore.view(run, interactive=True, target="tempo", model="rf")
    assert isinstance(only, explore.Explorer)
