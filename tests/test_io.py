import unicodedata

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioreg.data import audio, linking, metadata
from audioreg.data import audio as decode
from audioreg.targets import TARGETS
from conftest import tone


def write(path, y, sr, **kw):
    sf.write(str(path), y, sr, **kw)
    return path


@pytest.mark.parametrize("fmt, sr, channels", [("wav", 44100, 2), ("flac", 48000, 1), ("ogg", 32000, 2), ("wav", 22050, 1)])
def test_load_audio_decodes_mixes_and_resamples(tmp_path, fmt, sr, channels):
    y = tone(1000.0, seconds=1.0, sr=sr)
    data = np.stack([y] * channels, axis=1) if channels > 1 else y
    path = write(tmp_path / f"a.{fmt}", data, sr)
    out, out_sr = audio.load_audio(path)
    assert out_sr == 22050 and out.ndim == 1 and out.dtype == np.float32
    assert abs(out.size - 22050) <= 2
    spec = np.abs(np.fft.rfft(out))
    assert np.fft.rfftfreq(out.size, 1 / 22050)[spec.argmax()] == pytest.approx(1000, abs=2)
    info = audio.probe_audio(path)
    assert info["sample_rate"] == sr and info["channels"] == channels
    assert info["duration_s"] == pytest.approx(1.0, abs=0.01)


def test_max_duration_reads_a_prefix(tmp_path):
    path = write(tmp_path / "a.wav", tone(440, seconds=3.0, sr=44100), 44100)
    y, _ = audio.load_audio(path, max_duration=1.0)
    assert abs(y.size - 22050) <= 2


def test_bad_files_name_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    fake = tmp_path / "notes.mp3"
    fake.write_text("this is not audio\n" * 50)
    with pytest.raises(audio.AudioDecodeError, match=r"empty\.wav: empty file \(0 bytes\)"):
        audio.load_audio(empty)
    with pytest.raises(audio.AudioDecodeError, match=r"notes\.mp3: not a readable audio file"):
        audio.load_audio(fake)
    with pytest.raises(audio.AudioDecodeError, match=r"notes\.mp3: not a readable audio file"):
        audio.probe_audio(fake)
    with pytest.raises(audio.AudioDecodeError, match="no such file"):
        audio.load_audio(tmp_path / "missing.ogg")


def _metadata(rows):
    base = {t: 0.5 for t in TARGETS} | {"tempo": 120.0, "loudness": -8.0, "key": 5, "time_signature": 4}
    return pd.DataFrame([base | r for r in rows])


def test_read_metadata_rows_and_nfc(tmp_path):
    df = _metadata([{"track_id": "a", "artists": unicodedata.normalize("NFD", "Björk"), "track_name": "x"},
                    {"track_id": "b", "artists": "Sigur Rós", "track_name": "y"}])
    path = tmp_path / "m.csv"
    df.to_csv(path, index=False, encoding="utf-8-sig")
    got = metadata.read_metadata(path)
    assert list(got["row"]) == [2, 3]
    assert got["artists"][0] == unicodedata.normalize("NFC", "Björk")


def test_read_metadata_errors_name_the_file(tmp_path):
    p = tmp_path / "latin.csv"
    _metadata([{"track_id": "a", "artists": "Motörhead"}]).to_csv(p, index=False, encoding="latin-1")
    with pytest.raises(metadata.MetadataError, match=r"latin\.csv: not UTF-8"):
        metadata.read_metadata(p)
    p2 = tmp_path / "noid.csv"
    _metadata([{"track_id": "a"}]).drop(columns=["track_id"]).to_csv(p2, index=False)
    with pytest.raises(metadata.MetadataError, match=r"noid\.csv: missing column 'track_id'"):
        metadata.read_metadata(p2)
    p3 = tmp_path / "notempo.csv"  # an absent target is unlabelled, not an error
    _metadata([{"track_id": "a"}]).drop(columns=["tempo"]).to_csv(p3, index=False)
    assert metadata.absent_targets(metadata.read_metadata(p3)) == ("tempo",)


