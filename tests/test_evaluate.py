"""``audioreg evaluate``: the expert estimators and trained models scored on annotated audio, beside
constant baselines. The end-to-end scoring of the smoke chain's trained models is in
test_notebooks.py, beside the chain (one pytest-xdist worker builds it)."""

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioreg import cli
from audioreg import evaluate as ev
from audioreg.features import experts
from audioreg.predict import Predictor
from conftest import SR, clicks, triad


@pytest.mark.parametrize("text, want", [("F# minor", (6, 0)), ("Bb major", (10, 1)), ("D", (2, None)),
                                        ("7", (7, None)), ("-1", None), ("", None), ("A min", (9, 0))])
def test_parse_key(text, want):
    assert ev.parse_key(text) == want


def test_key_profiles_find_triads():
    for root, minor, want in ((60, False, (0, 1)), (69, True, (9, 0)), (66, True, (6, 0)), (67, False, (7, 1))):
        for profile in experts.KEY_PROFILES:
            key, mode, r = experts.key_from_chroma(experts.chroma_cqt_energy(triad(root, seconds=2.0, minor=minor), sr=SR),
                                                   profile=profile)
            assert (key, mode) == want and r > 0.7, (root, minor, profile)
    with pytest.raises(ValueError, match="flat"):
        experts.key_from_chroma(np.ones(12))


def test_the_edma_profile_is_the_published_one_and_finds_rotated_triads():
    """Faraldo et al. (2016)'s EDMA profiles as Essentia ships them: distributions (each sums to 1),
    tonic first; a C-major (C minor) triad chroma is C major (C minor), and rotating the chroma
    by s semitones rotates the key by s."""
    major, minor = experts.KEY_PROFILES["edma"]
    assert (major[0], major[7], minor[0], minor[3]) == (0.16519551, 0.13159476, 0.17235348, 0.10043649)
    assert sum(major) == pytest.approx(1.0, abs=1e-6) and sum(minor) == pytest.approx(1.0, abs=1e-6)
    c_major, c_minor = np.zeros(12), np.zeros(12)
    c_major[[0, 4, 7]] = c_minor[[0, 3, 7]] = 1.0
    for s in range(12):
        assert experts.key_from_chroma(np.roll(c_major, s), profile="edma")[:2] == (s, 1), s
        assert experts.key_from_chroma(np.roll(c_minor, s), profile="edma")[:2] == (s, 0), s


def test_the_evaluate_command_offers_every_key_profile(tmp_path, capsys):
    (tmp_path / "broken.wav").write_bytes(b"RIFF not audio")  # fails at decoding: no beat tracker to wait for
    pd.DataFrame({"path": ["broken.wav"], "bpm": ["90"]}).to_csv(tmp_path / "ann.csv", index=False)
    for profile in experts.KEY_PROFILES:
        assert cli.main(["evaluate", str(tmp_path / "ann.csv"), "--profile", profile, "--out", str(tmp_path / profile),
                         "--no-progress"]) == 0
        assert "not scored: broken.wav" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["evaluate", str(tmp_path / "ann.csv"), "--profile", "shaath"])


def _labelled_estimates() -> pd.DataFrame:
    """Four annotated rows with the experts' estimates: two tempi, three keys (one without a mode), three meters."""
    nan = float("nan")
    return pd.DataFrame([
        {"row": 2, "path": "a", "bpm": 100.0, "key": 2.0, "mode": 1.0, "time_signature": 4.0,
         "est_tempo": 50.0, "est_key": 2, "est_mode": 1, "key_strength": 0.9},
        {"row": 3, "path": "b", "bpm": 140.0, "key": 9.0, "mode": 0.0, "time_signature": 3.0,
         "est_tempo": 141.0, "est_key": 0, "est_mode": 1, "key_strength": 0.8},
        {"row": 4, "path": "c", "bpm": nan, "key": 7.0, "mode": None, "time_signature": 4.0,
         "est_tempo": 90.0, "est_key": 7, "est_mode": 0, "key_strength": 0.7},
        {"row": 5, "path": "d", "bpm": nan, "key": None, "mode": None, "time_signature": None,
         "est_tempo": 90.0, "est_key": 7, "est_mode": 0, "key_strength": 0.7},
    ])


def _predictions(name: str, tempo, key, mode, meter) -> pd.DataFrame:
    return pd.DataFrame({"row": [2, 3, 4, 5], "path": list("abcd"), "model": name, "tempo": tempo, "key": key,
                         "mode": mode, "time_signature": meter})


