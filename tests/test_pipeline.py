"""The cached data stages (01-03) on a tiny generated set, including bad rows and bad files."""

import os

import numpy as np
import pandas as pd
import pytest

from audioreg import stages
from audioreg.data.split import check_no_leakage, group_split
from audioreg.features.extract import array_name


@pytest.fixture
def params(tmp_path):
    return {"root": str(tmp_path), "metadata_path": "data/raw/tiny/metadata.csv", "audio_dir": "data/raw/tiny",
            "synth_n": 14, "synth_seconds": 3.0, "seed": 1, "workers": 1, "progress": False}


def test_stages_build_then_reuse(params, tmp_path):
    ing = stages.ingest(params)
    assert (tmp_path / "data/raw/tiny/metadata.csv").is_file()
    assert len(ing.manifest) == 14 and len(ing.problems) == 0
    assert set(ing.manifest["sample_rate"]) <= {22050, 32000, 44100, 48000}
    assert ing.manifest["sha256"].str.len().eq(64).all()

    feats = stages.features(params)
    assert feats.computed == 14 and len(feats.failures) == 0
    assert feats.array(0).shape[1] == 46 and feats.array(0).dtype == np.float32
    mtimes = {p: p.stat().st_mtime_ns for p in feats.out_dir.iterdir()}

    again = stages.features(params)
    assert again.key == feats.key and again.computed == 0
    assert {p: p.stat().st_mtime_ns for p in feats.out_dir.iterdir()} == mtimes  # nothing rewritten

    sp = stages.split(params)
    check_no_leakage(sp.table)
    assert set(sp.table["split"]) == {"train", "val", "test"}
    assert sp.path.parent == tmp_path / "data" / "splits"
    assert stages.split(params).table.equals(sp.table)
    Y = stages.targets(sp.table)
    assert Y.shape == (14, 11)
    assert [s.shape[1] for s in stages.sequences(sp.table)] == [46] * 14


def test_other_seed_other_split_same_features(params):
    """Another seed draws another split of the same tracks from the same cached features."""
    a = stages.split(params)
    features = stages.features(params)
    mtimes = {p.name: p.stat().st_mtime_ns for p in features.out_dir.glob("*.npy")}
    b = stages.split({**params, "seed": 2, "generate_sample": False})
    assert a.path != b.path and a.path.is_file() and b.path.is_file()
    assert sorted(a.table["track_id"]) == sorted(b.table["track_id"])  # the same tracks
    assert list(a.table["file"].sort_values()) == list(b.table["file"].sort_values())  # the same arrays
    assert {p.name: p.stat().st_mtime_ns for p in features.out_dir.glob("*.npy")} == mtimes  # not recomputed
    for res, seed in ((a, 1), (b, 2)):  # each stored split is the one its seed draws
        expected = group_split(res.table.drop(columns="split"), random_state=seed)
        assert res.table["split"].tolist() == expected.tolist()


def test_bad_rows_and_bad_files_are_listed_and_good_files_still_extracted(params, tmp_path):
    stages.sample_set(params)
    folder = tmp_path / "data/raw/tiny"
    meta = pd.read_csv(folder / "metadata.csv", dtype={"track_id": str})
    victims = meta["path"].iloc[:3].tolist()
    (folder / victims[0]).write_bytes(b"")  # zero bytes
    (folder / victims[1]).write_bytes(b"not audio at all " * 100)  # garbage with an audio name
    meta.loc[3, "tempo"] = 0.0  # out of range
    extra = meta.iloc[[4]].assign(track_id="ghost", path="audio/ghost.wav")  # no such file
    meta = pd.concat([meta, extra], ignore_index=True)
    meta.to_csv(folder / "metadata.csv", index=False)

    p = {**params, "generate_sample": False}
    ing = stages.ingest(p)
    reasons = ing.problems.set_index("track_id")["reason"]
    assert "empty file (0 bytes)" in reasons[meta["track_id"][0]]
    assert "not a readable audio file" in reasons[meta["track_id"][1]]
    assert reasons[meta["track_id"][3]] == "tempo=0 outside [1, 300] (Spotify's 0: no beat detected)"
    actions = ing.problems.set_index("track_id")["action"]
    assert actions[meta["track_id"][3]] == "label masked" and actions[meta["track_id"][0]] == "row dropped"
    assert "path 'audio/ghost.wav' names no file" in reasons["ghost"] and "tried 'ghost.<ext>'" in reasons["ghost"]
    assert len(ing.manifest) == 14 - 2  # the row with tempo 0 stays, its tempo unlabelled (partial labels are data)
    kept = ing.manifest.set_index("track_id").loc[meta["track_id"][3]]
    assert np.isnan(kept["tempo"]) and kept["energy"] == meta.loc[3, "energy"]
    feats = stages.features(p)
    assert len(feats.index) == 12 and len(feats.failures) == 0
    assert all((feats.out_dir / array_name(t)).is_file() for t in ing.manifest["track_id"])


