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
    "REPORT_FIGURE_IDS",
    "UNITS",
    "confusion_matrices",
    "error_breakdown",
    "feature_matrix",
    "figure_ids_in_html",
    "label_histograms",
    "learnability",
    "mse_heatmap",
    "pred_vs_true",
    "pred_vs_true_models",
    "raw_mse_bars",
    "residuals_by_target",
    "setup_notebook",
    "tempo_errors",
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

#: SVG group id of each figure of the run's index page (:mod:`audioreg.judge.report`), by function name.
REPORT_FIGURE_IDS: dict[str, str] = {
    name: "audioreg-" + name.replace("_", "-")
    for name in ("learnability", "confusion_matrices", "tempo_errors", "error_breakdown")
}

#: The unit each target's values are in, for axis labels.
UNITS: dict[str, str] = {
    **{t: "0-1" for t in TARGETS if t not in ("tempo", "loudness", "key", "time_signature")},
    "tempo": "BPM",
    "loudness": "dB LUFS",
    "key": "pitch class, C = 0",
    "time_signature": "beats per bar",
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


def page_svg(fig: Figure, *, salt: str) -> str:
    """The figure as an inline ``<svg>`` element for a self-contained HTML page: text kept as
    text, ids salted with ``salt`` (unique per figure on the page, so that two figures never
    share one), and no URL in it: no XML prolog or DOCTYPE, no metadata block, no namespace
    declarations (HTML's parser needs none)."""
    import io

    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg[svg.find("<svg"):], flags=re.S)
    return re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", svg)


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


def _require(table: pd.DataFrame, columns: set[str], *, name: str) -> None:
    """A ``ValueError`` naming ``name`` and the ``columns`` a figure's input table lacks."""
    if missing := columns - set(table.columns):
        raise ValueError(f"{name} lacks columns {sorted(missing)}")