def test_models_are_scored_beside_the_experts_and_a_model_without_mode_by_its_tonic_alone(tmp_path):
    nan = float("nan")
    df = _labelled_estimates()
    preds = pd.concat([
        # tempo: 100 right, 70 = 140 / 2; keys: D major right, A minor right, G right; meters: 4 right, 4 wrong, 3 wrong
        _predictions("gru [r1]", [100.0, 70.0, 95.0, 95.0], [2.0, 9.0, 7.0, 7.0], [1.0, 0.0, 1.0, 1.0], [4.0, 4.0, 3.0, 4.0]),
        # no mode output (the forest): C for A minor is the relative key's tonic, a tonic miss
        _predictions("rf [r1]", [104.5, 139.0, 95.0, 95.0], [2.0, 0.0, 7.0, 7.0], nan, [4.0, 3.0, 4.0, 4.0]),
    ], ignore_index=True)
    scores = ev.score(df, preds)
    tempo, key, meter = scores["tempo"], scores["key"], scores["time_signature"]
    assert list(tempo) == ["n", "dsp", "gru [r1]", "rf [r1]", "baseline 120 BPM"]
    assert tempo["n"] == 2 and tempo["dsp"] == {"acc1": 0.5, "acc2": 1.0}
    assert tempo["gru [r1]"] == {"acc1": 0.5, "acc2": 1.0} and tempo["rf [r1]"] == {"acc1": 0.5, "acc2": 0.5}
    assert (key["n"], key["n_with_mode"]) == (3, 2)
    assert key["gru [r1]"] == {"tonic_accuracy": 1.0, "mirex": 1.0, "key_mode_accuracy": 1.0}
    assert key["rf [r1]"] == {"tonic_accuracy": pytest.approx(2 / 3)} and key["notes"] == {"rf [r1]": ev.NO_MODE}
    assert key["dsp"]["mirex"] == pytest.approx((1.0 + 0.3) / 2)  # C major for A minor: the relative key
    assert meter["n"] == 3 and meter["dsp"] is None
    assert meter["gru [r1]"]["accuracy"] == pytest.approx(1 / 3) and meter["rf [r1]"]["accuracy"] == 1.0
    assert meter["baseline 4/4"]["accuracy"] == pytest.approx(2 / 3)
    lines = ev.summary(scores)
    assert "key (n=3) rf [r1]: tonic 67 % (no mode output: tonic accuracy only)" in lines
    assert "key (n=3) gru [r1]: tonic 100 %, MIREX 1.00, key+mode 100 %" in lines
    assert "time_signature (n=3) dsp: no estimator" in lines
    result = ev.Evaluation(df, scores, pd.DataFrame(columns=["row", "path", "reason"]), preds)
    js, page = ev.write(result, tmp_path, source="ann.csv")
    doc = json.loads(js.read_text())
    assert doc["models"] == ["gru [r1]", "rf [r1]"] and doc["scores"]["key"]["notes"] == {"rf [r1]": ev.NO_MODE}
    assert len(doc["predictions"]) == 8 and doc["predictions"][4]["mode"] is None  # NaN is no JSON: null
    text = page.read_text()
    assert "Expert estimators and trained models" in text
    assert "<td>key</td><td>rf [r1]</td><td>3</td><td>tonic 67 % (no mode output" in text
    assert "<td>key</td><td>gru [r1]</td><td>3 (2 with a mode)</td>" in text
    assert "<td>time_signature</td><td>gru [r1]</td><td>3</td><td>accuracy 33 %</td>" in text
    with pytest.raises(ValueError, match=r"rf \[r1\]: no prediction for annotation rows \[3\]"):
        ev.score(df, preds[(preds["model"] != "rf [r1]") | (preds["row"] != 3)])


