"""`audioreg extract` killed with SIGKILL mid-run: nothing half-written is trusted, the rerun
reuses every finished array untouched and ends with the arrays of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioreg.features import extract
from audioreg.features.extract import array_name
from conftest import SR

HOP = 512
N_FILES = 30


pytestmark = pytest.mark.slow


def _make_audio(folder: Path, seconds: float) -> dict[str, int]:
    """``N_FILES`` distinct tone-plus-noise tracks; returns samples per track id."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = int(seconds * SR) + 123  # not a multiple of the hop: durations from frame counts are not exact
    t = np.arange(n) / SR
    lengths = {}
    for i in range(N_FILES):
        y = 0.3 * np.sin(2 * np.pi * (200.0 + 37.0 * i) * t) + 0.05 * rng.standard_normal(n)
        sf.write(folder / f"t{i:02d}.wav", y.astype(np.float32), SR)
        lengths[f"t{i:02d}"] = n
    return lengths


def _command(audio: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "audioreg", "extract", str(audio), "--out", str(out), "--workers", "1", "--no-progress"]


def _start_and_kill(audio: Path, out: Path, log: Path, *, deadline_s: float = 120.0):
    """Start the command, SIGKILL its process group once some arrays exist; None if it finished first."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(_command(audio, out), stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    deadline = time.monotonic() + deadline_s
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if any(out.glob("*.npy")):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return proc
            time.sleep(0.002)
        assert proc.poll() is not None, f"no array after {deadline_s} s: {log.read_text(errors='replace')}"
        return None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_killed_run_resumes_without_recomputing(tmp_path):
    audio, out = tmp_path / "audio", tmp_path / "out"
    seconds = 5.0
    for _ in range(4):  # the run finished before the kill: make the files longer and start over
        lengths = _make_audio(audio, seconds)
        killed = _start_and_kill(audio, out, tmp_path / "killed.log")
        if killed is not None:
            break
        for p in out.iterdir():
            p.unlink()
        seconds *= 3
    assert killed is not None and killed.returncode == -signal.SIGKILL, "every run finished before it could be killed"

    # only complete arrays carry final names
    finished = sorted(out.glob("*.npy"))
    assert 0 < len(finished) < N_FILES
    for p in finished:
        assert np.load(p).shape == (1 + lengths[p.stem] // HOP, 46), p.name
    assert not (out / "index.csv").exists() and not (out / "meta.json").exists()
    # what a killed writer leaves: a temp file under the final name of an array not yet written
    todo = sorted(set(lengths) - {p.stem for p in finished})
    planted = out / f".{array_name(todo[-1])}.{socket.gethostname()}-{killed.pid}.tmp"
    planted.write_bytes(b"\x93NUMPY half-written")
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished}

    rerun = subprocess.run(_command(audio, out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"computed {N_FILES - len(finished)}, reused {len(finished)}, failed 0\n" in rerun.stdout
    assert {p: (out / p).stat().st_ino for p in before} == {p: ino for p, (ino, _) in before.items()}
    assert {p: (out / p).stat().st_mtime_ns for p in before} == {p: mt for p, (_, mt) in before.items()}
    assert not list(out.glob(".*.tmp"))  # the killed run's temp files are gone, none was read

    clean = extract.extract_folder(audio, tmp_path / "clean", workers=1, progress=False)
    assert len(clean.index) == N_FILES and clean.failures.empty
    for tid in lengths:
        name = array_name(tid)
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    resumed = pd.read_csv(out / "index.csv", dtype={"track_id": str})
    reference = pd.read_csv(tmp_path / "clean" / "index.csv", dtype={"track_id": str})
    # the same index as an uninterrupted run, durations and checksums included: each array the killed
    # run finished had its record written first (its journal), which the rerun read
    pd.testing.assert_frame_equal(resumed.drop(columns=["seconds"]), reference.drop(columns=["seconds"]))
    assert not list(out.glob("journal-*.jsonl"))  # gathered into index.csv, then deleted
