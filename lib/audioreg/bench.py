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
import pandas as pd

__all__ = [
    "Timing",
    "current_rss_mb",
    "feature_stage_times",
    "markdown_table",
    "peak_rss_mb",
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
