"""audioreg.data.fetch against a local HTTP server on 127.0.0.1 that serves real audio, errors and stalls.

The module's clock and sleep are replaced by a fake clock (sleeping advances it at once), so
backoff, Retry-After and the rate limit are checked without waiting; only the stall test
waits for real (two timeouts of 0.3 s).
"""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from audioreg.data import fetch

SR = 22050


class _State:
    """What the server serves and what it saw."""

    def __init__(self, audio: bytes):
        self.audio = audio
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends the stall at teardown
        self.clock = None  # the test's fake clock, read at each request's arrival
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.counts: Counter = Counter()
            self.requests: list[dict] = []

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes: /a/* and /typed/* audio with Range support; /missing.wav 404; /flaky/* a 503 once;
    /down/* 503 always; /busy/* a 429 (Retry-After: 7) once; /stall.wav headers then nothing;
    /drop/* half the body then a closed connection, then Range; /short/* always half, ignoring
    Range; /norange/* the whole body, ignoring Range; /page.html an HTML page."""

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        st: _State = self.server.state
        path = self.path
        with st.lock:
            st.counts[path] += 1
            n = st.counts[path]
            st.requests.append({"path": path, "range": self.headers.get("Range"), "host": self.headers.get("Host"),
                                "ua": self.headers.get("User-Agent"), "t": st.clock.t if st.clock else None})
        try:
            self._route(st, path, n)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (the stall)
            pass

    def _route(self, st: _State, path: str, n: int) -> None:
        if path.startswith(("/a/", "/typed/")):
            return self._audio(st.audio)
        if path == "/missing.wav":
            return self.send_error(404, "Not Found")
        if path.startswith("/flaky/") and n == 1 or path.startswith("/down/"):
            return self.send_error(503, "Service Unavailable")
        if path.startswith("/flaky/"):
            return self._audio(st.audio)
        if path.startswith("/busy/"):
            if n == 1:
                self.send_response(429, "Too Many Requests")
                self.send_header("Retry-After", "7")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            return self._audio(st.audio)
        if path == "/stall.wav":
            self._head(200, len(st.audio))
            self.wfile.flush()
            st.release.wait(3.0)
            self.wfile.write(st.audio)
            return
        if path.startswith("/drop/") and self.headers.get("Range") is None or path.startswith("/short/"):
            self._head(200, len(st.audio))
            self.wfile.write(st.audio[: len(st.audio) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if path.startswith("/drop/"):
            return self._audio(st.audio)
        if path.startswith("/norange/"):
            return self._audio(st.audio, ranges=False)
        if path == "/page.html":
            body = b"<html><body>Please log in</body></html>"
            self._head(200, len(body), "text/html; charset=utf-8")
            self.wfile.write(body)
            return
        self.send_error(404, "Not Found")

    def _head(self, status: int, length: int, ctype: str = "audio/wav", extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def _audio(self, data: bytes, *, ranges: bool = True) -> None:
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if not (ranges and m):
            self._head(200, len(data))
            self.wfile.write(data)
            return
        start = int(m.group(1))
        if start >= len(data):
            self._head(416, 0, extra={"Content-Range": f"bytes */{len(data)}"})
            return
        self._head(206, len(data) - start, extra={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        self.wfile.write(data[start:])


@pytest.fixture(scope="module")
def wav_bytes(tmp_path_factory) -> bytes:
    """Half a second of a 440 Hz tone, 16-bit WAV."""
    t = np.arange(SR // 2) / SR
    path = tmp_path_factory.mktemp("src") / "tone.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), SR, subtype="PCM_16")
    return path.read_bytes()


@pytest.fixture(scope="module")
def _server(wav_bytes):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.state = _State(wav_bytes)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.state.release.set()
    srv.shutdown()
    srv.server_close()


class _Clock:
    def __init__(self):
        self.t, self.sleeps = 0.0, []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(fetch, "_now", c.now)
    monkeypatch.setattr(fetch, "_sleep", c.sleep)
    return c


@pytest.fixture
def server(_server, clock):
    """The server with fresh counters, its arrivals timed on the test's fake clock; ``.url(path)``."""
    st = _server.state
    st.reset()
    st.clock = clock
    st.url = lambda path, host="127.0.0.1": f"http://{host}:{_server.server_address[1]}{path}"
    yield st
    st.clock = None


def _table(rows, checksums=None) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["track_id", "url"])
    if checksums is not None:
        df["sha256"] = checksums
    return df


def _run(table, dest, **kw):
    kw = {"timeout_s": 5.0, "retries": 2, "backoff_s": 0.5, "min_interval_s": 0.0, **kw}
    return fetch.fetch_audio(table, dest, **kw)


def _status(res) -> dict:
    return dict(zip(res.files.track_id, res.files.status))


def _reasons(res) -> dict:
    return dict(zip(res.failures.track_id, res.failures.reason))


def test_downloads_real_audio_byte_identical(server, wav_bytes, tmp_path):
    res = _run(_table([("t1", server.url("/a/one.wav")), (2, server.url("/typed/two"))]), tmp_path)
    assert res.ok, res.failures
    assert _status(res) == {"t1": "downloaded", "2": "downloaded"}
    want = hashlib.sha256(wav_bytes).hexdigest()
    for name in ("t1.wav", "2.wav"):  # /typed/two has no suffix: .wav from Content-Type audio/wav
        p = tmp_path / name
        assert p.read_bytes() == wav_bytes
        y, sr = sf.read(p)
        assert sr == SR and len(y) == SR // 2 and np.abs(y).max() > 0.4
    assert list(res.files.sha256) == [want, want]
    assert list(res.files.bytes) == [len(wav_bytes)] * 2
    assert list(res.files.path) == [str(tmp_path / "t1.wav"), str(tmp_path / "2.wav")]
    assert not list(tmp_path.glob("*.part"))
    assert all(r["ua"].startswith("audioreg/") for r in server.requests)


def test_second_call_is_already_there_without_requests(server, wav_bytes, tmp_path):
    sha = hashlib.sha256(wav_bytes).hexdigest()
    table = _table([("a", server.url("/a/a.wav")), ("b", server.url("/typed/b"))], checksums=[sha, None])
    first = _run(table, tmp_path, checksum_column="sha256")
    assert first.ok and _status(first) == {"a": "downloaded", "b": "downloaded"}
    n = len(server.requests)

    again = _run(table, tmp_path, checksum_column="sha256")
    assert again.ok
    assert _status(again) == {"a": "already there", "b": "already there"}
    assert list(again.files.sha256) == [sha, sha]
    assert len(server.requests) == n  # no request at all

    (tmp_path / "a.wav").write_bytes(b"corrupt")  # a checksum that no longer matches: fetched again
    third = _run(table, tmp_path, checksum_column="sha256")
    assert _status(third) == {"a": "downloaded", "b": "already there"}
    assert (tmp_path / "a.wav").read_bytes() == wav_bytes
    assert server.paths()[n:] == ["/a/a.wav"]


def test_every_failure_listed_and_the_batch_goes_on(server, wav_bytes, tmp_path):
    table = _table([
        ("gone", server.url("/missing.wav")),
        ("html", server.url("/page.html")),
        ("../evil", server.url("/a/evil.wav")),
        ("local", "file:///etc/passwd"),
        ("nourl", None),
        ("empty", "  "),
        ("good", server.url("/a/good.wav")),
        ("good", server.url("/a/other.wav")),
    ])
    res = _run(table, tmp_path)
    reasons = _reasons(res)
    assert reasons["gone"] == "HTTP 404 Not Found"
    assert reasons["html"].startswith("not audio: Content-Type text/html")
    assert reasons["../evil"].startswith("unsafe track_id")
    assert reasons["local"].startswith("unsupported URL")
    assert reasons["good"].startswith("duplicate track_id")
    assert "nourl" not in reasons and "empty" not in reasons  # no URL: nothing to fetch, not a failure
    assert _status(res) == {"good": "downloaded"}
    assert (tmp_path / "good.wav").read_bytes() == wav_bytes
    assert server.counts["/missing.wav"] == 1  # a 404 is not retried
    assert "/a/evil.wav" not in server.counts and "/a/other.wav" not in server.counts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.wav"]  # nothing for the HTML page
    assert not (tmp_path.parent / "evil.wav").exists()


def test_retries_5xx_and_429_with_backoff_and_retry_after(server, wav_bytes, tmp_path, clock):
    res = _run(_table([("flaky", server.url("/flaky/f.wav")), ("busy", server.url("/busy/b.wav")),
                       ("down", server.url("/down/d.wav"))]), tmp_path, retries=2, backoff_s=0.5)
    assert _status(res) == {"flaky": "downloaded", "busy": "downloaded"}
    assert (tmp_path / "flaky.wav").read_bytes() == wav_bytes == (tmp_path / "busy.wav").read_bytes()
    assert server.counts["/flaky/f.wav"] == 2 and server.counts["/busy/b.wav"] == 2
    assert _reasons(res) == {"down": "HTTP 503 Service Unavailable (3 tries)"}
    assert server.counts["/down/d.wav"] == 3
    # 503 once: backoff 0.5; 429: the server's Retry-After 7; 503 always: 0.5 then 1.0 (exponential)
    assert clock.sleeps == [0.5, 7.0, 0.5, 1.0]


def test_retry_after_is_capped():
    assert fetch._retry_after("3600") == fetch.RETRY_AFTER_CAP_S
    assert fetch._retry_after("2") == 2.0
    assert fetch._retry_after("soon") is None
    assert fetch._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past


def test_stalled_server_times_out_then_the_rest_goes_on(server, wav_bytes, tmp_path):
    t0 = time.monotonic()
    res = _run(_table([("stall", server.url("/stall.wav")), ("after", server.url("/a/after.wav"))]), tmp_path,
               timeout_s=0.3, retries=1)
    wall = time.monotonic() - t0
    assert _reasons(res) == {"stall": "timed out after 0.3 s (2 tries)"}
    assert server.counts["/stall.wav"] == 2
    assert _status(res) == {"after": "downloaded"}
    assert (tmp_path / "after.wav").read_bytes() == wav_bytes
    assert not (tmp_path / "stall.wav").exists() and not (tmp_path / "stall.wav.part").exists()
    assert wall < 3.0


def test_dropped_connection_resumes_with_range(server, wav_bytes, tmp_path):
    res = _run(_table([("d", server.url("/drop/d.wav"))]), tmp_path)
    assert res.ok, res.failures
    assert _status(res) == {"d": "resumed"}
    half = len(wav_bytes) // 2
    assert [r["range"] for r in server.requests] == [None, f"bytes={half}-"]
    assert (tmp_path / "d.wav").read_bytes() == wav_bytes
    assert sf.read(tmp_path / "d.wav")[0].shape == (SR // 2,)
    assert res.files.sha256[0] == hashlib.sha256(wav_bytes).hexdigest()
    assert not (tmp_path / "d.wav.part").exists()


def test_part_from_an_earlier_run(server, wav_bytes, tmp_path):
    (tmp_path / "r.wav.part").write_bytes(wav_bytes[:1000])  # resumed with Range, 206 appended
    (tmp_path / "n.wav.part").write_bytes(b"x" * 1000)  # the server ignores Range: 200, start over
    (tmp_path / "x.wav.part").write_bytes(wav_bytes + b"junk")  # longer than the file: 416, start over
    res = _run(_table([("r", server.url("/a/r.wav")), ("n", server.url("/norange/n.wav")),
                       ("x", server.url("/a/x.wav"))]), tmp_path)
    assert res.ok, res.failures
    assert _status(res) == {"r": "resumed", "n": "downloaded", "x": "downloaded"}
    for name in ("r", "n", "x"):
        assert (tmp_path / f"{name}.wav").read_bytes() == wav_bytes
    assert [(r["path"], r["range"]) for r in server.requests] == [
        ("/a/r.wav", "bytes=1000-"), ("/norange/n.wav", "bytes=1000-"),
        ("/a/x.wav", f"bytes={len(wav_bytes) + 4}-"), ("/a/x.wav", None)]
    assert not list(tmp_path.glob("*.part"))


def test_incomplete_body_fails_and_never_becomes_a_final_file(server, wav_bytes, tmp_path):
    res = _run(_table([("s", server.url("/short/s.wav"))]), tmp_path, retries=2)
    half, n = len(wav_bytes) // 2, len(wav_bytes)
    assert _reasons(res) == {"s": f"incomplete: got {half} of {n} bytes (3 tries)"}
    assert server.counts["/short/s.wav"] == 3
    assert [r["range"] for r in server.requests][1:] == [f"bytes={half}-"] * 2  # it tried to resume
    assert not (tmp_path / "s.wav").exists()
    assert (tmp_path / "s.wav.part").stat().st_size == half  # kept for a later resume, never final
    assert res.files.empty


def test_checksum_mismatch_deletes_and_fails(server, wav_bytes, tmp_path):
    good = hashlib.sha256(wav_bytes).hexdigest()
    table = _table([("bad", server.url("/a/bad.wav")), ("ok", server.url("/a/ok.wav")),
                    ("none", server.url("/a/none.wav"))], checksums=["0" * 64, f"sha256:{good.upper()}", None])
    res = _run(table, tmp_path, checksum_column="sha256")
    assert _reasons(res) == {"bad": f"sha256 mismatch: expected {'0' * 64}, got {good}"}
    assert _status(res) == {"ok": "downloaded", "none": "downloaded"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["none.wav", "ok.wav"]


def test_rate_limit_spaces_requests_per_host(server, tmp_path, clock):
    rows = [(f"a{i}", server.url(f"/a/a{i}.wav")) for i in range(3)]
    rows += [(f"b{i}", server.url(f"/a/b{i}.wav", host="localhost")) for i in range(2)]
    rows = [rows[0], rows[3], rows[1], rows[4], rows[2]]  # alternate hosts
    t0 = time.monotonic()
    res = _run(_table(rows), tmp_path, min_interval_s=5.0)
    assert res.ok, res.failures
    assert time.monotonic() - t0 < 2.0  # the fake clock: nothing really waited
    by_host: dict[str, list[float]] = {}
    for r in server.requests:
        by_host.setdefault(r["host"].split(":")[0], []).append(r["t"])
    assert by_host == {"127.0.0.1": [0.0, 5.0, 10.0], "localhost": [0.0, 5.0]}
    assert clock.sleeps == [5.0, 10.0 - 5.0]  # the second host never waited for the first


def test_missing_column_is_an_error(tmp_path):
    with pytest.raises(KeyError, match="no column 'link'"):
        fetch.fetch_audio(pd.DataFrame({"track_id": ["a"]}), tmp_path, url_column="link")


def test_ingest_downloads_the_url_column_first_when_asked(server, wav_bytes, tmp_path):
    """``fetch_audio: true``: ingest downloads the table's URLs into ``audio_dir/fetched/``, links
    the rows to them by track id, and says why a row whose download failed has no audio."""
    from audioreg import stages
    from audioreg.targets import TARGETS

    labels = {t: 0.5 for t in TARGETS} | {"tempo": 120.0, "loudness": -9.0, "key": 2.0, "time_signature": 4.0}
    table = pd.DataFrame([{"track_id": "t1", "artists": "A", "track_name": "One", "url": server.url("/a/one.wav"), **labels},
                          {"track_id": "t2", "artists": "B", "track_name": "Two", "url": server.url("/missing.wav"), **labels}])
    (tmp_path / "audio").mkdir()
    table.to_csv(tmp_path / "tracks.csv", index=False)
    params = {"root": str(tmp_path / "work"), "metadata_path": str(tmp_path / "tracks.csv"),
              "audio_dir": str(tmp_path / "audio"), "generate_sample": False, "progress": False,
              "fetch_audio": True, "fetch_interval_s": 0.0}
    ing = stages.ingest(params)
    assert ing.manifest[["track_id", "link"]].values.tolist() == [["t1", "track_id file name"]]
    assert (tmp_path / "audio" / "fetched" / "t1.wav").read_bytes() == wav_bytes
    reason = ing.problems.set_index("track_id").loc["t2", "reason"]
    assert reason.startswith("download failed: HTTP 404")
    table.drop(columns="url").to_csv(tmp_path / "no-urls.csv", index=False)
    with pytest.raises(ValueError, match="no 'url' column"):
        stages.ingest({**params, "metadata_path": str(tmp_path / "no-urls.csv")})