def test_extraction_failure_is_recorded_not_fatal(params, tmp_path):
    from audioreg.features.extract import extract_many

    good = stages.ingest(params).manifest[["track_id", "path"]].head(2)
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"fLaC" + os.urandom(2000))
    files = pd.concat([good, pd.DataFrame({"track_id": ["bad"], "path": [str(broken)]})], ignore_index=True)
    res = extract_many(files, tmp_path / "feats", workers=2)
    assert list(res.index["track_id"]) == list(good["track_id"])
    assert res.failures["track_id"].tolist() == ["bad"]
    assert "broken.flac" in res.failures["reason"][0]
    assert not (tmp_path / "feats" / "bad.npy").exists()
    assert pd.read_csv(tmp_path / "feats" / "failures.csv")["track_id"].tolist() == ["bad"]


def test_sample_set_mismatch_is_explained(params):
    stages.sample_set(params)
    with pytest.raises(ValueError, match="generated with n=14 \\(asked 20\\)"):
        stages.sample_set({**params, "synth_n": 20})


def test_missing_metadata_without_generation(params):
    with pytest.raises(stages.MissingArtifactError, match="metadata file not found"):
        stages.ingest({**params, "generate_sample": False})


def test_resolve_workers():
    from audioreg.features.extract import resolve_workers

    assert resolve_workers(1) == 1 and resolve_workers(3) == 3
    assert resolve_workers(0) == (os.cpu_count() or 1) == resolve_workers(-1)


def test_models_see_the_loudness_of_the_original_channels(params):
    """The loudness label is measured on the file as written; the frame features see its mono
    downmix. Ingest measures every file's loudness over its original channels (the label's own
    measurement), and both models get it as an input."""
    sp = stages.split(params)
    table = sp.table
    np.testing.assert_allclose(table["lufs"], table["loudness"], atol=1e-9)  # the sample set's label: this meter
    stereo = table[table["channels"] == 2].iloc[0]
    from audioreg.data.audio import load_audio
    from audioreg.data.loudness import integrated_loudness

    y, sr = load_audio(stereo["path"], sr=int(stereo["sample_rate"]))
    assert stereo["lufs"] - integrated_loudness(y, sr=sr) > 2.0  # the downmix reads quieter
    X = stages.song_features(table)
    assert X.shape == (len(table), 93) and stages.song_feature_names()[-1] == ("lufs", "track", 0)
    np.testing.assert_array_equal(X[:, -1], table["lufs"])
    seqs = stages.model_sequences(table)
    assert len(seqs) == len(table) and seqs[0].shape[1] == 47
    np.testing.assert_array_equal(seqs[0][:, :46], stages.sequences(table)[0])
    assert (seqs[0][:, 46] == np.float32(table["lufs"].iloc[0])).all()


