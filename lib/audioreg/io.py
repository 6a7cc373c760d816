"""Reading metadata and audio, and linking metadata rows to audio files.

Everything here works on explicit paths; nothing reads environment variables.
Errors name the file (and the CSV row) they are about.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from .targets import TARGETS, VALID_RANGES

log = logging.getLogger(__name__)

#: Sample rate every feature is computed at.
TARGET_SR = 22050

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".m4a", ".wma")

MANIFEST_COLUMNS = ("track_id", "path", "sha256", "duration_s", "sample_rate", "channels", "link")
PROBLEM_COLUMNS = ("row", "track_id", "path", "stage", "reason")


class AudioDecodeError(RuntimeError):
    """An audio file could not be decoded; the message names the file."""


class MetadataError(ValueError):
    """The metadata table cannot be used as a whole; the message names the file."""


# --------------------------------------------------------------------------- audio
def probe_audio(path: str | os.PathLike) -> dict:
    """Duration, sample rate and channel count of an audio file without decoding it.

    Returns
    -------
    dict with ``duration_s``, ``sample_rate``, ``channels``, ``frames``.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile cannot read it: try audioread (ffmpeg/gstreamer) if present
        try:
            import audioread

            with audioread.audio_open(str(path)) as f:
                return {
                    "duration_s": float(f.duration),
                    "sample_rate": int(f.samplerate),
                    "channels": int(f.channels),
                    "frames": int(round(f.duration * f.samplerate)),
                }
        except Exception:
            raise AudioDecodeError(f"{path}: not a readable audio file ({_short(exc)})") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioDecodeError(f"{path}: no audio frames")
    return {
        "duration_s": info.frames / info.samplerate,
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "frames": int(info.frames),
    }


def load_audio(
    path: str | os.PathLike,
    *,
    sr: int = TARGET_SR,
    mono: bool = True,
    max_duration: float | None = None,
) -> tuple[np.ndarray, int]:
    """Decode an audio file, mix to mono and resample (soxr) to ``sr``.

    Parameters
    ----------
    path : path of a wav/flac/ogg/opus/mp3/... file (libsndfile; audioread as fallback)
    sr : output sample rate
    mono : average the channels
    max_duration : read at most this many seconds (None: the whole file)

    Returns
    -------
    y : np.ndarray [shape=(n,) if mono else (channels, n)], float32
    sr : int
    """
    import soundfile as sf
    import soxr

    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: empty file (0 bytes)")
    if mono:
        try:
            return _load_mono_streaming(path, sr=sr, max_duration=max_duration), sr
        except _NotSoundfile as exc:
            data, orig_sr = _load_audioread(path, max_duration=max_duration, original=exc.__cause__)
    else:
        try:
            with sf.SoundFile(str(path)) as f:
                orig_sr = f.samplerate
                frames = -1 if max_duration is None else int(max_duration * orig_sr)
                data = f.read(frames=frames, dtype="float32", always_2d=True)
        except Exception as exc:
            data, orig_sr = _load_audioread(path, max_duration=max_duration, original=exc)
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{path}: no audio frames")
    if not np.all(np.isfinite(data)):
        raise AudioDecodeError(f"{path}: decoded samples contain NaN or infinity")
    y = data.mean(axis=1) if mono else data.T
    if orig_sr != sr:
        y = soxr.resample(y.T if not mono else y, orig_sr, sr, quality="HQ")
        y = y if mono else y.T
    return np.ascontiguousarray(y, dtype=np.float32), sr


class _NotSoundfile(Exception):
    """libsndfile cannot open the file (the audioread fallback may)."""


#: Frames decoded per block when streaming (a block of 48 kHz stereo float32 is ~23 MB).
DECODE_BLOCK_S = 60.0


