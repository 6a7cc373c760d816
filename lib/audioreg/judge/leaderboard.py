"""The cross-run report: every run's ``metrics.json`` side by side, ranked only where runs can be compared.

Every run of the suite writes ``runs/<run_id>/metrics.json``; this module reads those files
only (it never re-trains and never reads audio) and writes ``reports/index.html``:

* Runs share a ranking only when they scored the same test part: they are grouped by what
  ``data`` records (:func:`data_sets`: the sample set or your own data, and the stored split's
  key). A document written before ``data`` was recorded is a data set of its own, never ranked
  with others (:data:`UNRECORDED`).
* Each target is shown in its own terms (:func:`target_scores`), every score with its 95 %
  interval, every run's mean baseline beside its models (:func:`leaderboard`).
* Rows whose interval overlaps the best row's are said not to differ from it by these numbers;
  each model's paired verdict against its own run's baseline comes from the run's document.
* Raw MSE is never averaged across targets here (tempo would dominate it); the one average
  shown is of standardized MSE over the continuous targets, as each run wrote it.

The page is self-contained: inline CSS, inline SVG, a few lines of inline JavaScript, no URL.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
from matplotlib.figure import Figure

from .._pandas import pd
from .. import atomic
from ..targets import OWN_TERMS, TARGETS
from . import metrics, plots, uncertainty

log = logging.getLogger(__name__)

__all__ = [
    "FIGURE_ID",
    "UNRECORDED",
    "DataSet",
    "Score",
    "data_sets",
    "differing_settings",
    "heatmap_values",
    "leaderboard",
    "leaderboard_heatmap",
    "load_runs",
    "mean_smse_table",
    "render_index",
    "target_scores",
    "write_cross_run_index",
]

#: SVG group id of the heatmap (:func:`leaderboard_heatmap`).
FIGURE_ID = "audioreg-leaderboard-heatmap"

#: What a run without a ``data`` record is, in the page.
UNRECORDED = "data not recorded: run it again to compare"

#: Models in the order a run's rows are listed (others follow, in the document's order).
MODEL_ORDER: tuple[str, ...] = (metrics.BASELINE_NAME, "random forest", "GRU", "dsp")

_METRIC_FIELDS = ("mse", "smse", "r2", "mae", "accuracy", "acc1", "acc2", "mirex", "key_mode_accuracy", "variance", "n")
_SAFE_RUN = re.compile(r"[^/\\\x00]+")


@dataclass(frozen=True)
class Score:
    """One score of a target in its own terms.

    Attributes
    ----------
    column : str
        The metric's name in ``metrics.json`` (``"r2"``, ``"acc1"``, ``"mirex"`` ...).
    label : str
        The table header.
    higher_is_better : bool
        The direction the ranking sorts by.
    """

    column: str
    label: str
    higher_is_better: bool


@dataclass(frozen=True)
class DataSet:
    """Runs that scored the same test part (or one run whose data was not recorded).

    Attributes
    ----------
    key : str
        ``"<set>:<data key>"``, or ``"unrecorded:<run_id>"``.
    name : str
        ``data.name`` of its runs (for a run without ``data``: its run id and :data:`UNRECORDED`).
    ranked : bool
        False for a run whose data was not recorded: it is ranked with no other run.
    runs : tuple of dict
        The documents, oldest first (by ``written``, then run id).
    """

    key: str
    name: str
    ranked: bool
    runs: tuple[dict, ...]

    @property
    def data(self) -> dict:
        """The ``data`` record of the first run (empty when not recorded)."""
        data = self.runs[0].get("data")
        return dict(data) if isinstance(data, Mapping) else {}

    @property
    def n_test(self) -> int | None:
        """Tracks in the test part: ``data.parts.test``, else the document's ``n_test``."""
        parts = self.data.get("parts")
        if isinstance(parts, Mapping) and _is_number(parts.get("test")):
            return int(parts["test"])
        n = self.runs[0].get("n_test")
        return int(n) if _is_number(n) else None


# --------------------------------------------------------------------------------------------
# reading


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value) -> float:
    return float(value) if _is_number(value) else math.nan


def _malformed(doc) -> str | None:
    """Why a parsed ``metrics.json`` cannot be shown, or None."""
    if not isinstance(doc, Mapping):
        return f"not a JSON object but a {type(doc).__name__}"
    if not isinstance(doc.get("run_id"), str) or not doc["run_id"]:
        return "no run_id"
    table = doc.get("metrics")
    if not isinstance(table, Mapping) or not table:
        return "no metrics (expected metrics[model][target])"
    for model, per_target in table.items():
        if not isinstance(per_target, Mapping):
            return f"metrics[{model!r}] is not a table of targets"
        for target, entry in per_target.items():
            if not isinstance(entry, Mapping):
                return f"metrics[{model!r}][{target!r}] is not a table of metrics"
            for name in _METRIC_FIELDS:
                value = entry.get(name)
                if value is not None and not isinstance(value, (int, float)):
                    return f"metrics[{model!r}][{target!r}][{name!r}] is not a number: {value!r}"
            if "ci95" in entry and not isinstance(entry["ci95"], Mapping):
                return f"metrics[{model!r}][{target!r}]['ci95'] is not a table of intervals"
    for name, kind in (("data", Mapping), ("params", Mapping), ("versions", Mapping), ("summary", list),
                       ("differences", list)):
        if doc.get(name) is not None and not isinstance(doc[name], kind):
            return f"{name} is not a{'n object' if kind is Mapping else ' list'}"
    return None