def _figure(name: str, *, figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    fig.set_gid(FIGURE_IDS[name] if name in FIGURE_IDS else REPORT_FIGURE_IDS[name])
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
    for name, history in histories.items():
        _require(history, {"epoch", "train_loss", "val_loss"}, name=f"history {name!r}")

    colors = matplotlib.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    per_target = {name: [t for t in TARGETS if f"val_{t}" in history.columns] for name, history in histories.items()}
    with_targets = any(per_target.values())
    fig = _figure("training_curves", figsize=(13.0, 4.5) if with_targets else (7.0, 4.5))
    ax = fig.add_subplot(1, 2, 1) if with_targets else fig.add_subplot()
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
    ax.set_ylabel("loss (the training objective, unitless)")
    ax.legend(fontsize="small")
    ax.set_title(
        title
        if title is not None
        else "Training curves (dashed: train, solid: validation, star: best epoch)"
    )
    if with_targets:
        _per_target_curves(fig.add_subplot(1, 2, 2), histories, per_target, logy=logy)
    return fig


def _per_target_curves(ax, histories: Mapping[str, pd.DataFrame], per_target: Mapping[str, list[str]],
                       *, logy: bool) -> None:
    """Validation error per target and epoch (a history's ``val_<target>`` columns): one colour
    per target, one line style per run."""
    styles = ("-", "--", ":", "-.")
    for i, (name, history) in enumerate(histories.items()):
        epoch = history["epoch"].to_numpy()
        for target in per_target[name]:
            j = TARGETS.index(target)
            label = target if len(histories) == 1 else f"{name}: {target}"
            ax.plot(epoch, history[f"val_{target}"].to_numpy(dtype=np.float64), ls=styles[i % len(styles)],
                    marker=".", color=f"C{j % 10}" if j < 10 else "0.2", label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss of the target alone\n(squared z-error; class heads: NLL)")
    ax.legend(fontsize="x-small", ncols=2)
    ax.set_title("Validation error per target")


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
            size, alpha = (16, 0.7) if rows.sum() <= 500 else (6, 0.4)  # few points: big enough to see
            ax.scatter(t, p, s=size, alpha=alpha, linewidths=0, rasterized=True, color=f"C{i}", label=name)
            low, high = min(low, float(p.min())), max(high, float(p.max()))
        ax.plot([low, high], [low, high], ls="--", color="0.3", lw=1)
        unit = UNITS.get(target)
        ax.set_xlabel(f"true ({unit})" if unit else "true", fontsize="small")
        ax.set_ylabel(f"predicted ({unit})" if unit else "predicted", fontsize="small")
    for ax in axes[len(targets) :]:
        fig.delaxes(ax)
    handles = {}  # every model that drew a point somewhere, in the order given
    for ax in axes[: len(targets)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    ordered = [name for name in preds if name in handles]
    fig.legend(
        [handles[n] for n in ordered], ordered, loc="outside lower center", ncols=max(1, len(ordered)), markerscale=2
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


# --------------------------------------------------------------------------------------------
# the run's index page (audioreg.judge.report)

#: How :func:`learnability` draws each verdict of a model against the baseline:
#: (marker, filled, legend label).
VERDICT_STYLES: dict[str, tuple[str, bool, str]] = {
    "better": ("o", True, "learnable: interval beats the baseline"),
    "no difference shown": ("o", False, "not shown: interval overlaps the baseline"),
    "worse": ("X", True, "worse than the baseline"),
    "too few groups": ("s", False, "not judged: too few split groups"),
    "not scored": ("s", False, "not judged: no interval"),
}


def learnability(scores: pd.DataFrame, *, ceiling: Mapping[str, float] | None = None,
                 caveat: str | None = None, x_floor: float = -1.0) -> Figure:
    """Per target, each model's score with its 95 % interval, beside the mean baseline's and
    the noise ceiling; each model x target marked learnable, not shown or worse.

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per model x target: ``target``, ``model`` (the baseline is
        :data:`audioreg.judge.metrics.BASELINE_NAME`), ``metric`` (its name, e.g. ``"R^2"``),
        ``score``, ``lo``, ``hi`` (the 95 % interval; NaN when there is none) and ``verdict``
        (a key of :data:`VERDICT_STYLES`, the verdict of the model's paired difference with the
        baseline; ignored for the baseline). Every score is "higher is better, 1 is perfect".
    ceiling : mapping of str to float, optional
        The noise ceiling per target (the best score any model can reach on these rows), drawn
        as a red tick where given.
    caveat : str, optional
        Shown in red under the title (e.g. a test part too small to judge).
    x_floor : float
        The axis starts no lower than this; a score below it is drawn at the edge with its value
        written beside it (an interval running past it ends in a small arrowhead), so one absurd
        score cannot squash the rest.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-learnability"``.
    """
    from matplotlib.lines import Line2D

    _require(scores, {"target", "model", "metric", "score", "lo", "hi", "verdict"}, name="scores")
    targets = list(dict.fromkeys(scores["target"]))
    models = list(dict.fromkeys(m for m in scores["model"] if m != metrics.BASELINE_NAME))
    order = ([metrics.BASELINE_NAME] if (scores["model"] == metrics.BASELINE_NAME).any() else []) + models
    colour = {m: ("black" if m == metrics.BASELINE_NAME else f"C{i % 10}") for i, m in enumerate(models)}
    colour[metrics.BASELINE_NAME] = "black"

    values = scores[["score", "lo", "hi"]].to_numpy(dtype=np.float64)
    finite = values[np.isfinite(values)]
    low = min(0.0, float(finite.min())) if finite.size else 0.0
    x_min = max(x_floor, low) - 0.05
    ceilings = [float(v) for v in (ceiling or {}).values() if v is not None and np.isfinite(v)]
    x_max = max([1.0, *ceilings, *(finite.tolist() if finite.size else [])]) + 0.05

    step = 0.2
    band = step * max(len(order), 1) + 0.3
    fig = _figure("learnability", figsize=(11.0, 1.8 + band * len(targets) * 0.62))
    ax = fig.add_subplot()
    ticks, labels = [], []
    for ti, target in enumerate(targets):
        centre = -ti * band
        rows = scores[scores["target"] == target].set_index("model")
        metric = str(rows["metric"].iloc[0])
        ticks.append(centre)
        labels.append(f"{target}\n({metric})")
        if ti % 2 == 0:
            ax.axhspan(centre - band / 2, centre + band / 2, color="0.95", zorder=0)
        present = [m for m in order if m in rows.index]
        for k, model in enumerate(present):
            y = centre + ((len(present) - 1) / 2 - k) * step
            row = rows.loc[model]
            score, lo, hi = (float(row[c]) if row[c] is not None else np.nan for c in ("score", "lo", "hi"))
            c = colour[model]
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([max(lo, x_min), min(hi, x_max)], [y, y], color=c, lw=1.6, zorder=2)
                if lo < x_min:  # the interval runs on past the edge
                    ax.plot([x_min], [y], ls="none", marker="<", markersize=4, color=c, zorder=2)
            if not np.isfinite(score):
                continue
            if model == metrics.BASELINE_NAME:
                marker, filled = "D", True
            else:
                marker, filled, _ = VERDICT_STYLES.get(str(row["verdict"]), VERDICT_STYLES["not scored"])
            shown = min(max(score, x_min), x_max)
            ax.plot([shown], [y], ls="none", marker=("<" if score < x_min else marker), markersize=7,
                    markeredgecolor=c, markerfacecolor=c if filled else "white", markeredgewidth=1.4, zorder=3)
            if score < x_min:
                ax.annotate(f"{score:.3g}", (x_min, y), xytext=(7, -3), textcoords="offset points",
                            fontsize="x-small", color=c, va="center")
        top = centre + band / 2 - 0.1
        value = (ceiling or {}).get(target)
        if value is not None and np.isfinite(value):
            ax.plot([value, value], [centre - band / 2 + 0.1, top], color="crimson", lw=2.2, ls=":", zorder=1)
    ax.axvline(0.0, color="0.5", lw=0.8)
    ax.axvline(1.0, color="0.5", lw=0.8, ls="--")
    ax.set_yticks(ticks, labels, fontsize="small")
    ax.set_ylim(-(len(targets) - 1) * band - band / 2, band / 2)
    ax.set_xlim(x_min, x_max)
    ax.set_xlabel("score on the test part, unitless (1 = perfect, higher is better):\nR² = 1 - MSE / training "
                  "variance for continuous targets, MIREX score for key, accuracy for time_signature")
    ax.grid(axis="y", visible=False)

    handles = [Line2D([], [], color=colour[m], marker="D" if m == metrics.BASELINE_NAME else "o", lw=1.6,
                      label=f"{m} (training mean / majority)" if m == metrics.BASELINE_NAME else m) for m in order]
    used = set(scores.loc[scores["model"] != metrics.BASELINE_NAME, "verdict"].astype(str))
    for verdict, (marker, filled, text) in VERDICT_STYLES.items():
        if verdict in used:
            handles.append(Line2D([], [], ls="none", marker=marker, color="0.3", markerfacecolor="0.3" if filled
                                  else "white", markeredgecolor="0.3", label=text))
    if any(v is not None and np.isfinite(v) for v in (ceiling or {}).values()):
        handles.append(Line2D([], [], color="crimson", ls=":", lw=2.2, label="noise ceiling (labels without their noise)"))
    handles.append(Line2D([], [], color="0.3", lw=1.6, label="95 % interval (artist bootstrap)"))
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    title = "What each model learns: score per target with its 95 % interval, beside the mean baseline"
    ax.set_title(title + (f"\n{caveat}" if caveat else ""), color="#b00020" if caveat else "black",
                 fontsize="medium")
    return fig


def confusion_matrices(tables: Mapping[str, pd.DataFrame], *, title: str, true_label: str,
                       pred_label: str) -> Figure:
    """Confusion matrices of one class target, one panel per model: counts of test tracks per
    true class (rows) and predicted class (columns), coloured by count.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Per model, counts with the true classes as index and the predicted ones as columns
        (:func:`audioreg.judge.report.confusion`).
    title : str
        The figure's title.
    true_label, pred_label : str
        Axis labels (with the unit or encoding: "true key (pitch class)").

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-confusion-matrices"``; each panel is titled with its share of
        tracks on the diagonal (where the predicted class is the true one).
    """
    if not tables:
        raise ValueError("no confusion table to draw")
    nrows, ncols = _grid(len(tables), ncols=4)
    side = max(len(t.columns) for t in tables.values())
    cell = 0.24 if side > 6 else (0.36 if side > 3 else 0.6)
    fig = _figure("confusion_matrices", figsize=(0.9 + ncols * (1.3 + cell * side), 0.6 + nrows * (1.3 + cell * side)))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    vmax = max(1, max(int(t.to_numpy().max()) if t.size else 0 for t in tables.values()))
    image = None
    for ax, (model, table) in zip(axes, tables.items()):
        counts = table.to_numpy(dtype=np.float64)
        image = ax.imshow(counts, cmap="Blues", vmin=0, vmax=vmax, aspect="equal")
        for (i, j), n in np.ndenumerate(counts):
            if n:
                ax.text(j, i, f"{int(n)}", ha="center", va="center", fontsize="x-small",
                        color="white" if n > 0.6 * vmax else "black")
        ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns], fontsize="x-small",
                      rotation=90 if side > 6 else 0)
        ax.set_yticks(range(len(table.index)), [str(c) for c in table.index], fontsize="x-small")
        ax.set_xlabel(pred_label, fontsize="small")
        ax.set_ylabel(true_label, fontsize="small")
        ax.grid(False)
        total = counts.sum()
        hits = sum(counts[i, list(table.columns).index(c)] for i, c in enumerate(table.index) if c in table.columns)
        ax.set_title(f"{model}\n{100 * hits / total:.0f} % of {int(total)} on the diagonal" if total else model,
                     fontsize="small")
    for ax in axes[len(tables):]:
        fig.delaxes(ax)
    fig.colorbar(image, ax=axes[: len(tables)].tolist(), label="test tracks", shrink=0.8)
    fig.suptitle(title)
    return fig


#: Colours of the tempo error classes of :func:`tempo_errors`, in drawing order.
TEMPO_CLASS_COLOURS: dict[str, str] = {
    "correct": "#2e7d32",
    "x2": "#1565c0",
    "x1/2": "#64b5f6",
    "x3": "#6a1b9a",
    "x1/3": "#ba68c8",
    "other": "#9e9e9e",
}


def tempo_errors(counts: pd.DataFrame, log_ratios: Mapping[str, np.ndarray]) -> Figure:
    """Tempo errors split into octave errors and the rest.

    Left: per model, the share of test tracks whose predicted tempo is within 4 % of the true
    tempo (``correct``), of twice, half, three times or a third of it, or none of these
    (``other``), with the counts written on the bars. Right: the distribution of
    log2(predicted / true), where octave errors sit at +-1 and +-log2(3).

    Parameters
    ----------
    counts : pandas.DataFrame
        Models (index) x classes (columns, keys of :data:`TEMPO_CLASS_COLOURS`), track counts.
    log_ratios : mapping of str to np.ndarray
        Per model, log2(predicted / true tempo) of each test track.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-tempo-errors"``.
    """
    fig = _figure("tempo_errors", figsize=(12.0, 1.8 + 0.45 * max(len(counts), 2)))
    left, right = fig.subplots(1, 2, width_ratios=(1.2, 1.0))
    shares = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0) * 100.0
    y = np.arange(len(counts))[::-1]
    start = np.zeros(len(counts))
    for cls, col in TEMPO_CLASS_COLOURS.items():
        if cls not in counts.columns:
            continue
        width = shares[cls].fillna(0.0).to_numpy()
        left.barh(y, width, left=start, color=col, label=cls, edgecolor="white")
        for yi, x0, w, n in zip(y, start, width, counts[cls].to_numpy()):
            if n and w >= 4:
                left.text(x0 + w / 2, yi, str(int(n)), ha="center", va="center", fontsize="x-small", color="white")
        start = start + width
    left.set_yticks(y, list(counts.index))
    left.set_xlim(0, 100)
    left.set_xlabel("share of test tracks (%), counts on the bars")
    left.set_title("Tempo: within 4 % of the true tempo, of a multiple of it, or neither", fontsize="small")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize="x-small", ncols=6, title="class")
    left.grid(axis="y", visible=False)
    for x in (0.0, 1.0, -1.0, math.log2(3.0), -math.log2(3.0)):
        right.axvline(x, color="0.6", lw=0.8, ls="-" if x == 0 else ":")
    finite = [np.asarray(v, dtype=np.float64)[np.isfinite(v)] for v in log_ratios.values()]
    reach = max([2.0, *[float(np.abs(v).max()) + 0.1 for v in finite if v.size]])
    bins = np.linspace(-reach, reach, 41)
    for i, (model, ratios) in enumerate(log_ratios.items()):
        ratios = np.asarray(ratios, dtype=np.float64)
        ratios = ratios[np.isfinite(ratios)]
        if ratios.size:
            right.hist(ratios, bins=bins, histtype="step", lw=1.6, color=f"C{i % 10}", label=model)
    right.set_xlabel("log2(predicted / true tempo) (octaves; dotted: x2, x1/2, x3, x1/3)")
    right.set_ylabel("test tracks")
    right.legend(fontsize="x-small")
    right.set_title("Tempo ratio per track", fontsize="small")
    return fig