def _load_mono_streaming(path: Path, *, sr: int, max_duration: float | None) -> np.ndarray:
    """Decode block by block, mix each block to mono and resample it with a soxr stream.

    Bit-identical to decoding the whole file, averaging the channels and calling
    ``soxr.resample`` once, but only one block of the (often stereo, 44.1-48 kHz)
    decoded signal is held at a time: the peak is the mono 22,050 Hz output.
    """
    import soundfile as sf
    import soxr

    try:
        f = sf.SoundFile(str(path))
    except Exception as exc:
        raise _NotSoundfile() from exc
    with f:
        orig_sr = f.samplerate
        total = f.frames if max_duration is None else min(f.frames, int(max_duration * orig_sr))
        if total <= 0:
            raise AudioDecodeError(f"{path}: no audio frames")
        stream = soxr.ResampleStream(orig_sr, sr, 1, dtype="float32", quality="HQ") if orig_sr != sr else None
        chunks, done = [], 0
        block = max(1, int(DECODE_BLOCK_S * orig_sr))
        try:
            while done < total:
                data = f.read(frames=min(block, total - done), dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    break
                done += data.shape[0]
                if not np.all(np.isfinite(data)):
                    raise AudioDecodeError(f"{path}: decoded samples contain NaN or infinity")
                y = data.mean(axis=1)
                chunks.append(stream.resample_chunk(y) if stream else y)
        except AudioDecodeError:
            raise
        except Exception as exc:  # a file that opens but breaks while decoding (truncated, corrupt)
            raise AudioDecodeError(f"{path}: decoding failed after {done / orig_sr:.1f} s ({_short(exc)})") from exc
        if stream:
            chunks.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    if done == 0:
        raise AudioDecodeError(f"{path}: no audio frames")
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)