def load_runs(runs_dir: str | Path) -> tuple[list[dict], list[tuple[str, str]]]:
    """Every ``<runs_dir>/*/metrics.json``, and the files that could not be used.

    Parameters
    ----------
    runs_dir : str or Path
        The runs folder (``runs/``): one sub-folder per run id.

    Returns
    -------
    docs : list of dict
        The readable documents, by folder name. A document whose ``run_id`` differs from its
        folder's name (a copied run) is shown under the folder's name, and listed in
        ``problems`` too.
    problems : list of (str, str)
        ``(path, reason)`` for each file that is unreadable (I/O, encoding, JSON) or malformed
        (no ``run_id``, no ``metrics[model][target]`` tables, a metric that is not a number).
        Never raises for a bad file: the page lists it.
    """
    docs: list[dict] = []
    problems: list[tuple[str, str]] = []
    for path in sorted(Path(runs_dir).glob("*/metrics.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            problems.append((str(path), f"unreadable: {type(exc).__name__}: {exc}"))
            continue
        reason = _malformed(doc)
        if reason is not None:
            problems.append((str(path), f"malformed: {reason}"))
            continue
        folder = path.parent.name
        if doc["run_id"] != folder:
            problems.append((str(path), f"read, but it names run {doc['run_id']!r}: shown as {folder!r}, its folder"))
            doc = {**doc, "run_id": folder}
        docs.append(doc)
    for path, reason in problems:
        log.warning("%s: %s", path, reason)
    return docs, problems


# --------------------------------------------------------------------------------------------
# grouping


def _data_key(doc: Mapping) -> str | None:
    data = doc.get("data")
    if not isinstance(data, Mapping):
        return None
    key = data.get("key")
    return str(key) if isinstance(key, (str, int)) and str(key) else None


def _run_order(doc: Mapping) -> tuple:
    written = doc.get("written")
    return (0, written, doc["run_id"]) if isinstance(written, str) and written else (1, "", doc["run_id"])


def data_sets(docs: Iterable[Mapping]) -> list[DataSet]:
    """Group runs by the test part they scored.

    Two runs share a data set exactly when their ``data`` records the same ``set`` ("sample"
    or "own") and the same ``key`` (:func:`audioreg.stages.data_identity`: a digest of every
    track's id, part and labels): a sample-set run and a run on your own data never share one.
    A document without ``data`` (or without its key) is a data set of its own, ``ranked=False``,
    named ``"<run_id>: " + UNRECORDED``.

    Parameters
    ----------
    docs : iterable of dict
        Documents from :func:`load_runs`.

    Returns
    -------
    sets : list of DataSet
        Recorded data sets first (by name), then the unrecorded runs (by run id).
    """
    groups: dict[str, list[dict]] = {}
    for doc in docs:
        split = _data_key(doc)
        if split is None:
            key = f"unrecorded:{doc['run_id']}"
        else:
            key = f"{doc['data'].get('set', 'unknown')}:{split}"
        groups.setdefault(key, []).append(dict(doc))
    out = []
    for key, runs in groups.items():
        runs.sort(key=_run_order)
        if key.startswith("unrecorded:"):
            out.append(DataSet(key, f"{runs[0]['run_id']}: {UNRECORDED}", False, tuple(runs)))
        else:
            name = runs[0]["data"].get("name")
            out.append(DataSet(key, str(name) if name else key, True, tuple(runs)))
    return sorted(out, key=lambda d: (not d.ranked, d.name, d.key))


# --------------------------------------------------------------------------------------------
# tables


def _entries(docs: Iterable[Mapping], target: str) -> Iterable[tuple[Mapping, str, Mapping]]:
    for doc in sorted(docs, key=_run_order):
        table = doc["metrics"]
        models = [m for m in MODEL_ORDER if m in table] + [m for m in table if m not in MODEL_ORDER]
        for model in models:
            entry = table[model].get(target)
            if isinstance(entry, Mapping):
                yield doc, model, entry


def target_scores(target: str, docs: Iterable[Mapping] = ()) -> tuple[Score, ...]:
    """The scores a target is ranked by, in its own terms; the first one sorts.

    Continuous targets: R^2 (then sMSE); loudness: R^2, then MAE in dB; tempo: Acc1, Acc2, then
    MAE in BPM; time_signature: accuracy; key: the MIREX weighted score when every scored row of
    ``docs`` has one (the runs knew the modes), then tonic accuracy, else tonic accuracy alone.

    Parameters
    ----------
    target : str
        One of :data:`audioreg.targets.TARGETS` (another name is treated as continuous).
    docs : iterable of dict
        The documents to rank (only needed for key).

    Returns
    -------
    scores : tuple of Score
    """
    if target == "tempo":
        return (Score("acc1", "Acc1 (within 4 %)", True), Score("acc2", "Acc2 (4 %, octave errors allowed)", True),
                Score("mae", "MAE (BPM)", False))
    if target == "loudness":
        return Score("r2", "R²", True), Score("mae", "MAE (dB)", False)
    if target == "time_signature":
        return (Score("accuracy", "accuracy", True),)
    if target == "key":
        mirex = [_num(e.get("mirex")) for _, _, e in _entries(docs, target)]
        tonic = Score("accuracy", "tonic accuracy", True)
        if mirex and all(math.isfinite(v) for v in mirex):
            return Score("mirex", "MIREX weighted score", True), tonic
        return (tonic,)
    return Score("r2", "R²", True), Score("smse", "sMSE", False)


def _ci(entry: Mapping, name: str) -> tuple[float, float]:
    ci = entry.get("ci95")
    pair = ci.get(name) if isinstance(ci, Mapping) else None
    if isinstance(pair, (list, tuple)) and len(pair) == 2:
        return _num(pair[0]), _num(pair[1])
    return math.nan, math.nan


def _baseline_verdicts(doc: Mapping) -> dict[tuple[str, str], tuple[str, str]]:
    """(model, target) -> (verdict, metric) of the run's paired difference with its own baseline."""
    out = {}
    for d in doc.get("differences") or ():
        if isinstance(d, Mapping) and d.get("versus") == metrics.BASELINE_NAME and isinstance(d.get("verdict"), str):
            out[(str(d.get("model")), str(d.get("target")))] = (d["verdict"], str(d.get("metric", "")))
    return out


def _from_best(frame: pd.DataFrame, column: str) -> list[str]:
    """Per row, whether its 95 % interval lets the numbers tell it from the best row's."""
    scored = frame[np.isfinite(frame[column].to_numpy(dtype=np.float64))]
    if scored.empty:
        return ["not scored"] * len(frame)
    best = scored.index[0]
    b_lo, b_hi = frame.at[best, f"{column}_lo"], frame.at[best, f"{column}_hi"]
    out = []
    for i, row in frame.iterrows():
        lo, hi = row[f"{column}_lo"], row[f"{column}_hi"]
        if i == best:
            out.append("best")
        elif not math.isfinite(row[column]):
            out.append("not scored")
        elif not all(math.isfinite(v) for v in (lo, hi, b_lo, b_hi)):
            out.append("no interval")
        elif lo <= b_hi and b_lo <= hi:
            out.append("cannot tell from the best")
        else:
            out.append("worse than the best")
    return out


def leaderboard(docs: Sequence[Mapping], target: str) -> pd.DataFrame:
    """One target's ranking over the runs of one data set: a row per (run, model), best first.

    Every model of every run is a row, each run's mean baseline and dsp experts included.

    Parameters
    ----------
    docs : sequence of dict
        The runs of ONE data set (:attr:`DataSet.runs`): ranking runs that scored different
        test parts would compare different tracks.
    target : str
        The target.

    Returns
    -------
    table : pandas.DataFrame
        Columns ``run_id, model, baseline`` (True for the mean baseline), ``n`` (labelled test
        rows), then for each :func:`target_scores` score ``<s>, <s>_lo, <s>_hi`` (value and its
        95 % interval; NaN where the run recorded none), ``from_best`` ("best", "cannot tell from
        the best" when the intervals overlap, "worse than the best", "no interval", "not
        scored"), ``vs_baseline`` (the run's own paired verdict against its baseline, e.g.
        "better (smse)") and ``written``. Sorted by the first score, then the others (best
        first; missing values last). ``table.attrs["scores"]`` holds the scores,
        ``table.attrs["target"]`` the target.
    """
    scores = target_scores(target, docs)
    columns = ["run_id", "model", "baseline", "n"]
    for s in scores:
        columns += [s.column, f"{s.column}_lo", f"{s.column}_hi"]
    rows = []
    verdicts = {}
    for doc, model, entry in _entries(docs, target):
        if doc["run_id"] not in verdicts:
            verdicts[doc["run_id"]] = _baseline_verdicts(doc)
        row = {"run_id": doc["run_id"], "model": model, "baseline": model == metrics.BASELINE_NAME,
               "n": _num(entry.get("n"))}
        for s in scores:
            row[s.column] = _num(entry.get(s.column))
            row[f"{s.column}_lo"], row[f"{s.column}_hi"] = _ci(entry, s.column)
        if row["baseline"]:
            row["vs_baseline"] = "the baseline"
        else:
            verdict, metric = verdicts[doc["run_id"]].get((model, target), (None, None))
            row["vs_baseline"] = f"{verdict} ({metric})" if verdict else "not recorded"
        row["written"] = doc.get("written") if isinstance(doc.get("written"), str) else None
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*columns, "vs_baseline", "written"])
    for c in columns[3:]:
        frame[c] = frame[c].astype(np.float64)
    if len(frame):
        frame = frame.sort_values([s.column for s in scores], ascending=[not s.higher_is_better for s in scores],
                                  na_position="last", kind="stable").reset_index(drop=True)
    frame.insert(len(columns), "from_best", _from_best(frame, scores[0].column) if len(frame) else [])
    frame.attrs["scores"] = scores
    frame.attrs["target"] = target
    return frame


