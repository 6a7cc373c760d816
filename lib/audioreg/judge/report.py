"""The report writer: the run's metrics document, the notebook pages and the HTML index."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from .._pandas import pd

from .. import atomic
from . import metrics


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


def render_html(notebook: Path, out: Path) -> Path:
    """Static HTML of an executed notebook, code cells hidden (nbconvert ``--no-input``)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    return atomic.write_text(out, body)


def write_index(report_dir: Path, run_id: str, params: Mapping, stages: list[Mapping],
                run: Mapping | None = None) -> Path:
    """``index.html``: how the run ended, a link to every page with when it was made and what it
    holds, the headline metrics and the parameters.

    ``stages`` (in chain order): ``name``; ``page`` (a Path, or None when there is none);
    ``status``: done, skipped (the data could not support it), failed or stopped; ``reason``;
    ``at`` (when); ``this_run`` (made by this run, else by an earlier run of the run id);
    ``stale`` (why its results no longer hold, or None); ``notes`` (more words). ``run``: the run's
    ``outcome`` (ok, failed, stopped, running), its ``stage`` and ``reason``. A run that did not
    end well opens with a banner saying where and why. The summary comes from ``metrics.json``
    in ``report_dir``, which the runner leaves there only when this run's 06 made it.
    """
    run = dict(run or {})
    banner = _banner(run)
    items = "\n".join(_item(s) for s in stages)
    summary = ""
    metrics_path = report_dir / "metrics.json"
    made = {s["name"]: s for s in stages}
    if metrics_path.is_file():
        data = json.loads(metrics_path.read_text(encoding="utf-8"))
        rows = data.get("summary", [])
        if rows:
            cols = list(rows[0].keys())
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
            body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
            when = made.get("06_error_analysis", {}).get("at")
            summary = ("<h2>Summary (test split)</h2>"
                       + (f"<p>From 06_error_analysis, made {html.escape(str(when))}.</p>" if when else "")
                       + f"<table border=1 cellpadding=4><tr>{head}</tr>{body}</table>")
        if data.get("caveat"):
            summary += f"<p>{html.escape(data['caveat'])}</p>"
    elif "06_error_analysis" in made:
        summary = ("<h2>Summary (test split)</h2><p><b>No current summary</b>: this run did not end "
                   "06_error_analysis; run it again for scores.</p>")
    prm = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in params.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>audioreg run {html.escape(run_id)}</title></head>
<body><h1>audioreg run {html.escape(run_id)}</h1>
{banner}
<h2>Notebooks</h2><ol>{items}</ol>
{summary}
<h2>Parameters</h2><table border=1 cellpadding=4>{prm}</table>
</body></html>"""
    return atomic.write_text(report_dir / "index.html", page)


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
