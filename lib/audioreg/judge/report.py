"""The report writer: the run's metrics document, the notebook pages and the HTML index."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

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


def write_index(report_dir: Path, run_id: str, params: Mapping, pages: list[Path],
                skipped: Mapping[str, str] | None = None) -> Path:
    """``index.html``: links to every page, the headline metrics and the parameters; a stage the
    data could not support (``skipped``: notebook -> reason) is marked so, with its reason."""
    skipped = skipped or {}
    items = "\n".join(f'<li><a href="{html.escape(p.name)}">{html.escape(p.stem)}</a>'
                      + (f" <b>skipped</b>: <pre>{html.escape(skipped[p.stem])}</pre>" if p.stem in skipped else "")
                      + "</li>" for p in pages)
    summary = ""
    metrics_path = report_dir / "metrics.json"
    if metrics_path.is_file():
        data = json.loads(metrics_path.read_text(encoding="utf-8"))
        rows = data.get("summary", [])
        if rows:
            cols = list(rows[0].keys())
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
            body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
            summary = f"<h2>Summary (test split)</h2><table border=1 cellpadding=4><tr>{head}</tr>{body}</table>"
        if data.get("caveat"):
            summary += f"<p>{html.escape(data['caveat'])}</p>"
    prm = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in params.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>audioreg run {html.escape(run_id)}</title></head>
<body><h1>audioreg run {html.escape(run_id)}</h1>
<h2>Notebooks</h2><ol>{items}</ol>
{summary}
<h2>Parameters</h2><table border=1 cellpadding=4>{prm}</table>
</body></html>"""
    return atomic.write_text(report_dir / "index.html", page)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))
