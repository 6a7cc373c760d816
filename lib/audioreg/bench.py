"""Timing helpers for ``bench/run.py``: measure calls, summarize, format Markdown tables.

The driver (``bench/run.py``) owns files, processes and the report; this module only
times callables and turns measurements into tables. Throughput is "times real time":
seconds of audio processed per wall-clock second, on one core when the caller pins
threads to one.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ._pandas import pd

__all__ = [
    "Timing",
    "current_rss_mb",
    "feature_stage_times",
    "markdown_table",
    "peak_rss_mb",
    "public_table",
    "ratio",
    "reset_peak_rss",
    "summarize_throughput",
    "time_call",
    "times_real_time",
]


class Timing(tuple):
    """``(wall_s, cpu_s)`` of one measurement: the medians of the repeats."""

    __slots__ = ()

    def __new__(cls, wall_s: float, cpu_s: float):
        return super().__new__(cls, (float(wall_s), float(cpu_s)))

    @property
    def wall_s(self) -> float:
        return self[0]

    @property
    def cpu_s(self) -> float:
        return self[1]


def time_call(fn: Callable[[], object], *, repeats: int = 3) -> Timing:
    """Median wall-clock and process CPU seconds of ``repeats`` calls of ``fn()``.

    Parameters
    ----------
    fn : callable taking no arguments; its result is discarded
    repeats : int >= 1

    Returns
    -------
    timing : Timing
        ``wall_s`` and ``cpu_s``, each the median over the repeats (CPU time of this
        process only: on one pinned thread, ``cpu_s`` well below ``wall_s`` means other
        jobs took the core).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    walls, cpus = [], []
    for _ in range(int(repeats)):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return Timing(float(np.median(walls)), float(np.median(cpus)))


def times_real_time(audio_s: float | np.ndarray, wall_s: float | np.ndarray) -> float | np.ndarray:
    """Seconds of audio per wall-clock second (``inf`` for a zero duration)."""
    audio_s = np.asarray(audio_s, dtype=float)
    wall_s = np.asarray(wall_s, dtype=float)
    with np.errstate(divide="ignore"):
        out = np.where(wall_s > 0, audio_s / np.where(wall_s > 0, wall_s, 1.0), np.inf)
    return out.item() if out.ndim == 0 else out


def summarize_throughput(
    measurements: pd.DataFrame, *, group: str = "format", overall: str = "all"
) -> pd.DataFrame:
    """Times real time per group and overall, from per-file measurements.

    Parameters
    ----------
    measurements : pandas.DataFrame
        One row per (file, path): columns ``group`` (e.g. ``format``), ``file``,
        ``audio_s``, ``path`` (the measured path's name) and ``wall_s``.
    group : str
        Column to group by.
    overall : str
        Label of the row over all files.

    Returns
    -------
    table : pandas.DataFrame
        Index: the groups (in order of appearance) then ``overall``; columns ``files``,
        ``audio_s`` and one column per path with total audio seconds / total wall seconds.
    """
    need = {group, "file", "audio_s", "path", "wall_s"}
    missing = need - set(measurements.columns)
    if missing:
        raise ValueError(f"measurements lack column(s) {sorted(missing)}")
    m = measurements.assign(**{group: measurements[group].astype(str)})
    paths = list(dict.fromkeys(m["path"]))
    groups = list(dict.fromkeys(m[group]))

    def row(sub: pd.DataFrame) -> dict:
        audio = sub.drop_duplicates("file")["audio_s"].sum()
        out = {"files": sub["file"].nunique(), "audio_s": float(audio)}
        for p in paths:
            s = sub[sub["path"] == p]
            out[p] = times_real_time(s["audio_s"].sum(), s["wall_s"].sum()) if len(s) else np.nan
        return out

    rows = {g: row(m[m[group] == g]) for g in groups}
    rows[overall] = row(m)
    return pd.DataFrame.from_dict(rows, orient="index")


