"""Label distributions: summaries and synthetic-vs-real comparisons (tables and figures).

Pure functions of DataFrames; the only I/O is :func:`load_echonest`. Figures are built
without pyplot (returned, never shown), like :mod:`audioreg.judge.plots`.
"""

from __future__ import annotations

import logging
import os
from itertools import combinations

import numpy as np
from .._pandas import pd
from matplotlib.figure import Figure

from ..targets import TARGETS, UNIT_INTERVAL_TARGETS

log = logging.getLogger(__name__)

#: The Echo Nest targets in the FMA table (8 of the 11; no loudness, key, time_signature).
ECHONEST_TARGETS: tuple[str, ...] = (
    "acousticness",
    "danceability",
    "energy",
    "instrumentalness",
    "liveness",
    "speechiness",
    "tempo",
    "valence",
)

QUANTILES: tuple[float, ...] = (0.10, 0.25, 0.50, 0.75, 0.90)

#: SVG group ids of the figures (same convention as :data:`audioreg.judge.plots.FIGURE_IDS`).
FIGURE_IDS: dict[str, str] = {
    "plot_label_comparison": "audioreg-label-comparison",
    "plot_correlation_comparison": "audioreg-correlation-comparison",
}


def load_echonest(path: str | os.PathLike, *, zero_tempo_as_missing: bool = True) -> pd.DataFrame:
    """Read the Echo Nest audio-features table (``track_id`` + the 8 targets).

    Parameters
    ----------
    path : path
        CSV with columns ``track_id`` and :data:`ECHONEST_TARGETS`.
    zero_tempo_as_missing : bool
        Echo Nest writes tempo 0 for "no beat found", which is not a tempo; set those to NaN.

    Returns
    -------
    df : pandas.DataFrame [shape=(n_tracks, 1 + 8)]
        ``track_id`` then :data:`ECHONEST_TARGETS` as float (NaN where missing).

    Raises
    ------
    FileNotFoundError, ValueError
        No such file; a required column is missing.
    """
    df = pd.read_csv(path)
    missing = [c for c in ("track_id", *ECHONEST_TARGETS) if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    df = df[["track_id", *ECHONEST_TARGETS]].copy()
    for col in ECHONEST_TARGETS:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    if zero_tempo_as_missing:
        zero = df["tempo"] <= 0
        if zero.any():
            log.info("%s: %d rows with tempo <= 0 (no beat found) set to NaN", path, int(zero.sum()))
        df.loc[zero, "tempo"] = np.nan
    return df


def shared_targets(*frames: pd.DataFrame) -> list[str]:
    """Targets present in every frame, in :data:`~audioreg.targets.TARGETS` order."""
    return [t for t in TARGETS if all(t in f.columns for f in frames)]


def _targets(targets, *frames) -> list[str]:
    targets = shared_targets(*frames) if targets is None else list(targets)
    if not targets:
        raise ValueError("no target column shared by the frames")
    for f in frames:
        missing = [t for t in targets if t not in f.columns]
        if missing:
            raise ValueError(f"missing target column(s) {', '.join(missing)}")
    return targets


def label_summary(df: pd.DataFrame, targets: list[str] | tuple[str, ...] | None = None) -> pd.DataFrame:
    """Count, mean, std, min, quantiles (:data:`QUANTILES`) and max of each target.

    Parameters
    ----------
    df : pandas.DataFrame
    targets : list of str, optional
        Default: every :data:`~audioreg.targets.TARGETS` column of ``df``.

    Returns
    -------
    summary : pandas.DataFrame [shape=(len(targets), 5 + len(QUANTILES))]
        Index: target; columns ``count mean std min q10 q25 q50 q75 q90 max`` (NaN ignored).
    """
    targets = _targets(targets, df)
    rows = {}
    for t in targets:
        x = pd.to_numeric(df[t], errors="coerce").dropna().astype(float)
        q = x.quantile(list(QUANTILES)) if len(x) else pd.Series(np.nan, index=list(QUANTILES))
        rows[t] = {"count": int(len(x)), "mean": x.mean(), "std": x.std(), "min": x.min(),
                   **{f"q{round(p * 100):02d}": q[p] for p in QUANTILES}, "max": x.max()}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "target"
    return out


def compare_distributions(
    synth_df: pd.DataFrame, real_df: pd.DataFrame, targets: list[str] | tuple[str, ...] | None = None
) -> pd.DataFrame:
    """Side-by-side summary of each shared target, with the two-sample KS statistic.

    Parameters
    ----------
    synth_df, real_df : pandas.DataFrame
    targets : list of str, optional
        Default: the targets both frames have (:func:`shared_targets`).

    Returns
    -------
    table : pandas.DataFrame [shape=(len(targets), 13)]
        Index: target; columns ``mean_synth mean_real std_synth std_real q10_synth q10_real
        q50_synth q50_real q90_synth q90_real ks n_synth n_real`` (``ks``: the largest gap
        between the two empirical CDFs, 0 = same distribution, 1 = disjoint).
    """
    from scipy.stats import ks_2samp

    targets = _targets(targets, synth_df, real_df)
    a, b = label_summary(synth_df, targets), label_summary(real_df, targets)
    out = pd.DataFrame(index=pd.Index(targets, name="target"))
    for stat in ("mean", "std", "q10", "q50", "q90"):
        out[f"{stat}_synth"] = a[stat]
        out[f"{stat}_real"] = b[stat]
    ks = []
    for t in targets:
        x, y = synth_df[t].dropna().astype(float), real_df[t].dropna().astype(float)
        ks.append(float(ks_2samp(x, y).statistic) if len(x) and len(y) else np.nan)
    out["ks"] = ks
    out["n_synth"] = a["count"]
    out["n_real"] = b["count"]
    return out


def compare_correlations(
    synth_df: pd.DataFrame, real_df: pd.DataFrame, targets: list[str] | tuple[str, ...] | None = None
) -> pd.DataFrame:
    """Pearson correlation of every pair of shared targets, synthetic beside real.

    Parameters
    ----------
    synth_df, real_df : pandas.DataFrame
    targets : list of str, optional
        Default: :func:`shared_targets`.

    Returns
    -------
    table : pandas.DataFrame [shape=(n_pairs, 3)]
        Index: (``a``, ``b``) pairs in target order; columns ``corr_synth corr_real diff``
        (``diff = corr_synth - corr_real``). Pairwise-complete rows are used on each side.
    """
    targets = _targets(targets, synth_df, real_df)
    cs = synth_df[targets].astype(float).corr()
    cr = real_df[targets].astype(float).corr()
    pairs = list(combinations(targets, 2))
    out = pd.DataFrame(
        {"corr_synth": [cs.loc[a, b] for a, b in pairs], "corr_real": [cr.loc[a, b] for a, b in pairs]},
        index=pd.MultiIndex.from_tuples(pairs, names=["a", "b"]),
    )
    out["diff"] = out["corr_synth"] - out["corr_real"]
    return out


def noise_summary(noisy_df: pd.DataFrame, clean_df: pd.DataFrame,
                  targets: list[str] | tuple[str, ...] | None = None) -> pd.DataFrame:
    """How much of each label is noise: the same tracks labelled with and without label noise.

    Parameters
    ----------
    noisy_df, clean_df : pandas.DataFrame
        Row-aligned labels of the same tracks (e.g. ``synth.sample_labels`` with
        ``label_noise=1`` and ``label_noise=0``).
    targets : list of str, optional
        Default: the unit-interval targets both frames have.

    Returns
    -------
    table : pandas.DataFrame [shape=(len(targets), 2)]
        Index: target; ``noise_sd`` (std of noisy - clean, label units) and ``r2_ceiling``
        (``1 - mean((noisy - clean)**2) / var(noisy)``: the R^2 of a perfect predictor of
        the noise-free label, scored against the noisy one).
    """
    if len(noisy_df) != len(clean_df):
        raise ValueError(f"frames must be row-aligned, got {len(noisy_df)} and {len(clean_df)} rows")
    if targets is None:
        targets = [t for t in UNIT_INTERVAL_TARGETS if t in noisy_df.columns and t in clean_df.columns]
    targets = _targets(targets, noisy_df, clean_df)
    rows = {}
    for t in targets:
        y = noisy_df[t].to_numpy(float)
        e = y - clean_df[t].to_numpy(float)
        rows[t] = {"noise_sd": float(np.std(e)), "r2_ceiling": float(1.0 - np.mean(e**2) / np.var(y))}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "target"
    return out


def _grid(k: int) -> tuple[int, int]:
    cols = min(4, k)
    return int(np.ceil(k / cols)), cols


def plot_label_comparison(
    synth_df: pd.DataFrame,
    real_df: pd.DataFrame,
    targets: list[str] | tuple[str, ...] | None = None,
    *,
    bins: int = 30,
    labels: tuple[str, str] = ("synthetic", "Echo Nest"),
) -> Figure:
    """Overlaid density histograms of each shared target.

    Parameters
    ----------
    synth_df, real_df : pandas.DataFrame
    targets : list of str, optional
        Default: :func:`shared_targets`.
    bins : int
        Bins per panel, over the range both sides span.
    labels : (str, str)
        Legend names of the two sides.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One panel per target (in order), two histograms each.
    """
    targets = _targets(targets, synth_df, real_df)
    rows, cols = _grid(len(targets))
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    fig.set_gid(FIGURE_IDS["plot_label_comparison"])
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, t in zip(axes, targets):
        x, y = synth_df[t].dropna().astype(float), real_df[t].dropna().astype(float)
        both = pd.concat([x, y])
        edges = np.linspace(both.min(), both.max(), bins + 1) if len(both) and both.max() > both.min() else bins
        ax.hist(y, bins=edges, density=True, alpha=0.5, color="tab:gray", label=labels[1])
        ax.hist(x, bins=edges, density=True, alpha=0.5, color="tab:blue", label=labels[0])
        ax.set_title(t)
        ax.set_yticks([])
    for ax in axes[len(targets):]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    return fig


def plot_correlation_comparison(
    synth_df: pd.DataFrame,
    real_df: pd.DataFrame,
    targets: list[str] | tuple[str, ...] | None = None,
    *,
    labels: tuple[str, str] = ("synthetic", "Echo Nest"),
) -> Figure:
    """Two annotated heatmaps of the Pearson correlations between shared targets.

    Parameters
    ----------
    synth_df, real_df : pandas.DataFrame
    targets : list of str, optional
        Default: :func:`shared_targets`.
    labels : (str, str)
        Panel titles.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Two panels (synthetic, real), same target order and colour scale (-1..1).
    """
    targets = _targets(targets, synth_df, real_df)
    k = len(targets)
    fig = Figure(figsize=(2 * (1.2 + 0.55 * k) + 1.0, 1.2 + 0.55 * k), layout="constrained")
    fig.set_gid(FIGURE_IDS["plot_correlation_comparison"])
    axes = fig.subplots(1, 2)
    for ax, df, title in zip(axes, (synth_df, real_df), labels):
        c = df[targets].astype(float).corr().to_numpy()
        im = ax.imshow(c, vmin=-1.0, vmax=1.0, cmap="RdBu_r")
        for i in range(k):
            for j in range(k):
                if np.isfinite(c[i, j]):
                    ax.text(j, i, f"{c[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(c[i, j]) > 0.6 else "black")
        ax.set_xticks(range(k), targets, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), targets, fontsize=8)
        ax.set_title(title)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="Pearson r")
    return fig