def error_breakdown(table: pd.DataFrame, *, measure: str) -> Figure:
    """Where each model breaks: its mean error per category of each factor (genre, file
    format, sample rate, channels, tempo range), with 95 % intervals, beside the baseline.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per factor x category x model: ``factor``, ``category``, ``model``, ``mean``,
        ``lo``, ``hi`` (NaN without an interval), ``n`` (tracks).
    measure : str
        What ``mean`` is, with its unit, for the x axis.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-error-breakdown"``; one panel per factor.
    """
    factors = list(dict.fromkeys(table["factor"]))
    if not factors:
        raise ValueError("nothing to break down")
    models = list(dict.fromkeys(table["model"]))
    colour = {m: ("black" if m == metrics.BASELINE_NAME else f"C{i % 10}")
              for i, m in enumerate(m for m in models if m != metrics.BASELINE_NAME)}
    colour[metrics.BASELINE_NAME] = "black"
    heights = [len(set(table.loc[table["factor"] == f, "category"])) for f in factors]
    fig = _figure("error_breakdown", figsize=(11.0, 1.3 + sum(0.13 * len(models) * h + 0.45 for h in heights)))
    axes = fig.subplots(len(factors), 1, squeeze=False, sharex=True, height_ratios=[max(h, 1) for h in heights]).ravel()
    values = table[["mean", "lo", "hi"]].to_numpy(dtype=np.float64)
    positive = values[np.isfinite(values) & (values > 0)]
    log = bool(positive.size) and positive.max() / positive.min() > 100
    step = 0.8 / max(len(models), 1)
    for ax, factor in zip(axes, factors):
        part = table[table["factor"] == factor]
        categories = list(dict.fromkeys(part["category"]))
        for ci, category in enumerate(categories):
            rows = part[part["category"] == category].set_index("model")
            for k, model in enumerate(m for m in models if m in rows.index):
                row = rows.loc[model]
                y = -ci + ((len(models) - 1) / 2 - k) * step
                mean, lo, hi = float(row["mean"]), float(row["lo"]), float(row["hi"])
                if np.isfinite(lo) and np.isfinite(hi):
                    ax.plot([lo, hi], [y, y], color=colour[model], lw=1.4)
                ax.plot([mean], [y], ls="none", marker="D" if model == metrics.BASELINE_NAME else "o",
                        markersize=5, color=colour[model], label=model if ci == 0 else None)
        n = part.groupby("category", sort=False)["n"].max()
        ax.set_yticks([-i for i in range(len(categories))], [f"{c} (n={int(n[c])})" for c in categories],
                      fontsize="x-small")
        ax.set_ylim(-len(categories) + 0.5, 0.5)
        if log:
            from matplotlib.ticker import FuncFormatter

            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.axvline(1.0, color="0.5", lw=0.8, ls="--")
        ax.set_title(factor, fontsize="small", loc="left")
        ax.grid(axis="y", visible=False)
    axes[-1].set_xlabel(measure)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize="small", title="model (95 % interval)")
    fig.suptitle("Where each model breaks: mean error per category of the test tracks (dashed: the training "
                 "part's spread)", fontsize="medium")
    return fig


