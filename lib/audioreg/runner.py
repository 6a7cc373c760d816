"""Run the numbered notebooks with papermill and render the HTML report.

``audioreg run -f params/gru_exp3.yaml -p lr 0.0005`` merges
``params/base.yaml`` < the ``-f`` files < the ``-p`` overrides, rejects any key
no notebook declares, executes 01-06 into ``runs/<run_id>/`` and writes
``reports/<run_id>/`` (one HTML page per notebook, ``index.html``, ``metrics.json``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from . import params as P
from .errors import NotEnoughData
from .judge import report
from .features.numba_cache import ensure_compiled
from .paths import resolve_root

log = logging.getLogger(__name__)

NOTEBOOKS = ("01_ingest", "02_extract", "03_split", "04_rf", "05_gru", "06_error_analysis")


class RunError(RuntimeError):
    pass


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    report_dir: Path
    params: dict
    executed: list[Path]
    html: list[Path]
    skipped: dict[str, str] = field(default_factory=dict)  # notebook -> why the data could not support it

    @property
    def index(self) -> Path:
        return self.report_dir / "index.html"


def declared(root: Path, notebooks: Iterable[str] = NOTEBOOKS) -> dict[str, dict]:
    """Parameters each notebook declares, by notebook name."""
    return {nb: P.notebook_parameters(root / "notebooks" / f"{nb}.ipynb") for nb in notebooks}


def known_parameters(decl: Mapping[str, Mapping[str, dict]]) -> dict[str, str]:
    """Every declared parameter and its type name (``"float"``...), from :func:`declared`.

    Raises ValueError when two notebooks declare one name with different types.
    """
    types: dict[str, str] = {}
    for nb, specs in decl.items():
        for name, spec in specs.items():
            kind = str(spec.get("inferred_type_name") or "None")
            if types.setdefault(name, kind) != kind:
                raise ValueError(f"{name} is declared as {types[name]} and as {kind} ({nb}): one type per parameter")
    return types


def merged_params(root: Path, files: Iterable[str | os.PathLike] = (), overrides: Mapping | None = None,
                  *, known: Mapping[str, str] | Iterable[str] | None = None) -> dict:
    """base.yaml < files (in order) < overrides, each key checked against ``known``.

    With ``known`` a mapping of parameter to type name (:func:`known_parameters`), each
    value's type is checked too, so a wrong value fails here, before any notebook runs.
    """
    layers = []
    sources = []
    base = root / "params" / "base.yaml"
    for f in ([base] if base.is_file() else []) + [Path(f) for f in files]:
        path = f if f.is_absolute() or f.is_file() else root / f
        if not path.is_file():
            raise FileNotFoundError(f"{f}: parameter file not found")
        layers.append(P.load_yaml(path))
        sources.append(str(path))
    over = {k: (P.parse_value(v) if isinstance(v, str) else v) for k, v in (overrides or {}).items()}
    if known is not None:
        for layer, src in [*zip(layers, sources), (over, "-p overrides")]:
            P.check_known(layer, known, source=src)
            if isinstance(known, Mapping):
                P.check_types(layer, known, source=src)
    return P.merge({}, *layers, over)


def run(
    files: Iterable[str | os.PathLike] = (),
    overrides: Mapping | None = None,
    *,
    run_id: str | None = None,
    root: str | os.PathLike | None = None,
    notebooks: Iterable[str] = NOTEBOOKS,
    kernel_name: str | None = None,
    log_output: bool = False,
) -> RunResult:
    """Execute the notebook chain and write the report. Returns where everything went.

    ``root`` is the project checkout (its ``notebooks/`` and ``params/``); the ``root``
    parameter, when set, moves ``data/``, ``runs/`` and ``reports/`` elsewhere.
    """
    import papermill as pm

    root = resolve_root(root)
    files = list(files)
    notebooks = list(notebooks)
    decl = declared(root, NOTEBOOKS)
    params = merged_params(root, files, overrides, known=known_parameters(decl))
    if run_id is None:
        given = (overrides or {}).get("run_id")
        stem = Path(files[-1]).stem if files else "base"
        run_id = str(given) if given else f"{stem}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    params["run_id"] = run_id
    work = resolve_root(params.get("root") or root)  # where data/, runs/ and reports/ go
    params["root"] = str(work)
    run_dir = work / "runs" / run_id
    report_dir = work / "reports" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    report_dir.mkdir(parents=True, exist_ok=True)
    P.save_yaml(params, run_dir / "params.yaml")
    # every kernel below loads compiled code that this one process cached (or repaired)
    ensure_compiled()
    executed, pages, skipped = [], [], {}
    for nb in notebooks:
        if nb not in decl:
            raise RunError(f"unknown notebook {nb!r}; the chain is {', '.join(NOTEBOOKS)}")
        src = root / "notebooks" / f"{nb}.ipynb"
        out = run_dir / f"{nb}.ipynb"
        mine = {k: v for k, v in params.items() if k in decl[nb]}
        started = time.perf_counter()
        try:
            pm.execute_notebook(str(src), str(out), parameters=mine, cwd=str(root), kernel_name=kernel_name,
                                progress_bar=False, log_output=log_output,
                                # the kernel's own start-up warnings (TCP on localhost) are noise here
                                extra_arguments=["--IPKernelApp.log_level=ERROR"])
        except pm.PapermillExecutionError as exc:
            page = report.render_html(out, report_dir / f"{nb}.html")
            if exc.ename == NotEnoughData.__name__:  # small or sparse data: this stage has nothing to do
                skipped[nb] = exc.evalue
                log.warning("%s skipped: %s", nb, exc.evalue.splitlines()[0] if exc.evalue else "")
                executed.append(out)
                pages.append(page)
                continue
            report.write_index(report_dir, run_id, params, _pages(report_dir), skipped=skipped)
            raise RunError(f"{nb} failed: {exc.ename}: {exc.evalue} (executed notebook: {out}; page: {page})") from exc
        executed.append(out)
        pages.append(report.render_html(out, report_dir / f"{nb}.html"))
        log.info("%s done in %.0f s: %s", nb, time.perf_counter() - started, out)
    metrics = run_dir / "metrics.json"
    if metrics.is_file() and "06_error_analysis" not in skipped:
        shutil.copyfile(metrics, report_dir / "metrics.json")
    report.write_index(report_dir, run_id, params, _pages(report_dir), skipped=skipped)
    return RunResult(run_id, run_dir, report_dir, params, executed, pages, skipped)


def _pages(report_dir: Path) -> list[Path]:
    """Every notebook page of the run, in chain order: a run with ``--only`` keeps the
    pages that earlier runs of the same run id wrote."""
    return [p for nb in NOTEBOOKS if (p := report_dir / f"{nb}.html").is_file()]
