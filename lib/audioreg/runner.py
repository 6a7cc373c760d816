"""Run the numbered notebooks with papermill and render the HTML report.

``audioreg run -f params/gru_exp3.yaml -p lr 0.0005`` merges
``params/base.yaml`` < the ``-f`` files < the ``-p`` overrides, rejects any key
no notebook declares, executes 01-06 into ``runs/<run_id>/`` and writes
``reports/<run_id>/`` (one HTML page per notebook, ``index.html``, ``metrics.json``).

What a run leaves says what it is:

- an executed notebook is written under a temp name and gets its final name complete:
  after its last cell, or after the cell that failed;
- ``reports/<run_id>/status.json`` records how each stage last ended and when.
  ``index.html`` says that the run failed (at which stage, why), was stopped, or has
  not finished; it marks the pages of an earlier run of the same run id as such, and as
  stale those made before a stage they build on ran again or failed. ``metrics.json`` is
  there only when this run's 06 made it;
- a full disk or spent quota, in this process or in a kernel, is :class:`NoSpaceError`,
  naming the folder;
- SIGINT or SIGTERM kill the run's kernels (each leads its own process group, with the
  workers it started) and raise :class:`RunStopped`; a kernel whose runner was killed
  outright (SIGKILL) kills its own process group within a fraction of a second.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from . import atomic
from . import params as P
from .errors import NO_SPACE_TEXT, NotEnoughData, is_out_of_space, one_line, out_of_space
from .judge import report
from .features.numba_cache import ensure_compiled
from .paths import resolve_root

log = logging.getLogger(__name__)

NOTEBOOKS = ("01_ingest", "02_extract", "03_split", "04_rf", "05_gru", "06_error_analysis")


#: The notebooks each one reads the results of (06 reads 02's expert estimates through 03's split).
UPSTREAM = {"01_ingest": (), "02_extract": ("01_ingest",), "03_split": ("02_extract",), "04_rf": ("03_split",),
            "05_gru": ("03_split",), "06_error_analysis": ("04_rf", "05_gru")}

#: The report's record of its stages, in ``reports/<run_id>/``.
STATUS = "status.json"


class RunError(RuntimeError):
    pass


class NoSpaceError(RunError):
    """The filesystem the run writes to is full (ENOSPC), or the user's quota is spent (EDQUOT)."""