def test_models_share_the_row_decoding_and_take_the_experts_of_their_training_profile(tmp_path, monkeypatch):
    """One decoding per row and one expert pass per profile: the experts' (``--profile``) and, for
    models that take expert inputs, the profile they were trained with, shared by all of them."""
    calls = {"decode": 0, "experts": []}
    decode = ev.load_audio

    def counting_decode(*args, **kwargs):
        calls["decode"] += 1
        return decode(*args, **kwargs)

    def fake_experts(y, *, sr, profile="krumhansl"):  # no beat tracker to compile: a tempo per profile
        calls["experts"].append(profile)
        return {**dict.fromkeys(experts.FEATURES, 0.0), "tempo": {"krumhansl": 100.0}.get(profile, 50.0),
                "tempo_half": 50.0, "tempo_double": 200.0, "key": 2, "mode": 1, "key_strength": 0.9}

    monkeypatch.setattr(ev, "load_audio", counting_decode)
    monkeypatch.setattr(experts, "estimate_all", fake_experts)
    sf.write(tmp_path / "a.wav", triad(62, seconds=3.0), SR)
    sf.write(tmp_path / "b.wav", triad(62, seconds=3.0) * 0.5, SR)
    pd.DataFrame({"path": ["a.wav", "a.wav+b.wav"], "bpm": ["100", "100"], "key": ["D major", "D major"]}).to_csv(
        tmp_path / "ann.csv", index=False)
    models = {"one": Predictor("dsp"), "two": Predictor("dsp")}  # the experts as a model: they take expert inputs
    result = ev.evaluate(ev.read_annotations(tmp_path / "ann.csv"), profile="edma", models=models)
    assert calls == {"decode": 3, "experts": ["edma", "krumhansl"] * 2}
    assert result.estimates["est_tempo"].tolist() == [50.0, 50.0]
    assert result.predictions["model"].tolist() == ["one", "two"] * 2
    assert result.predictions["tempo"].tolist() == [100.0] * 4  # the models' inputs: the krumhansl pass
    assert result.scores["tempo"]["one"]["acc1"] == 1.0 and result.scores["tempo"]["dsp"]["acc1"] == 0.0
    calls.update(decode=0, experts=[])
    ev.evaluate(ev.read_annotations(tmp_path / "ann.csv"), profile="krumhansl", models=models)
    assert calls == {"decode": 3, "experts": ["krumhansl"] * 2}


def test_a_run_without_the_model_asked_for_is_refused_with_the_notebook_that_makes_it(tmp_path, capsys):
    (tmp_path / "runs" / "empty").mkdir(parents=True)
    pd.DataFrame({"path": ["x.wav"], "bpm": ["90"]}).to_csv(tmp_path / "ann.csv", index=False)
    with pytest.raises(FileNotFoundError, match="no trained model"):
        ev.load_models([tmp_path / "runs" / "empty"])
    with pytest.raises(FileNotFoundError, match="04_rf"):
        ev.load_models([tmp_path / "runs" / "empty"], ["rf"])
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        ev.load_models([tmp_path / "runs" / "missing"])
    assert cli.main(["evaluate", str(tmp_path / "ann.csv"), "--run", str(tmp_path / "runs" / "empty")]) == 2
    assert "no trained model" in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path / "ann.csv"), "--model", "gru"]) == 2
    assert "--model needs --run" in capsys.readouterr().err


@pytest.mark.slow  # librosa's beat tracker compiles for about a minute on a new install
def test_evaluate_scores_estimates_beside_baselines_and_lists_unreadable_files(tmp_path):
    sf.write(tmp_path / "clicks.wav", clicks(100.0, seconds=12.0), SR)
    sf.write(tmp_path / "a.wav", triad(62, seconds=6.0), SR)  # D major, in two stems
    sf.write(tmp_path / "b.wav", triad(62, seconds=6.0) * 0.5, SR)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not audio")
    pd.DataFrame({"path": ["clicks.wav", "a.wav+b.wav", "broken.wav"], "bpm": ["100", "", "90"],
                  "key": ["", "D major", ""], "time_signature": ["4/4", "3/4", ""]}).to_csv(tmp_path / "ann.csv", index=False)
    result = ev.evaluate(ev.read_annotations(tmp_path / "ann.csv"))
    assert result.failures["path"].tolist() == ["broken.wav"] and "broken.wav" in result.failures["reason"][0]
    tempo = result.scores["tempo"]
    assert tempo["n"] == 1 and tempo["dsp"]["acc2"] == 1.0 and tempo["baseline 120 BPM"]["acc1"] == 0.0
    key = result.scores["key"]
    assert key["dsp"]["mirex"] == 1.0 and key["baseline C major"]["mirex"] == 0.0  # C is not D's fifth, relative or parallel
    assert result.scores["time_signature"]["baseline 4/4"]["accuracy"] == 0.5
    js, page = ev.write(result, tmp_path / "out", source="ann.csv")
    assert json.loads(js.read_text())["scores"]["key"]["n"] == 1 and "Not scored (1)" in page.read_text()