def _load_audioread(path: Path, *, max_duration: float | None, original: Exception):
    try:
        import audioread

        chunks = []
        with audioread.audio_open(str(path)) as f:
            orig_sr, channels = f.samplerate, f.channels
            limit = None if max_duration is None else int(max_duration * orig_sr) * channels
            got = 0
            for buf in f:
                chunk = np.frombuffer(buf, dtype="<i2").astype(np.float32) / 32768.0
                chunks.append(chunk)
                got += chunk.size
                if limit is not None and got >= limit:
                    break
        data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        if limit is not None:
            data = data[:limit]
        return data[: data.size - data.size % channels].reshape(-1, channels), orig_sr
    except Exception:
        raise AudioDecodeError(f"{path}: not a readable audio file ({_short(original)})") from original


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def file_sha256(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------ metadata
def read_metadata(path: str | os.PathLike) -> pd.DataFrame:
    """Read a Spotify-style metadata CSV (UTF-8, optional BOM).

    The frame gets a ``row`` column with the 1-based line number in the file (the
    header is line 1), so problems can name the row. ``track_id`` is required;
    target columns are checked by :func:`validate_labels`.
    """
    path = Path(path)
    if not path.is_file():
        raise MetadataError(f"{path}: metadata file not found")
    try:
        df = pd.read_csv(path, encoding="utf-8-sig", dtype={"track_id": str}, keep_default_na=True)
    except UnicodeDecodeError as exc:
        raise MetadataError(
            f"{path}: not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8"
        ) from exc
    except pd.errors.ParserError as exc:
        raise MetadataError(f"{path}: not a readable CSV ({_short(exc)})") from exc
    except pd.errors.EmptyDataError as exc:
        raise MetadataError(f"{path}: empty file") from exc
    df = df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed: ")])
    if "track_id" not in df.columns:
        raise MetadataError(f"{path}: missing column 'track_id' (columns: {', '.join(map(str, df.columns))})")
    missing = [t for t in TARGETS if t not in df.columns]
    if missing:
        raise MetadataError(f"{path}: missing target column(s) {', '.join(missing)}")
    df.insert(0, "row", np.arange(2, len(df) + 2))
    for col in ("artists", "album_name", "track_name", "path"):
        if col in df.columns:
            df[col] = df[col].map(lambda v: unicodedata.normalize("NFC", v) if isinstance(v, str) else v)
    df["track_id"] = df["track_id"].map(lambda v: unicodedata.normalize("NFC", v.strip()) if isinstance(v, str) else v)
    return df


def validate_labels(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose labels cannot be used: missing id, duplicated id, NaN or out-of-range labels.

    Returns a problems table (columns ``PROBLEM_COLUMNS``), one row per bad metadata row.
    Vectorized: a 100,000-row table is checked in well under a second.
    """
    reasons = pd.Series([[] for _ in range(len(df))], index=df.index, dtype=object)
    tid = df["track_id"]
    missing_id = ~tid.map(lambda v: isinstance(v, str) and bool(v))
    dup = tid.duplicated(keep=False) & ~missing_id
    first_row = df.loc[dup].groupby("track_id")["row"].transform("min")
    for i in df.index[missing_id]:
        reasons[i].append("missing track_id")
    for i in df.index[dup]:
        reasons[i].append(f"duplicated track_id (first at row {first_row[i]})")
    for t in TARGETS:
        values = pd.to_numeric(df[t], errors="coerce")
        lo, hi = VALID_RANGES[t]
        for i in df.index[values.isna()]:
            reasons[i].append(f"{t} is missing or not a number ({df.at[i, t]!r})")
        for i in df.index[values.notna() & ((values < lo) | (values > hi))]:
            reasons[i].append(f"{t}={values[i]:g} outside [{lo:g}, {hi:g}]")
    bad = reasons.map(len) > 0
    problems = pd.DataFrame({"row": df.loc[bad, "row"].astype(int), "track_id": tid[bad], "path": None,
                             "stage": "metadata", "reason": reasons[bad].map("; ".join)})
    return problems.reset_index(drop=True)[list(PROBLEM_COLUMNS)]


# ------------------------------------------------------------------------- linking
_SEPARATORS = re.compile(r"[\s_]+")
_DASHES = re.compile(r"[\u2010-\u2015\u2212]")
_STRIP = re.compile(r"[^\w\s-]")


def normalize_name(text: str) -> str:
    """Normalize a name for matching: NFC, case-folded, punctuation and repeated spaces removed.

    ``"Beyonce\\u0301 — Halo"`` and ``"beyoncé - halo"`` give the same key.
    """
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    text = _DASHES.sub("-", text)
    text = _STRIP.sub(" ", text)
    text = _SEPARATORS.sub(" ", text).strip()
    return unicodedata.normalize("NFC", text)


def stem_key(text: str) -> str:
    """Matching key of a file stem: :func:`normalize_name` with dashes as spaces."""
    return " ".join(normalize_name(text).replace("-", " ").split())


def artist_title_key(artists: str, title: str) -> str:
    """Key of an "artist - title" file stem; the first of ';'-separated artists is used."""
    first = str(artists).split(";")[0]
    return stem_key(f"{first} - {title}")


def index_audio_dir(audio_dir: str | os.PathLike) -> pd.DataFrame:
    """All audio files below ``audio_dir`` (recursive), with their stem keys."""
    audio_dir = Path(audio_dir)
    rows = []
    if audio_dir.is_dir():
        for dirpath, _, files in os.walk(audio_dir):
            for name in sorted(files):
                p = Path(dirpath) / name
                if p.suffix.lower() in AUDIO_EXTENSIONS:
                    stem = unicodedata.normalize("NFC", p.stem)
                    rows.append({"path": str(p), "stem": stem, "key": stem_key(stem)})
    return pd.DataFrame(rows, columns=["path", "stem", "key"])


def link_audio(df: pd.DataFrame, *, audio_dir: str | os.PathLike, metadata_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Find each metadata row's audio file.

    Tried in order: a ``path`` column (relative to the metadata file's folder, then to
    ``audio_dir``); a file named ``<track_id>.<ext>`` anywhere below ``audio_dir``;
    a file whose normalized stem is ``"<first artist> - <track_name>"``.

    Returns
    -------
    DataFrame indexed like ``df`` with ``path`` (str or None), ``link`` (the rule
    that matched) and ``reason`` (why nothing matched, else None).
    """
    audio_dir = Path(audio_dir)
    files = index_audio_dir(audio_dir)
    by_stem: dict[str, list[str]] = {}
    by_key: dict[str, list[str]] = {}
    for p, stem, key in files.itertuples(index=False):
        by_stem.setdefault(stem, []).append(p)
        by_key.setdefault(key, []).append(p)
    out = []
    for _, r in df.iterrows():
        path, link, reason = None, None, None
        given = r.get("path") if "path" in df.columns else None
        if isinstance(given, str) and given.strip():
            for base in [metadata_dir, audio_dir] if metadata_dir else [audio_dir]:
                cand = Path(given) if Path(given).is_absolute() else Path(base) / given
                if cand.is_file():
                    path, link = str(cand), "path column"
                    break
            if path is None:
                reason = f"path column names {given!r}, which does not exist"
        tid = r["track_id"]
        if path is None and isinstance(tid, str) and tid in by_stem:
            matches = by_stem[tid]
            if len(matches) == 1:
                path, link, reason = matches[0], "track_id file name", None
            else:
                reason = f"{len(matches)} files are named {tid}.*: {', '.join(Path(m).name for m in matches[:3])}"
        if path is None and "artists" in df.columns and "track_name" in df.columns and isinstance(r["track_name"], str):
            key = artist_title_key(r["artists"], r["track_name"])
            matches = by_key.get(key, [])
            if len(matches) == 1:
                path, link, reason = matches[0], "artist - title", None
            elif len(matches) > 1:
                reason = f"{len(matches)} files match '{r['artists']} - {r['track_name']}'"
        if path is None and reason is None:
            reason = f"no audio file for track_id {tid!r} under {audio_dir}"
        out.append({"path": path, "link": link, "reason": reason})
    return pd.DataFrame(out, index=df.index)