def markdown_table(df: pd.DataFrame, *, floatfmt: str = ",.1f", index: bool = True, index_name: str = "") -> str:
    """A GitHub-flavoured Markdown table of ``df`` (numbers right-aligned)."""
    cols = list(df.columns)
    header = ([index_name or (df.index.name or "")] if index else []) + [str(c) for c in cols]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in cols]
    align = (["---"] if index else []) + ["---:" if n else "---" for n in numeric]

    def fmt(v) -> str:
        if isinstance(v, (bool, np.bool_)):
            return str(v)
        if isinstance(v, (int, np.integer)):
            return f"{int(v):,}"
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else format(float(v), floatfmt)
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for i, idx in enumerate(df.index):  # column by column: iterrows would upcast ints to float
        cells = ([str(idx)] if index else []) + [fmt(df[c].iloc[i]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def feature_stage_times(
    *, y: np.ndarray, sr: int, repeats: int = 1
) -> dict[str, float]:
    """Seconds spent in each stage of :func:`audioreg.features.extract_features`.

    Read from the function's own stage clock (its ``timings`` argument), so the stages
    are exactly the work of one call and sum to its run time.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono waveform at ``sr``.
    sr : int
    repeats : int
        Median of this many calls, stage by stage.

    Returns
    -------
    seconds : dict
        Stage name to seconds, in the order the stages first run (``stft``,
        ``power+contrast+peaks``, ``mel``, ``zcr``, ``chroma``, ``mfcc``, ``tonnetz+stack``).
    """
    from .features import frames

    runs = []
    for _ in range(max(1, int(repeats))):
        timings: dict[str, float] = {}
        frames.extract_features(y=y, sr=sr, timings=timings)
        runs.append(timings)
    return {k: float(np.median([r.get(k, 0.0) for r in runs])) for k in runs[0]}


def reset_peak_rss() -> bool:
    """Reset this process's resident-set high-water mark (Linux >= 4.0); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _proc_status_mb(field: str) -> float | None:
    """A memory field of ``/proc/self/status`` (``VmHWM``, ``VmRSS``) in MiB; None if unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (``VmHWM``, else ``ru_maxrss``)."""
    peak = _proc_status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    """Current resident set size of this process in MiB (``VmRSS``; NaN if unavailable)."""
    rss = _proc_status_mb("VmRSS")
    return rss if rss is not None else float("nan")


def ratio(a: Sequence[float] | float, b: Sequence[float] | float):
    """``a / b`` elementwise (NaN where ``b`` is 0)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)
    return out.item() if out.ndim == 0 else out


# ------------------------------------------------------------------ generated public tables
_ID_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
_WORDS = ("love", "night", "heart", "blue", "fire", "home", "dream", "rain", "gold", "river", "city", "light",
          "baby", "summer", "girl", "time", "world", "dance", "the", "of", "my", "you", "in", "on", "star", "moon",
          "road", "sun", "wild", "young", "song", "soul", "kids", "black", "white", "red", "boy", "way", "day", "life",
          "Café", "Señor", "Motörhead", "Beyoncé", "Björk", "東京", "Москва", "Don't", "Rock 'n' Roll",
          '12" Single', "Hello, World", "Live; Remastered", "(feat. Ana)", "- 2011 Remaster")
_GENRES = ("acoustic", "afrobeat", "alt-rock", "ambient", "blues", "classical", "country", "dance", "disco", "edm",
           "folk", "funk", "grunge", "hip-hop", "indie", "jazz", "k-pop", "metal", "pop", "punk", "reggae", "soul")


def _spotify_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random 22-character base-62 ids (Spotify's form)."""
    codes = _ID_ALPHABET[rng.integers(0, _ID_ALPHABET.size, size=(n, 22), dtype=np.uint8)]
    return np.ascontiguousarray(codes).view("S22").ravel().astype(str).astype(object)


def _titles(rng: np.random.Generator, n: int, *, words: int = 3, pool: int = 50_000) -> np.ndarray:
    """``n`` titles of 1..``words`` words (some with accents, other scripts, commas, quotes, apostrophes),
    drawn from ``pool`` distinct ones."""
    k = min(n, pool)
    picks = rng.integers(0, len(_WORDS), size=(k, words))
    lengths = rng.integers(1, words + 1, size=k)
    distinct = np.array([" ".join(_WORDS[j] for j in row[:m]) for row, m in zip(picks, lengths)], dtype=object)
    return distinct[rng.integers(0, k, size=n)] if n > k else distinct


def public_table(n: int, layout: str = "spotify-1.2m", *, seed: int = 0, text_errors: bool = True) -> pd.DataFrame:
    """A generated table of ``n`` rows laid out as a public Spotify table, for read benchmarks.

    Parameters
    ----------
    n : int
        Rows.
    layout : str
        A key of :data:`audioreg.data.tables.LAYOUTS`: its columns in its order (the Kaggle
        table's unnamed index is the column ``""``; ``to_csv(index=False)`` writes it so).
    seed : int
    text_errors : bool
        Put a few words in a numeric target column (``valence`` "?"), as a hand-edited CSV
        has; False for Parquet, whose columns are typed.

    Returns
    -------
    table : pandas.DataFrame
        Realistic values: base-62 ids, titles with accents, other scripts, commas, quotes and
        apostrophes; artists as the layout writes them (``;``-joined, or Python list strings
        such as ``['A', "Guns N' Roses"]``) drawn from a pool so that artists repeat; labels in
        Spotify's ranges. About 1 % of rows repeat an earlier track (same labels; in the
        Kaggle layout under another genre) and 0.1 % repeat its id with other labels; 0.2 %
        of energy cells are empty; Spotify's sentinels (tempo 0, key -1, time_signature 0)
        and out-of-range or fractional labels on about 0.1-0.5 % of rows.
    """
    from .data.tables import LAYOUTS

    columns = LAYOUTS[layout]
    rng = np.random.default_rng(seed)
    n_artists = max(1, min(n // 4, 200_000))
    pool = _titles(rng, n_artists, words=2, pool=n_artists)
    pool_ids = _spotify_ids(rng, n_artists)
    credits = np.minimum(rng.zipf(1.6, size=(n, 3)) - 1, n_artists - 1)
    credited = rng.choice(3, size=n, p=[0.8, 0.15, 0.05]) + 1
    if layout == "spotify-tracks":
        artists = [";".join(dict.fromkeys(pool[c] for c in row[:m])) for row, m in zip(credits, credited)]
    else:
        quoted = [repr(str(a)) for a in pool]  # Python's list repr: 'A', or "Guns N' Roses"
        artists = ["[" + ", ".join(dict.fromkeys(quoted[c] for c in row[:m])) + "]" for row, m in zip(credits, credited)]
    artist_ids = ["[" + ", ".join(dict.fromkeys(repr(pool_ids[c]) for c in row[:m])) + "]"
                  for row, m in zip(credits, credited)]
    instrumental = np.where(rng.random(n) < 0.6, rng.random(n) * 1e-4, rng.beta(1.5, 1.2, n))
    year = rng.integers(1950, 2021, size=n)
    days = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]") + rng.integers(0, 365, size=n)
    short = rng.random(n) < (0.3 if layout == "spotify-600k" else 0.05)  # some rows give only the year
    release = np.where(short, year.astype(str), days.astype(str)).astype(object)
    ids, titles, albums = _spotify_ids(rng, n), _titles(rng, n), _titles(rng, n, words=2)
    values = {
        "": np.arange(n), "id": ids, "track_id": ids, "name": titles, "track_name": titles, "album": albums,
        "album_name": albums, "album_id": _spotify_ids(rng, n), "artists": np.array(artists, dtype=object),
        "artist_ids": np.array(artist_ids, dtype=object), "id_artists": np.array(artist_ids, dtype=object),
        "track_number": rng.integers(1, 20, size=n), "disc_number": np.where(rng.random(n) < 0.95, 1, 2),
        "explicit": rng.random(n) < 0.1, "popularity": rng.integers(0, 101, size=n),
        "danceability": rng.beta(5, 3, n).round(3), "energy": rng.beta(4, 2, n).round(3),
        "key": rng.integers(0, 12, size=n), "loudness": -np.minimum(rng.gamma(3.0, 2.8, n), 60).round(3),
        "mode": (rng.random(n) < 0.65).astype(np.int64), "speechiness": rng.beta(1, 12, n).round(4),
        "acousticness": rng.beta(0.7, 1.5, n).round(4), "instrumentalness": instrumental.round(6),
        "liveness": rng.beta(1.3, 6, n).round(4), "valence": rng.beta(2.5, 2.5, n).round(3),
        "tempo": np.clip(rng.normal(120, 28, n), 40, 230).round(3), "duration_ms": rng.integers(30_000, 600_000, size=n),
        "time_signature": rng.choice([3, 4, 5], size=n, p=[0.1, 0.85, 0.05]), "year": year,
        "release_date": release, "track_genre": np.array(_GENRES, dtype=object)[rng.integers(0, len(_GENRES), n)],
    }
    if layout == "spotify-600k":
        values["explicit"] = values["explicit"].astype(np.int64)
    if layout == "spotify-1.2m":
        values["time_signature"] = values["time_signature"].astype(np.float64)  # the 1.2M table writes 4.0
    df = pd.DataFrame({c: values[c] for c in columns})
    # Spotify's sentinels, out-of-range labels, empty cells
    df.loc[rng.random(n) < 0.001, "tempo"] = 0.0
    df.loc[rng.random(n) < 0.001, "time_signature"] = 0
    df.loc[rng.random(n) < 0.002, "energy"] = np.nan
    df.loc[rng.random(n) < 0.0005, "loudness"] = 1.5
    df.loc[rng.random(n) < 0.0005, "danceability"] = 1.2
    if layout == "spotify-600k":
        df.loc[rng.random(n) < 0.002, "key"] = -1
    # repeats of other tracks: the same labels (in the Kaggle layout under another genre), or other labels
    dup = np.flatnonzero(rng.random(n) < (0.2 if layout == "spotify-tracks" else 0.01))
    if dup.size and dup.size < n:
        source = rng.choice(np.setdiff1d(np.arange(n), dup), size=dup.size)
        for c in df.columns:
            if c not in ("", "track_genre"):
                column = df[c].to_numpy(copy=True)
                column[dup] = column[source]
                df[c] = column
    clash = dup[rng.random(dup.size) < 0.1]
    df.loc[clash, "energy"] = rng.beta(4, 2, clash.size).round(3)
    if text_errors and n:
        bad = rng.choice(n, size=min(n, 5), replace=False)
        df["valence"] = df["valence"].astype(object)
        df.loc[bad, "valence"] = "?"
    id_col = "track_id" if "track_id" in df.columns else "id"
    df[id_col] = df[id_col].astype(str)
    return df