def mean_smse_table(docs: Sequence[Mapping]) -> pd.DataFrame:
    """The runs' own summary: mean standardized MSE over the continuous targets, lowest first.

    Parameters
    ----------
    docs : sequence of dict
        The runs of one data set.

    Returns
    -------
    table : pandas.DataFrame
        Columns ``run_id, model, baseline, n_targets, mean_smse, mean_smse_lo, mean_smse_hi,
        from_best``.
    """
    rows = []
    for doc in sorted(docs, key=_run_order):
        for rec in doc.get("summary") or ():
            if not isinstance(rec, Mapping) or "model" not in rec:
                continue
            ci = rec.get("mean_smse_ci95")
            lo, hi = (_num(ci[0]), _num(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (math.nan,) * 2
            rows.append({"run_id": doc["run_id"], "model": str(rec["model"]),
                         "baseline": rec["model"] == metrics.BASELINE_NAME, "n_targets": _num(rec.get("n_targets")),
                         "mean_smse": _num(rec.get("mean_smse")), "mean_smse_lo": lo, "mean_smse_hi": hi})
    columns = ["run_id", "model", "baseline", "n_targets", "mean_smse", "mean_smse_lo", "mean_smse_hi"]
    frame = pd.DataFrame(rows, columns=columns)
    if len(frame):
        frame = frame.sort_values("mean_smse", na_position="last", kind="stable").reset_index(drop=True)
    frame["from_best"] = _from_best(frame, "mean_smse") if len(frame) else []
    return frame


def _setting_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def differing_settings(docs: Sequence[Mapping]) -> pd.DataFrame:
    """The parameters (and package versions) that differ between the runs of a data set.

    Parameters
    ----------
    docs : sequence of dict
        The runs of one data set.

    Returns
    -------
    table : pandas.DataFrame
        Index: run id (oldest first); a column per ``params`` key whose value is not the same in
        every run (``run_id`` itself left out), then ``versions.<package>`` likewise; values as
        text, ``"(absent)"`` where a run has no such key. No columns when nothing differs or
        there is one run.
    """
    docs = sorted(docs, key=_run_order)
    index = pd.Index([d["run_id"] for d in docs], name="run_id")
    columns: dict[str, list[str]] = {}
    for block, prefix in (("params", ""), ("versions", "versions.")):
        tables = [d.get(block) if isinstance(d.get(block), Mapping) else {} for d in docs]
        keys = list(dict.fromkeys(k for t in tables for k in t))
        for k in keys:
            if block == "params" and k == "run_id":
                continue
            values = [_setting_text(t[k]) if k in t else "(absent)" for t in tables]
            if len(set(values)) > 1:
                columns[f"{prefix}{k}"] = values
    return pd.DataFrame(columns, index=index)


# --------------------------------------------------------------------------------------------
# figure


def heatmap_values(docs: Sequence[Mapping]) -> tuple[pd.DataFrame, dict[str, str]]:
    """One comparable score per (run, model) and target: what :func:`leaderboard_heatmap` shows.

    R^2 for the continuous targets (loudness and tempo included), accuracy for time_signature,
    and for key the first of :func:`target_scores` (the MIREX score when every run has it, else
    tonic accuracy).

    Parameters
    ----------
    docs : sequence of dict
        The runs of one data set.

    Returns
    -------
    values : pandas.DataFrame
        Index ``(run_id, model)`` (runs oldest first, the baseline first in each run); columns:
        the targets scored in any run (in :data:`~audioreg.targets.TARGETS` order); NaN where
        not scored.
    metric : dict
        Target -> the metric shown (``"r2"``, ``"accuracy"`` or ``"mirex"``).
    """
    present = {t for d in docs for per in d["metrics"].values() for t in per}
    targets = [t for t in TARGETS if t in present] + sorted(present - set(TARGETS))
    metric = {t: ("accuracy" if t == "time_signature" else target_scores("key", docs)[0].column if t == "key"
                  else "r2") for t in targets}
    cells: dict[tuple[str, str], dict[str, float]] = {}
    for t in targets:
        for doc, model, entry in _entries(docs, t):
            cells.setdefault((doc["run_id"], model), {})[t] = _num(entry.get(metric[t]))
    order = []
    for doc in sorted(docs, key=_run_order):
        table = doc["metrics"]
        order += [(doc["run_id"], m) for m in MODEL_ORDER if m in table]
        order += [(doc["run_id"], m) for m in table if m not in MODEL_ORDER]
    if not order:
        return pd.DataFrame(columns=targets, dtype=np.float64), metric
    index = pd.MultiIndex.from_tuples(order, names=["run_id", "model"])
    values = pd.DataFrame([[cells.get(k, {}).get(t, math.nan) for t in targets] for k in order],
                          index=index, columns=targets, dtype=np.float64)
    return values, metric


_METRIC_WORDS = {"r2": "R²", "accuracy": "accuracy", "mirex": "MIREX"}


def leaderboard_heatmap(docs: Sequence[Mapping], *, title: str | None = None) -> Figure:
    """Heatmap of runs x models (rows) by targets (columns), annotated, for one data set.

    The score is :func:`heatmap_values`'s (R^2, or accuracy / MIREX score for the class
    targets: the colour-bar says which); higher is better everywhere. The diverging colormap
    is centred on 0 (R^2 0: no better than the training mean); colours stop at -1 (the colour
    bar's arrow) but the annotations give every value. Baseline rows are labelled in italic
    grey; a line separates runs; blank cells were not scored.

    Parameters
    ----------
    docs : sequence of dict
        The runs of one data set.
    title : str, optional
        Defaults to one saying what is shown.

    Returns
    -------
    fig : matplotlib.figure.Figure
        SVG gid :data:`FIGURE_ID`.
    """
    import seaborn as sns

    values, metric = heatmap_values(docs)
    labels = [f"{run} · {model}" for run, model in values.index]
    columns = [t if metric[t] == "r2" else f"{t} ({_METRIC_WORDS[metric[t]]})" for t in values.columns]
    data = pd.DataFrame(values.to_numpy(), index=labels, columns=columns)
    n_rows, n_cols = data.shape
    width = 2.0 + 0.75 * max(n_cols, 1) + 0.065 * max((len(s) for s in labels), default=10)
    fig = Figure(figsize=(width, 3.0 + 0.34 * n_rows), layout="constrained")
    fig.set_gid(FIGURE_ID)
    ax = fig.add_subplot()
    if data.empty:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "nothing scored", ha="center", va="center")
        return fig
    finite = data.to_numpy()[np.isfinite(data.to_numpy())]
    others = " · ".join(f"{_METRIC_WORDS[metric[t]]} ({t})" for t in values.columns if metric[t] != "r2")
    lines = ["R² (continuous targets)"] if any(metric[t] == "r2" for t in values.columns) else []
    label = " · ".join([*lines, *([others] if others else [])]) + "\nhigher is better; colours stop at -1"
    sns.heatmap(data, ax=ax, annot=True, fmt=".2f", cmap="RdBu", center=0.0, vmin=-1.0, vmax=1.0,
                linewidths=0.5, linecolor="white", annot_kws={"fontsize": 8},
                cbar_kws={"label": label, "extend": "min" if finite.size and finite.min() < -1.0 else "neither",
                          "orientation": "horizontal", "shrink": 0.7, "aspect": 40, "pad": 0.02})
    ax.set_ylabel("run · model")
    ax.tick_params(axis="y", labelrotation=0)
    for text in ax.get_xticklabels():
        text.set(rotation=40, ha="right", rotation_mode="anchor")
    for text, (_, model) in zip(ax.get_yticklabels(), values.index):
        if model == metrics.BASELINE_NAME:
            text.set(fontstyle="italic", color="#666666")
    runs = values.index.get_level_values(0)
    for i in range(1, n_rows):
        if runs[i] != runs[i - 1]:
            ax.axhline(i, color="#222222", linewidth=1.5)
    ax.set_title(title if title is not None else "Each run's models and baseline on this test part (95 % intervals "
                 "in the tables)", fontsize=10)
    return fig


# --------------------------------------------------------------------------------------------
# HTML


def _fmt(value, digits: int = 3) -> str:
    """A number at ``digits`` significant digits, without exponent for everyday magnitudes."""
    if not _is_number(value):
        return "—"
    v = float(value)
    if v == 0:
        return "0"
    if not 1e-4 <= abs(v) < 1e7:
        return f"{v:.{digits - 1}e}"
    v = float(f"{v:.{digits}g}")  # rounded to `digits` significant digits (0.9996 -> 1.0)
    decimals = digits - 1 - math.floor(math.log10(abs(v)))
    return f"{v:.{max(decimals, 0)}f}"


def _interval(lo: float, hi: float) -> str:
    if not (_is_number(lo) and _is_number(hi)):
        return '<span class="ci">[no interval recorded]</span>'
    return f'<span class="ci">[{_fmt(lo)}, {_fmt(hi)}]</span>'


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _run_cell(run_id: str, out_dir: Path) -> str:
    """The run id, linked to ``<run_id>/index.html`` when that page exists beside the output."""
    safe = bool(_SAFE_RUN.fullmatch(run_id)) and run_id not in (".", "..")
    if safe and (out_dir / run_id / "index.html").is_file():
        return f'<a href="{_esc(quote(run_id, safe=""))}/index.html">{_esc(run_id)}</a>'
    return f'<span title="no {_esc(run_id)}/index.html beside this page">{_esc(run_id)}</span>'


def _when(written) -> str:
    return str(written).replace("T", " ", 1) if isinstance(written, str) and written else "not recorded"


def _score_cell(row: Mapping, column: str) -> str:
    v = row[column]
    sort = repr(float(v)) if _is_number(v) else ""
    return f'<td class="num" data-v="{sort}">{_fmt(v)} {_interval(row[f"{column}_lo"], row[f"{column}_hi"])}</td>'


def _model_cell(model: str, baseline: bool) -> str:
    tag = ' <span class="tag">baseline</span>' if baseline else ""
    return f'<td data-v="{_esc(model)}">{_esc(model)}{tag}</td>'


def _table(frame: pd.DataFrame, scores: Sequence[Score], out_dir: Path, *, n_column: str = "n",
           n_label: str = "n (test tracks)", caption: str = "") -> str:
    head = ["run", "model"] + [f"{s.label} [95 % interval] {'↑' if s.higher_is_better else '↓'}" for s in scores]
    head += [n_label, "vs the best row (intervals)"]
    if "vs_baseline" in frame.columns:
        head.append("vs its run's baseline (paired)")
    ths = "".join(f'<th title="click to sort">{_esc(h)}</th>' for h in head)
    body = []
    for _, row in frame.iterrows():
        cells = [f'<td data-v="{_esc(row["run_id"])}">{_run_cell(row["run_id"], out_dir)}</td>',
                 _model_cell(row["model"], bool(row["baseline"]))]
        cells += [_score_cell(row, s.column) for s in scores]
        n = row[n_column]
        cells.append(f'<td class="num" data-v="{float(n)!r}">{n:.0f}</td>' if _is_number(n) else '<td data-v="">—</td>')
        cells.append(f'<td data-v="{_esc(row["from_best"])}">{_esc(row["from_best"])}</td>')
        if "vs_baseline" in frame.columns:
            cells.append(f'<td data-v="{_esc(row["vs_baseline"])}">{_esc(row["vs_baseline"])}</td>')
        cls = ' class="baseline"' if row["baseline"] else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    cap = f"<caption>{caption}</caption>" if caption else ""
    return (f'<table class="sortable">{cap}<thead><tr>{ths}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _runs_table(ds: DataSet, out_dir: Path) -> str:
    settings = differing_settings(ds.runs)
    head = ["run", "written", "models"] + list(settings.columns)
    ths = "".join(f'<th title="click to sort">{_esc(h)}</th>' for h in head)
    body = []
    for i, doc in enumerate(ds.runs):
        run = doc["run_id"]
        models = ", ".join(m for m in MODEL_ORDER if m in doc["metrics"])
        models = ", ".join(filter(None, [models, *[m for m in doc["metrics"] if m not in MODEL_ORDER]]))
        cells = [f'<td data-v="{_esc(run)}">{_run_cell(run, out_dir)}</td>',
                 f'<td data-v="{_esc(doc.get("written") or "")}">{_esc(_when(doc.get("written")))}</td>',
                 f'<td data-v="{_esc(models)}">{_esc(models)}</td>']
        cells += [f'<td data-v="{_esc(v)}"><code>{_esc(v)}</code></td>' for v in settings.iloc[i]]
        body.append(f"<tr>{''.join(cells)}</tr>")
    if len(ds.runs) < 2:
        note = ""
    elif settings.shape[1]:
        note = "<p>Columns after <em>models</em>: the parameters (and package versions) that differ between these runs.</p>"
    else:
        note = "<p>These runs' parameters and package versions are the same (apart from the run id).</p>"
    return (f'{note}<table class="sortable"><thead><tr>{ths}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def _notes(ds: DataSet) -> list[str]:
    notes = []
    if not ds.ranked:
        notes.append("This metrics.json was written before runs recorded which data and test part they scored, so "
                     "it is ranked with no other run (run it again to compare); its models are compared with its "
                     "own mean baseline only.")
    if len(ds.runs) == 1 and ds.ranked:
        notes.append("A single run on this data set: no other run to rank it against; its models are compared "
                     "with its own mean baseline only.")
    n = ds.n_test
    if n is not None and n < uncertainty.MIN_TRACKS:
        notes.append(f"The test part holds {n} tracks (under {uncertainty.MIN_TRACKS}): too small to tell runs apart; "
                     "treat any ordering below as noise.")
    groups = [d["bootstrap"].get("groups") for d in ds.runs if isinstance(d.get("bootstrap"), Mapping)]
    few = [g for g in groups if _is_number(g) and g < uncertainty.MIN_GROUPS]
    if few:
        notes.append(f"The test part holds {int(min(few))} split groups (artists): too few for the 95 % intervals to "
                     f"mean anything (at least {uncertainty.MIN_GROUPS} are needed).")
    tests = {d.get("n_test") for d in ds.runs if _is_number(d.get("n_test"))}
    if len(tests) > 1:
        notes.append(f"These runs report different test sizes ({', '.join(_fmt(t) for t in sorted(tests))}) on the "
                     "same split: some targets were scored on fewer rows; see n.")
    return notes


def _ceiling(ds: DataSet, target: str) -> str:
    for doc in ds.runs:
        ceiling = doc.get("noise_ceiling")
        if isinstance(ceiling, Mapping) and _is_number(ceiling.get(target)):
            kind = "accuracy" if target in metrics.CLASS_TARGETS else "R²"
            return f" Noise ceiling on this test part: {kind} {_fmt(ceiling[target])} (the labels without their noise)."
    return ""


def _section(ds: DataSet, sid: str, out_dir: Path) -> str:
    data = ds.data
    parts = data.get("parts") if isinstance(data.get("parts"), Mapping) else {}
    n = ds.n_test
    facts = [f"{len(ds.runs)} run{'s' if len(ds.runs) != 1 else ''}",
             f"test part: {n} tracks" if n is not None else "test part: size not recorded"]
    if parts:
        facts.append(", ".join(f"{p} {parts[p]}" for p in ("train", "val", "test") if p in parts))
    if data:
        facts.append("the generated sample set" if data.get("set") == "sample" else "your own data")
        facts.append(f"data {data.get('key')} (stored split {data.get('split_key')})")
        if data.get("metadata_path"):
            facts.append(f"metadata {data['metadata_path']}")
    out = [f'<section class="dataset" id="{sid}">',
           f"<h2>{_esc(ds.name)}</h2>",
           f'<p class="facts">{_esc(" · ".join(facts))}</p>']
    out += [f'<p class="note">{_esc(note)}</p>' for note in _notes(ds)]
    out.append("<h3>Runs</h3>")
    out.append(_runs_table(ds, out_dir))
    out.append("<h3>Every target at a glance</h3>")
    fig = leaderboard_heatmap(ds.runs)
    out.append(f'<div class="figure">{plots.page_svg(fig, salt=sid)}</div>')
    out.append("<p>Scores on the test part. Each table ranks every model of every run (each run's mean baseline "
               "and experts included) by its target's first score, best first; click a header to sort by it. "
               "<em>vs the best row</em>: whether the 95 % intervals overlap the best row's (overlap: these "
               "numbers cannot tell them apart; a paired test on the same tracks could tell more). <em>vs its "
               "run's baseline</em>: the run's own paired verdict (group bootstrap of the difference).</p>")
    summary = mean_smse_table(ds.runs)
    if len(summary):
        out.append(f'<h3 id="{sid}-mean">All continuous targets: mean sMSE</h3>')
        out.append(_table(summary, (Score("mean_smse", "mean sMSE", False),), out_dir, n_column="n_targets",
                          n_label="targets scored",
                          caption="Mean standardized MSE (MSE ÷ the training part's variance of each target) over "
                                  "the continuous targets, as each run computed it; lower is better, 1 is the "
                                  "training mean's spread."))
    present = {t for d in ds.runs for per in d["metrics"].values() for t in per}
    for target in [t for t in TARGETS if t in present] + sorted(present - set(TARGETS)):
        frame = leaderboard(ds.runs, target)
        scores = frame.attrs["scores"]
        terms = OWN_TERMS.get(target, "R^2").replace("R^2", "R²")
        caption = (f"{_esc(target)}: {_esc(terms)}. Sorted by {_esc(scores[0].label)}."
                   f"{_esc(_ceiling(ds, target))}")
        out.append(f'<h3 id="{sid}-{_esc(target)}">{_esc(target)}</h3>')
        out.append(_table(frame, scores, out_dir, caption=caption))
    out.append("</section>")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:90em;padding:0 1em;
color:#1a1a1a;line-height:1.4}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:2px solid #444;padding-bottom:.2em}h3{margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
caption{caption-side:top;text-align:left;padding:.3em 0;color:#333}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef1f5;cursor:pointer;user-select:none}th[data-dir=asc]::after{content:" ▲"}
th[data-dir=desc]::after{content:" ▼"}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.ci{color:#555;font-size:.9em}
tr.baseline td{background:#f4f4f4;font-style:italic;color:#444}
.tag{font-style:normal;font-size:.75em;background:#666;color:#fff;border-radius:3px;padding:0 .35em}
.note{background:#fff6e0;border-left:4px solid #e0a000;padding:.4em .8em}
.caveat{background:#eef6ff;border-left:4px solid #3572b0;padding:.4em .8em}
.facts{color:#444}.figure svg{max-width:100%;height:auto}
#filter{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd;z-index:1}
code{font-size:.95em}
"""

_JS = """
document.getElementById('ds-filter').addEventListener('change',function(){var v=this.value;
document.querySelectorAll('section.dataset').forEach(function(s){s.hidden=(v!=='all'&&s.id!==v);});});
document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',function(){
var t=th.closest('table'),b=t.tBodies[0],c=th.cellIndex,d=th.dataset.dir==='desc'?'asc':'desc';
t.querySelectorAll('th').forEach(function(h){delete h.dataset.dir;});th.dataset.dir=d;
var rows=Array.prototype.slice.call(b.rows);rows.sort(function(x,y){var p=x.cells[c].dataset.v,q=y.cells[c].dataset.v;
if(p===''||q===''){return (p==='')-(q==='');}var a=parseFloat(p),z=parseFloat(q),r;
r=(!isNaN(a)&&!isNaN(z))?a-z:p.localeCompare(q);return d==='asc'?r:-r;});
rows.forEach(function(r){b.appendChild(r);});});});
"""


def render_index(docs: Sequence[Mapping], problems: Sequence[tuple[str, str]], out_dir: str | Path, *,
                 source: str = "runs") -> str:
    """The cross-run page's HTML (see :func:`write_cross_run_index`).

    Parameters
    ----------
    docs, problems
        From :func:`load_runs`.
    out_dir : str or Path
        The folder the page goes to: a run links to ``<run_id>/index.html`` when it exists there.
    source : str
        The runs folder, as the page names it.

    Returns
    -------
    page : str
    """
    out_dir = Path(out_dir)
    sets = data_sets(docs)
    ids = [f"ds-{i + 1}" for i in range(len(sets))]
    n_runs = len(docs)
    title = f"audioreg: {n_runs} run{'s' if n_runs != 1 else ''} compared, {len(sets)} data set{'s' if len(sets) != 1 else ''}"
    options = "".join(f'<option value="{sid}">{_esc(ds.name)} ({len(ds.runs)} run{"s" if len(ds.runs) != 1 else ""})'
                      f"</option>" for sid, ds in zip(ids, sets))
    intro = (f"<p>Made {_esc(time.strftime('%Y-%m-%d %H:%M:%S %z'))} from <code>{_esc(source)}/*/metrics.json</code> "
             "(no model re-trained, no audio read). Runs share a ranking only when they scored the same test part "
             "(the same data and stored split); every score comes with its 95 % interval (group bootstrap over the "
             "test part's artists), every model with its run's mean baseline.</p>")
    caveat = ('<p class="caveat">Raw MSE averaged over targets is dominated by tempo (squared BPM dwarfs every other '
              "target's units), so it is not shown: compare targets by R² or standardized MSE, each in its own "
              "terms.</p>")
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_esc(title)}</h1>", intro, caveat,
             (f'<div id="filter"><label>Show <select id="ds-filter"><option value="all">all data sets</option>'
              f"{options}</select></label></div>")]
    if not sets:
        parts.append(f"<p>No <code>{_esc(source)}/*/metrics.json</code> could be read: each "
                     "<code>audioreg run</code> writes one.</p>")
    for sid, ds in zip(ids, sets):
        parts.append(_section(ds, sid, out_dir))
    parts.append('<section id="problems"><h2>Files not read, or read with a note</h2>')
    if problems:
        parts.append("<ul>" + "".join(f"<li><code>{_esc(p)}</code>: {_esc(r)}</li>" for p, r in problems) + "</ul>")
    else:
        parts.append(f"<p>Every <code>{_esc(source)}/*/metrics.json</code> was read.</p>")
    parts.append(f"</section><script>{_JS}</script></body></html>\n")
    return "\n".join(parts)


def write_cross_run_index(runs_dir: str | Path, out_path: str | Path) -> Path:
    """Write the cross-run page (``reports/index.html``) from every ``<runs_dir>/*/metrics.json``.

    Per data set (:func:`data_sets`; a ``<select>`` at the top shows one or all): its name,
    runs and notes (a single run; a test part under :data:`audioreg.judge.uncertainty.MIN_TRACKS` tracks: too small to
    tell runs apart; data not recorded), a table of its runs (link to each run's own report
    when ``<run_id>/index.html`` exists beside ``out_path``, when written, the parameters that
    differ), the heatmap (:func:`leaderboard_heatmap`), the runs' mean sMSE, and one sortable
    table per target (:func:`leaderboard`). Unreadable or malformed files are listed at the end.
    Self-contained: inline CSS, inline SVG and inline JavaScript, no URL. Written atomically.

    Parameters
    ----------
    runs_dir : str or Path
        The runs folder.
    out_path : str or Path
        The page, usually ``reports/index.html``.

    Returns
    -------
    path : Path
        ``out_path``.
    """
    out_path = Path(out_path)
    docs, problems = load_runs(runs_dir)
    page = render_index(docs, problems, out_path.parent, source=str(runs_dir))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return atomic.write_text(out_path, page)