@pytest.mark.slow
@pytest.mark.shared
def test_evaluate_on_real_annotated_music(shared_data, tmp_path):
    """The command on ../shared/data/real: full songs (stems summed), MIR fixtures and librosa's examples."""
    real = shared_data / "real"
    rows = [(f"fof_muldjord/{d}/song.ogg+fof_muldjord/{d}/guitar.ogg", bpm, "", "4/4")
            for d, bpm in (("armygeddon", 170), ("chaos_god", 170), ("internal_degeneration", 190), ("mutilated_mime", 180))]
    rows += [("mir_fixtures/madmom_sample.wav", 87.5, "", ""), ("mir_fixtures/ballroom_Waltz_Media-105901.wav", 84, "", "3/4"),
             ("mir_fixtures/gtzan_country.00000.wav", 85.53, "", ""), ("mir_fixtures/hainsworth_hains001.flac", 100.16, "", ""),
             ("mir_fixtures/giantsteps_key_10089.mp3", "", "D major", ""), ("mir_fixtures/fma_000010.mp3", "", "F# major", ""),
             ("librosa_examples/sorohanro_-_solo-trumpet-06.hq.ogg", 90, "F major", ""),
             ("librosa_examples/147793__setuniman__sweet-waltz-0i-22mi.hq.ogg", "", "", "3/4"),
             ("librosa_examples/Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).hq.ogg", "", "F# minor", "")]
    pd.DataFrame(rows, columns=["path", "bpm", "key", "time_signature"]).to_csv(real_csv := tmp_path / "real.csv", index=False)
    text = real_csv.read_text().replace("fof_muldjord/", f"{real}/fof_muldjord/").replace("mir_fixtures/", f"{real}/mir_fixtures/")
    real_csv.write_text(text.replace("librosa_examples/", f"{real}/librosa_examples/"))
    from audioreg.cli import main

    assert main(["evaluate", str(real_csv), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    doc = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert doc["failures"] == [] and len(doc["estimates"]) == len(rows)
    tempo, key = doc["scores"]["tempo"], doc["scores"]["key"]
    assert tempo["n"] == 9 and key["n"] == 4
    # measured here: Acc1 5/9, Acc2 8/9 against 0/9 for 120 BPM
    assert tempo["dsp"]["acc2"] >= 7 / 9 and tempo["baseline 120 BPM"]["acc2"] == 0.0
    # 4 keys (two of them 2-second fixtures) cannot rank the key estimator; they are scored and reported
    assert 0.0 <= key["dsp"]["mirex"] <= 1.0 and "mirex" in key["baseline C major"]
    assert doc["scores"]["time_signature"]["dsp"] is None  # no DSP meter estimator: the baseline alone
    # the beat tracker misses 4 of 9 tempi: 3 by an octave (the audit lists them), madmom's 87.5 read as 117.5
    octaves = [a for a in doc["audit"] if a["attribute"] == "tempo"]
    assert len(octaves) == sum(1 for e in doc["estimates"] if e["bpm"] and abs(e["est_tempo"] - e["bpm"]) > 0.04 * e["bpm"]) - 1
    assert {a["relation"] for a in octaves} <= {"label = expert x2", "label = expert x1/2"}


def test_the_audit_names_octave_and_related_key_disagreements():
    est = pd.DataFrame([
        {"row": 2, "path": "a", "bpm": 170.0, "est_tempo": 85.2, "key": None, "mode": None, "est_key": 0, "est_mode": 1},
        {"row": 3, "path": "b", "bpm": 60.0, "est_tempo": 180.5, "key": None, "mode": None, "est_key": 0, "est_mode": 1},
        {"row": 4, "path": "c", "bpm": 120.0, "est_tempo": 121.0, "key": 0.0, "mode": 1.0, "est_key": 9, "est_mode": 0},
        {"row": 5, "path": "d", "bpm": 100.0, "est_tempo": 130.0, "key": 2.0, "mode": 1.0, "est_key": 9, "est_mode": 1},
        {"row": 6, "path": "e", "bpm": float("nan"), "est_tempo": 99.0, "key": 5.0, "mode": 0.0, "est_key": 5, "est_mode": 1},
        {"row": 7, "path": "f", "bpm": float("nan"), "est_tempo": 99.0, "key": 4.0, "mode": 1.0, "est_key": 6, "est_mode": 1},
    ])
    got = ev.audit(est)
    assert got[["row", "attribute", "relation"]].values.tolist() == [
        [2, "tempo", "label = expert x2"], [3, "tempo", "label = expert x1/3"], [4, "key", "relative"],
        [5, "key", "fifth"], [6, "key", "parallel"]]
    assert got.loc[got["row"] == 4, "label"].item() == "C major" and got.loc[got["row"] == 4, "expert"].item() == "A minor"
