"""Fetching audio the user is entitled to: a URL column downloaded into a folder (off by default).

:func:`fetch_audio` downloads each row's URL to ``<dest>/<track_id><ext>`` with timeouts,
retries with exponential backoff, resume of interrupted downloads (HTTP ``Range``), sha256
checksums and a per-host rate limit, and lists every failure instead of raising for it.

A download goes to ``<track_id><url ext>.part`` first and reaches its final name (fsynced,
then renamed) only when it is complete and, when a checksum is given, verified; a final
file is therefore never partial. A ``.part`` left by an interrupted run is resumed.

Only ``http`` and ``https`` URLs are fetched. Nothing here reads environment variables
(urllib still honours the usual proxy variables).
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import logging
import math
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .._pandas import pd

from .. import __version__, atomic

__all__ = ["USER_AGENT", "FetchResult", "fetch_audio"]

log = logging.getLogger(__name__)

#: Sent with every request, so that a server's operator can tell who is asking.
USER_AGENT = f"audioreg/{__version__} (+audio fetch; Python urllib)"

#: Content-Type (without parameters) -> file extension.
CONTENT_TYPES = {
    "audio/mpeg": ".mp3", "audio/mp3": ".mp3",
    "audio/ogg": ".ogg", "application/ogg": ".ogg", "audio/vorbis": ".ogg",
    "audio/flac": ".flac", "audio/x-flac": ".flac",
    "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
    "audio/opus": ".opus",
}
#: Extensions taken from a URL's path when the Content-Type does not name one.
URL_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".m4a", ".wma")
#: Content-Types that say nothing about the body: the URL's extension decides.
_NEUTRAL_TYPES = {"", "application/octet-stream", "binary/octet-stream"}

#: The longest wait a server's ``Retry-After`` can impose (seconds).
RETRY_AFTER_CAP_S = 60.0
_CHUNK = 1 << 16
_RETRY_STATUS = {429, 500, 502, 503, 504}
_UNSAFE_ID = re.compile(r"[/\\\x00]")

# Patched by tests, so that backoff and the rate limit do not really wait.
_sleep = time.sleep
_now = time.monotonic


@dataclass
class FetchResult:
    """What :func:`fetch_audio` did.

    files : pd.DataFrame
        One row per file in ``dest``: ``track_id, url, path, bytes, sha256, status`` with
        ``status`` one of ``"downloaded"``, ``"resumed"`` (a ``.part`` was continued with a
        ``Range`` request) or ``"already there"``.
    failures : pd.DataFrame
        One row per row that has no file: ``track_id, url, reason``.
    """

    files: pd.DataFrame
    failures: pd.DataFrame

    @property
    def ok(self) -> bool:
        return self.failures.empty


FILE_COLUMNS = ["track_id", "url", "path", "bytes", "sha256", "status"]
FAILURE_COLUMNS = ["track_id", "url", "reason"]


class _Failed(Exception):
    """A row that cannot be fetched; ``str(self)`` is its reason."""


class _Retry(Exception):
    """A try that failed in a way another try may fix (``wait``: a server's Retry-After)."""

    def __init__(self, reason: str, *, timed_out: bool = False, wait: float | None = None,
                 appended: bool = False):
        super().__init__(reason)
        self.timed_out, self.wait, self.appended = timed_out, wait, appended


class _RateLimit:
    """At least ``interval`` seconds between the starts of two requests to one host."""

    def __init__(self, interval: float):
        self.interval, self.last = interval, {}

    def wait(self, host: str) -> None:
        last = self.last.get(host)
        if last is not None:
            remaining = last + self.interval - _now()
            if remaining > 0:
                _sleep(remaining)
        self.last[host] = _now()


def fetch_audio(table: pd.DataFrame, dest: str | os.PathLike, *, url_column: str = "url",
                id_column: str = "track_id", checksum_column: str | None = None, timeout_s: float = 30.0,
                retries: int = 3, backoff_s: float = 1.0, min_interval_s: float = 1.0,
                progress: bool = False) -> FetchResult:
    """Download every row's ``url_column`` into ``dest`` as ``<track_id><ext>``.

    Parameters
    ----------
    table : pd.DataFrame
        One row per track; rows whose URL is empty or missing are skipped (not failures).
    dest : path
        The folder to fill (created if needed), e.g. ``data/raw``.
    url_column, id_column : str
        The URL, and the track id that names the file (a safe file stem: no path
        separators, not ``.``/``..``, not starting with ``.``).
    checksum_column : str, optional
        Expected sha256 (hex, optionally ``sha256:``-prefixed). A mismatch deletes the
        download and is a failure; a file already there that does not match is fetched again.
    timeout_s : float
        Limit on connecting and on each read; a stalled server is a timeout.
    retries : int
        Further tries after the first, for connection errors, timeouts, incomplete bodies
        (which resume) and HTTP 429/5xx. Other 4xx are not retried.
    backoff_s : float
        The wait before the n-th retry is ``backoff_s * 2**(n-1)``, or the server's
        ``Retry-After`` (capped at :data:`RETRY_AFTER_CAP_S`) when it sends one.
    min_interval_s : float
        At least this long between the starts of two requests to one host.
    progress : bool
        A tqdm progress bar over the rows.

    Returns
    -------
    FetchResult
        ``files`` and ``failures``; every row with a URL is in exactly one of them.
    """
    for col in (url_column, id_column) + ((checksum_column,) if checksum_column else ()):
        if col not in table.columns:
            raise KeyError(f"fetch_audio: no column {col!r} in the table (columns: {list(table.columns)})")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    limiter = _RateLimit(min_interval_s)
    files, failures, seen = [], [], set()

    rows = table.itertuples(index=False)
    if progress:
        from tqdm.auto import tqdm

        rows = tqdm(rows, total=len(table), desc="fetch", unit="file")
    cols = list(table.columns)
    i_url, i_id = cols.index(url_column), cols.index(id_column)
    i_sum = cols.index(checksum_column) if checksum_column else None
    for row in rows:
        url = _text(row[i_url])
        if not url:
            continue
        track_id = _text(row[i_id])
        expected = _text(row[i_sum]).lower().removeprefix("sha256:") if i_sum is not None else ""
        try:
            _check_id(track_id)
            if track_id in seen:
                raise _Failed(f"duplicate track_id {track_id!r}: only its first row is fetched")
            seen.add(track_id)
            path, nbytes, sha, status = _fetch_one(
                url, dest, track_id, expected or None, limiter=limiter, timeout_s=timeout_s,
                retries=retries, backoff_s=backoff_s)
        except _Failed as e:
            log.warning("fetch %s: %s (%s)", track_id, e, url)
            failures.append((track_id, url, str(e)))
        else:
            files.append((track_id, url, str(path), nbytes, sha, status))
    return FetchResult(files=pd.DataFrame(files, columns=FILE_COLUMNS),
                       failures=pd.DataFrame(failures, columns=FAILURE_COLUMNS))


def _text(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _check_id(track_id: str) -> None:
    if not track_id or track_id.startswith(".") or _UNSAFE_ID.search(track_id) or os.sep in track_id \
            or (os.altsep and os.altsep in track_id):
        raise _Failed(f"unsafe track_id {track_id!r}: it must be a file name without path separators")


def _url_ext(url: str) -> str:
    suffix = os.path.splitext(urllib.parse.urlsplit(url).path)[1].lower()
    return suffix if suffix in URL_EXTENSIONS else ""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _existing(dest: Path, track_id: str, url_ext: str) -> Path | None:
    """The final file of ``track_id`` already in ``dest``, if any."""
    for ext in (url_ext,) if url_ext else URL_EXTENSIONS:
        p = dest / f"{track_id}{ext}"
        if p.is_file():
            return p
    return None


def _fetch_one(url: str, dest: Path, track_id: str, expected: str | None, *, limiter: _RateLimit,
               timeout_s: float, retries: int, backoff_s: float) -> tuple[Path, int, str, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Failed(f"unsupported URL {url!r}: only http(s) URLs are fetched")
    url_ext = _url_ext(url)

    done = _existing(dest, track_id, url_ext)
    if done is not None:
        sha = _sha256(done)
        if expected is None or sha == expected:
            return done, done.stat().st_size, sha, "already there"
        log.warning("fetch %s: %s does not match its sha256 (got %s): fetching it again", track_id, done, sha)
        done.unlink()

    part = dest / f"{track_id}{url_ext}.part"
    tries, resumed = 0, False
    while True:
        tries += 1
        try:
            final, appended = _try(url, parts.hostname, part, track_id, url_ext, limiter=limiter,
                                   timeout_s=timeout_s)
            resumed = resumed or appended
            break
        except _Retry as e:
            if tries > retries:
                if part.exists() and part.stat().st_size == 0:
                    part.unlink()  # nothing to resume from
                if e.timed_out:
                    raise _Failed(f"timed out after {timeout_s:g} s ({tries} tries)") from None
                raise _Failed(f"{e} ({tries} tries)") from None
            resumed = resumed or e.appended
            wait = e.wait if e.wait is not None else backoff_s * 2 ** (tries - 1)
            log.info("fetch %s: %s; try %d of %d in %.3g s", track_id, e, tries + 1, retries + 1, wait)
            _sleep(wait)
        except OSError as e:  # the local disk, not the network (network errors become _Retry)
            raise _Failed(f"could not write {part}: {e}") from None

    sha = _sha256(part)
    if expected is not None and sha != expected:
        part.unlink()
        raise _Failed(f"sha256 mismatch: expected {expected}, got {sha}")
    atomic.publish(part, final)
    return final, final.stat().st_size, sha, "resumed" if resumed else "downloaded"


def _try(url: str, host: str, part: Path, track_id: str, url_ext: str, *, limiter: _RateLimit,
         timeout_s: float) -> tuple[Path, bool]:
    """One request: the ``.part`` extended (or started over) towards the complete body.

    Returns the final path and whether this try resumed a ``.part``. Raises :class:`_Retry`
    for what another try may fix (the ``.part`` keeps what arrived), :class:`_Failed` otherwise.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept": "audio/*, application/octet-stream;q=0.9, */*;q=0.1"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    limiter.wait(host)
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as e:
        with e:
            status, reason, retry_after = e.code, e.reason, e.headers.get("Retry-After")
        if status == 416 and offset:  # our .part is longer than the file: start over
            part.unlink()
            raise _Retry("HTTP 416 Range Not Satisfiable for the .part; starting over") from None
        message = f"HTTP {status} {reason}".strip()
        if status in _RETRY_STATUS:
            raise _Retry(message, wait=_retry_after(retry_after)) from None
        raise _Failed(message) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _network(e) from None

    with resp:
        final = _final_path(part.parent, track_id, url_ext, resp.headers.get("Content-Type", ""))
        appended = False
        if offset and resp.status == 206:
            start = _range_start(resp.headers.get("Content-Range", ""))
            if start != offset:  # not the range we asked for: start over
                part.unlink()
                raise _Retry(f"server answered Range bytes={offset}- with {resp.headers.get('Content-Range')!r}")
            appended = True
        else:
            offset = 0  # a 200: the whole body, from the start
        length = resp.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else None
        received = offset
        with open(part, "ab" if appended else "wb") as f:
            while True:
                try:
                    block = resp.read(_CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    raise _network(e, appended=appended) from None
                if not block:
                    break
                f.write(block)  # a local OSError here is the disk's: _fetch_one reports it
                received += len(block)
    if expected is not None and received != expected:
        raise _Retry(f"incomplete: got {received} of {expected} bytes", appended=appended)
    return final, appended


def _network(e: BaseException, *, appended: bool = False) -> _Retry:
    reason = e.reason if isinstance(e, urllib.error.URLError) else e
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return _Retry("timed out", timed_out=True, appended=appended)
    if isinstance(e, http.client.IncompleteRead):
        return _Retry(f"incomplete: connection closed early ({e!r})", appended=appended)
    return _Retry(f"connection error: {type(reason).__name__}: {reason}", appended=appended)


def _final_path(dest: Path, track_id: str, url_ext: str, content_type: str) -> Path:
    ctype = content_type.split(";")[0].strip().lower()
    ext = CONTENT_TYPES.get(ctype)
    if ext is None and (ctype in _NEUTRAL_TYPES or ctype.startswith("audio/")):
        ext = url_ext
    if not ext:
        raise _Failed(f"not audio: Content-Type {content_type or '(none)'}")
    return dest / f"{track_id}{ext}"


def _range_start(content_range: str) -> int | None:
    m = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", content_range)
    return int(m.group(1)) if m else None


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)

