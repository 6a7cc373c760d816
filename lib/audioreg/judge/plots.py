"""Figures for notebooks and HTML reports.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so nothing is
registered globally, nothing is shown twice in a notebook (the returned figure is displayed by
Jupyter's rich repr), and tests can call them freely. Each figure carries an SVG group id
(:data:`FIGURE_IDS`, e.g. ``"audioreg-mse-heatmap"``) so a report can be checked for it;
:func:`setup_notebook` makes inline figures SVG, and also offers them as inline ``<svg>`` HTML,
so the id and the figure's text end up verbatim in the nbconvert HTML (nbconvert would otherwise
embed SVG as a base64 ``<img>``, hiding both; :func:`figure_ids_in_html` reads either form).

Only :func:`setup_notebook` changes global state (rcParams, the IPython inline formats).
"""

from __future__ import annotations

import base64
import binascii
import html as html_lib
import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
from .._pandas import pd
from matplotlib.figure import Figure

from audioreg.judge import metrics
from audioreg.targets import TARGETS

__all__ = [
    "FIGURE_IDS",
    "feature_matrix",
    "figure_ids_in_html",
    "label_histograms",
    "mse_heatmap",
    "pred_vs_true",
    "pred_vs_true_models",
    "raw_mse_bars",
    "residuals_by_target",
    "setup_notebook",
    "training_curves",
]

#: SVG group id of each figure, by function name.
FIGURE_IDS: dict[str, str] = {
    name: "audioreg-" + name.replace("_", "-")
    for name in (
        "mse_heatmap",
        "raw_mse_bars",
        "training_curves",
        "pred_vs_true",
        "pred_vs_true_models",
        "residuals_by_target",
        "label_histograms",
        "feature_matrix",
    )
}

_ID_PATTERN = re.compile(r'id="(audioreg-[a-z0-9-]+)"')
_SVG_DATA_URI = re.compile(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)")

_HEATMAP_STYLES = {
    # value: (colormap, centre, vmin, vmax, label)
    "smse": (
        "RdBu_r",
        1.0,
        0.0,
        2.0,
        "sMSE = MSE / training variance\n(lower is better)",
    ),
    "r2": (
        "RdBu",
        0.0,
        -1.0,
        1.0,
        "R^2 = 1 - sMSE\n(higher is better)",
    ),
}

_HEATMAP_TITLES = {
    "smse": "Standardized MSE per continuous target (÷ the training part's variance; lower is better)",
    "r2": "R^2 per continuous target (against the training part's variance; higher is better)",
}


def setup_notebook(*, context: str = "notebook", style: str = "whitegrid") -> None:
    """Configure a notebook: seaborn theme, SVG inline figures with text kept as text.

    Sets ``matplotlib.rcParams["svg.fonttype"] = "none"`` (text stays searchable ``<text>``)
    and applies :func:`seaborn.set_theme`. Inside IPython it also selects SVG as the inline
    figure format (``matplotlib_inline.backend_inline.set_matplotlib_formats("svg")``) and
    registers a ``text/html`` representation of figures as an inline ``<svg>`` element:
    ``jupyter nbconvert --to html`` prefers ``text/html`` and copies it verbatim, so the figure
    ids (:data:`FIGURE_IDS`) and the figure text appear as such in the report, where the
    ``image/svg+xml`` output alone would be a base64 ``<img>``. Outside IPython the inline part
    is skipped (no shell is created). In IPython, audioreg's log lines at INFO (one per
    training epoch: losses and seconds) are shown as cell output. Tables show their text
    whole (``display.max_colwidth``: a reason that names the files tried is never cut). Call once per notebook;
    this is the only function in
    :mod:`audioreg.judge.plots` with global side effects.

    Parameters
    ----------
    context : str
        Seaborn plotting context (``"notebook"``, ``"paper"``, ``"talk"``, ``"poster"``).
    style : str
        Seaborn style.
    """
    import matplotlib
    import seaborn as sns

    sns.set_theme(context=context, style=style)
    matplotlib.rcParams["svg.fonttype"] = "none"
    pd.set_option("display.max_colwidth", None)  # a problem's reason is read whole, never cut at 50 characters

    try:
        import IPython
    except ImportError:  # pragma: no cover - IPython ships with the notebook dependencies
        return
    shell = IPython.get_ipython()
    if shell is None:
        return
    from matplotlib_inline import backend_inline

    backend_inline.set_matplotlib_formats("svg")
    shell.display_formatter.formatters["text/html"].for_type(Figure, _inline_svg_html)
    _log_to_cell_output()


