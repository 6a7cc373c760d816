"""The report writer: the run's metrics document, the notebook pages and the HTML index."""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
from .._pandas import pd

from .. import atomic
from ..errors import one_line
from ..targets import OWN_TERMS, TARGETS
from . import metrics

log = logging.getLogger(__name__)


def _records(df: pd.DataFrame) -> list[dict]:
    df = df.reset_index()
    return [{k: (None if isinstance(v, float) and not np.isfinite(v) else (v.item() if hasattr(v, "item") else v))
             for k, v in row.items()} for row in df.to_dict(orient="records")]


def _with_intervals(nested: dict, ci95: Mapping) -> dict:
    for model, per_target in nested.items():
        for target, values in per_target.items():
            values["ci95"] = {m: v for m, v in ci95.get(model, {}).get(target, {}).items()
                              if values.get(m) is not None}
    return nested


def _summary_records(summary: pd.DataFrame, summary_ci95: Mapping) -> list[dict]:
    records = _records(summary)
    for rec in records:
        rec["mean_smse_ci95"] = summary_ci95.get(rec["model"], {}).get("mean_smse")
    return records


def _part_block(scores: pd.DataFrame, summary: pd.DataFrame, unc: Mapping) -> dict:
    """One evaluated part's metrics with their intervals, summary and judged differences."""
    from . import uncertainty

    return {"metrics": _with_intervals(metrics.to_json_dict(scores), unc["ci95"]),
            "summary": _summary_records(summary, unc["summary_ci95"]),
            "differences": _records(uncertainty.verdicts(unc["differences"], n_groups=unc["n_groups"]))}


def metrics_document(run_id: str, evaluation, *, params: Mapping, model_params: Mapping, **extra) -> dict:
    """What ``metrics.json`` holds: every model x target metric on the test part with its 95 %
    interval (``ci95`` beside the values), the summary over the continuous targets with its
    interval, the paired differences with their verdicts, the verdict in words, the caveat on
    raw MSE, the same on the validation part (``val``, where choices are made), and the
    merged parameters of the run and of each model."""
    ev = evaluation
    unc = ev.uncertainty
    return {"run_id": run_id,
            "denominator": "smse and r2 divide by the training part's variance of each target; averages cover "
                           "the continuous targets only (key and time_signature are scored as classes)",
            "n_test": ev.n_test,
            **_part_block(ev.scores, ev.summary, unc),
            "verdict": ev.verdict,
            "bootstrap": {"groups": unc["n_groups"], "replicates": unc["n_boot"], "level": unc["level"],
                          "resamples": "the test part's split groups (artists)"},
            "caveat": metrics.raw_mse_caveat(ev.scores),
            "noise_ceiling": ev.noise_ceiling,
            "noise_ceiling_note": "the best R^2 (accuracy for key and time_signature) any model can reach on these "
                                  "test rows: that of the labels without their noise (sample set only; null for "
                                  "data without noise_free.csv)",
            "val": {"n": ev.n_val, "noise_ceiling": ev.val_noise_ceiling,
                    **_part_block(ev.val_scores, ev.val_summary, ev.val_uncertainty)},
            **extra, "params": dict(params), "model_params": dict(model_params)}


# --------------------------------------------------------------------------------------------
# the notebook pages

def readable(table: pd.DataFrame, *, digits: int = 3):
    """A table as a notebook page shows it to a reader: the columns that hold no value dropped,
    numbers at ``digits`` significant digits (whole numbers whole, thousands with separators),
    empty cells blank. Returns a pandas ``Styler``: its HTML is what the page keeps.

    Parameters
    ----------
    table : pandas.DataFrame
        Any table (a :func:`audioreg.judge.metrics.compare_models` table, a summary...).
    digits : int
        Significant digits of a non-whole number under 1000.
    """
    shown = table.loc[:, [c for c in table.columns if not table[c].isna().all()]]

    def text(v):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (float, int, np.floating, np.integer)):
            return "" if v is None or (isinstance(v, float) and np.isnan(v)) else v
        v = float(v)
        if not np.isfinite(v):
            return "" if np.isnan(v) else str(v)
        if v.is_integer() or abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"

    return shown.style.format(text)


def render_html(notebook: Path, out: Path, *, run_id: str | None = None, index: str = "index.html") -> Path:
    """Static HTML of an executed notebook, code cells hidden (nbconvert ``--no-input``), titled
    ``"<notebook> · run <run_id>"`` and opening with a link back to the run's ``index``
    (:func:`page_chrome`). ``run_id`` defaults to the one papermill injected into the notebook.

    The page is self-contained: nbconvert's scripts from a CDN (require.js, MathJax, mermaid) are
    left out, and so are widget outputs (progress bars), which need a widget manager from the
    web to show anything."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = _static(nbformat.read(str(notebook), as_version=4))
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            require_js_url="", mathjax_url="", mermaid_js_url="", mermaid_layout_elk_js_url="")
    body, _ = exporter.from_notebook_node(nb)
    body = _OFF_MACHINE_SCRIPT.sub("", body)
    if run_id is None:
        run_id = (nb.metadata.get("papermill", {}).get("parameters", {}) or {}).get("run_id")
    return atomic.write_text(out, page_chrome(body, name=Path(out).stem, run_id=run_id, index=index))


#: A ``<script>`` loading from another machine (or from an empty address, which reloads the page).
_OFF_MACHINE_SCRIPT = re.compile(r"""<script\b[^>]*\bsrc=["'](?:(?:https?:)?//[^"']*)?["'][^>]*>\s*</script>""", re.I)
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _static(nb):
    """``nb`` without what needs the web to show: widget state and widget outputs."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if _WIDGET_VIEW not in o.get("data", {})]
    return nb


#: The id of the back link :func:`page_chrome` puts at the top of every notebook page.
BACK_LINK_ID = "audioreg-back-to-index"


def page_chrome(page: str, *, name: str, run_id: str | None, index: str = "index.html") -> str:
    """A notebook page's HTML with a real title (``"04_rf · run demo"``) and, first in its
    body, a link back to the run's index page."""
    title = html.escape(f"{name} · run {run_id}" if run_id else name)
    if re.search(r"<title>.*?</title>", page, flags=re.S):
        page = re.sub(r"<title>.*?</title>", lambda _: f"<title>{title}</title>", page, count=1, flags=re.S)
    elif re.search(r"<head[^>]*>", page):
        page = re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + f"<title>{title}</title>", page, count=1)
    back = (f'<nav id="{BACK_LINK_ID}" style="font-family:sans-serif; padding:0.4em 1em; background:#f0f0f0; '
            f'border-bottom:1px solid #ccc">&larr; <a href="{html.escape(index)}">'
            f'{"run " + html.escape(str(run_id)) if run_id else "the run"}: report index</a> · {html.escape(name)}</nav>')
    if re.search(r"<body[^>]*>", page):
        return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + back, page, count=1)
    return back + page


# --------------------------------------------------------------------------------------------
# what the index is built from

#: The notebook that writes each model's predictions (and, for the GRU, its training history).
MODEL_STAGES = {"random forest": "04_rf", "GRU": "05_gru", "dsp": "06_error_analysis"}
#: Worst-predicted test tracks listed per model.
WORST_TRACKS = 8
#: Genres shown one by one; the rarer ones are pooled.
MAX_CATEGORIES = 12


@dataclass
class ReportInputs:
    """A run's files, loaded (:func:`audioreg.store.report_inputs`), for :func:`write_index`.

    ``metrics``: ``reports/<run_id>/metrics.json`` (None when this run's 06 has not made it);
    ``predictions``: each model's ``predictions.csv`` (every part saved), by model name;
    ``histories``: training histories by model name; ``split``: the split table the scores were
    measured on (the columns the report uses; None when it was not found), ``split_note``: how
    it was found; ``notes``: what could not be read, and why."""

    metrics: dict | None = None
    predictions: dict = field(default_factory=dict)
    histories: dict = field(default_factory=dict)
    split: pd.DataFrame | None = None
    split_note: str = ""
    notes: list = field(default_factory=list)


