"""Concurrent first runs on one cold data root (issue 15): every cache is built by one
process while the other waits and then reuses it, and both get what one run alone gets."""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audioreg import atomic

REPO = Path(__file__).resolve().parents[1]

#: The smallest sample set that still holds every file kind (wav, flac, ogg; mono and stereo).
TINY = {"synth_n": 8, "synth_seconds": 1.0, "progress": False}

#: One first run of 00 and 01 (sample set, then ingest), started when the parent says go.
CHILD = r"""
import json, logging, sys, time
from pathlib import Path

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
from audioreg import stages

params, ready, go = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.001)
res = stages.ingest(params)
print(json.dumps({"key": res.key, "out_dir": str(res.out_dir)}))
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _start_together(params: list[dict], work: Path) -> list[subprocess.CompletedProcess]:
    """Run :data:`CHILD` once per ``params``, all released at the same moment (a file barrier,
    once every interpreter has imported audioreg)."""
    go = work / "go"
    procs, readies = [], []
    for i, p in enumerate(params):
        ready = work / f"ready-{i}"
        readies.append(ready)
        procs.append(subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(p), str(ready), str(go)], cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in readies) and time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.005)
    go.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


@pytest.mark.slow
def test_two_first_runs_on_one_cold_data_root_both_finish_with_one_runs_results(tmp_path):
    """Issue 15: two runs started at the same moment on a cold data root. On the code before
    the locks both generated the sample set and each ingest hashed the other's rewritten files
    (two ingest folders, a manifest not matching the files): it failed in every try."""
    from audioreg import stages

    shared, alone = tmp_path / "shared", tmp_path / "alone"
    runs = _start_together([{**TINY, "root": str(shared), "run_id": rid} for rid in ("a", "b")], tmp_path)
    for r in runs:
        assert r.returncode == 0, r.stderr[-4000:]
    got = [json.loads(r.stdout.strip().splitlines()[-1]) for r in runs]
    # one generated the sample set and built the ingest folder; the other reused both
    assert sum("audioreg.stages: generating the sample set" in r.stderr for r in runs) == 1, [r.stderr for r in runs]
    assert got[0] == got[1]
    assert [p.name for p in (shared / "data" / "interim").glob("ingest-*") if p.is_dir()] == [f"ingest-{got[0]['key']}"]

    ref = stages.ingest({**TINY, "root": str(alone), "run_id": "alone"})  # the same first run, on its own
    sample, sample_ref = shared / "data" / "raw" / "sample", alone / "data" / "raw" / "sample"
    for name in ("metadata.csv", "synth.json", "noise_free.csv"):
        assert (sample / name).read_bytes() == (sample_ref / name).read_bytes(), name

    out = Path(got[0]["out_dir"])
    manifest = stages._read_manifest(out / "manifest.csv")
    for path, sha in zip(manifest["path"], manifest["sha256"]):  # the manifest describes the files as they are
        assert _sha256(Path(path)) == sha, path
    for name in ("problems.csv", "duplicates.csv", "unmatched_files.csv"):
        assert (out / name).read_bytes() == (ref.out_dir / name).read_bytes(), name
    same = [c for c in manifest.columns if c not in ("path", "sha256")]  # paths name the root; Ogg bytes carry a random serial
    pd.testing.assert_frame_equal(manifest[same], stages._read_manifest(ref.out_dir / "manifest.csv")[same])

    import soundfile as sf

    files = sorted(p.relative_to(sample) for p in (sample / "audio").iterdir())
    assert files == sorted(p.relative_to(sample_ref) for p in (sample_ref / "audio").iterdir())
    assert {f.suffix for f in files} == {".wav", ".flac", ".ogg"}
    for f in files:
        if f.suffix == ".ogg":  # libsndfile draws each Ogg stream's serial number at random: compare the audio
            np.testing.assert_array_equal(sf.read(sample / f)[0], sf.read(sample_ref / f)[0])
        else:
            assert (sample / f).read_bytes() == (sample_ref / f).read_bytes(), f
    assert not list(shared.rglob("*.tmp")), "temp files left behind"


class _SlowAudio(http.server.BaseHTTPRequestHandler):
    """``BODY`` as ``audio/wav``, in four parts 50 ms apart: a download that takes a while."""

    BODY = bytes(range(256)) * 64

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        step = len(self.BODY) // 4
        for i in range(0, len(self.BODY), step):
            self.wfile.write(self.BODY[i:i + step])
            self.wfile.flush()
            time.sleep(0.05)


def test_two_runs_downloading_the_same_urls_take_turns(tmp_path):
    """``fetch_audio: true`` in two runs at once: one downloads each URL, the other finds it
    there; nobody writes into the other's ``.part``."""
    from audioreg import stages

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowAudio)
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        table = pd.DataFrame({"track_id": ["t1", "t2"],
                              "url": [f"http://127.0.0.1:{server.server_address[1]}/{t}.wav" for t in ("t1", "t2")]})
        params = {"root": str(tmp_path), "progress": False, "fetch_interval_s": 0.0}
        start, results = threading.Barrier(2), [None, None]

        def run(i):
            start.wait(10)
            try:
                results[i] = stages.fetch_urls(params, table, tmp_path / "audio", source=tmp_path / "tracks.csv")
            except BaseException as e:  # noqa: BLE001 - reported below
                results[i] = e

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        server.shutdown()
        server.server_close()
    for res in results:
        assert not isinstance(res, BaseException), repr(res)
        assert len(res.failures) == 0, res.failures.to_dict("records")
        assert sorted(res.files["track_id"]) == ["t1", "t2"]
    assert sorted(server.requests) == ["/t1.wav", "/t2.wav"]  # each URL requested once
    fetched = tmp_path / "audio" / stages.FETCHED_DIR
    assert sorted(p.name for p in fetched.iterdir()) == ["t1.wav", "t2.wav"]
    assert all((fetched / n).read_bytes() == _SlowAudio.BODY for n in ("t1.wav", "t2.wav"))


def test_locked_lets_a_second_holder_in_only_after_the_first_releases(tmp_path, caplog):
    lock = tmp_path / "sub" / "folder.lock"
    events = []
    first_in, release = threading.Event(), threading.Event()

    def first():
        with atomic.locked(lock):
            events.append("first in")
            first_in.set()
            release.wait(10)
            events.append("first out")

    def second():
        with atomic.locked(lock, doing="building folder"):
            events.append("second in")

    t = threading.Thread(target=first)
    t.start()
    first_in.wait(10)
    second = threading.Thread(target=second)
    with caplog.at_level("INFO", logger="audioreg.atomic"):
        second.start()
        time.sleep(0.3)
        assert events == ["first in"]  # the second waits
        release.set()
        t.join(10)
        second.join(10)
    assert events == ["first in", "first out", "second in"]
    waits = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert waits == [f"waiting for another process building folder (lock {lock})"]


def test_locked_is_released_when_its_holder_dies(tmp_path):
    lock = tmp_path / "folder.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom audioreg import atomic\n"
                               f"with atomic.locked({str(lock)!r}):\n    print('in', flush=True)\n    time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "in"
        holder.kill()
        holder.wait(10)
        with atomic.locked(lock):  # a killed holder leaves no stale lock
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
