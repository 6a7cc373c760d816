"""One finished run, one test track at a time: what each model predicted (with its 90 %
interval) beside the label, the track's audio and its frame features over time.

The logic of ``analysis/explorer.ipynb``. It reads only a run's files: each model's
``runs/<run_id>/<rf|gru|dsp>/predictions.csv``, ``runs/<run_id>/metrics.json`` (whose
``data.split_path`` names the split table) and, through that table, each track's audio file
(``path``) and feature array (``file``, ``[t, 46]`` float32). Nothing is re-trained.

Two views of the same content:

- :func:`static_view`: a list of displayable objects (a heading, an audio player, the
  prediction table, two figures) for one track: what a headless run (papermill, nbconvert)
  shows, since there is no widget frontend to draw widgets there.
- :func:`explorer`: ipywidgets dropdowns (target, model, test track sorted by error) and an
  ``Output`` that re-renders the same content whenever a dropdown changes (JupyterLab).

The mean baseline is computed as the run's judge computes it (the training part's mean, or
majority class of key and time_signature, :func:`audioreg.judge.metrics.mean_baseline`), and
every model, the baseline included, gets its split-conformal 90 % interval from its own
validation predictions (:func:`audioreg.judge.uncertainty.conformal_of_predictions`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._pandas import pd
from .data.audio import load_audio
from .features import frames
from .judge import metrics, uncertainty
from .judge.plots import UNITS
from .paths import PREDICTIONS, resolve
from .targets import TARGETS

__all__ = [
    "AUDIO_SECONDS",
    "AUDIO_SR",
    "FIGURE_IDS",
    "MODELS",
    "Explorer",
    "Run",
    "default_track",
    "explorer",
    "feature_figure",
    "load_features",
    "load_run",
    "prediction_figure",
    "prediction_table",
    "static_view",
    "track_audio",
    "track_errors",
    "track_options",
    "track_summary",
    "view",
]

#: The run's model folders, in display order, then the baseline.
MODELS: tuple[str, ...] = ("rf", "gru", "dsp")
BASELINE = metrics.BASELINE_NAME
#: Sample rate of the embedded audio player: a 30 s clip is about 0.9 MB of base64 WAV.
AUDIO_SR = 11025
#: At most this many seconds of each track go into the player.
AUDIO_SECONDS = 30.0
#: SVG group id of each figure, by function name.
FIGURE_IDS = {"prediction_figure": "audioreg-track-predictions", "feature_figure": "audioreg-track-features"}

#: What each feature block's values are, for the colour bar / axis labels.
_BLOCK_UNITS = {
    "mfcc": "MFCC",
    "chroma": "energy 0-1",
    "contrast": "dB",
    "tonnetz": "coordinate",
    "zcr": "crossings per sample",
}


@dataclass(frozen=True)
class Run:
    """A finished run's files, loaded once.

    Attributes
    ----------
    run_dir : Path
    table : pandas.DataFrame
        The split table (one row per track: ``track_id``, ``split``, labels, ``path``,
        ``file``, and ``artists``/``track_name`` where the data has them), indexed by track id.
    predictions : dict of str to pandas.DataFrame
        Per model (:data:`MODELS` found in the run, then ``"mean baseline"``): its validation
        and test rows (``track_id``, ``split``, ``true_<t>``, ``pred_<t>``), indexed by track id.
    half_widths : dict of str to pandas.Series
        Per model: the split-conformal 90 % half-width of each continuous target (log2 units
        for tempo), calibrated on its validation rows.
    root : Path
        Against which relative paths in the table are resolved.
    """

    run_dir: Path
    table: pd.DataFrame
    predictions: dict[str, pd.DataFrame]
    half_widths: dict[str, pd.Series]
    root: Path = field(default=Path("."))

    @property
    def models(self) -> list[str]:
        """The run's models and the baseline, in display order."""
        return list(self.predictions)

    def test_ids(self) -> list[str]:
        return [str(t) for t in self.table.index[self.table["split"] == "test"]]


