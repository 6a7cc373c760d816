"""Leakage-safe train/validation/test splits.

Tracks are grouped so that one track_id, one artist (every credited artist, normalized as
the linker normalizes names, accents and "feat." credits included:
:func:`audioreg.data.linking.credited_artists`), one audio file (its SHA-256, where the
table has one) and one song (normalized first artist and title) never appear on two sides.
Whole groups are then dealt to the three sides to approach the requested fractions of files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .linking import credited_artists, song_key

SPLITS = ("train", "val", "test")


def _keys(row: dict, artist_col: str | None) -> list[tuple[str, str]]:
    """What may not sit on two sides: the track id, each artist, the audio content, the song."""
    keys = [("track_id", str(row["track_id"]))]
    if artist_col is not None and artist_col in row:
        keys += [("artist", a) for a in credited_artists(row[artist_col])]
        song = song_key(row[artist_col], row.get("track_name"))
        if song:
            keys.append(("song", song))
    if isinstance(row.get("sha256"), str) and row["sha256"]:
        keys.append(("audio", row["sha256"]))
    return keys


def _rows(df: pd.DataFrame, artist_col: str | None) -> list[dict]:
    cols = [c for c in dict.fromkeys(("track_id", artist_col, "track_name", "sha256")) if c and c in df.columns]
    return df[cols].to_dict(orient="records")


def leakage_groups(df: pd.DataFrame, *, artist_col: str | None = "artists") -> np.ndarray:
    """Connected components of tracks that share a track_id, an artist, an audio file or a song.

    Returns
    -------
    np.ndarray [shape=(len(df),)], int group label per row.
    """
    n = len(df)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    first_seen: dict[tuple[str, str], int] = {}
    for i, row in enumerate(_rows(df, artist_col)):
        for k in _keys(row, artist_col):
            if k in first_seen:
                union(i, first_seen[k])
            else:
                first_seen[k] = i
    roots = np.array([find(i) for i in range(n)])
    _, labels = np.unique(roots, return_inverse=True)
    return labels


def group_split(
    df: pd.DataFrame,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    artist_col: str | None = "artists",
    random_state: int = 0,
) -> pd.Series:
    """Assign each row to "train", "val" or "test" without leakage.

    Groups (see :func:`leakage_groups`) are shuffled with ``random_state`` and dealt,
    largest first, to whichever side is furthest below its target share of files.

    Returns
    -------
    pandas.Series of split names, indexed like ``df``.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in [0, 1) and sum below 1")
    groups = leakage_groups(df, artist_col=artist_col)
    n = len(df)
    fractions = {"train": 1 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    rng = np.random.default_rng(random_state)
    ids, sizes = np.unique(groups, return_counts=True)
    order = rng.permutation(len(ids))
    order = order[np.argsort(-sizes[order], kind="stable")]  # big groups first, random among equals
    counts = dict.fromkeys(SPLITS, 0)
    side_of_group = {}
    for g in order:
        deficit = {s: fractions[s] * n - counts[s] for s in SPLITS if fractions[s] > 0}
        side = max(deficit, key=lambda s: (deficit[s], -SPLITS.index(s)))
        side_of_group[ids[g]] = side
        counts[side] += sizes[g]
    return pd.Series([side_of_group[g] for g in groups], index=df.index, name="split")


def check_no_leakage(df: pd.DataFrame, *, split_col: str = "split", artist_col: str | None = "artists") -> None:
    """Raise ``ValueError`` naming the first track_id, artist, audio file or song found on two sides."""
    sides: dict[tuple[str, str], str] = {}
    for row, side in zip(_rows(df, artist_col), df[split_col]):
        for key in _keys(row, artist_col):
            seen = sides.setdefault(key, side)
            if seen != side:
                raise ValueError(f"{key[0]} {key[1]!r} is in both {seen} and {side}")