def _log_to_cell_output() -> None:
    """audioreg's INFO log lines (one per training epoch, extraction and cache notes) as cell output."""
    import logging
    import sys

    logger = logging.getLogger("audioreg")
    if not any(getattr(h, "audioreg_notebook", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.audioreg_notebook = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _inline_svg_html(fig: Figure) -> str | None:
    """The figure as an inline ``<svg>`` element (the text/html representation)."""
    from IPython.core.pylabtools import print_figure

    svg = print_figure(fig, "svg")
    if not svg:
        return None  # a figure without axes: IPython shows nothing for it either
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else None


def figure_ids_in_html(html: str) -> set[str]:
    """Figure ids (:data:`FIGURE_IDS`) present in an HTML report, inline or base64-embedded.

    ``jupyter nbconvert --to html`` (nbconvert 7) embeds SVG outputs as
    ``<img src="data:image/svg+xml;base64,...">``, so the ids are not in the HTML text itself;
    this decodes those data URIs as well as searching the text.

    Parameters
    ----------
    html : str
        The report's HTML.

    Returns
    -------
    ids : set of str
        E.g. ``{"audioreg-mse-heatmap", "audioreg-training-curves"}``.
    """
    text = html_lib.unescape(html)
    found = set(_ID_PATTERN.findall(text))
    for payload in _SVG_DATA_URI.findall(text):
        try:
            svg = base64.b64decode(payload, validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            continue  # undecodable payload: any id inside it is reported missing by the caller
        found |= set(_ID_PATTERN.findall(svg))
    return found


def _figure(name: str, *, figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    fig.set_gid(FIGURE_IDS[name])
    return fig


def _pivot(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """Models (rows, table order) x targets (columns, table order) of one metric column."""
    table = metrics.by_model(table)
    if value not in table.columns:
        raise ValueError(f"table has no column {value!r}")
    models = list(dict.fromkeys(table.index.get_level_values(0)))
    targets = list(dict.fromkeys(table.index.get_level_values(1)))
    series = table[value].astype(np.float64)
    return series.unstack(level=1).reindex(index=models, columns=targets)


def mse_heatmap(table: pd.DataFrame, *, value: str = "smse", title: str | None = None) -> Figure:
    """Heatmap of standardized MSE: models (rows) x targets (columns), annotated.

    Continuous targets only (key and time signature are classes: see their accuracy). The
    diverging colormap is centred on sMSE = 1 (white: the training part's spread around its
    mean; the baseline's own row shows what predicting that mean scores on this part): blue
    is lower, red higher. The scale reaches every value shown, so no colour saturates.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`audioreg.judge.metrics.compare_models` (or of
        :func:`audioreg.judge.metrics.per_target`, shown as one row named ``"model"``).
    value : {"smse", "r2"}
        The column to show. Raw MSE is not offered: its colours would only show the units of
        each target (see :func:`raw_mse_bars`).
    title : str, optional
        Defaults to a title saying what 1.0 means and that lower is better.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-mse-heatmap"``.
    """
    import seaborn as sns

    if value not in _HEATMAP_STYLES:
        raise ValueError(f"value must be one of {sorted(_HEATMAP_STYLES)}, got {value!r}")
    cmap, center, vmin, vmax, label = _HEATMAP_STYLES[value]
    data = _pivot(table, value)
    data = data[[t for t in data.columns if t not in metrics.CLASS_TARGETS]]
    finite = data.to_numpy()[np.isfinite(data.to_numpy())]
    if finite.size:  # every value inside the scale, symmetric around the centre
        reach = max(vmax - center, center - vmin, float(np.max(np.abs(finite - center))))
        vmin, vmax = center - reach, center + reach
    extend = "neither"

    n_models, n_targets = data.shape
    fig = _figure("mse_heatmap", figsize=(2.5 + 0.85 * n_targets, max(3.4, 1.8 + 0.45 * n_models)))
    ax = fig.add_subplot()
    sns.heatmap(
        data,
        ax=ax,
        annot=True,
        fmt=".2f",
        cmap=cmap,
        center=center,
        vmin=vmin,
        vmax=vmax,
        linewidths=0.5,
        linecolor="white",
        cbar_kws={"label": label, "extend": extend},
    )
    ax.set_xlabel("target")
    ax.set_ylabel("model")
    ax.tick_params(axis="y", labelrotation=0)
    for label_text in ax.get_xticklabels():
        label_text.set(rotation=45, ha="right", rotation_mode="anchor")
    ax.set_title(title if title is not None else _HEATMAP_TITLES[value])
    return fig


def raw_mse_bars(table: pd.DataFrame) -> Figure:
    """Raw MSE per target and model, log scale, titled with tempo's share of the sum.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`audioreg.judge.metrics.compare_models` or :func:`audioreg.judge.metrics.per_target`.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-raw-mse-bars"``.
    """
    data = _pivot(table, "mse")
    summary = metrics.summarize(table)
    n_models, n_targets = data.shape
    fig = _figure("raw_mse_bars", figsize=(2.5 + 0.8 * n_targets, 4.5))
    ax = fig.add_subplot()
    width = 0.8 / n_models
    x = np.arange(n_targets)
    for i, (model, row) in enumerate(data.iterrows()):
        ax.bar(x + (i - (n_models - 1) / 2) * width, row.to_numpy(), width=width, label=model)
    ax.set_yscale("log")
    ax.set_xticks(x, data.columns, rotation=45, ha="right")
    ax.set_ylabel("raw MSE (squared target units, log scale)")
    ax.legend(title="model", fontsize="small")

    shares = summary["tempo_share_of_raw_mse"]
    if shares.isna().all():
        ax.set_title("Raw MSE per target (log scale): units differ, do not average across targets")
    else:
        parts = [f"{100.0 * s:.0f} % ({m})" for m, s in shares.items() if not math.isnan(s)]
        ax.set_title(
            "Raw MSE per target (log scale)\ntempo is "
            + ", ".join(parts)
            + " of the summed raw MSE: its average measures tempo"
        )
    return fig


def _best_epoch(history: pd.DataFrame) -> int | None:
    """Row position of the best epoch: the last ``is_best`` row, else the lowest val_loss."""
    if "is_best" in history.columns:
        flags = history["is_best"].fillna(False).astype(bool).to_numpy()
        if flags.any():
            return int(np.flatnonzero(flags)[-1])
    val = history["val_loss"].to_numpy(dtype=np.float64)
    if np.all(np.isnan(val)):
        return None
    return int(np.nanargmin(val))


def training_curves(
    histories: Mapping[str, pd.DataFrame], *, logy: bool = False, title: str | None = None
) -> Figure:
    """Train (dashed) and validation (solid) loss per epoch for each run, best epoch starred.

    Parameters
    ----------
    histories : mapping of str to pandas.DataFrame
        One history per run name, with columns ``epoch``, ``train_loss``, ``val_loss`` and
        optionally ``is_best`` (bool; when several rows are True, the last one is the best
        checkpoint). Without ``is_best`` the epoch of lowest ``val_loss`` is starred.
    logy : bool
        Log-scale loss axis.
    title : str, optional
        Figure title.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-training-curves"``; with no histories, a figure that says so.
    """
    import matplotlib

    if not histories:  # e.g. `audioreg run --only 04_rf,06_error_analysis`: say so instead of failing
        fig = _figure("training_curves", figsize=(7.0, 1.2))
        fig.text(0.5, 0.5, "No training history in this run (05_gru did not run).", ha="center", va="center")
        return fig
    required = {"epoch", "train_loss", "val_loss"}
    for name, history in histories.items():
        missing = required - set(history.columns)
        if missing:
            raise ValueError(f"history {name!r} lacks columns {sorted(missing)}")

    colors = matplotlib.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    fig = _figure("training_curves", figsize=(7.0, 4.5))
    ax = fig.add_subplot()
    for i, (name, history) in enumerate(histories.items()):
        color = colors[i % len(colors)]
        epoch = history["epoch"].to_numpy()
        ax.plot(epoch, history["train_loss"].to_numpy(), ls="--", color=color, label=f"{name} train")
        val = history["val_loss"].to_numpy()
        ax.plot(epoch, val, ls="-", color=color, label=f"{name} validation")
        best = _best_epoch(history)
        if best is not None:
            ax.plot(
                epoch[best],
                val[best],
                ls="none",
                marker="*",
                markersize=14,
                color=color,
                markeredgecolor="black",
                label=f"{name} best (epoch {epoch[best]})",
            )
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize="small")
    ax.set_title(
        title
        if title is not None
        else "Training curves (dashed: train, solid: validation, star: best epoch)"
    )
    return fig


def _grid(k: int, *, ncols: int = 4) -> tuple[int, int]:
    ncols = min(ncols, k)
    return math.ceil(k / ncols), ncols


def _scored(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The rows a panel shows: labelled and predicted."""
    return np.isfinite(true) & np.isfinite(pred)


def pred_vs_true(
    y_true, y_pred, *, targets: Sequence[str] = TARGETS, model_name: str = ""
) -> Figure:
    """Predicted against true values, one panel per target, with the identity line.

    Each panel is titled with the target's own-terms score (:func:`audioreg.judge.metrics.per_target`).

    Parameters
    ----------
    y_true, y_pred : np.ndarray [shape=(n, k)] or pandas.DataFrame
        As in :func:`audioreg.judge.metrics.per_target`.
    targets : sequence of str
        Target names, ``k`` of them.
    model_name : str
        Shown in the figure title.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-pred-vs-true"``.
    """
    targets = tuple(targets)
    scores = metrics.per_target(y_true, y_pred, targets=targets)
    true = metrics.as_matrix(y_true, targets=targets, name="y_true", labels=True)
    pred = metrics.as_matrix(y_pred, targets=targets, name="y_pred", labels=True)

    nrows, ncols = _grid(len(targets))
    fig = _figure("pred_vs_true", figsize=(3.0 * ncols, 2.9 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for j, target in enumerate(targets):
        ax = axes[j]
        rows = _scored(true[:, j], pred[:, j])  # partial labels: each panel over its target's labelled rows
        t, p = true[rows, j], pred[rows, j]
        ax.set_title(f"{target}\n{scores.loc[target, 'own_terms']}", fontsize="small")
        if not rows.any():
            continue
        ax.scatter(t, p, s=6, alpha=0.4, linewidths=0, rasterized=True)
        low = float(min(t.min(), p.min()))
        high = float(max(t.max(), p.max()))
        ax.plot([low, high], [low, high], ls="--", color="0.3", lw=1, label="identity")
        ax.set_xlabel("true", fontsize="small")
        ax.set_ylabel("predicted", fontsize="small")
    for ax in axes[len(targets) :]:
        fig.delaxes(ax)
    fig.suptitle(f"Predicted vs true: {model_name}" if model_name else "Predicted vs true")
    return fig


def residuals_by_target(
    y_true, y_pred, *, targets: Sequence[str] = TARGETS, model_name: str = ""
) -> Figure:
    """Box plots of standardized residuals ``(pred - true) / std(true)`` per target.

    Dividing by each target's standard deviation puts all targets on one axis; boxes span the
    quartiles, whiskers the 5th to 95th percentiles, outliers are not drawn. A target whose
    reference is constant has no box.

    Parameters
    ----------
    y_true, y_pred : np.ndarray [shape=(n, k)] or pandas.DataFrame
        As in :func:`audioreg.judge.metrics.per_target`.
    targets : sequence of str
        Target names, ``k`` of them.
    model_name : str
        Shown in the figure title.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-residuals-by-target"``.
    """
    targets = tuple(targets)
    true = metrics.as_matrix(y_true, targets=targets, name="y_true", labels=True)
    pred = metrics.as_matrix(y_pred, targets=targets, name="y_pred", labels=True)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.shape[0]} rows but y_pred has {pred.shape[0]}")
    residuals = []
    for j in range(len(targets)):
        rows = _scored(true[:, j], pred[:, j])
        std = true[rows, j].std() if rows.any() else 0.0
        residuals.append((pred[rows, j] - true[rows, j]) / std if std > 0 else np.array([]))

    fig = _figure("residuals_by_target", figsize=(2.5 + 0.7 * len(targets), 4.5))
    ax = fig.add_subplot()
    ax.boxplot(residuals, tick_labels=list(targets), whis=(5, 95), showfliers=False)
    ax.axhline(0.0, color="0.3", lw=1, ls="--")
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_ylabel("(predicted - true) / std(true)")
    name = f": {model_name}" if model_name else ""
    ax.set_title(f"Standardized residuals per target{name} (whiskers 5-95 %)")
    return fig


def pred_vs_true_models(
    y_true, predictions: Mapping[str, object], *, targets: Sequence[str] = TARGETS
) -> Figure:
    """Predicted against true values for several models, one panel per target, one colour per model.

    Parameters
    ----------
    y_true : np.ndarray [shape=(n, k)] or pandas.DataFrame
        Reference targets.
    predictions : mapping of str to np.ndarray [shape=(n, k)] or pandas.DataFrame
        Predictions per model name, in legend order.
    targets : sequence of str
        Target names, ``k`` of them.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-pred-vs-true-models"``.
    """
    if not predictions:
        raise ValueError("predictions is empty")
    targets = tuple(targets)
    true = metrics.as_matrix(y_true, targets=targets, name="y_true", labels=True)
    preds = {
        name: metrics.as_matrix(pred, targets=targets, name=f"predictions[{name!r}]", labels=True)
        for name, pred in predictions.items()
    }
    for name, pred in preds.items():
        if pred.shape != true.shape:
            raise ValueError(f"predictions[{name!r}] has {pred.shape[0]} rows, y_true {true.shape[0]}")

    nrows, ncols = _grid(len(targets))
    fig = _figure("pred_vs_true_models", figsize=(3.0 * ncols, 2.8 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for j, target in enumerate(targets):
        ax = axes[j]
        ax.set_title(target, fontsize="small")
        labelled = np.isfinite(true[:, j])
        if not labelled.any():
            continue
        low, high = float(true[labelled, j].min()), float(true[labelled, j].max())
        for i, (name, pred) in enumerate(preds.items()):
            rows = _scored(true[:, j], pred[:, j])
            if not rows.any():
                continue  # a model that does not predict this target
            t, p = true[rows, j], pred[rows, j]
            ax.scatter(t, p, s=6, alpha=0.4, linewidths=0, rasterized=True, color=f"C{i}", label=name)
            low, high = min(low, float(p.min())), max(high, float(p.max()))
        ax.plot([low, high], [low, high], ls="--", color="0.3", lw=1)
        ax.set_xlabel("true", fontsize="small")
        ax.set_ylabel("predicted", fontsize="small")
    for ax in axes[len(targets) :]:
        fig.delaxes(ax)
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=len(preds), markerscale=3
    )
    fig.suptitle("Predicted vs true per model (dashed: identity)")
    return fig


def label_histograms(labels: pd.DataFrame, *, targets: Sequence[str] = TARGETS) -> Figure:
    """Distribution of each target label, one panel per target.

    ``key`` and ``time_signature`` get one bar per integer value; the others 30-bin histograms.

    Parameters
    ----------
    labels : pandas.DataFrame
        A table with one column per target (e.g. the ingest manifest); other columns are
        ignored, missing values are dropped per target.
    targets : sequence of str
        The columns to show.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-label-histograms"``.
    """
    targets = tuple(targets)
    missing = [t for t in targets if t not in labels.columns]
    if missing:
        raise ValueError(f"labels lacks target columns {missing}")
    nrows, ncols = _grid(len(targets))
    fig = _figure("label_histograms", figsize=(3.0 * ncols, 2.4 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, target in zip(axes, targets):
        values = pd.to_numeric(labels[target], errors="raise").dropna().to_numpy(dtype=np.float64)
        if target in ("key", "time_signature"):
            levels, counts = np.unique(values, return_counts=True)
            ax.bar(levels, counts, width=0.8)
            ax.set_xticks(levels)
        elif values.size:
            ax.hist(values, bins=30)
        ax.set_title(f"{target} (n={values.size})", fontsize="small")
        ax.tick_params(labelsize="small")
    for ax in axes[len(targets) :]:
        fig.delaxes(ax)
    fig.suptitle("Label distributions")
    return fig


def feature_matrix(
    features,
    *,
    names: Sequence[tuple[str, int]] | None = None,
    title: str | None = None,
) -> Figure:
    """One track's feature matrix as an image: features (rows) over frames, z-scored per feature.

    Parameters
    ----------
    features : np.ndarray [shape=(t, d)]
        Frames by features (the cached ``[time_steps, 46]`` matrix).
    names : sequence of (str, int), optional
        ``d`` feature names as ``(block, index)`` pairs (:func:`audioreg.features.feature_names`);
        blocks are labelled and separated by lines. Without names, rows are numbered.
    title : str, optional
        E.g. the track id.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-feature-matrix"``. Each feature row has mean 0 and unit standard
        deviation over time (constant rows are 0); colours saturate at +-3.
    """
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"features must have shape [t, d] with t > 0, got {matrix.shape}")
    if names is not None and len(names) != matrix.shape[1]:
        raise ValueError(f"{len(names)} names for {matrix.shape[1]} features")
    rows = matrix.T
    std = rows.std(axis=1, keepdims=True)
    z = np.divide(rows - rows.mean(axis=1, keepdims=True), std, out=np.zeros_like(rows), where=std > 0)

    fig = _figure("feature_matrix", figsize=(9.0, 5.0))
    ax = fig.add_subplot()
    image = ax.imshow(
        z, aspect="auto", origin="lower", interpolation="nearest", cmap="RdBu_r", vmin=-3, vmax=3
    )
    fig.colorbar(image, ax=ax, label="z-score per feature", extend="both")
    ax.set_xlabel("frame")
    if names is None:
        ax.set_ylabel("feature")
    else:
        blocks = [str(block) for block, _ in names]
        starts = [i for i in range(len(blocks)) if i == 0 or blocks[i] != blocks[i - 1]]
        ends = starts[1:] + [len(blocks)]
        ax.set_yticks([(a + b - 1) / 2 for a, b in zip(starts, ends)], [blocks[a] for a in starts])
        for boundary in starts[1:]:
            ax.axhline(boundary - 0.5, color="black", lw=0.8)
    if title is not None:
        ax.set_title(str(title))
    return fig