def test_dsp_predictions_take_the_experts_answers_and_the_baseline_for_the_rest():
    from audioreg.judge.metrics import mean_baseline
    from audioreg.targets import TARGETS

    j = {t: i for i, t in enumerate(TARGETS)}
    rows = pd.DataFrame({"dsp_tempo": [120.0, np.nan, 0.0], "dsp_key": [3.0, np.nan, -1.0],
                         "dsp_mode": [0.0, np.nan, 1.0], "lufs": [-10.0, -11.0, -12.0]})
    y_train = np.tile(np.linspace(0.1, 1.0, 11), (4, 1))
    y_train[:, j["tempo"]], y_train[:, j["key"]], y_train[:, j["time_signature"]] = [90, 100, 110, 120], [5, 5, 2, 5], 4
    pred, mode = stages.dsp_predictions(rows, y_train)
    base = mean_baseline(y_train, 3)
    np.testing.assert_array_equal(pred[:, j["tempo"]], [120.0, 105.0, 105.0])  # failed or no beat: the mean
    np.testing.assert_array_equal(pred[:, j["key"]], [3.0, 5.0, 5.0])  # failed or no key: the majority
    np.testing.assert_array_equal(pred[:, j["loudness"]], [-10.0, -11.0, -12.0])
    np.testing.assert_array_equal(mode, [0.0, np.nan, np.nan])
    others = [j[t] for t in TARGETS if t not in ("tempo", "key", "loudness")]
    np.testing.assert_array_equal(pred[:, others], base[:, others])


def test_a_stage_the_data_cannot_support_is_skipped_with_its_reason_and_the_run_goes_on(tmp_path):
    """Small data ends well: a notebook raising NotEnoughData is reported as skipped (CLI line,
    index.html) and the next notebook still runs; any other error still fails the run."""
    import json

    from audioreg import runner

    def notebook(code):
        cells = [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "execution_count": None,
                  "outputs": [], "source": 'root: str = ""\nrun_id: str = "default"\n'},
                 {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": None, "outputs": [], "source": code}]
        return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                            "name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}

    (tmp_path / "notebooks").mkdir()
    codes = {nb: "print('ok')" for nb in runner.NOTEBOOKS}
    codes["04_rf"] = "from audioreg.errors import NotEnoughData\nraise NotEnoughData('the val part is empty: 1 group')"
    codes["06_error_analysis"] = "raise KeyError('a real bug')"
    for nb, code in codes.items():
        (tmp_path / "notebooks" / f"{nb}.ipynb").write_text(json.dumps(notebook(code)), encoding="utf-8")
    result = runner.run(run_id="small", root=tmp_path, notebooks=["04_rf", "05_gru"])
    assert result.skipped == {"04_rf": "the val part is empty: 1 group"}
    assert [p.name for p in result.executed] == ["04_rf.ipynb", "05_gru.ipynb"]
    index = result.index.read_text(encoding="utf-8")
    assert "<b>skipped</b>" in index and "the val part is empty: 1 group" in index
    with pytest.raises(runner.RunError, match="06_error_analysis failed: KeyError"):
        runner.run(run_id="small", root=tmp_path, notebooks=["06_error_analysis"])


def test_model_stages_check_each_part_and_target_before_training():
    from audioreg import stages
    from audioreg.errors import NotEnoughData
    from audioreg.targets import TARGETS

    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.uniform(0.1, 0.9, (6, len(TARGETS))), columns=list(TARGETS))
    table["track_id"] = [f"t{i}" for i in range(6)]
    table["artists"] = ["A", "A", "B", "B", "C", "C"]
    table["split"] = ["train", "train", "val", "val", "test", "test"]
    table.loc[table["split"] == "train", "energy"] = np.nan  # energy labelled outside training only
    counts = stages.check_model_data(table)
    assert counts.loc["energy"].to_dict() == {"train": 0, "val": 2, "test": 2, "all": 4}
    assert counts.loc["valence", "train"] == 2 and counts.loc["mode"].sum() == 0
    with pytest.raises(NotEnoughData, match="the test part is empty: 4 tracks in 2 leakage-safe groups"):
        stages.check_model_data(table[table["split"] != "test"], parts=("train", "test"))
    unlabelled = table.copy()
    unlabelled.loc[unlabelled["split"] == "val", list(TARGETS)] = np.nan
    with pytest.raises(NotEnoughData, match="no target is labelled in every one of the train, val parts"):
        stages.check_model_data(unlabelled)