# --------------------------------------------------------------------------------------------
# the learnability study (analysis/learnability.ipynb, audioreg.study)


def learning_curves(points: pd.DataFrame, *, caveat: str | None = None, ncols: int = 4) -> Figure:
    """Per target, the score against the training-set size, each point with its 95 % interval
    (a band), the model beside the mean baseline of the same training subsets.

    Parameters
    ----------
    points : pandas.DataFrame
        :attr:`audioreg.study.LearningCurve.points`: ``model``, ``target``, ``metric``,
        ``n_tracks``, ``score``, ``lo``, ``hi`` (and optionally ``repeat_min``/``repeat_max``,
        drawn as thin bars: the spread of single repeats).
    caveat : str, optional
        Shown in red under the title.
    ncols : int
        Panels per row.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-learning-curves"``.
    """
    _require(points, {"model", "target", "metric", "n_tracks", "score", "lo", "hi"}, name="points")
    targets = list(dict.fromkeys(points["target"]))
    models = list(dict.fromkeys(points["model"]))
    colour = {m: ("black" if m == metrics.BASELINE_NAME else f"C{i % 10}") for i, m in enumerate(models)}
    nrows, ncols = _grid(len(targets), ncols=ncols)
    fig = Figure(figsize=(3.2 * ncols + 1.5, 2.6 * nrows + 0.8), layout="constrained")
    fig.set_gid("audioreg-learning-curves")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, target in zip(axes, targets):
        part = points[points["target"] == target]
        for model in models:
            rows = part[part["model"] == model].sort_values("n_tracks")
            x = rows["n_tracks"].to_numpy(dtype=np.float64)
            y, lo, hi = (rows[c].to_numpy(dtype=np.float64) for c in ("score", "lo", "hi"))
            ok = np.isfinite(y)
            if not ok.any():
                continue
            base = model == metrics.BASELINE_NAME
            ax.plot(x[ok], y[ok], marker="D" if base else "o", ms=4, lw=1.4, ls="--" if base else "-",
                    color=colour[model], label=model)
            band = ok & np.isfinite(lo) & np.isfinite(hi)
            if band.any():
                ax.fill_between(x[band], lo[band], hi[band], color=colour[model], alpha=0.12 if base else 0.2, lw=0)
            if not base and {"repeat_min", "repeat_max"} <= set(rows.columns):
                rmin, rmax = rows["repeat_min"].to_numpy(dtype=np.float64), rows["repeat_max"].to_numpy(dtype=np.float64)
                spread = ok & np.isfinite(rmin) & np.isfinite(rmax)
                ax.vlines(x[spread], rmin[spread], rmax[spread], color=colour[model], lw=3, alpha=0.45)
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_title(f"{target} ({part['metric'].iloc[0]})", fontsize="small")
        ax.set_xlabel("training tracks", fontsize="small")
        ax.set_ylabel(f"{part['metric'].iloc[0]} on the test part (unitless)", fontsize="x-small")
    for ax in axes[len(targets):]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color=colour[m], marker="D" if m == metrics.BASELINE_NAME else "o",
                      ls="--" if m == metrics.BASELINE_NAME else "-", label=m) for m in models]
    handles += [Patch(color="0.5", alpha=0.3, label="95 % interval (test artists bootstrap)"),
                Line2D([], [], color="C0", lw=3, alpha=0.45, label="spread of single repeats")]
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    title = ("Learning curves: score on the same test part against the training-set size (R² divides by the full "
             "training part's variance)")
    fig.suptitle(title + (f"\n{caveat}" if caveat else ""), color="#b00020" if caveat else "black", fontsize="medium")
    return fig