def small_part_caveat(doc: Mapping) -> str | None:
    """The caveat a test part too small to say anything needs (fewer than
    :data:`audioreg.judge.uncertainty.MIN_TRACKS` tracks, or fewer split groups than
    :data:`audioreg.judge.uncertainty.MIN_GROUPS`); None when it is large enough."""
    from .uncertainty import MIN_GROUPS, MIN_TRACKS

    n = doc.get("n_test")
    groups = (doc.get("bootstrap") or {}).get("groups")
    why = []
    if isinstance(n, (int, float)) and n < MIN_TRACKS:
        why.append(f"{int(n)} test tracks (at least {MIN_TRACKS} are needed)")
    if isinstance(groups, (int, float)) and groups < MIN_GROUPS:
        why.append(f"{int(groups)} split groups (artists; at least {MIN_GROUPS} are needed)")
    if not why:
        return None
    return ("The test part is too small to say anything: " + " and ".join(why) + ". Its scores and intervals "
            "show that the chain runs, not what the models learn; draw no conclusion from them.")


def _baseline_differences(doc: Mapping) -> dict[tuple[str, str], Mapping]:
    """Each model's paired difference with the baseline, by (model, target)."""
    return {(d.get("model"), d.get("target")): d for d in doc.get("differences") or ()
            if d.get("versus") == metrics.BASELINE_NAME}


#: How each metric of a difference (or of the figure) is named on the page.
_METRIC_NAMES = {"smse": "sMSE", "r2": "R²", "mirex": "MIREX", "accuracy": "accuracy", "mean_smse": "mean sMSE"}


def learnability_table(doc: Mapping) -> pd.DataFrame:
    """Per target and model, the score the verdict rests on with its 95 % interval and the
    verdict of the model's paired difference with the baseline: R^2 (= 1 - sMSE, so its
    verdict is that of sMSE) for continuous targets, and for key and time_signature the metric
    their difference was judged on (MIREX, else tonic accuracy; accuracy). Columns
    ``target, model, metric, score, lo, hi, verdict`` (:func:`audioreg.judge.plots.learnability`)."""
    per_model = doc.get("metrics") or {}
    diffs = _baseline_differences(doc)
    rows = []
    for target in TARGETS:
        judged = {d.get("metric") for (m, t), d in diffs.items() if t == target}
        if target in metrics.CLASS_TARGETS:
            metric = next((m for m in ("mirex", "accuracy") if m in judged), None)
            if metric is None:
                metric = "mirex" if any((v.get(target) or {}).get("mirex") is not None
                                        for v in per_model.values()) else "accuracy"
        else:
            metric = "r2"
        for model, values in per_model.items():
            v = values.get(target)
            if not v:
                continue
            lo, hi = (v.get("ci95") or {}).get(metric) or (None, None)
            d = diffs.get((model, target), {})
            rows.append({"target": target, "model": model, "metric": _METRIC_NAMES.get(metric, metric),
                         "score": _float(v.get(metric)), "lo": _float(lo), "hi": _float(hi),
                         "verdict": None if model == metrics.BASELINE_NAME else d.get("verdict", "not scored")})
    return pd.DataFrame(rows, columns=["target", "model", "metric", "score", "lo", "hi", "verdict"])


def confusion(true, pred, classes: Sequence, *, names: Sequence[str] | None = None,
              none: str | None = None) -> pd.DataFrame:
    """Counts of tracks per true class (rows) and predicted class (columns).

    ``true`` and ``pred`` hold class values (NaN true labels are left out). ``classes`` are
    the rows and columns in order, shown as ``names``; a predicted value outside them (NaN:
    no prediction) counts in a column ``none`` when given, else is an error."""
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if true.shape != pred.shape:
        raise ValueError(f"{true.size} true labels but {pred.size} predictions")
    names = [str(c) for c in classes] if names is None else list(names)
    keep = np.isfinite(true)
    true, pred = true[keep], pred[keep]
    index = {float(c): i for i, c in enumerate(classes)}
    columns = names + ([none] if none is not None else [])
    counts = np.zeros((len(names), len(columns)), dtype=int)
    for t, p in zip(true, pred):
        if float(t) not in index:
            raise ValueError(f"true class {t:g} is not one of {list(classes)}")
        j = index.get(float(p)) if np.isfinite(p) else None
        if j is None:
            if none is None:
                raise ValueError(f"predicted class {p:g} is not one of {list(classes)}")
            j = len(names)
        counts[index[float(t)], j] += 1
    table = pd.DataFrame(counts, index=pd.Index(names, name="true"), columns=pd.Index(columns, name="predicted"))
    if none is not None and not table[none].any():
        table = table.drop(columns=none)
    return table


def tempo_error_table(classes: Mapping[str, np.ndarray], true: Mapping[str, np.ndarray],
                      pred: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per model: tracks in each :func:`audioreg.judge.metrics.tempo_error_classes` class, Acc1
    and Acc2 (as shares), and the mean absolute error in BPM of the tracks in none of them."""
    rows = []
    for model, cls in classes.items():
        cls = np.asarray(cls, dtype=object)
        scored = cls != ""
        n = int(scored.sum())
        row = {"model": model, "tracks": n}
        for name in ("correct", *metrics.TEMPO_MULTIPLES, "other"):
            row[name] = int((cls == name).sum())
        rows.append({**row, "acc1": row["correct"] / n if n else math.nan,
                     "acc2": (n - row["other"]) / n if n else math.nan,
                     "other_mae_bpm": float(np.mean(np.abs(np.asarray(pred[model])[cls == "other"]
                                                           - np.asarray(true[model])[cls == "other"])))
                     if row["other"] else math.nan})
    return pd.DataFrame(rows).set_index("model")


#: Edges and names of the tempo ranges errors are broken down by (BPM, left-closed).
TEMPO_RANGES = ((0.0, 90.0, "< 90 BPM"), (90.0, 110.0, "90-110 BPM"), (110.0, 130.0, "110-130 BPM"),
                (130.0, 150.0, "130-150 BPM"), (150.0, math.inf, ">= 150 BPM"))

#: The factors errors are broken down by: the page's name and the split-table column it comes from.
FACTORS = (("genre", "track_genre"), ("file format", "path"), ("sample rate", "sample_rate"),
           ("channels", "channels"), ("tempo range", "tempo"))


def track_factors(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The category of each track (rows of the split table) for each factor of :data:`FACTORS`
    the table can give: genre (the rarer ones pooled as "other genres"), file format (the file
    name's extension: the table records no codec), sample rate, channel count and tempo range
    (of the true tempo). Returns the categories (ordered categoricals) and, for each factor
    the table cannot give, why."""
    out, missing = {}, []
    for factor, column in FACTORS:
        if column not in rows.columns or rows[column].isna().all():
            missing.append(f"{factor}: the split table has no {column!r} values")
            continue
        col = rows[column]
        if factor == "genre":
            values = col.fillna("(no genre)").astype(str)
            counts = values.value_counts()
            keep = list(counts.index[:MAX_CATEGORIES - 1]) if len(counts) > MAX_CATEGORIES else list(counts.index)
            values = values.where(values.isin(keep), "other genres")
            order = keep + (["other genres"] if len(counts) > MAX_CATEGORIES else [])
        elif factor == "file format":
            values = col.map(lambda p: (Path(str(p)).suffix.lstrip(".").upper() or "(none)")
                             if isinstance(p, str) and p else "(no file)")
            order = sorted(set(values))
        elif factor == "sample rate":
            num = pd.to_numeric(col, errors="coerce")
            order = [f"{int(v)} Hz" for v in sorted(set(num.dropna()))] + (["(unknown)"] if num.isna().any() else [])
            values = num.map(lambda v: f"{int(v)} Hz" if v == v else "(unknown)")
        elif factor == "channels":
            num = pd.to_numeric(col, errors="coerce")
            name = {1: "mono", 2: "stereo"}
            order = [name.get(int(v), f"{int(v)} channels") for v in sorted(set(num.dropna()))] + (
                ["(unknown)"] if num.isna().any() else [])
            values = num.map(lambda v: name.get(int(v), f"{int(v)} channels") if v == v else "(unknown)")
        else:
            num = pd.to_numeric(col, errors="coerce")
            values = pd.Series("(no tempo label)", index=rows.index, dtype=object)
            for low, high, name in TEMPO_RANGES:
                values[(num >= low) & (num < high)] = name
            order = [name for *_, name in TEMPO_RANGES] + ["(no tempo label)"]
        order = [c for c in order if (values == c).any()]
        out[factor] = pd.Categorical(values, categories=order, ordered=True)
    return pd.DataFrame(out, index=rows.index), missing


def group_mean_interval(values, groups, *, n_boot: int = 1000, random_state: int = 0) -> tuple[float, float, float]:
    """The mean of ``values`` (NaN left out) and its 95 % interval by a bootstrap that draws
    whole ``groups`` (artists) with replacement, as :mod:`audioreg.judge.uncertainty` does
    for every score; no interval (NaN) with fewer than 2 groups."""
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups)
    ok = np.isfinite(values)
    values, groups = values[ok], groups[ok]
    if not values.size:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    codes, uniques = pd.factorize(pd.Series(list(groups)))
    n_groups = len(uniques)
    if n_groups < 2:
        return mean, math.nan, math.nan
    sums = np.bincount(codes, weights=values, minlength=n_groups)
    counts = np.bincount(codes, minlength=n_groups).astype(np.float64)
    rng = np.random.default_rng(random_state)
    reps = []
    for start in range(0, n_boot, 250):  # in chunks: a large test part never holds n_boot x groups at once
        draws = rng.integers(0, n_groups, size=(min(250, n_boot - start), n_groups))
        reps.append(sums[draws].sum(axis=1) / counts[draws].sum(axis=1))
    lo, hi = np.quantile(np.concatenate(reps), [0.025, 0.975])
    return mean, float(lo), float(hi)