def load_run(root: str | Path, run_id: str) -> Run:
    """Load ``<root>/runs/<run_id>``: its saved predictions, its split table (named by
    ``metrics.json``'s ``data.split_path``), the mean baseline and every model's intervals.

    Raises
    ------
    FileNotFoundError
        When the run has no ``metrics.json`` (06_error_analysis has not finished), its split
        table is gone, or it has no saved predictions.
    """
    root = Path(root)
    run_dir = root / "runs" / run_id
    doc_path = run_dir / "metrics.json"
    if not doc_path.is_file():
        raise FileNotFoundError(f"{doc_path} not found: finish the run (06_error_analysis writes it) first")
    doc = json.loads(doc_path.read_text(encoding="utf-8"))
    split_path = (doc.get("data") or {}).get("split_path")
    if not split_path:
        raise FileNotFoundError(f"{doc_path} names no data.split_path: re-run 06_error_analysis")
    split_file = resolve(split_path, root)
    if not split_file.is_file():
        raise FileNotFoundError(f"the run's split table {split_file} is gone: re-run 03_split with run_id={run_id}")
    table = pd.read_csv(split_file, dtype={"track_id": str}).set_index("track_id", drop=False)
    table.index.name = None

    predictions: dict[str, pd.DataFrame] = {}
    for model in MODELS:
        path = run_dir / model / PREDICTIONS
        if path.is_file():
            df = pd.read_csv(path, dtype={"track_id": str})
            predictions[model] = df.set_index("track_id", drop=False).rename_axis(None)
    if not predictions:
        raise FileNotFoundError(f"no predictions under {run_dir}/<{'|'.join(MODELS)}>/{PREDICTIONS}")
    predictions[BASELINE] = _baseline_predictions(table, next(iter(predictions.values())))
    half_widths = {m: uncertainty.conformal_of_predictions(df)["half_width"] for m, df in predictions.items()}
    return Run(run_dir=run_dir, table=table, predictions=predictions, half_widths=half_widths, root=root)