def test_validate_labels_lists_each_bad_row(tmp_path):
    df = _metadata([{"track_id": "ok"}, {"track_id": "k", "key": -1}, {"track_id": "t", "tempo": 0.0},
                    {"track_id": "l", "loudness": 2.0}, {"track_id": "n", "energy": np.nan},
                    {"track_id": "d"}, {"track_id": "d"}, {"track_id": "c"}, {"track_id": "c", "energy": 0.2}])
    df.insert(0, "row", range(2, 2 + len(df)))
    table = metadata.validate_labels(df).set_index("row")
    probs, action = table["reason"], table["action"]
    assert 2 not in probs.index
    assert 6 not in probs.index  # an empty label is unlabelled, not a problem
    assert list(action[[3, 4, 5]]) == [metadata.LABEL_MASKED] * 3
    assert list(action[[8, 9, 10]]) == [metadata.ROW_DROPPED] * 3
    assert probs[3] == "key=-1 outside [0, 11] (Spotify's -1: no key detected)"
    assert probs[4] == "tempo=0 outside [1, 300] (Spotify's 0: no beat detected)"
    assert probs[5] == "loudness=2 outside [-60, 0]"
    assert 7 not in probs.index  # the first of two identical rows is kept
    assert probs[8] == "duplicate of row 7 (same track_id and labels)"
    assert probs[9] == "track_id also at row 10 with different labels"
    assert probs[10] == "track_id also at row 9 with different labels"


def test_normalize_name():
    assert linking.normalize_name(unicodedata.normalize("NFD", "Beyoncé — Halo")) == linking.normalize_name("beyoncé - halo")
    assert linking.normalize_name("  AC/DC   Back_in_Black ") == "ac dc back in black"
    assert linking.artist_title_key("Daft Punk;Pharrell", "Get Lucky") == linking.artist_title_key("daft punk", "get lucky")


def test_link_audio_three_ways(tmp_path):
    audio = tmp_path / "audio"
    (audio / "sub").mkdir(parents=True)
    for name in ("given.wav", "sub/id2.flac", "Sigur Rós - Hoppípolla.ogg"):
        write(audio / name, tone(440, 0.2), 22050)
    df = pd.DataFrame({"track_id": ["id1", "id2", "id3", "id4"],
                       "artists": ["x", "y", unicodedata.normalize("NFD", "sigur rós"), "z"],
                       "track_name": ["a", "b", "HOPPÍPOLLA", "missing"],
                       "path": ["audio/given.wav", None, None, None]})
    links = linking.link_audio(df, audio_dir=audio, metadata_dir=tmp_path)
    assert list(links["link"][:3]) == ["path column", "track_id file name", "artist - title"]
    assert links["path"][2].endswith("Hoppípolla.ogg")
    assert pd.isna(links["path"][3]) and "no audio file for track_id 'id4'" in links["reason"][3]


# ------------------------------------------------------------------ real audio
def test_real_music_decodes_at_22050(shared_data):
    index = pd.read_csv(shared_data / "music" / "index.csv")
    for row in index.itertuples():
        path = shared_data / "music" / row.file
        info = audio.probe_audio(path)
        assert info["sample_rate"] == row.sample_rate and info["channels"] == row.channels, row.file
        assert info["duration_s"] == pytest.approx(row.duration_s, abs=0.6), row.file
        y, sr = audio.load_audio(path, max_duration=5.0)
        assert sr == 22050 and abs(y.size - 5 * 22050) <= 2 and np.isfinite(y).all(), row.file
        assert np.abs(y).max() > 1e-3, row.file


def test_real_speech_and_fixtures_decode(shared_data):
    files = sorted((shared_data / "real" / "speech").glob("*.ogg")) + sorted((shared_data / "real" / "mir_fixtures").glob("*.[wfm][alp][v3c]*"))
    assert files
    for path in files:
        y, sr = audio.load_audio(path)
        assert sr == 22050 and y.size > 22050 and np.isfinite(y).all(), path.name


def test_streaming_decode_is_identical_to_one_shot(tmp_path, monkeypatch):
    import soxr

    rng = np.random.default_rng(0)
    stereo = (0.1 * rng.standard_normal((44100 * 5, 2))).astype(np.float32)
    path = write(tmp_path / "s.flac", stereo, 44100, subtype="PCM_24")
    monkeypatch.setattr(decode, "DECODE_BLOCK_S", 0.7)  # many blocks
    y, _ = audio.load_audio(path)
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    np.testing.assert_array_equal(y, soxr.resample(data.mean(axis=1), 44100, 22050, quality="HQ"))


def test_truncated_file_names_the_file(tmp_path):
    path = write(tmp_path / "t.ogg", tone(440, seconds=3.0, sr=44100), 44100)
    blob = path.read_bytes()
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(blob[: len(blob) // 2])
    try:
        y, _ = audio.load_audio(cut)
    except audio.AudioDecodeError as exc:
        assert "cut.ogg" in str(exc)
    else:  # libsndfile may decode the intact prefix: then it must be a prefix, not garbage
        assert 0 < y.size < 3 * 22050 and np.isfinite(y).all()
