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


def metrics_document(run_id: str, scores: pd.DataFrame, summary: pd.DataFrame, *, params: Mapping,
                     model_params: Mapping, **extra) -> dict:
    """What ``metrics.json`` holds: every model x target metric, the summary, the caveat
    on raw MSE, and the merged parameters of the run and of each model."""
    return {"run_id": run_id, "metrics": metrics.to_json_dict(scores), "summary": _records(summary),
            "caveat": metrics.raw_mse_caveat(scores), **extra, "params": dict(params),
            "model_params": dict(model_params)}


def render_html(notebook: Path, out: Path) -> Path:
    """Static HTML of an executed notebook, code cells hidden (nbconvert ``--no-input``)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    return atomic.write_text(out, body)


def write_index(report_dir: Path, run_id: str, params: Mapping, pages: list[Path]) -> Path:
    """``index.html``: links to every page, the headline metrics and the parameters."""
    items = "\n".join(f'<li><a href="{html.escape(p.name)}">{html.escape(p.stem)}</a></li>' for p in pages)
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