def error_breakdown(errors: pd.DataFrame, factors: pd.DataFrame, groups) -> pd.DataFrame:
    """Mean per-track error of each model (columns of ``errors``) per category of each factor
    (columns of ``factors``, same rows), with its 95 % interval over ``groups``. Columns
    ``factor, category, model, mean, lo, hi, n, groups`` (:func:`audioreg.judge.plots.error_breakdown`)."""
    groups = np.asarray(groups)
    rows = []
    for factor in factors.columns:
        cats = factors[factor]
        for category in cats.cat.categories:
            inside = (cats == category).to_numpy()
            n_groups = len(set(groups[inside].tolist()))
            for model in errors.columns:
                mean, lo, hi = group_mean_interval(errors[model].to_numpy()[inside], groups[inside])
                rows.append({"factor": factor, "category": str(category), "model": model, "mean": mean, "lo": lo,
                             "hi": hi, "n": int(inside.sum()), "groups": n_groups})
    return pd.DataFrame(rows, columns=["factor", "category", "model", "mean", "lo", "hi", "n", "groups"])


def breakdown_reading(table: pd.DataFrame) -> list[str]:
    """What the data says, per factor: a category is named as where a model breaks only when
    its 95 % interval lies wholly above another category's, both holding at least
    :data:`audioreg.judge.uncertainty.MIN_GROUPS` split groups; otherwise it says that the
    data cannot single one out."""
    from .uncertainty import MIN_GROUPS

    lines = []
    for factor, part in table.groupby("factor", sort=False):
        judged = part[(part["groups"] >= MIN_GROUPS) & part["lo"].notna()]
        if judged["category"].nunique() < 2:
            lines.append(f"{factor}: fewer than two categories hold {MIN_GROUPS} split groups (artists), so the data "
                         "cannot single out a category for any model.")
            continue
        found, level = [], []
        for model, rows in judged.groupby("model", sort=False):
            worst, best = rows.loc[rows["mean"].idxmax()], rows.loc[rows["mean"].idxmin()]
            if worst["lo"] > best["hi"]:
                found.append(f"{model} is worse on {worst['category']} (mean {worst['mean']:.2f}, 95 % CI "
                             f"{worst['lo']:.2f} to {worst['hi']:.2f}, {worst['n']} tracks) than on "
                             f"{best['category']} ({best['mean']:.2f}, {best['lo']:.2f} to {best['hi']:.2f})")
            else:
                level.append(model)
        text = f"{factor}: " + "; ".join(found)
        if level:
            text += ("; " if found else "") + f"no category stands out for {', '.join(level)} (the 95 % intervals of " \
                "the best and the worst category overlap)"
        lines.append(text + ".")
    return lines


# --------------------------------------------------------------------------------------------
# the index page

def write_index(report_dir: Path, run_id: str, params: Mapping, stages: list[Mapping],
                run: Mapping | None = None, inputs: ReportInputs | None = None) -> Path:
    """``index.html``: how the run ended, what it shows, and the pages it links to.

    In order: a banner when the run did not end well (where and why); the verdict in words and
    one figure of every model's score per target with its 95 % interval beside the baseline's
    and the noise ceiling, each model x target marked learnable, not shown or worse (with a
    caveat when the test part is too small to say anything); the per-target table in each
    target's own terms with intervals; the averages over the continuous targets; a link to
    every notebook page with when it was made (and whether it is stale, or an earlier run's);
    training curves; predicted against true values; confusion matrices of key, mode and
    time signature; tempo errors split into octave errors and the rest; the expert (dsp) row;
    where each model breaks (by genre, file format, sample rate, channels and tempo range) and
    its worst-predicted test tracks, with a link to listen; the parameters, the data and the
    package versions.

    ``stages`` (in chain order): ``name``; ``page`` (a Path, or None when there is none);
    ``status``: done, skipped (the data could not support it), failed or stopped; ``reason``;
    ``at`` (when); ``this_run`` (made by this run, else by an earlier run of the run id);
    ``stale`` (why its results no longer hold, or None); ``notes`` (more words). ``run``: the run's
    ``outcome`` (ok, failed, stopped, running), its ``stage`` and ``reason``. ``inputs``: the
    run's files (:func:`audioreg.store.report_inputs`); without them, ``metrics.json`` in
    ``report_dir`` alone, which the runner leaves there only when this run's 06 made it.
    Without a current ``metrics.json``, a model's predictions are shown only when the stage
    that wrote them finished and is not stale. Every section is built from what exists; one
    that cannot be built says why.
    """
    report_dir = Path(report_dir)
    if inputs is None:
        inputs = ReportInputs(metrics=_read_metrics(report_dir))
    run = dict(run or {})
    made = {s["name"]: s for s in stages}
    doc = inputs.metrics if isinstance(inputs.metrics, Mapping) else None
    page = _Page(report_dir)
    caveat = small_part_caveat(doc) if doc else None
    notes = list(inputs.notes)  # this page's: the inputs are left as they were given
    usable, provenance = _usable_predictions(inputs, made, doc is not None, notes)
    try:
        test = _test_part(usable)
    except (KeyError, ValueError, TypeError) as exc:  # predictions not as 04-06 write them: said, not raised
        notes.append(f"the saved predictions could not be aligned: {one_line(exc)}")
        test = None

    page.section("verdict", "Verdict", lambda: _verdict_section(page, doc, made, caveat))
    if doc:
        page.section("targets", "Per target, in its own terms (test part)", lambda: _target_table(doc, caveat))
        page.section("summary", "Averages over the continuous targets (test part)",
                     lambda: _summary_section(doc, made, caveat))
    page.raw(_pages_section(stages))
    page.section("training", "Training curves", lambda: _training_section(page, inputs, made, doc))
    if test is not None:
        page.section("pred-vs-true", "Predicted against true values (test part)",
                     lambda: _pred_vs_true_section(page, test, provenance))
        page.section("confusion", "Confusion matrices: key, mode, time signature (test part)",
                     lambda: _confusion_section(page, test, inputs.split))
        page.section("tempo", "Tempo errors: octave errors and the rest (test part)",
                     lambda: _tempo_section(page, test, inputs.split))
    if doc and "dsp" in (doc.get("metrics") or {}):
        page.section("experts", "The expert estimators (dsp)", lambda: _experts_section(doc))
    if test is not None:
        page.section("breaks", "Where each model breaks (test part)",
                     lambda: _breaks_section(page, test, inputs, report_dir))
    elif usable or inputs.predictions:
        page.raw('<section id="breaks"><h2>Where each model breaks</h2><p class="note">No current test-part '
                 'predictions to break down.</p></section>')
    page.section("params", "Parameters", lambda: _params_section(doc, params))
    page.section("data", "Data and package versions", lambda: _data_section(doc, inputs))
    if notes:
        page.raw('<section id="notes"><h2>What could not be read</h2><ul class="notes">'
                 + "".join(f'<li class="note">{html.escape(n)}</li>' for n in notes) + "</ul></section>")
    subtitle = []
    if doc and isinstance(doc.get("data"), Mapping) and doc["data"].get("name"):
        subtitle.append(f"data: {html.escape(str(doc['data']['name']))}")
    if doc and doc.get("written"):
        subtitle.append(f"scores written {html.escape(str(doc['written']))}")
    subtitle.append(f"this page made {dt.datetime.now().isoformat(timespec='seconds')}")
    text = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>audioreg run {html.escape(run_id)}</title><style>{_CSS}</style></head>
