"""Leakage-safe train/validation/test splits.

Tracks are grouped so that one track_id, one artist (every credited artist, normalized as
the linker normalizes names, accents and "feat." credits included:
:func:`audioreg.data.linking.credited_artists`), one audio file (its SHA-256, where the
table has one) and one song (normalized first artist and title) never appear on two sides.
Whole groups are then dealt to the three sides to approach the requested fractions of files.
"""

from __future__ import annotations

import numpy as np
from .._pandas import pd

from .linking import credited_artists, song_key

SPLITS = ("train", "val", "test")

#: Zero-inflated targets and the threshold Spotify documents for their non-zero mass: speech
#: above 0.33, a live recording above 0.8, instrumental above 0.5.
PRESENCE = {"speechiness": 0.33, "liveness": 0.8, "instrumentalness": 0.5}
#: Weight of the strata against the file counts when groups are dealt.
STRATA_WEIGHT = 0.5


def strata(df: pd.DataFrame) -> pd.DataFrame:
    """Indicator columns the split balances as far as whole groups allow: each key + mode
    class, each time signature, and the non-zero mass of the zero-inflated targets
    (:data:`PRESENCE`). Columns the table lacks (or rows with a missing label) add nothing."""
    out = {}
    if "key" in df.columns:
        key = pd.to_numeric(df["key"], errors="coerce")
        mode = pd.to_numeric(df["mode"], errors="coerce") if "mode" in df.columns else pd.Series(0, index=df.index)
        for k, m in sorted({(int(a), int(b)) for a, b in zip(key, mode) if a == a and b == b}):
            out[f"key {k} mode {m}"] = ((key == k) & (mode == m)).to_numpy()
    if "time_signature" in df.columns:
        ts = pd.to_numeric(df["time_signature"], errors="coerce")
        for v in sorted(set(ts.dropna().astype(int))):
            out[f"time_signature {v}"] = (ts == v).to_numpy()
    for target, threshold in PRESENCE.items():
        if target in df.columns:
            out[f"{target} > {threshold}"] = (pd.to_numeric(df[target], errors="coerce") > threshold).to_numpy()
    return pd.DataFrame(out, index=df.index).astype(np.float64)


def label_summary(df: pd.DataFrame, *, split_col: str = "split") -> pd.DataFrame:
    """Each part's label distribution beside the whole's: the mean of every target column and
    the share of each stratum (:func:`strata`), one column per part and ``all``."""
    from audioreg.targets import TARGETS

    cols = [t for t in TARGETS if t in df.columns]
    parts = [s for s in SPLITS if s in set(df[split_col])]
    means = pd.concat({**{s: df.loc[df[split_col] == s, cols].mean() for s in parts}, "all": df[cols].mean()}, axis=1)
    st = strata(df)
    shares = pd.concat({**{s: st[df[split_col] == s].mean() for s in parts}, "all": st.mean()}, axis=1)
    means.index = [f"mean {c}" for c in means.index]
    shares.index = [f"share {c}" for c in shares.index]
    return pd.concat([means, shares])


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
    largest first, to the side that needs them most: furthest below its target share of
    files, and (weighted by :data:`STRATA_WEIGHT`) of the rare classes and non-zero masses
    the group holds (:func:`strata`), so each part's label distribution follows the whole's
    as far as whole groups allow.

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
    st = strata(df).to_numpy()
    totals = st.sum(axis=0)
    per_group = np.zeros((len(ids), st.shape[1]))
    np.add.at(per_group, np.searchsorted(ids, groups), st)
    counts = dict.fromkeys(SPLITS, 0)
    held = {s: np.zeros(st.shape[1]) for s in SPLITS}
    side_of_group = {}
    for g in order:
        def need(s):
            files = fractions[s] * n - counts[s]
            if not st.shape[1]:
                return files
            # the group's share of each stratum it holds, times how far side s is below its
            # share of that stratum, in files (a stratum of N tracks counts n / N per track)
            wanted = (fractions[s] * totals - held[s]) * np.divide(n, totals, out=np.zeros_like(totals), where=totals > 0)
            return files + STRATA_WEIGHT * float(per_group[g] @ wanted) / sizes[g]
        deficit = {s: need(s) for s in SPLITS if fractions[s] > 0}
        side = max(deficit, key=lambda s: (deficit[s], -SPLITS.index(s)))
        side_of_group[ids[g]] = side
        counts[side] += sizes[g]
        held[side] += per_group[g]
    return pd.Series([side_of_group[g] for g in groups], index=df.index, name="split")


def check_no_leakage(df: pd.DataFrame, *, split_col: str = "split", artist_col: str | None = "artists") -> None:
    """Raise ``ValueError`` naming the first track_id, artist, audio file or song found on two sides."""
    sides: dict[tuple[str, str], str] = {}
    for row, side in zip(_rows(df, artist_col), df[split_col]):
        for key in _keys(row, artist_col):
            seen = sides.setdefault(key, side)
            if seen != side:
                raise ValueError(f"{key[0]} {key[1]!r} is in both {seen} and {side}")
