"""Bad input through `audioreg extract`: one folder of good and bad files, nothing lost.

Every bad file becomes a row of failures.csv whose reason names it and says what is
wrong (asserted in full: exact text, or a full regex match where a decoder's own
numbers or message may vary); every good file still gets its features; the batch
never stops. Run in-process (``extract_many``) and through the real command.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioreg.data import audio as decode
from audioreg.features.extract import array_name, audio_files, extract_many
from conftest import SR, clicks, tone

HOP = 512
BAD_NAME = os.fsdecode(b"bad\xff name.wav")  # on Linux: "bad\udcff name.wav"


@dataclass
class Case:
    name: str
    samples: int | None = None  # a good file: samples at 22,050 Hz after decoding and resampling
    reason: str | None = None  # a bad file: the reason after "AudioDecodeError: <path>: ", a regex


def _write(path: Path, y: np.ndarray, sr: int, **kw) -> None:
    with open(path, "wb") as fh:  # a file object: soundfile cannot encode undecodable names itself
        sf.write(fh, y, sr, **kw)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Good files and one file per bad case, side by side; returns the folder and the cases."""
    audio = tmp_path_factory.mktemp("bad_audio")
    rng = np.random.default_rng(0)
    cases = []

    def good(name, y, sr, samples, **kw):
        _write(audio / name, y, sr, **kw)
        cases.append(Case(name, samples=samples))

    good("tone.wav", tone(440.0, 2.0), SR, 2 * SR)
    good("vorbis.ogg", tone(440.0, 3.0), SR, 3 * SR, format="OGG")
    good("mpeg.mp3", tone(440.0, 3.0), SR, 3 * SR, format="MP3")
    good("silence.wav", np.zeros(2 * SR, np.float32), SR, 2 * SR)
    good("tiny.wav", tone(440.0, 1.0)[:100], SR, 100)  # shorter than one 2048-sample window
    good("long.wav", np.tile(clicks(120.0, 60.0), 30), SR, 1800 * SR, subtype="PCM_16")  # 30 minutes
    good("rate8k.wav", tone(440.0, 1.0, sr=8000), 8000, SR)
    good("rate96k.wav", tone(440.0, 1.0, sr=96000), 96000, SR)
    good("six_channels.wav", np.stack([tone(220.0 * (c + 1), 1.0) for c in range(6)], axis=1), SR, SR)
    good("locked.wav", tone(330.0, 2.0), SR, 2 * SR)  # unreadable in the in-process run (patched open)
    good(BAD_NAME, tone(550.0, 2.0), SR, 2 * SR)

    def bad(name, data: bytes, reason):
        (audio / name).write_bytes(data)
        cases.append(Case(name, reason=reason))

    bad("empty.wav", b"", re.escape("empty file (0 bytes)"))
    blob = (audio / "vorbis.ogg").read_bytes()
    bad("cut_head.ogg", blob[: len(blob) // 2], re.escape("no audio frames (the stream is empty, truncated or corrupt)"))
    noisy = (0.3 * rng.standard_normal(10 * SR)).astype(np.float32)
    _write(audio / "noisy.ogg", noisy, SR, format="OGG")
    blob = (audio / "noisy.ogg").read_bytes()
    (audio / "noisy.ogg").unlink()
    bad("cut_tail.ogg", blob[: len(blob) // 2],
        r"truncated: the Ogg stream ends after \d+\.\d s without its end-of-stream page")
    blob = (audio / "mpeg.mp3").read_bytes()
    bad("cut.mp3", blob[: len(blob) // 2], r"truncated or corrupt: decoded \d+\.\d s of the 3\.0 s its header announces")
    bad("notes.mp3", b"these are my notes, not audio\n" * 40, r"not a readable audio file \(libsndfile: .+\)")
    return audio, cases


def _read_tables(out: Path):
    """index.csv and failures.csv as a user reads them (UTF-8 text)."""
    index = pd.read_csv(out / "index.csv", dtype={"track_id": str}, encoding="utf-8")
    failures = pd.read_csv(out / "failures.csv", dtype={"track_id": str}, encoding="utf-8")
    return index, failures


def _shown(text: str) -> str:
    """How a name with undecodable bytes appears in the CSV files: the bytes as \\xNN escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _check(audio: Path, out: Path, cases: list[Case], *, locked_fails: bool) -> None:
    index, failures = _read_tables(out)
    bad = [c for c in cases if c.reason or (locked_fails and c.name == "locked.wav")]
    good = [c for c in cases if c not in bad]
    failed = failures.set_index("track_id")
    assert sorted(failed.index) == sorted(_shown(Path(c.name).stem) for c in bad)
    assert failures["stage"].eq("extract").all()
    for c in bad:
        path = str((audio / c.name).resolve())
        row = failed.loc[_shown(Path(c.name).stem)]
        assert row["path"] == path
        prefix = re.escape(f"AudioDecodeError: {path}: ")
        expected = c.reason or re.escape("cannot open the file (Permission denied)")
        assert re.fullmatch(prefix + expected, row["reason"]), (c.name, row["reason"])

    rows = index.set_index("track_id")
    assert sorted(rows.index) == sorted(_shown(Path(c.name).stem) for c in good)
    for c in good:
        row = rows.loc[_shown(Path(c.name).stem)]
        assert row["file"] == array_name(Path(c.name).stem)
        feats = np.load(out / row["file"])
        assert feats.shape == (1 + c.samples // HOP, 46), c.name
        assert feats.dtype == np.float32 and np.isfinite(feats).all(), c.name
        assert row["n_frames"] == feats.shape[0] and row["duration_s"] == pytest.approx(c.samples / SR), c.name
    silence = np.load(out / array_name("silence"))
    assert np.ptp(silence[:, :20], axis=0).max() < 1e-6  # silence: the same MFCCs in every frame, no NaN from log(0)
    assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_bad_inputs_in_process_each_named_with_its_reason(folder, tmp_path, monkeypatch):
    audio, cases = folder
    real_open = open

    def open_denied_for_locked(file, *args, **kwargs):
        # as root, chmod 000 does not stop reading: deny the decoder's open of this one file
        if Path(file).name == "locked.wav":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(decode, "open", open_denied_for_locked, raising=False)
    res = extract_many(audio_files(audio), tmp_path / "out", workers=1)
    n_bad = sum(c.reason is not None for c in cases) + 1
    assert (res.computed, res.reused, len(res.failures)) == (len(cases) - n_bad, 0, n_bad)
    assert BAD_NAME[:-4] in set(res.index["track_id"])  # in memory, the name as Python holds it
    _check(audio, tmp_path / "out", cases, locked_fails=True)


@pytest.mark.slow
def test_bad_inputs_through_the_command(folder, tmp_path):
    audio, cases = folder
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "audioreg", "extract", str(audio), "--out", str(out),
                           "--workers", "2", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    n_bad = sum(c.reason is not None for c in cases)
    assert f"computed {len(cases) - n_bad}, reused 0, failed {n_bad}\n" in proc.stdout
    _check(audio, out, cases, locked_fails=False)
    assert (out / "meta.json").is_file()


def test_timeout_while_decoding_is_reported_as_a_timeout(tmp_path, monkeypatch):
    """Not as a decoding error of a good file."""
    import time

    from audioreg.features.extract import extract_file

    path = tmp_path / "slow.ogg"
    sf.write(path, tone(440.0, 2.0), SR)
    real_read = sf.SoundFile.read

    def slow_read(self, *args, **kwargs):
        time.sleep(0.1)
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", slow_read)
    monkeypatch.setattr(decode, "DECODE_BLOCK_S", 0.05)  # 40 blocks of 0.1 s each
    res = extract_file(str(path), str(tmp_path / "slow.npy"), timeout_s=0.35)
    assert res == {"ok": False, "reason": f"{path}: timed out after 0.35 s", "transient": True}
    assert not list(tmp_path.glob("*.npy")) and not list(tmp_path.glob(".*.tmp"))


def test_file_without_read_permission(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from reading "
                    "(the in-process matrix test simulates the denied open instead)")
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "fine.wav", tone(), SR)
    sf.write(audio / "locked.wav", tone(), SR)
    (audio / "locked.wav").chmod(0)
    try:
        res = extract_many(audio_files(audio), tmp_path / "out", workers=1)
    finally:
        (audio / "locked.wav").chmod(0o644)
    assert list(res.index["track_id"]) == ["fine"]
    _, failures = _read_tables(tmp_path / "out")
    path = (audio / "locked.wav").resolve()
    assert list(failures["reason"]) == [f"AudioDecodeError: {path}: cannot open the file (Permission denied)"]
