"""Leakage-safe train/validation/test splits.

Tracks are grouped so that one track_id, and (where an ``artists`` column exists)
one artist, never appears on two sides. Multi-artist tracks ("A;B") join the
groups of all their artists. Whole groups are then dealt to the three sides to
approach the requested fractions of files.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def _artists(value) -> list[str]:
    if not isinstance(value, str):
        return []
    value = unicodedata.normalize("NFC", value)
    return [a.strip().casefold() for a in value.split(";") if a.strip()]


def leakage_groups(df: pd.DataFrame, *, artist_col: str | None = "artists") -> np.ndarray:
    """Connected components of tracks that share a track_id or an artist.

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
    use_artist = artist_col is not None and artist_col in df.columns
    for i, (tid, art) in enumerate(zip(df["track_id"], df[artist_col] if use_artist else [None] * n)):
        keys = [("id", str(tid))] + [("artist", a) for a in _artists(art)]
        for k in keys:
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
    """Raise ``ValueError`` naming the first track_id or artist found on two sides."""
    sides: dict[tuple[str, str], str] = {}
    use_artist = artist_col is not None and artist_col in df.columns
    for tid, art, side in zip(df["track_id"], df[artist_col] if use_artist else [None] * len(df), df[split_col]):
        for key in [("track_id", str(tid))] + [("artist", a) for a in _artists(art)]:
            seen = sides.setdefault(key, side)
            if seen != side:
                raise ValueError(f"{key[0]} {key[1]!r} is in both {seen} and {side}")