def _baseline_predictions(table: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """The mean baseline for the rows of ``like`` (a model's saved predictions), same columns."""
    train = table[table["split"] == "train"]
    y_train = train[list(TARGETS)].to_numpy(dtype=np.float64)
    pred = metrics.mean_baseline(y_train, len(like))
    out = like[["track_id", "split"] + [f"true_{t}" for t in TARGETS]].copy()
    for j, t in enumerate(TARGETS):
        out[f"pred_{t}"] = pred[:, j]
    return out


# --------------------------------------------------------------------------------- errors
def _errors(target: str, true, pred) -> np.ndarray:
    """Per-row error used to rank tracks: the conformal score for continuous targets
    (``|y - yhat|``; ``|log2 y - log2 yhat|`` for tempo), the circular pitch-class distance of
    the predicted class for key, and the predicted meter's distance for time_signature (the
    classes the metrics score a prediction as: :func:`audioreg.judge.metrics.key_class`,
    :func:`audioreg.judge.metrics.meter_class`)."""
    y, p = np.asarray(true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if target == "key":
        d = np.abs(metrics.key_class(p) - y)
        return np.minimum(d, 12 - d)
    if target == "time_signature":
        return np.abs(metrics.meter_class(p) - y)
    return uncertainty.conformal_residuals(target, y, p)


def _label(row: pd.Series) -> str:
    """``artists - track_name`` where the table has them, else the track id."""
    parts = [str(row[c]) for c in ("artists", "track_name") if c in row.index and pd.notna(row[c]) and str(row[c])]
    return " - ".join(parts) if parts else str(row["track_id"])


def _check(run: Run, target: str, model: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: one of {', '.join(TARGETS)}")
    if model not in run.predictions:
        raise ValueError(f"model {model!r} has no predictions in {run.run_dir}: one of {', '.join(run.models)}")


def track_errors(run: Run, *, target: str, model: str) -> pd.DataFrame:
    """The run's test tracks, worst-predicted first (by ``model`` on ``target``).

    Returns
    -------
    errors : pandas.DataFrame
        Columns ``track_id``, ``label`` (artist - title), ``true``, ``pred``, ``error``
        (see :func:`_errors`: log2 units for tempo, semitones for key). Sorted by error,
        largest first (ties by track id); unlabelled tracks (NaN error) last.
    """
    _check(run, target, model)
    df = run.predictions[model]
    df = df[df["split"] == "test"]
    out = pd.DataFrame({
        "track_id": df["track_id"].to_numpy(),
        "label": [_label(run.table.loc[t]) if t in run.table.index else str(t) for t in df["track_id"]],
        "true": df[f"true_{target}"].to_numpy(dtype=np.float64),
        "pred": df[f"pred_{target}"].to_numpy(dtype=np.float64),
    })
    out["error"] = _errors(target, out["true"], out["pred"])
    out = out.sort_values(["error", "track_id"], ascending=[False, True], na_position="last", kind="stable")
    return out.reset_index(drop=True)


def default_track(run: Run, *, target: str, model: str, track_id: str = "") -> str:
    """``track_id`` when given (it must be a test track of the run), else the test track
    ``model`` predicts worst on ``target``."""
    if track_id:
        if track_id not in run.predictions[next(iter(run.predictions))].index:
            raise ValueError(f"track {track_id!r} has no predictions in {run.run_dir}")
        return str(track_id)
    errors = track_errors(run, target=target, model=model)
    if errors.empty:
        raise ValueError(f"{run.run_dir} has no test predictions")
    return str(errors["track_id"].iloc[0])


def track_options(run: Run, *, target: str, model: str) -> list[tuple[str, str]]:
    """``(label, track_id)`` pairs for a dropdown: rank, artist - title, and the error."""
    errors = track_errors(run, target=target, model=model)
    unit = " (log2)" if target in uncertainty.LOG_SCALE_TARGETS else ""
    return [(f"{i + 1}. {r.label} - error {r.error:.3g}{unit}", str(r.track_id))
            for i, r in enumerate(errors.itertuples(index=False))]


# ------------------------------------------------------------------------------ one track
def track_summary(run: Run, track_id: str) -> pd.DataFrame:
    """Every model's prediction of every target for one track, with its 90 % interval.

    Returns
    -------
    summary : pandas.DataFrame
        One row per (target, model) in :data:`TARGETS` x :attr:`Run.models` order; columns
        ``target``, ``model``, ``true``, ``pred``, ``lo``, ``hi`` (NaN for key and
        time_signature, which get no interval), ``error`` and ``inside`` (the label lies in
        the interval; NaN without one or without a label).
    """
    rows = []
    for target in TARGETS:
        for model, df in run.predictions.items():
            if track_id not in df.index:
                continue
            true, pred = float(df.at[track_id, f"true_{target}"]), float(df.at[track_id, f"pred_{target}"])
            lo = hi = np.nan
            q = run.half_widths[model].get(target, np.nan)
            if target not in metrics.CLASS_TARGETS and np.isfinite(pred) and not np.isnan(q):
                lo_a, hi_a = uncertainty.conformal_interval(target, [pred], float(q))
                lo, hi = float(lo_a[0]), float(hi_a[0])
            inside = np.nan if np.isnan(lo) or np.isnan(true) else float(lo <= true <= hi)
            rows.append({"target": target, "model": model, "true": true, "pred": pred, "lo": lo, "hi": hi,
                         "error": float(_errors(target, [true], [pred])[0]), "inside": inside})
    if not rows:
        raise ValueError(f"track {track_id!r} has no predictions in {run.run_dir}")
    return pd.DataFrame(rows)


def prediction_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`track_summary` as a table to read: one row per target (with its unit and the
    label), per model its prediction and ``[lo, hi]`` interval as text."""
    def cell(r) -> str:
        text = f"{r.pred:.3g}"
        return text if np.isnan(r.lo) else f"{text} [{r.lo:.3g}, {r.hi:.3g}]"

    s = summary.assign(cell=[cell(r) for r in summary.itertuples(index=False)])
    wide = s.pivot(index="target", columns="model", values="cell")
    wide = wide.reindex(index=[t for t in TARGETS if t in wide.index], columns=list(dict.fromkeys(s["model"])))
    true = s.drop_duplicates("target").set_index("target")["true"]
    wide.insert(0, "true", [f"{true[t]:.3g}" for t in wide.index])
    wide.insert(0, "unit", [UNITS[t] for t in wide.index])
    wide.columns.name = "prediction [90 % interval]"
    return wide


def load_features(run: Run, track_id: str) -> np.ndarray:
    """The track's ``[t, 46]`` frame features (the ``file`` column of the split table)."""
    path = resolve(run.table.at[track_id, "file"], run.root)
    feats = np.load(path)
    if feats.ndim != 2 or feats.shape[1] != frames.N_FEATURES:
        raise ValueError(f"{path}: expected a [t, {frames.N_FEATURES}] feature array, got {feats.shape}")
    return feats


def track_audio(run: Run, track_id: str, *, sr: int = AUDIO_SR, seconds: float = AUDIO_SECONDS):
    """An :class:`IPython.display.Audio` player of the track's file (``path`` column), decoded
    with :func:`audioreg.data.audio.load_audio`, mono, at ``sr`` Hz, its first ``seconds``.
    A Markdown note instead when the file is gone or cannot be decoded."""
    from IPython.display import Audio, Markdown

    from .data.audio import AudioDecodeError

    path = resolve(run.table.at[track_id, "path"], run.root)
    try:
        y, rate = load_audio(path, sr=sr, max_duration=seconds)
    except (AudioDecodeError, OSError) as exc:
        return Markdown(f"No audio to play: {html.escape(str(exc))}")
    return Audio(data=y, rate=rate, normalize=True)


# -------------------------------------------------------------------------------- figures
def prediction_figure(summary: pd.DataFrame, *, target: str | None = None, title: str | None = None) -> Figure:
    """Predicted against true for one track: one panel per target, one row per model, the
    prediction as a dot with its 90 % interval as a bar, the label as a dashed line.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`track_summary` of the track.
    target : str, optional
        The target being explored: its panel's title is marked.
    title : str, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-track-predictions"``; axes in each target's unit, one legend.
    """
    targets = [t for t in TARGETS if t in set(summary["target"])]
    models = list(dict.fromkeys(summary["model"]))
    ncols = 4
    nrows = -(-len(targets) // ncols)
    fig = Figure(figsize=(3.2 * ncols, 0.4 * len(models) * nrows + 1.2 * nrows + 0.6), layout="constrained")
    fig.set_gid(FIGURE_IDS["prediction_figure"])
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    handles = {}
    ypos = np.arange(len(models))[::-1]
    for ax, t in zip(axes, targets):
        rows = summary[summary["target"] == t].set_index("model").reindex(models)
        pred = rows["pred"].to_numpy(dtype=np.float64)
        lo, hi = rows["lo"].to_numpy(dtype=np.float64), rows["hi"].to_numpy(dtype=np.float64)
        has = np.isfinite(lo) & np.isfinite(hi)
        if has.any():
            err = np.vstack([pred - lo, hi - pred])[:, has]
            handles["90 % interval"] = ax.errorbar(pred[has], ypos[has], xerr=err, fmt="none", ecolor="tab:blue",
                                                   elinewidth=3, alpha=0.35, capsize=3)
        handles["prediction"] = ax.scatter(pred, ypos, color="tab:blue", zorder=3, s=25)
        true = rows["true"].iloc[0]
        if np.isfinite(true):
            handles["true value"] = ax.axvline(true, color="black", ls="--", lw=1.2)
        if t == "key":
            ax.set_xlim(-0.5, 11.5)
            ax.set_xticks(range(0, 12, 2))
        elif t == "time_signature":
            ax.set_xlim(2.5, 7.5)
        ax.set_yticks(ypos, models, fontsize="small")
        ax.set_ylim(-0.7, len(models) - 0.3)
        ax.set_xlabel(UNITS[t], fontsize="small")
        ax.tick_params(axis="x", labelsize="small")
        ax.set_title(f"{t} (explored)" if t == target else t, fontsize="small",
                     fontweight="bold" if t == target else "normal")
    for ax in axes[len(targets):]:
        fig.delaxes(ax)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=len(handles),
               fontsize="small")
    fig.suptitle(title or "Predicted vs true, with each model's 90 % interval")
    return fig


def feature_figure(features, *, sr: int = frames.SR, hop_length: int = frames.HOP_LENGTH,
                   title: str | None = None) -> Figure:
    """One track's frame features against time: MFCC, chroma, spectral contrast and tonnetz
    as images, the zero-crossing rate as a line.

    Parameters
    ----------
    features : np.ndarray [shape=(t, 46)]
        The track's cached feature array (blocks in :data:`audioreg.features.frames.BLOCKS` order).
    sr, hop_length : int
        Frame ``i`` is at ``i * hop_length / sr`` seconds.
    title : str, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid ``"audioreg-track-features"``; x axes in seconds, a colour bar (in the
        block's units) per image, a legend for the line.
    """
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[1] != frames.N_FEATURES or feats.shape[0] == 0:
        raise ValueError(f"features must have shape [t, {frames.N_FEATURES}] with t > 0, got {feats.shape}")
    seconds = np.arange(feats.shape[0]) * hop_length / sr
    end = feats.shape[0] * hop_length / sr
    heights = [n if name != "zcr" else 4 for name, n in frames.BLOCKS]
    fig = Figure(figsize=(10.0, 9.0), layout="constrained")
    fig.set_gid(FIGURE_IDS["feature_figure"])
    axes = fig.subplots(len(frames.BLOCKS), 1, sharex=True, gridspec_kw={"height_ratios": heights})
    start = 0
    for ax, (name, n) in zip(axes, frames.BLOCKS):
        block = feats[:, start:start + n]
        start += n
        if name == "zcr":
            ax.plot(seconds, block[:, 0], color="tab:green", lw=0.8, label="zero-crossing rate")
            ax.set_ylabel("crossings\nper sample", fontsize="small")
            ax.legend(loc="upper right", fontsize="small")
            continue
        finite = block[np.isfinite(block)]
        vmin, vmax = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        if name == "chroma":
            vmin, vmax = 0.0, max(float(vmax), 1e-9)
        elif name != "contrast":  # signed blocks: a diverging scale centred on 0
            vmax = max(abs(float(vmin)), abs(float(vmax)), 1e-9)
            vmin = -vmax
        image = ax.imshow(block.T, aspect="auto", origin="lower", interpolation="nearest", vmin=vmin, vmax=vmax,
                          extent=(0.0, end, -0.5, n - 0.5),
                          cmap={"chroma": "magma", "contrast": "viridis"}.get(name, "coolwarm"))
        bar = fig.colorbar(image, ax=ax, pad=0.01, extend="both" if name != "chroma" else "neither")
        bar.set_label(_BLOCK_UNITS[name], fontsize="x-small")
        bar.ax.tick_params(labelsize="x-small")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if name == "chroma":
            from .targets import PITCH_CLASSES

            ax.set_yticks(range(n), PITCH_CLASSES, fontsize="x-small")
            ax.set_ylabel("pitch class", fontsize="small")
        else:
            ax.set_ylabel(f"{name}\nindex", fontsize="small")
    axes[-1].set_xlabel(f"time (s), hop {hop_length} at {sr} Hz")
    axes[-1].set_xlim(0.0, end)
    fig.suptitle(title or "Frame features over time")
    return fig


# ---------------------------------------------------------------------------------- views
def _heading(run: Run, track_id: str, *, target: str, model: str) -> str:
    row = run.table.loc[track_id]
    err = track_errors(run, target=target, model=model)
    rank = int(np.flatnonzero(err["track_id"].to_numpy() == track_id)[0]) + 1 if track_id in set(err["track_id"]) else None
    where = f", {rank} of {len(err)} test tracks by {model}'s error on {target}" if rank else ""
    extra = [f"{c} {row[c]}" for c in ("track_genre", "duration_s") if c in row.index and pd.notna(row[c])]
    return (f"### {html.escape(_label(row))} (`{track_id}`{where})\n\n"
            f"Run `{run.run_dir.name}`" + ("; " + ", ".join(extra) if extra else "") + ".")


def static_view(run: Run, *, target: str, model: str, track_id: str = "", audio_sr: int = AUDIO_SR,
                audio_seconds: float = AUDIO_SECONDS) -> list:
    """The explorer's content for one track (``track_id``, or the worst-predicted test track
    of ``model`` on ``target``), as plain displayable objects: a Markdown heading, an audio
    player (HTML ``<audio>``, not a widget), the prediction table, the prediction figure and
    the feature figure. ``display(*static_view(...))`` shows it."""
    from IPython.display import Markdown

    _check(run, target, model)
    track_id = default_track(run, target=target, model=model, track_id=track_id)
    summary = track_summary(run, track_id)
    return [
        Markdown(_heading(run, track_id, target=target, model=model)),
        track_audio(run, track_id, sr=audio_sr, seconds=audio_seconds),
        prediction_table(summary),
        prediction_figure(summary, target=target, title=f"{track_id}: predicted vs true, 90 % intervals"),
        feature_figure(load_features(run, track_id), title=f"{track_id}: frame features"),
    ]


def _bundle(obj) -> dict:
    """A display_data output of ``obj`` without an IPython shell (so it also works in tests):
    figures as PNG, tables as HTML, Markdown and Audio through their own representations."""
    if isinstance(obj, Figure):
        buf = io.BytesIO()
        obj.savefig(buf, format="png", dpi=80)
        data = {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": repr(obj)}
    elif isinstance(obj, pd.DataFrame):
        data = {"text/html": obj.to_html(), "text/plain": obj.to_string()}
    elif hasattr(obj, "_repr_markdown_"):
        data = {"text/markdown": obj._repr_markdown_(), "text/plain": obj._repr_markdown_()}
    else:
        data = {"text/html": obj._repr_html_(), "text/plain": repr(obj)}
    return {"output_type": "display_data", "data": data, "metadata": {}}


@dataclass
class Explorer:
    """The interactive explorer: ``target``, ``model`` and ``track`` dropdowns and the
    ``output`` they redraw; ``widget`` lays them out (displaying the Explorer shows it)."""

    run: Run
    target: object
    model: object
    track: object
    output: object
    widget: object
    audio_sr: int = AUDIO_SR
    audio_seconds: float = AUDIO_SECONDS

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def refresh_tracks(self, change=None) -> None:
        """Re-rank the track dropdown for the chosen target and model, keeping the track."""
        keep = self.track.value
        options = track_options(self.run, target=self.target.value, model=self.model.value)
        ids = [v for _, v in options]
        self.track.unobserve(self.render, names="value")
        try:
            self.track.options = options
            self.track.value = keep if keep in ids else (ids[0] if ids else None)
        finally:
            self.track.observe(self.render, names="value")
        self.render()

    def render(self, change=None) -> None:
        """Redraw the output for the selected target, model and track."""
        if self.track.value is None:
            self.output.outputs = ()
            return
        view = static_view(self.run, target=self.target.value, model=self.model.value, track_id=self.track.value,
                           audio_sr=self.audio_sr, audio_seconds=self.audio_seconds)
        self.output.outputs = tuple(_bundle(o) for o in view)


def explorer(run: Run, *, target: str, model: str, track_id: str = "", audio_sr: int = AUDIO_SR,
             audio_seconds: float = AUDIO_SECONDS) -> Explorer:
    """The ipywidgets explorer of ``run``, starting on ``target``, ``model`` and ``track_id``
    (empty: the worst-predicted test track). Choosing a target or model re-ranks the tracks;
    choosing a track redraws the view (:func:`static_view`'s content) in an ``Output``."""
    import ipywidgets as w

    _check(run, target, model)
    start = default_track(run, target=target, model=model, track_id=track_id)
    target_dd = w.Dropdown(options=list(TARGETS), value=target, description="target")
    model_dd = w.Dropdown(options=run.models, value=model, description="ranked by")
    options = track_options(run, target=target, model=model)
    track_dd = w.Dropdown(options=options, value=start, description="test track",
                          layout=w.Layout(width="70%"))
    output = w.Output()
    box = w.VBox([w.HBox([target_dd, model_dd]), track_dd, output])
    ex = Explorer(run=run, target=target_dd, model=model_dd, track=track_dd, output=output, widget=box,
                  audio_sr=audio_sr, audio_seconds=audio_seconds)
    target_dd.observe(ex.refresh_tracks, names="value")
    model_dd.observe(ex.refresh_tracks, names="value")
    track_dd.observe(ex.render, names="value")
    ex.render()
    return ex


def view(run: Run, *, interactive: bool, target: str, model: str, track_id: str = "", audio_sr: int = AUDIO_SR,
         audio_seconds: float = AUDIO_SECONDS) -> list:
    """What the notebook displays (``display(*view(...))``): ``[explorer(...)]`` when
    ``interactive`` (JupyterLab, a widget frontend), else :func:`static_view`'s objects, which
    need no widget frontend (papermill, nbconvert)."""
    kwargs = dict(target=target, model=model, track_id=track_id, audio_sr=audio_sr, audio_seconds=audio_seconds)
    return [explorer(run, **kwargs)] if interactive else static_view(run, **kwargs)
