"""Faults between runs in the features cache: nothing stale is trusted, nothing transient is remembered."""

import errno
import logging

import numpy as np
import pandas as pd
import pytest

from audioreg import atomic, stages
from audioreg.cli import main
from audioreg.features import extract


@pytest.fixture
def params(tmp_path):
    return {"root": str(tmp_path), "metadata_path": "data/raw/tiny/metadata.csv", "audio_dir": "data/raw/tiny",
            "synth_n": 5, "synth_seconds": 2.0, "seed": 3, "workers": 1, "progress": False}


def _arrays(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.npy"))}


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_damaged_cached_array_is_recomputed(params, caplog, damage):
    """A truncated array (02 used to report it reused and 04 died on `mmap length is greater than
    file size`), or one with a changed value (caught by its checksum), is recomputed, alone."""
    first = stages.features(params)
    good = _arrays(first.out_dir)
    victim = first.out_dir / first.index["file"][1]
    data = victim.read_bytes()
    if damage == "truncated":
        victim.write_bytes(data[: len(data) // 2])
    else:
        victim.write_bytes(data[:-8] + bytes(8))
    # a later stage's check (shapes) finds a truncation at once; a changed value waits for 02's checksum
    if damage == "truncated":
        assert stages.cache_problems(first.out_dir, first.index, first.failures, checksum=False)
    with caplog.at_level(logging.WARNING, logger="audioreg"):
        again = stages.features(params)
    assert (again.computed, again.reused, len(again.failures)) == (1, 4, 0)
    assert _arrays(again.out_dir) == good
    assert any(victim.name in r.getMessage() for r in caplog.records)
    pd.testing.assert_frame_equal(again.index.drop(columns="seconds"), first.index.drop(columns="seconds"))
    assert stages.features(params).computed == 0  # sound again: reused as it is


def test_a_timeout_is_retried_by_the_next_run(params, monkeypatch):
    """A failure that may pass on another try (here a timeout) is not cached: the next run retries it
    (it used to report `computed now: 0, reused from the cache: N` and leave the tracks out for good)."""
    import time

    stages.ingest(params)
    real = extract.load_audio

    def slow(*args, **kwargs):  # a machine busy elsewhere
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(extract, "load_audio", slow)
    timed_out = stages.features({**params, "file_timeout_s": 0.1})
    monkeypatch.setattr(extract, "load_audio", real)
    assert len(timed_out.failures) == 5 and timed_out.failures["transient"].all()
    assert timed_out.failures["reason"].str.contains("timed out after").all()
    again = stages.features(params)
    assert (again.computed, len(again.index), len(again.failures)) == (5, 5, 0)


def test_an_expert_timeout_is_retried_by_the_next_run(params, monkeypatch):
    """The expert estimates cache the same way: what timed out is estimated again, the rest kept."""
    real = extract.load_audio
    slow_one = stages.ingest(params).manifest["path"][0]

    def slow(path, *args, **kwargs):
        if str(path) == str(slow_one):
            raise extract.FileTimeout()  # what the per-file alarm raises
        return real(path, *args, **kwargs)

    monkeypatch.setattr(extract, "load_audio", slow)
    first = stages.experts(params)
    assert len(first.failures) == 1 and first.failures["transient"].all() and len(first.table) == 4
    monkeypatch.setattr(extract, "load_audio", real)
    again = stages.experts(params)
    assert len(again.failures) == 0 and len(again.table) == 5
    pd.testing.assert_frame_equal(again.table.iloc[1:].reset_index(drop=True), first.table)  # kept as they were
    assert stages.experts(params).table.equals(again.table)


def test_only_failures_that_may_pass_are_retried(params):
    """A decoding error is cached with the folder (the same bytes fail the same way); a timeout,
    a dead worker or a full disk is retried; a table from before failures were marked, whole."""
    feats = stages.features(params)
    row = {"track_id": "x", "path": "x.wav", "stage": "extract"}
    decode = pd.DataFrame([{**row, "reason": "AudioDecodeError: x.wav: not audio", "transient": False}])
    assert stages.cache_problems(feats.out_dir, feats.index, decode, checksum=True) == []
    for reason in ("x.wav: timed out after 2 s", "worker failed on x.wav: BrokenProcessPool: ...",
                   "OSError: no space left on /data (0.0 MiB free): could not write x.npy"):
        retry = pd.DataFrame([{**row, "reason": reason, "transient": True}])
        assert "1 failure(s) that may pass" in stages.cache_problems(feats.out_dir, feats.index, retry, checksum=True)[0]
    legacy = decode.drop(columns="transient")
    assert stages.cache_problems(feats.out_dir, feats.index, legacy, checksum=True)


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_named_with_the_output_folder(tmp_path, monkeypatch):
    """Not `OSError: <input file>: 85606 requested and 51168 written` against the input file."""
    from conftest import SR, tone
    import soundfile as sf

    audio = tmp_path / "in.wav"
    sf.write(audio, tone(440.0, 1.0), SR)
    out = tmp_path / "features"
    out.mkdir()
    for fault in (_full_disk, lambda *a, **k: (_ for _ in ()).throw(OSError("85606 requested and 51168 written"))):
        monkeypatch.setattr(atomic, "save_npy", fault)
        res = extract.extract_file(str(audio), str(out / "in.npy"))
        assert res["ok"] is False and res["transient"] is True
        assert res["reason"].startswith(f"OSError: no space left on {out} (") and "could not write in.npy" in res["reason"]
        assert str(audio) not in res["reason"]
    assert not list(out.glob("*.npy")) and not list(out.glob(".*.tmp"))


def test_a_timeout_while_writing_is_a_timeout(tmp_path, monkeypatch):
    """The per-file alarm may ring while the array is written: still a (transient) timeout."""
    from conftest import SR, tone
    import soundfile as sf

    sf.write(tmp_path / "in.wav", tone(440.0, 1.0), SR)

    def slow_write(*args, **kwargs):
        raise extract.FileTimeout()  # what the alarm raises, here inside the write

    monkeypatch.setattr(atomic, "save_npy", slow_write)
    res = extract.extract_file(str(tmp_path / "in.wav"), str(tmp_path / "in.npy"), timeout_s=30)
    assert res == {"ok": False, "reason": f"{tmp_path / 'in.wav'}: timed out after 30 s", "transient": True}


def test_a_full_disk_is_the_clis_one_line_error(tmp_path, monkeypatch, capsys):
    from conftest import SR, tone
    import soundfile as sf

    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", tone(440.0, 1.0), SR)
    monkeypatch.setattr(atomic, "save_npy", _full_disk)
    monkeypatch.setattr(atomic, "write_text", _full_disk)
    assert main(["extract", str(tmp_path / "audio"), "--out", str(tmp_path / "out"), "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"audioreg: error: no space left on {tmp_path / 'out'} ("), err


def test_records_vouch_for_arrays(tmp_path):
    """An array with no record (an older cache, or a stray file) is recomputed, not trusted."""
    feats = np.zeros((4, 46), np.float32)
    rec = extract.save_features(tmp_path / "a.npy", feats, duration_s=0.05)
    assert extract.read_records(tmp_path)["a.npy"] == rec
    assert extract.verify_array(tmp_path / "a.npy", rec) is None
    assert "no record" in extract.verify_array(tmp_path / "a.npy", None)
    assert "frames" in extract.verify_array(tmp_path / "a.npy", {**rec, "n_frames": 5})
    assert "checksum" in extract.verify_array(tmp_path / "a.npy", {**rec, "crc32": rec["crc32"] ^ 1})
    assert extract.verify_array(tmp_path / "a.npy", {**rec, "crc32": rec["crc32"] ^ 1}, checksum=False) is None
    np.save(tmp_path / "b.npy", np.zeros((4, 3), np.float32))
    assert "not [t, 46] float32" in extract.verify_array(tmp_path / "b.npy", {**rec, "file": "b.npy"})