class RunStopped(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run; its kernels, and the workers they started, were killed first."""

    def __init__(self, signum: int, stage: str | None = None, report: Path | None = None):
        super().__init__(signum)
        self.signum, self.stage, self.report = signum, stage, report

    @property
    def signame(self) -> str:
        return signal.Signals(self.signum).name

    def __str__(self) -> str:
        return (f"stopped by {self.signame}" + (f" during {self.stage}" if self.stage else "")
                + (f"; report: {self.report}" if self.report else ""))


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

    Raises :class:`RunError` when a notebook fails (:class:`NoSpaceError` when it, or this
    process, found the disk full) and :class:`RunStopped` on SIGINT or SIGTERM, after
    killing the kernel; either way ``index.html`` says so first.
    """
    import papermill as pm

    root = resolve_root(root)
    files = list(files)
    notebooks = list(notebooks)
    unknown = [nb for nb in notebooks if nb not in NOTEBOOKS]
    if unknown:
        raise RunError(f"unknown notebook {unknown[0]!r}; the chain is {', '.join(NOTEBOOKS)}")
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
    executed, pages, skipped = [], [], {}
    kernels = _Kernels()
    status, stage, where, fresh = None, None, work, set()
    with _stopped_by_signals(kernels):
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            report_dir.mkdir(parents=True, exist_ok=True)
            for folder in (run_dir, report_dir):  # what killed runs were writing; nothing reads it
                atomic.remove_stale_temps(folder)
            where = report_dir
            status = _Status(report_dir)
            status.begin(notebooks)
            # whatever this run ends with, the summary of an earlier 06 is no longer current
            (report_dir / "metrics.json").unlink(missing_ok=True)
            _write_index(report_dir, run_id, params, status)  # "not finished", until it has
            where = run_dir
            P.save_yaml(params, run_dir / "params.yaml")
            # every kernel below loads compiled code that this one process cached (or repaired)
            ensure_compiled()
            for nb in notebooks:
                stage, where, fresh = nb, run_dir, set()
                out, page = run_dir / f"{nb}.ipynb", report_dir / f"{nb}.html"
                mine = {k: v for k, v in params.items() if k in decl[nb]}
                started = time.perf_counter()
                try:
                    _execute(pm, root / "notebooks" / f"{nb}.ipynb", out, mine, kernels, cwd=root,
                             kernel_name=kernel_name, log_output=log_output)
                except pm.PapermillExecutionError as exc:
                    fresh.add(out)  # complete, up to the cell that raised
                    where = report_dir
                    fresh.add(report.render_html(out, page, run_id=run_id))
                    if exc.ename != NotEnoughData.__name__:
                        raise
                    # small or sparse data: this stage has nothing to do
                    skipped[nb] = exc.evalue
                    log.warning("%s skipped: %s", nb, exc.evalue.splitlines()[0] if exc.evalue else "")
                    status.ended(nb, "skipped", exc.evalue)
                    stage = None
                    executed.append(out)
                    pages.append(page)
                    continue
                fresh.add(out)
                where = report_dir
                executed.append(out)
                pages.append(report.render_html(out, page, run_id=run_id))
                status.ended(nb, "done")
                stage = None
                log.info("%s done in %.0f s: %s", nb, time.perf_counter() - started, out)
            where = report_dir
            metrics, last06 = run_dir / "metrics.json", status.stages.get("06_error_analysis", {})
            if metrics.is_file() and last06.get("run") == status.runs and last06.get("status") == "done":
                atomic.write_bytes(report_dir / "metrics.json", metrics.read_bytes())
            status.finish("ok")
            _write_index(report_dir, run_id, params, status)
            _write_cross_run_index(work)
        except BaseException as exc:
            error, outcome, reason = _explain(exc, stage, where=where, work=work, run_dir=run_dir,
                                              report_dir=report_dir)
            if status is not None:
                with contextlib.suppress(OSError):  # a full disk may not take even the index
                    if stage is not None:
                        for p in (run_dir / f"{stage}.ipynb", report_dir / f"{stage}.html"):
                            if p not in fresh:  # an earlier run's: not what this run's stage did
                                p.unlink(missing_ok=True)
                        status.ended(stage, outcome, reason)
                    status.finish(outcome, stage, reason)
                    _write_index(report_dir, run_id, params, status)
                    _write_cross_run_index(work)
            if error is exc:
                raise
            raise error from exc
    return RunResult(run_id, run_dir, report_dir, params, executed, pages, skipped)


def _execute(pm, src: Path, out: Path, parameters: dict, kernels: "_Kernels", **kwargs) -> None:
    """papermill ``src`` into ``out``, through a temp file beside it: ``out`` appears complete,
    after the last cell or after the cell that raised (:class:`PapermillExecutionError`, re-raised),
    or not at all (killed, stopped, disk full)."""
    import nbformat

    tmp = atomic.temp_path(out.with_suffix(".executing.ipynb"))  # .<nb>.executing.ipynb.<host>-<pid>.tmp
    failed = None
    try:
        try:
            with warnings.catch_warnings():  # papermill warns of an output name not ending in .ipynb
                warnings.filterwarnings("ignore", "The specified file .* does not end in one of", UserWarning)
                pm.execute_notebook(str(src), str(tmp), parameters=parameters, progress_bar=False,
                                    kernel_manager_class=kernels.manager_class,
                                    # the kernel's own start-up warnings (TCP on localhost) are noise here
                                    extra_arguments=["--IPKernelApp.log_level=ERROR", *kernels.arguments],
                                    **kwargs)
        except pm.PapermillExecutionError as exc:
            failed = exc  # papermill saved the notebook, with the error, before raising
        finally:
            kernels.kill()  # normally shut down already; one that was not (or its workers) goes now
        with atomic.writing(out) as final:
            nb = nbformat.read(str(tmp), as_version=4)
            nb.metadata.setdefault("papermill", {})["output_path"] = str(out)  # not the temp file's name
            final.write_text(nbformat.writes(nb), encoding="utf-8")
    finally:
        tmp.unlink(missing_ok=True)
    if failed is not None:
        raise failed


def _explain(exc: BaseException, stage: str | None, *, where: Path, work: Path, run_dir: Path,
             report_dir: Path) -> tuple[BaseException, str, str]:
    """What to raise for ``exc``, how the stage ended (failed, stopped) and why, in a line."""
    import papermill as pm

    index = report_dir / "index.html"
    stopped = f" ({stage} stopped; report: {index})" if stage else f" (report: {index})"
    if isinstance(exc, RunStopped):
        exc.stage, exc.report = stage, index
        return exc, "stopped", f"stopped by {exc.signame}"
    if isinstance(exc, KeyboardInterrupt):
        return exc, "stopped", "interrupted"
    if isinstance(exc, pm.PapermillExecutionError):
        full = _kernel_out_of_space(exc, default=work)
        why = f"{exc.ename}: {exc.evalue}"
        if full:
            return NoSpaceError(full + stopped), "failed", why
        out = run_dir / f"{stage}.ipynb"
        return (RunError(f"{stage} failed: {why} (executed notebook: {out}; page: {report_dir / f'{stage}.html'}; "
                         f"report: {index})"), "failed", why)
    if isinstance(exc, OSError) and is_out_of_space(exc):
        folder = Path(exc.filename).parent if getattr(exc, "filename", None) else where
        return NoSpaceError(out_of_space(folder) + stopped), "failed", one_line(exc)
    from nbclient.exceptions import DeadKernelError

    if isinstance(exc, DeadKernelError) and stage:
        why = "its kernel died (killed from outside, or for lack of memory: see the system log)"
        return RunError(f"{stage} failed: {why}{stopped}"), "failed", why
    return exc, "failed", one_line(exc)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERRNO_PATH = re.compile(r"\[Errno (?:28|122)\] [^:\n]+: '([^'\n]+)'")


def _kernel_out_of_space(exc, *, default: Path) -> str | None:
    """The one-line message for a notebook that failed on a full disk (ENOSPC or EDQUOT, also
    raised from another error), naming the folder; None for any other failure."""
    said = re.search(r"no space left on [^\n]*", exc.evalue or "")  # audioreg's own message names the folder
    if said:
        return said.group(0)
    text = _ANSI.sub("", "\n".join([exc.evalue or "", *(exc.traceback or [])]))
    if not NO_SPACE_TEXT.search(text):
        return None
    path = _ERRNO_PATH.search(text)
    return out_of_space(Path(path.group(1)).parent if path else default)


class _Kernels:
    """The kernels one :func:`run` starts, so that stopping the run stops them.

    A kernel leads its own process group (jupyter_client starts it in a new session), so a
    signal to the runner's group misses it and the workers it started; :meth:`kill` kills those
    groups. Against a runner killed outright, :attr:`arguments` makes each kernel watch its
    parent (:func:`_exit_with_parent`).
    """

    def __init__(self):
        from jupyter_client.manager import AsyncKernelManager

        self.live: list = []
        kernels = self

        class RunKernelManager(AsyncKernelManager):
            async def start_kernel(self, **kw):
                kernels.live.append(self)
                return await super().start_kernel(**kw)

        self.manager_class = RunKernelManager
        self.arguments = ["--IPKernelApp.exec_lines=[" + repr(
            f"__import__('audioreg.runner').runner._exit_with_parent({os.getpid()})") + "]"]

    def kill(self) -> None:
        """SIGKILL the process group of every kernel not yet shut down."""
        while self.live:
            km = self.live.pop()
            proc = getattr(getattr(km, "provisioner", None), "process", None)
            if proc is None or proc.poll() is not None:  # gone (and reaped): its pid may be another's now
                continue
            try:
                os.killpg(getattr(km.provisioner, "pgid", None) or proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()


@contextlib.contextmanager
def _stopped_by_signals(kernels: _Kernels) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM kill ``kernels`` and raise :class:`RunStopped`
    (in the main thread only: Python handles signals there); the earlier handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        kernels.kill()
        raise RunStopped(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


def _exit_with_parent(parent: int, interval_s: float = 0.1) -> None:
    """Called in each kernel as it starts: once ``parent`` (the runner) is gone, killed outright
    included, SIGKILL the kernel's process group, so that neither the kernel nor a worker it
    started goes on writing for a run that is over. A daemon thread waits on a pidfd of the
    runner (Linux 5.3+; elsewhere it polls every ``interval_s``). ipykernel's own check
    (``JPY_PARENT_PID``) polls once a second and ends only the kernel, not its workers."""

    def wait_for_parent() -> None:
        import select

        try:
            fd = os.pidfd_open(parent)
        except ProcessLookupError:  # gone already
            return
        except (AttributeError, OSError):  # no pidfd here: poll
            child = os.getppid() == parent
            while (os.getppid() == parent) if child else _exists(parent):
                time.sleep(interval_s)
            return
        select.select([fd], [], [])  # readable once the runner has exited

    def watch() -> None:
        wait_for_parent()
        if os.getpgid(0) == os.getpid():  # the kernel leads its group (jupyter_client starts it so)
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="audioreg-exit-with-parent", daemon=True).start()


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


class _Status:
    """``reports/<run_id>/status.json``: how each stage last ended (done, skipped, failed,
    stopped), why, when and in which of the run id's runs; and how the latest run ended
    (``running`` until it does: a run killed outright stays so)."""

    def __init__(self, report_dir: Path):
        self.report_dir = report_dir
        self.path = report_dir / STATUS
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        self.runs, self.seq = int(data.get("runs", 0)), int(data.get("seq", 0))
        self.stages: dict[str, dict] = dict(data.get("stages", {}))
        self.last: dict = dict(data.get("last", {}))

    def begin(self, asked: list[str]) -> None:
        self.runs += 1
        self.last = {"run": self.runs, "outcome": "running", "stage": None, "reason": "", "asked": list(asked),
                     "started": _now(), "pid": os.getpid()}
        self._save()

    def ended(self, nb: str, outcome: str, reason: str = "") -> None:
        self.seq += 1
        self.stages[nb] = {"status": outcome, "reason": reason, "at": _now(), "run": self.runs, "seq": self.seq}
        self._save()

    def finish(self, outcome: str, stage: str | None = None, reason: str = "") -> None:
        self.last.update(outcome=outcome, stage=stage, reason=reason, ended=_now())
        self._save()

    def _save(self) -> None:
        atomic.write_json(self.path, {"runs": self.runs, "seq": self.seq, "last": self.last, "stages": self.stages})

    def views(self) -> list[dict]:
        """Every stage with a page or a record, in chain order, as :func:`report.write_index` shows it."""
        recs = {}
        for nb in NOTEBOOKS:
            page = self.report_dir / f"{nb}.html"
            rec = self.stages.get(nb)
            if rec is None and page.is_file():  # a page older than status.json
                made = dt.datetime.fromtimestamp(page.stat().st_mtime).isoformat(timespec="seconds")
                rec = {"status": "done", "reason": "", "at": made, "run": 0, "seq": 0}
            if rec is not None:
                recs[nb] = rec
        asked, outcome, at = self.last.get("asked", []), self.last.get("outcome"), self.last.get("stage")
        views = []
        for nb, rec in recs.items():
            this_run = rec["run"] == self.runs
            notes = []
            if not this_run:
                if nb in asked:
                    notes.append("this run has not reached it" if outcome == "running"
                                 else f"not run again: this run stopped at {at}")
            page = self.report_dir / f"{nb}.html"
            views.append({"name": nb, "page": page if page.is_file() else None, "status": rec["status"],
                          "reason": rec["reason"], "at": rec["at"], "this_run": this_run, "notes": notes,
                          "stale": self._stale(nb, recs) if rec["status"] in ("done", "skipped") else None})
        return views

    @staticmethod
    def _stale(nb: str, recs: Mapping[str, dict]) -> str | None:
        """Why ``nb``'s page no longer holds: a stage it builds on failed (or was stopped), or ran
        after it was made; the nearest such stage, a failure first."""
        ups = [(up, recs[up]) for up in reversed(_upstream(nb)) if up in recs]
        for up, rec in ups:
            if rec["status"] in ("failed", "stopped"):
                return f"{up} {rec['status']} ({rec['at']})"
        for up, rec in ups:
            if rec["seq"] > recs[nb]["seq"]:
                again = "ran again" if rec["status"] == "done" else f"was {rec['status']}"
                return f"{up} {again} after it was made ({rec['at']})"
        return None


def _upstream(nb: str) -> list[str]:
    """Every notebook ``nb`` builds on, directly or not, in chain order."""
    seen: set[str] = set()
    todo = list(UPSTREAM[nb])
    while todo:
        up = todo.pop()
        if up not in seen:
            seen.add(up)
            todo.extend(UPSTREAM[up])
    return [n for n in NOTEBOOKS if n in seen]


def _write_index(report_dir: Path, run_id: str, params: Mapping, status: _Status) -> Path:
    """``index.html`` from the run's files (:func:`audioreg.store.report_inputs`: metrics.json,
    predictions, histories, split table) and how each stage last ended."""
    from . import store  # the run's files; imported here, so that `audioreg run --help` stays light

    inputs = store.report_inputs(params, report_dir=report_dir)
    return report.write_index(report_dir, run_id, params, status.views(), run=status.last, inputs=inputs)


def _write_cross_run_index(work: Path) -> None:
    """``reports/index.html``: every run under ``work`` side by side, per data set
    (:func:`audioreg.judge.leaderboard.write_cross_run_index`), rebuilt after each run. A page that
    cannot be built is logged; it never fails the run."""
    from .judge.leaderboard import write_cross_run_index

    try:
        write_cross_run_index(work / "runs", work / "reports" / "index.html")
    except Exception as exc:  # the run's own results stand without the page across runs
        log.warning("%s was not rebuilt: %s", work / "reports" / "index.html", one_line(exc))