<body><h1>audioreg run {html.escape(run_id)}</h1>
<p class="sub">{" · ".join(subtitle)}</p>
{_banner(run)}
{page.html()}
</body></html>"""
    return atomic.write_text(report_dir / "index.html", text)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1250px;margin:0 auto;
 padding:0.5em 2em 3em;color:#222;line-height:1.45}
h1{margin-bottom:0.1em} h2{border-bottom:2px solid #ddd;padding-bottom:0.15em;margin-top:1.6em}
p.sub,.note{color:#555} p.sub{margin-top:0}
table{border-collapse:collapse;margin:0.5em 0 1em;font-size:0.88em}
th,td{border:1px solid #ccc;padding:3px 8px;vertical-align:top;text-align:left}
th{background:#eef1f4} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.baseline td{background:#f5f5f5;color:#444;font-style:italic} td.target{font-weight:600;background:#fafafa}
span.tag{font-size:0.8em;background:#ddd;border-radius:3px;padding:0 4px;font-style:normal}
.caveat{border:3px solid #e65100;background:#fff3e0;padding:0.4em 1em;margin:0.6em 0}
sup.caveat{border:none;background:none;padding:0;color:#e65100;font-weight:bold}
.verdict-better{color:#1b5e20;font-weight:600} .verdict-worse{color:#b00020;font-weight:600}
figure{margin:0.6em 0} figure svg{max-width:100%;height:auto} figcaption{color:#555;font-size:0.9em}
ul.verdict{padding-left:1.4em} details{margin:0.5em 0} summary{cursor:pointer;color:#1a4d8f}
"""