def ablation_differences(differences: pd.DataFrame, *, mode: str = "without", caveat: str | None = None) -> Figure:
    """Per target, each feature group's paired effect with its 95 % interval: for ``mode``
    ``"without"``, the score of all features minus the score without the group (right of 0:
    the group is needed); for ``"alone"``, the group alone minus the mean baseline.

    Parameters
    ----------
    differences : pandas.DataFrame
        :attr:`audioreg.study.Ablation.differences`: ``group``, ``mode``, ``target``, ``metric``,
        ``difference``, ``lo``, ``hi``, ``verdict``.
    mode : {"without", "alone"}
    caveat : str, optional
        Shown in red under the title.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-ablation-differences"``.
    """
    from matplotlib.lines import Line2D

    _require(differences, {"group", "mode", "target", "metric", "difference", "lo", "hi", "verdict"}, name="differences")
    part = differences[differences["mode"] == mode]
    if part.empty:
        raise ValueError(f"no differences of mode {mode!r}")
    targets = list(dict.fromkeys(part["target"]))
    groups = list(dict.fromkeys(part["group"]))
    colour = {g: f"C{i % 10}" for i, g in enumerate(groups)}
    step = 0.8 / max(len(groups), 1)
    fig = Figure(figsize=(10.0, 1.2 + 0.12 * len(groups) * len(targets) + 0.3 * len(targets)), layout="constrained")
    fig.set_gid("audioreg-ablation-differences")
    ax = fig.add_subplot()
    shown = {"needed", "learns alone"}
    harmful = {"hurts", "worse than baseline"}
    for ti, target in enumerate(targets):
        rows = part[part["target"] == target].set_index("group")
        if ti % 2 == 0:
            ax.axhspan(-ti - 0.5, -ti + 0.5, color="0.95", zorder=0)
        for k, g in enumerate(x for x in groups if x in rows.index):
            row = rows.loc[g]
            y = -ti + ((len(groups) - 1) / 2 - k) * step
            d, lo, hi = (float(row[c]) for c in ("difference", "lo", "hi"))
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [y, y], color=colour[g], lw=1.4, zorder=2)
            if np.isfinite(d):
                verdict = str(row["verdict"])
                ax.plot([d], [y], ls="none", marker="X" if verdict in harmful else "o", ms=6, zorder=3,
                        markeredgecolor=colour[g], markerfacecolor=colour[g] if verdict in shown | harmful else "white")
    ax.axvline(0.0, color="0.4", lw=0.9)
    ax.set_yticks([-i for i in range(len(targets))],
                  [f"{t}\n({part.loc[part['target'] == t, 'metric'].iloc[0]})" for t in targets], fontsize="small")
    ax.set_ylim(-len(targets) + 0.5, 0.5)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("paired difference of the score on the same test tracks (unitless; R² for continuous targets)\n"
                  + ("all features minus without the group: > 0 means the group is needed" if mode == "without"
                     else "the group alone minus the mean baseline: > 0 means the group alone learns the target"))
    handles = [Line2D([], [], color=colour[g], marker="o", lw=1.4, label=g) for g in groups]
    handles += [Line2D([], [], ls="none", marker="o", color="0.3", label="interval excludes 0"),
                Line2D([], [], ls="none", marker="o", color="0.3", markerfacecolor="white", label="interval covers 0"),
                Line2D([], [], ls="none", marker="X", color="0.3", label="harmful (interval below 0)"),
                Line2D([], [], color="0.3", lw=1.4, label="95 % interval (paired, test artists bootstrap)")]
    fig.legend(handles=handles, loc="outside right upper", fontsize="small", title="feature group")
    title = ("Feature-group ablation: what removing each group costs" if mode == "without"
             else "Feature-group ablation: each group alone against the mean baseline")
    ax.set_title(title + (f"\n{caveat}" if caveat else ""), color="#b00020" if caveat else "black", fontsize="medium")
    return fig