class _Page:
    """The index's sections, in order; a section that cannot be built says why instead."""

    def __init__(self, report_dir: Path):
        self.report_dir = report_dir
        self.parts: list[str] = []
        self.n_figures = 0

    def raw(self, text: str) -> None:
        self.parts.append(text)

    def section(self, anchor: str, title: str, build) -> None:
        try:
            body = build()
        except Exception as exc:  # one broken section must not cost the run its index: say why, go on
            log.warning("index section %r could not be built", title, exc_info=True)
            body = f'<p class="note">This section could not be built: {html.escape(one_line(exc))}</p>'
        if body:
            self.parts.append(f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{body}\n</section>')

    def figure(self, fig, caption: str = "") -> str:
        """The figure as inline SVG (:func:`audioreg.judge.plots.page_svg`: ids unique on the page)."""
        from . import plots

        self.n_figures += 1
        svg = plots.page_svg(fig, salt=f"{fig.get_gid()}-{self.n_figures}")
        return (f"<figure>{svg}" + (f"<figcaption>{caption}</figcaption>" if caption else "") + "</figure>")

    def html(self) -> str:
        return "\n".join(self.parts)


def _read_metrics(report_dir: Path) -> dict | None:
    path = report_dir / "metrics.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _float(v) -> float:
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _markdown(text: str) -> str:
    """The verdict's Markdown (paragraphs, ``- `` items, ``**bold**``, ``code``) as HTML."""
    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    out, items = [], []
    for line in str(text).splitlines() + [""]:
        stripped = line.strip()
        if stripped.startswith(("- ", "* ")):
            items.append(f'<li class="verdict">{inline(stripped[2:])}</li>')
            continue
        if items:
            out.append('<ul class="verdict">' + "".join(items) + "</ul>")
            items = []
        if stripped:
            out.append(f"<p>{inline(stripped)}</p>")
    return "\n".join(out)


_SPANNED = object()


def _table(headers: Sequence[str], rows: Sequence[Sequence], *, classes: Sequence[str] | None = None,
           numeric: Sequence[int] = ()) -> str:
    """An HTML table of ready HTML cells; a cell is a str, ``(html, rowspan)``, or
    :data:`_SPANNED` (covered by a rowspan above). A column empty in every row is left out."""
    def text(cell):
        return cell[0] if isinstance(cell, tuple) else cell

    keep = [j for j in range(len(headers))
            if any(c is not _SPANNED and text(c) not in (None, "") for c in (r[j] for r in rows))]
    head = "".join(f"<th>{headers[j]}</th>" for j in keep)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j in keep:
            cell = row[j]
            if cell is _SPANNED:
                continue
            span = f' rowspan="{cell[1]}"' if isinstance(cell, tuple) and cell[1] > 1 else ""
            klass = ' class="num"' if j in numeric else (' class="target"' if span else "")
            cells.append(f"<td{klass}{span}>{'' if text(cell) is None else text(cell)}</td>")
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _dagger(caveat: str | None) -> str:
    return '<sup class="caveat" title="test part too small: see the caveat">&dagger;</sup>' if caveat else ""


def _caveat_box(caveat: str | None) -> str:
    return f'<div class="caveat" id="audioreg-small-test-part"><b>Caveat.</b> {html.escape(caveat)}</div>' if caveat else ""


# -- the verdict ------------------------------------------------------------------------------

def _verdict_section(page: _Page, doc: Mapping | None, made: Mapping, caveat: str | None) -> str:
    if doc is None:
        if "06_error_analysis" in made:
            return ("<p><b>No current summary</b>: this run did not end 06_error_analysis; run it again for "
                    "scores.</p>")
        return "<p><b>No scores yet</b>: 06_error_analysis has not run for this run id.</p>"
    when = made.get("06_error_analysis", {}).get("at")
    parts = [_caveat_box(caveat)]
    if doc.get("verdict"):
        parts.append(f'<div id="audioreg-verdict">{_markdown(doc["verdict"])}</div>')
    else:
        parts.append('<p class="note">metrics.json holds no verdict.</p>')
    boot = doc.get("bootstrap") or {}
    if boot:
        parts.append(f'<p class="note">Scores on the test part ({doc.get("n_test", "?")} tracks); every interval is '
                     f'a {100 * float(boot.get("level", 0.95)):.0f} % bootstrap interval over its {boot.get("groups", "?")} '
                     f'split groups ({boot.get("replicates", "?")} replicates: {html.escape(str(boot.get("resamples", "")))}).'
                     + (f" From 06_error_analysis, made {html.escape(str(when))}." if when else "") + "</p>")
    elif when:
        parts.append(f'<p class="note">From 06_error_analysis, made {html.escape(str(when))}.</p>')
    table = learnability_table(doc)
    if table["score"].notna().any():
        from . import plots

        ceiling = doc.get("noise_ceiling") if isinstance(doc.get("noise_ceiling"), Mapping) else None
        note = ("the red dotted tick is the noise ceiling: the score of the labels without their noise, the best "
                "any model can reach on these rows (sample set only; for key it is a tonic accuracy, not a MIREX "
                "score, so it is not drawn there)" if ceiling else "no noise ceiling: the data has no noise-free labels")
        fig = plots.learnability(table, ceiling={t: v for t, v in (ceiling or {}).items() if t != "key"},
                                 caveat="Caveat: the test part is too small to say anything" if caveat else None)
        parts.append(page.figure(fig, "Each model's score per target with its 95 % interval (whisker) beside the "
                                      "mean baseline's (black diamond); a filled circle: the interval of its gain over "
                                      "the baseline lies above 0 (learnable); open: it covers 0 (the data cannot tell it "
                                      "from the baseline); a cross: worse. The verdict is that of the paired difference "
                                      f"with the baseline in metrics.json. Off-scale values are written at the left edge; "
                                      f"{note}."))
    return "\n".join(p for p in parts if p)


# -- the per-target table ----------------------------------------------------------------------

def _metric_specs(target: str) -> list[tuple[str, str, int, str, bool]]:
    """(metric, name, decimals, unit, percent) of each number a target is judged by."""
    if target == "tempo":
        return [("mae", "MAE", 1, " BPM", False), ("acc1", "Acc1", 0, " %", True), ("acc2", "Acc2", 0, " %", True),
                ("r2", "R²", 2, "", False)]
    if target == "loudness":
        return [("mae", "MAE", 1, " dB", False), ("r2", "R²", 2, "", False)]
    if target == "key":
        return [("accuracy", "tonic", 0, " %", True), ("mirex", "MIREX", 2, "", False),
                ("key_mode_accuracy", "key+mode", 0, " %", True)]
    if target == "time_signature":
        return [("accuracy", "accuracy", 0, " %", True)]
    return [("r2", "R²", 2, "", False), ("mae", "MAE", 3, "", False)]


def _number(value, decimals: int, percent: bool) -> str:
    return f"{(100 * value if percent else value):.{decimals}f}"


def _own_terms_cell(target: str, values: Mapping, caveat: str | None) -> str:
    ci = values.get("ci95") or {}
    shown = []
    for metric, name, decimals, unit, percent in _metric_specs(target):
        value = values.get(metric)
        if not _finite(value):
            continue
        lo, hi = ci.get(metric) or (None, None)
        interval = (f" [{_number(lo, decimals, percent)}, {_number(hi, decimals, percent)}]"
                    if _finite(lo) and _finite(hi) else " (no interval)")
        shown.append(f"{name} {_number(value, decimals, percent)}{interval}{unit}")
    own = html.escape(str(values.get("own_terms") or "").replace("R^2", "R²"))
    numbers = html.escape(" · ".join(shown))
    return f"{own}{_dagger(caveat)}" + (f"<br><small>with 95 % intervals: {numbers}</small>" if numbers else "")


def _difference_text(d: Mapping | None) -> str:
    if not d:
        return ""
    verdict = str(d.get("verdict", ""))
    words = {"better": "learnable", "no difference shown": "not shown", "worse": "worse",
             "too few groups": "not judged (too few split groups)", "not scored": "not scored"}.get(verdict, verdict)
    klass = {"better": "verdict-better", "worse": "verdict-worse"}.get(verdict, "")
    metric = str(d.get("metric", ""))
    diff, (lo, hi) = d.get("difference"), (d.get("ci95") or (None, None))
    if metric == "accuracy":
        gain = (f"accuracy gain {100 * diff:+.0f} pp" + (f" [{100 * lo:+.0f}, {100 * hi:+.0f}]"
                                                         if _finite(lo) and _finite(hi) else "")) if _finite(diff) else ""
    else:
        what = {"smse": "sMSE reduction", "mirex": "MIREX gain", "mean_smse": "mean sMSE reduction"}.get(metric, metric)
        gain = (f"{what} {diff:+.3f}" + (f" [{lo:+.3f}, {hi:+.3f}]" if _finite(lo) and _finite(hi) else "")
                ) if _finite(diff) else ""
    return f'<span class="{klass}">{html.escape(words)}</span>' + (f"<br><small>{html.escape(gain)}</small>" if gain else "")


def _target_table(doc: Mapping, caveat: str | None) -> str:
    per_model = doc.get("metrics") or {}
    if not per_model:
        return '<p class="note">metrics.json holds no per-target scores.</p>'
    diffs = _baseline_differences(doc)
    ceiling = doc.get("noise_ceiling") if isinstance(doc.get("noise_ceiling"), Mapping) else {}
    rows, classes = [], []
    for target in TARGETS:
        models = [m for m, v in per_model.items() if v.get(target)]
        for k, model in enumerate(models):
            values = per_model[model][target]
            base = model == metrics.BASELINE_NAME
            c = ceiling.get(target)
            ceil = ("" if not _finite(c) else f"{100 * c:.0f} % {'tonic accuracy' if target == 'key' else 'accuracy'}"
                    if target in metrics.CLASS_TARGETS else f"R² {c:.2f}")
            n = values.get("n")
            rows.append([
                (f"{html.escape(target)}<br><small>{html.escape(OWN_TERMS.get(target, '').replace('R^2', 'R²'))}"
                 "</small>", len(models))
                if k == 0 else _SPANNED,
                html.escape(model) + (' <span class="tag">baseline</span>' if base else ""),
                _own_terms_cell(target, values, caveat),
                "the reference" if base
                else _difference_text(diffs.get((model, target))) + _dagger(caveat),
                f"{int(n)}" if _finite(n) else "",
                (ceil, len(models)) if k == 0 else _SPANNED,
            ])
            classes.append("baseline" if base else "")
    headers = ["target", "model", "in its own terms (95 % intervals in brackets)",
               "against the baseline (paired difference, 95 % interval)", "test tracks",
               "noise ceiling (labels without their noise)"]
    intro = ('<p class="note">Each target in its own terms: tempo by MAE in BPM with Acc1 and Acc2, loudness by '
             'MAE in dB, key by tonic accuracy and the MIREX score, time signature by accuracy, R² for the rest. '
             'The verdict against the baseline is judged on sMSE (R² = 1 - sMSE) for continuous targets, on MIREX '
             '(or tonic accuracy) for key and on accuracy for time signature; "learnable": its 95 % interval lies '
             'above 0; "not shown": it covers 0.</p>')
    return _caveat_box(caveat) + intro + _table(headers, rows, classes=classes, numeric=(4,))


def _summary_section(doc: Mapping, made: Mapping, caveat: str | None) -> str:
    rows = doc.get("summary") or []
    if not rows:
        return ""
    names = {"model": "model", "mean_smse": "mean sMSE (lower is better)", "mean_raw_mse": "mean raw MSE (mixed units)",
             "tempo_share_of_raw_mse": "tempo's share of the raw MSE", "n_targets": "targets scored"}
    cols = [c for c in dict.fromkeys(k for r in rows for k in r) if c != "mean_smse_ci95"]
    diffs = _baseline_differences(doc)
    out = []
    for r in rows:
        base = r.get("model") == metrics.BASELINE_NAME
        d = diffs.get((r.get("model"), "mean"))
        cells = []
        for c in cols:
            v = r.get(c)
            if c == "mean_smse" and _finite(v):
                ci = r.get("mean_smse_ci95") or (None, None)
                cells.append(f"{v:.4g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if _finite(ci[0]) and _finite(ci[1]) else "")
                             + _dagger(caveat))
            elif c == "tempo_share_of_raw_mse" and _finite(v):
                cells.append(f"{100 * v:.1f} %")
            else:
                cells.append(_fmt(v) if v is not None else "")
        out.append(cells + ["the reference" if base else (_difference_text(d) + _dagger(caveat) if d else "")])
    classes = ["baseline" if r.get("model") == metrics.BASELINE_NAME else "" for r in rows]
    when = made.get("06_error_analysis", {}).get("at")
    text = (f'<p class="note">From 06_error_analysis, made {html.escape(str(when))}. ' if when else '<p class="note">')
    text += ("Averages cover the continuous targets only; sMSE divides by the training part's variance "
             "(1 = the training mean's error).</p>")
    text += _table([*(names.get(c, html.escape(str(c))) for c in cols), "against the baseline (mean sMSE)"], out,
                   classes=classes, numeric=tuple(range(1, len(cols))))
    if doc.get("caveat"):
        text += f'<p class="note">{html.escape(str(doc["caveat"]))}</p>'
    return text


# -- notebook pages ----------------------------------------------------------------------------

def _pages_section(stages: Sequence[Mapping]) -> str:
    items = "\n".join(_item(s) for s in stages)
    return (f'<section id="pages"><h2>Notebooks</h2>\n<p class="note">One page per notebook, code hidden; each '
            f'links back here.</p>\n<ol>\n{items}\n</ol>\n</section>')


# -- which predictions are current ---------------------------------------------------------------

def _usable_predictions(inputs: ReportInputs, made: Mapping, current: bool, notes: list) -> tuple[dict, dict]:
    """The predictions the page may show, and where each came from: all of them with a current
    metrics.json (06 scored exactly these), else those whose stage finished and is not stale."""
    usable, provenance = {}, {}
    for model, df in inputs.predictions.items():
        stage = MODEL_STAGES.get(model)
        view = made.get(stage) if stage else None
        where = _made_by(stage, view)
        if not current and (view is None or view.get("status") != "done" or view.get("stale")):
            why = f"no record of {stage or 'the stage that wrote them'}" if view is None else (
                f"stale: {view['stale']}" if view.get("stale") else f"{stage} {view.get('status')}")
            notes.append(f"{model}: predictions not shown ({why})")
            continue
        usable[model], provenance[model] = df, where
    return usable, provenance


def _made_by(stage: str | None, view: Mapping | None) -> str:
    if view is None:
        return f"from {stage}" if stage else ""
    who = "this run" if view.get("this_run") else "an earlier run of this run id"
    return f"from {stage}, made {view.get('at', '?')} by {who}"


@dataclass
class _Test:
    """The test part, aligned across models: true labels and each model's predictions."""

    ids: list
    true: pd.DataFrame  # track_id x TARGETS
    preds: dict  # model -> DataFrame track_id x TARGETS
    modes: dict  # model -> Series of predicted modes (models that predict one)


def _test_part(predictions: Mapping[str, pd.DataFrame]) -> _Test | None:
    frames = {}
    for model, df in predictions.items():
        if "split" not in df.columns or "track_id" not in df.columns:
            continue
        test = df[df["split"] == "test"]
        if len(test):
            frames[model] = test.drop_duplicates("track_id").set_index("track_id")
    if not frames:
        return None
    first = next(iter(frames.values()))
    ids = [t for t in first.index if all(t in f.index for f in frames.values())]
    if not ids:
        return None

    def matrix(df, prefix):
        return pd.DataFrame({t: pd.to_numeric(df.loc[ids, f"{prefix}{t}"], errors="coerce")
                             if f"{prefix}{t}" in df.columns else np.nan for t in TARGETS}, index=pd.Index(ids))

    true = matrix(first, "true_")
    preds = {m: matrix(f, "pred_") for m, f in frames.items()}
    modes = {m: pd.to_numeric(f.loc[ids, "pred_mode"], errors="coerce") for m, f in frames.items()
             if "pred_mode" in f.columns}
    return _Test(ids, true, preds, modes)


def _split_rows(split: pd.DataFrame | None, ids) -> pd.DataFrame | None:
    if split is None or "track_id" not in split.columns:
        return None
    table = split.drop_duplicates("track_id").set_index("track_id")
    if not set(ids) <= set(table.index):
        return None
    return table.loc[list(ids)]


def _train_targets(split: pd.DataFrame | None) -> np.ndarray | None:
    if split is None or "split" not in split.columns:
        return None
    train = split[split["split"] == "train"]
    if not len(train):
        return None
    return np.column_stack([pd.to_numeric(train[t], errors="coerce").to_numpy(dtype=np.float64)
                            if t in train.columns else np.full(len(train), np.nan) for t in TARGETS])


# -- diagnostics -------------------------------------------------------------------------------

def _training_section(page: _Page, inputs: ReportInputs, made: Mapping, doc: Mapping | None) -> str:
    from . import plots

    view = made.get("05_gru")
    histories = dict(inputs.histories)
    if histories and doc is None and (view is None or view.get("status") != "done" or view.get("stale")):
        return (f'<p class="note">The saved training history is not shown: 05_gru '
                f'{"has no record" if view is None else (view.get("stale") or view.get("status"))}.</p>')
    if not histories:
        return '<p class="note">No training history in this run (05_gru did not run or saved none).</p>'
    parts = []
    recorded = sorted({c for h in histories.values() for c in h.columns})
    per_target = [c for c in recorded if c.startswith("val_") and c[4:] in TARGETS]
    gru = ((doc or {}).get("model_params") or {}).get("GRU") or {}
    if gru.get("best_epoch"):
        parts.append(f'<p class="note">The GRU kept its best validation epoch, {gru["best_epoch"]} of '
                     f'{gru.get("epochs_trained", "?")} trained ({_made_by("05_gru", view)}).</p>')
    parts.append(page.figure(plots.training_curves(histories),
                             "Train (dashed) and validation (solid) loss per epoch; the star marks the checkpoint kept."))
    if not per_target:
        parts.append('<p class="note">The history records ' + html.escape(", ".join(recorded)) + ' per epoch: no '
                     'validation error per target, so none is shown.</p>')
    return "\n".join(parts)


def _pred_vs_true_section(page: _Page, test: _Test, provenance: Mapping) -> str:
    from . import plots

    fig = plots.pred_vs_true_models(test.true.to_numpy(dtype=np.float64),
                                    {m: p.to_numpy(dtype=np.float64) for m, p in test.preds.items()})
    where = "; ".join(f"{m}: {provenance[m]}" for m in test.preds if provenance.get(m))
    return (page.figure(fig, f"{len(test.ids)} test tracks; one colour per model; dashed: predicted = true.")
            + (f'<p class="note">{html.escape(where)}.</p>' if where else ""))


def _confusion_section(page: _Page, test: _Test, split: pd.DataFrame | None) -> str:
    from . import plots
    from audioreg.targets import PITCH_CLASSES

    parts = []
    train = _train_targets(split)
    baseline = metrics.mean_baseline(train, 1)[0] if train is not None else None
    col = {t: j for j, t in enumerate(TARGETS)}

    def tables(target, transform, classes, names):
        out = {}
        true = test.true[target].to_numpy(dtype=np.float64)
        if not np.isfinite(true).any():
            return out
        if baseline is not None and np.isfinite(baseline[col[target]]):
            out[f"{metrics.BASELINE_NAME} (majority)"] = confusion(true, np.full(len(true), transform(
                np.array([baseline[col[target]]]))[0]), classes, names=names, none="none")
        for model, pred in test.preds.items():
            p = pred[target].to_numpy(dtype=np.float64)
            if np.isfinite(p).any():
                q = np.full(p.shape, np.nan)
                q[np.isfinite(p)] = transform(p[np.isfinite(p)])
                out[model] = confusion(true, q, classes, names=names, none="none")
        return out

    key = tables("key", metrics.key_class, list(range(12)), list(PITCH_CLASSES))
    if key:
        parts.append(page.figure(plots.confusion_matrices(key, title="Key: true tonic against predicted tonic",
                                                          true_label="true key (pitch class)",
                                                          pred_label="predicted key (pitch class)"),
                                 "A regressor's key is rounded to the nearest pitch class, mod 12; counts of test tracks."))
    rows = _split_rows(split, test.ids)
    if rows is None or "mode" not in rows.columns:
        parts.append('<p class="note">Mode: the true modes come from the split table, which was not found or has no '
                     '"mode" column; no mode confusion matrix.</p>')
    else:
        true_mode = pd.to_numeric(rows["mode"], errors="coerce").to_numpy(dtype=np.float64)
        mode = {}
        if split is not None and "mode" in split.columns:
            train_modes = pd.to_numeric(split.loc[split["split"] == "train", "mode"], errors="coerce")
            if train_modes.notna().any():
                mode[f"{metrics.BASELINE_NAME} (majority)"] = confusion(
                    true_mode, np.full(len(true_mode), metrics.majority(train_modes)), [0, 1],
                    names=["minor", "major"], none="none")
        for model, m in test.modes.items():
            if m.notna().any():
                mode[model] = confusion(true_mode, m.to_numpy(dtype=np.float64), [0, 1], names=["minor", "major"],
                                        none="none")
        without = [m for m in test.preds if m not in test.modes or not test.modes[m].notna().any()]
        if mode:
            parts.append(page.figure(plots.confusion_matrices(mode, title="Mode: true against predicted",
                                                              true_label="true mode", pred_label="predicted mode"),
                                     "\"none\": the model gave no mode for the track (dsp: no key found)."))
        if without:
            parts.append(f'<p class="note">{html.escape(", ".join(without))} '
                         f'{"predicts" if len(without) == 1 else "predict"} no mode (scored on MIREX with the '
                         'training majority mode).</p>')
    meter = tables("time_signature", metrics.meter_class, [3, 4, 5, 6, 7], ["3", "4", "5", "6", "7"])
    if meter:
        parts.append(page.figure(plots.confusion_matrices(meter, title="Time signature: true against predicted",
                                                          true_label="true beats per bar",
                                                          pred_label="predicted beats per bar"),
                                 "A regressor's time signature is rounded to the nearest meter in 3-7."))
    return "\n".join(parts) or '<p class="note">No key or time-signature labels in the test part.</p>'


def _tempo_section(page: _Page, test: _Test, split: pd.DataFrame | None) -> str:
    from . import plots

    true = test.true["tempo"].to_numpy(dtype=np.float64)
    if not np.isfinite(true).any():
        return '<p class="note">No tempo labels in the test part.</p>'
    preds = {}
    train = _train_targets(split)
    if train is not None and np.isfinite(train[:, TARGETS.index("tempo")]).any():
        preds[metrics.BASELINE_NAME] = np.full(len(true), np.nanmean(train[:, TARGETS.index("tempo")]))
    for model, p in test.preds.items():
        if p["tempo"].notna().any():
            preds[model] = p["tempo"].to_numpy(dtype=np.float64)
    classes = {m: metrics.tempo_error_classes(true, p) for m, p in preds.items()}
    table = tempo_error_table(classes, {m: true for m in preds}, preds)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = {m: np.log2(p / true) for m, p in preds.items() if m != metrics.BASELINE_NAME}
    fig = plots.tempo_errors(table[["correct", *metrics.TEMPO_MULTIPLES, "other"]], ratios)
    rows = []
    for model, r in table.iterrows():
        rows.append([html.escape(model) + (' <span class="tag">baseline</span>' if model == metrics.BASELINE_NAME else ""),
                     str(int(r["tracks"])), *[str(int(r[c])) for c in ("correct", *metrics.TEMPO_MULTIPLES, "other")],
                     f"{100 * r['acc1']:.0f} %" if _finite(r["acc1"]) else "",
                     f"{100 * r['acc2']:.0f} %" if _finite(r["acc2"]) else "",
                     f"{r['other_mae_bpm']:.1f}" if _finite(r["other_mae_bpm"]) else "none"])
    headers = ["model", "test tracks", "correct (within 4 %)", "x2", "x1/2", "x3", "x1/3", "other",
               "Acc1", "Acc2", "MAE of the other tracks (BPM)"]
    return (page.figure(fig, "Octave errors are within 4 % of 2, 1/2, 3 or 1/3 times the true tempo: Acc2 counts them "
                             "as right, Acc1 does not. The baseline predicts the training mean tempo. Intervals of Acc1 "
                             "and Acc2: in the per-target table.")
            + _table(headers, rows, classes=["baseline" if m == metrics.BASELINE_NAME else "" for m in table.index],
                     numeric=tuple(range(1, 11))))


def _experts_section(doc: Mapping) -> str:
    per_model = doc.get("metrics") or {}
    dsp = per_model.get("dsp") or {}
    estimates = str(((doc.get("model_params") or {}).get("dsp") or {}).get("estimates") or "")
    estimated = ("tempo", "key", "loudness")
    diffs = [d for d in doc.get("differences") or () if "dsp" in (d.get("model"), d.get("versus"))
             and d.get("target") in estimated]
    rows, classes = [], []
    for target in estimated:
        if not dsp.get(target):
            continue
        shown = [m for m in (metrics.BASELINE_NAME, "dsp") if per_model.get(m, {}).get(target)]
        for k, model in enumerate(shown):
            values = per_model[model][target]
            others = [d for d in diffs if d.get("target") == target and d.get("versus") != metrics.BASELINE_NAME]
            versus = "<br>".join(
                f"{html.escape(str(d['model']))} vs {html.escape(str(d['versus']))}: " + _difference_text(d).replace(
                    "learnable", "better") for d in others) if model == "dsp" else ""
            base = _baseline_differences(doc).get(("dsp", target)) if model == "dsp" else None
            rows.append([(html.escape(target), len(shown)) if k == 0 else _SPANNED, html.escape(model)
                         + (' <span class="tag">baseline</span>' if model == metrics.BASELINE_NAME else ""),
                         _own_terms_cell(target, values, None),
                         _difference_text(base) if base else ("the reference" if model != "dsp" else ""), versus])
            classes.append("baseline" if model == metrics.BASELINE_NAME else "")
    text = (f'<p>{html.escape(estimates)}.</p>' if estimates else "")
    text += ('<p class="note">The dsp row is the expert estimators of the same decoded audio, untrained. For the '
             'targets they do not estimate (and time signature) it is the baseline\'s answer, so its scores there '
             'equal the baseline\'s and are not repeated here. A positive difference between two models favours the '
             'first.</p>')
    return text + _table(["target", "model", "in its own terms (95 % intervals)", "against the baseline",
                          "against the other models (paired, 95 % interval)"], rows, classes=classes)


# -- where each model breaks -------------------------------------------------------------------

def _breaks_section(page: _Page, test: _Test, inputs: ReportInputs, report_dir: Path) -> str:
    from . import plots

    rows = _split_rows(inputs.split, test.ids)
    if rows is None:
        return ('<p class="note">The split table of these predictions was not found'
                + (f" ({html.escape(inputs.split_note)})" if inputs.split_note else "")
                + ": genre, file, sample rate and channels per track come from it, so errors cannot be broken "
                "down.</p>")
    train = _train_targets(inputs.split)
    true = test.true.to_numpy(dtype=np.float64)
    preds = {metrics.BASELINE_NAME: metrics.mean_baseline(train, len(true))} if train is not None else {}
    preds.update({m: p.to_numpy(dtype=np.float64) for m, p in test.preds.items()})
    continuous = [TARGETS.index(t) for t in metrics.CONTINUOUS_TARGETS]
    errors, per_target = {}, {}
    for model, pred in preds.items():
        smse = metrics.row_scores(true, pred, y_train=train)["smse"]
        per_target[model] = smse
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a track with no scored continuous target: NaN
            errors[model] = np.nanmean(smse[:, continuous], axis=1)
    errors = pd.DataFrame(errors, index=pd.Index(test.ids))
    factors, missing = track_factors(rows.reset_index(drop=True))
    factors.index = errors.index
    groups = _groups(rows)
    measure = ("mean over the continuous targets of the track's squared error / the training part's variance "
               "(unitless; 1 = the training mean's spread; lower is better)")
    parts = [f'<p class="note">Per test track: {html.escape(measure)}. Key and time signature are classes: see the '
             'confusion matrices. Intervals: 95 %, by a bootstrap over the split groups (artists) of each category. '
             f'{html.escape(inputs.split_note)}</p>']
    if missing:
        parts.append('<p class="note">Not broken down: ' + html.escape("; ".join(missing)) + ".</p>")
    if len(factors.columns):
        table = error_breakdown(errors, factors, groups)
        parts.append(page.figure(plots.error_breakdown(table, measure=measure),
                                 "One panel per factor; n: test tracks in the category. The baseline (black) shows "
                                 "how far each category's labels lie from the training mean."))
        parts.append('<ul class="verdict">' + "".join(f'<li class="verdict">{html.escape(line)}</li>'
                                                      for line in breakdown_reading(table)) + "</ul>")
        parts.append(_breakdown_table(table))
    parts.append(_worst_tracks(test, rows, errors, per_target, report_dir))
    return "\n".join(parts)


def _groups(rows: pd.DataFrame) -> np.ndarray:
    """The split groups (artists, songs, files) of the rows, as the bootstrap of 06 draws them."""
    from audioreg.data.split import leakage_groups

    frame = rows.reset_index()
    if "artists" in frame.columns:
        frame["artists"] = frame["artists"].fillna("").astype(str)
    return leakage_groups(frame, artist_col="artists" if "artists" in frame.columns else None)


def _breakdown_table(table: pd.DataFrame) -> str:
    models = list(dict.fromkeys(table["model"]))
    rows = []
    for (factor, category), part in table.groupby(["factor", "category"], sort=False):
        by = part.set_index("model")
        cells = [html.escape(factor), html.escape(category), str(int(part["n"].iloc[0])), str(int(part["groups"].iloc[0]))]
        for m in models:
            r = by.loc[m] if m in by.index else None
            if r is None or not _finite(r["mean"]):
                cells.append("")
            else:
                cells.append(f"{r['mean']:.2f}" + (f" [{r['lo']:.2f}, {r['hi']:.2f}]" if _finite(r["lo"]) else ""))
        rows.append(cells)
    headers = ["factor", "category", "test tracks", "split groups", *[html.escape(m) for m in models]]
    return ("<details><summary>The numbers (mean error per category, 95 % interval)</summary>"
            + _table(headers, rows, numeric=tuple(range(2, 4 + len(models)))) + "</details>")


def _listen_link(path, report_dir: Path) -> str:
    if not isinstance(path, str) or not path:
        return ""
    target = Path(path)
    try:
        href = os.path.relpath(target, report_dir) if target.is_absolute() else path
    except ValueError:  # another drive (Windows): no relative path
        href = target.as_uri()
    return f'<a href="{html.escape(quote(Path(href).as_posix()))}" title="{html.escape(path)}">{html.escape(target.name)}</a>'


def _worst_tracks(test: _Test, rows: pd.DataFrame, errors: pd.DataFrame, per_target: Mapping,
                  report_dir: Path) -> str:
    models = [m for m in errors.columns if m != metrics.BASELINE_NAME]
    if not models:
        return ""
    out, classes = [], []
    for model in models:
        worst = errors[model].dropna().sort_values(ascending=False).head(WORST_TRACKS)
        for k, (tid, err) in enumerate(worst.items()):
            i = test.ids.index(tid)
            r = rows.loc[tid]
            smse = per_target[model][i]
            cont = np.array([np.nan if TARGETS[j] in metrics.CLASS_TARGETS else v for j, v in enumerate(smse)])
            big = [j for j in np.argsort(-np.nan_to_num(cont, nan=-1.0))[:3] if np.isfinite(cont[j])]
            what = []
            for j in big:
                t = TARGETS[j]
                unit = {"tempo": " BPM", "loudness": " dB"}.get(t, "")
                digits = 1 if t in ("tempo", "loudness") else 2
                what.append(f"{t} {test.true.iloc[i, j]:.{digits}f} → {test.preds[model].iloc[i, j]:.{digits}f}{unit}")
            for t, transform in (("key", metrics.key_class), ("time_signature", metrics.meter_class)):
                tv, pv = test.true.loc[tid, t], test.preds[model].loc[tid, t]
                if _finite(tv) and _finite(pv) and transform(np.array([pv]))[0] != tv:
                    what.append(f"{t} {tv:g} → {transform(np.array([pv]))[0]:g}")
            title = " – ".join(str(r[c]) for c in ("artists", "track_name") if c in r.index and isinstance(r[c], str))
            fmt = ", ".join(x for x in (
                (Path(str(r["path"])).suffix.lstrip(".").upper() if "path" in r.index and isinstance(r["path"], str) else ""),
                (f"{int(r['sample_rate'])} Hz" if "sample_rate" in r.index and _finite(_float(r["sample_rate"])) else ""),
                ({1: "mono", 2: "stereo"}.get(int(r["channels"]), f"{int(r['channels'])} ch")
                 if "channels" in r.index and _finite(_float(r["channels"])) else "")) if x)
            out.append([(html.escape(model), len(worst)) if k == 0 else _SPANNED, str(k + 1),
                        html.escape(title or str(tid)) + f"<br><small>{html.escape(str(tid))}</small>",
                        html.escape(str(r["track_genre"])) if "track_genre" in r.index and isinstance(r["track_genre"], str) else "",
                        html.escape(fmt), f"{err:.2f}", html.escape("; ".join(what)),
                        _listen_link(r.get("path") if "path" in r.index else None, report_dir)])
            classes.append("")
    headers = ["model", "rank", "track", "genre", "file", "error (mean sMSE)", "largest errors (true → predicted)",
               "listen"]
    return (f"<h3>Worst-predicted test tracks</h3><p class=\"note\">Per model, the {WORST_TRACKS} test tracks with the "
            "largest mean standardized squared error over the continuous targets; the link opens the audio file "
            "the split table names (relative to this page).</p>" + _table(headers, out, classes=classes, numeric=(1, 5)))


# -- reference ---------------------------------------------------------------------------------

def _params_section(doc: Mapping | None, params: Mapping) -> str:
    merged = (doc or {}).get("params") if isinstance((doc or {}).get("params"), Mapping) else params
    source = "as the run's notebooks recorded them (metrics.json)" if doc and doc.get("params") else \
        "as `audioreg run` merged them (base.yaml < -f files < -p)"
    parts = [f'<p class="note">The run\'s merged parameters, {html.escape(source)}.</p>']
    model_rows = []
    for model, mp in ((doc or {}).get("model_params") or {}).items():
        if not isinstance(mp, Mapping):
            continue
        settings = mp.get("model")
        settings = "; ".join(f"{k}={v}" for k, v in settings.items()) if isinstance(settings, Mapping) else (settings or "")
        chosen = []
        if isinstance(mp.get("best_params"), Mapping):
            chosen.append("; ".join(f"{k.split('__')[-1]}={v}" for k, v in mp["best_params"].items()))
        if mp.get("best_epoch"):
            chosen.append(f"best epoch {mp['best_epoch']} of {mp.get('epochs_trained', '?')}")
        model_rows.append([html.escape(model), html.escape(str(settings)), html.escape("; ".join(chosen))])
    if model_rows:
        parts.append(_table(["model", "settings", "chosen (on the training and validation parts)"], model_rows))
    rows = [[html.escape(str(k)), html.escape(str(v))] for k, v in merged.items()]
    parts.append("<details open><summary>Every parameter</summary>" + _table(["parameter", "value"], rows) + "</details>")
    return "\n".join(parts)


def _data_section(doc: Mapping | None, inputs: ReportInputs) -> str:
    parts = []
    data = (doc or {}).get("data")
    if isinstance(data, Mapping):
        names = {"name": "data", "set": "set (sample: the generated sample set; own: your table)",
                 "metadata_path": "metadata table", "split_key": "split key (same key: same test part)",
                 "split_path": "split table", "n_tracks": "tracks"}
        rows = [[html.escape(names.get(k, k)), html.escape(str(v))] for k, v in data.items() if k != "parts"]
        if isinstance(data.get("parts"), Mapping):
            rows.append(["tracks per part", html.escape(", ".join(f"{k} {v}" for k, v in data["parts"].items()))])
        parts.append(_table(["what", "value"], rows))
    elif doc is not None:
        parts.append('<p class="note">metrics.json does not record its data (written before audioreg recorded it).'
                     '</p>')
    if inputs.split_note:
        parts.append(f'<p class="note">{html.escape(inputs.split_note)}</p>')
    versions = (doc or {}).get("versions")
    if isinstance(versions, Mapping):
        parts.append("<h3>Package versions</h3>" + _table(
            ["package", "version"], [[html.escape(str(k)), html.escape(str(v) if v is not None else "not installed")]
                                     for k, v in versions.items()]))
    elif doc is not None:
        parts.append('<p class="note">metrics.json records no package versions.</p>')
    return "\n".join(parts)


_BANNER = 'style="border:3px solid #b00020; background:#fdecea; padding:0.5em 1em"'


def _banner(run: Mapping) -> str:
    outcome = run.get("outcome")
    stage = run.get("stage")
    where = f' at <a href="{html.escape(stage)}.html">{html.escape(stage)}</a>' if stage else ""
    after = ("<p>Pages marked <b>stale</b> or made by an earlier run of this run id are not results of "
             "this run.</p>")
    if outcome == "failed":
        what = f"This run failed{where}" if stage else "This run failed outside its notebooks"
        return (f'<div id="audioreg-run-failed" {_BANNER}><p><b>{what}</b> ({html.escape(str(run.get("ended", "")))})'
                f':</p><pre>{html.escape(str(run.get("reason", "")))}</pre>{after}</div>')
    if outcome == "stopped":
        return (f'<div id="audioreg-run-stopped" {_BANNER}><p><b>This run was stopped</b>'
                f'{" during " + html.escape(stage) if stage else ""} ({html.escape(str(run.get("ended", "")))}): '
                f'{html.escape(str(run.get("reason", "")))}.</p>{after}</div>')
    if outcome == "running":
        return (f'<div id="audioreg-run-unfinished" {_BANNER}><p><b>This run has not finished</b>: started '
                f'{html.escape(str(run.get("started", "")))} by process {html.escape(str(run.get("pid", "?")))}. '
                f'If that process is gone, it was killed.</p>{after}</div>')
    return ""


def _item(s: Mapping) -> str:
    name = html.escape(s["name"])
    link = f'<a href="{html.escape(s["page"].name)}">{name}</a>' if s.get("page") else name
    status, reason = s.get("status", "done"), html.escape(str(s.get("reason") or ""))
    text = link
    if status == "skipped":
        text += f" <b>skipped</b>: <pre>{reason}</pre>"
    elif status in ("failed", "stopped"):
        text += f" <b>{status}</b>" + (f": <pre>{reason}</pre>" if reason else "")
    if s.get("stale"):
        text += f" <b>stale</b>: {html.escape(s['stale'])}."
    when = html.escape(str(s.get("at", "")))
    made = (f"made {when}" if status in ("done", "skipped") else when) + (
        " by this run" if s.get("this_run") else " by an earlier run of this run id")
    notes = "; ".join(html.escape(n) for n in s.get("notes", ()))
    text += f" <small>({made}{'; ' + notes if notes else ''})</small>"
    return f"<li>{text}</li>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))
