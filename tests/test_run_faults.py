"""`audioreg run` when things go wrong: a failed rerun, a full disk, a stopped or killed run.

Each test runs a stand-in project in a tmp dir (a ``pyproject.toml`` naming audioreg and
one-cell notebooks under the chain's names), so that a kernel or two, not the chain, is what
it costs.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from audioreg import cli, runner


def _notebook(code: str) -> dict:
    cells = [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "execution_count": None,
              "outputs": [], "source": 'root: str = ""\nrun_id: str = "default"\n'},
             {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": None, "outputs": [], "source": code}]
    return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                        "name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}


def _project(folder: Path, **codes: str) -> Path:
    """A project the CLI finds from ``folder`` (its root), every notebook printing ``ok`` but
    those given in ``codes`` (by notebook name)."""
    (folder / "notebooks").mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text('[project]\nname = "audioreg"\n', encoding="utf-8")
    for nb in runner.NOTEBOOKS:
        code = codes.get(nb, "print('ok')")
        (folder / "notebooks" / f"{nb}.ipynb").write_text(json.dumps(_notebook(code)), encoding="utf-8")
    return folder


#: a stand-in 06: it writes the run's metrics.json, with a summary row
SCORES = ("import json, pathlib\n"
          "pathlib.Path(root, 'runs', run_id, 'metrics.json').write_text(json.dumps("
          "{'summary': [{'model': 'GRU', 'mean_smse': 0.4321}]}))\n")


def test_a_failed_rerun_says_where_and_why_and_shows_no_earlier_result_as_current(tmp_path):
    project = _project(tmp_path, **{"06_error_analysis": SCORES})
    first = runner.run(run_id="r", root=project, notebooks=["06_error_analysis"])
    assert "0.4321" in first.index.read_text(encoding="utf-8")
    assert (first.report_dir / "metrics.json").is_file()
    for nb in ("04_rf", "05_gru"):  # pages of an earlier run, older than status.json
        (first.report_dir / f"{nb}.html").write_text(f"<p>{nb} went well</p>", encoding="utf-8")

    _project(tmp_path, **{"05_gru": "raise ValueError('the loss diverged')", "06_error_analysis": SCORES})
    with pytest.raises(runner.RunError, match=r"05_gru failed: ValueError: the loss diverged"):
        runner.run(run_id="r", root=project, notebooks=["05_gru", "06_error_analysis"])

    index = (first.report_dir / "index.html").read_text(encoding="utf-8")
    banner = index.split('<div id="audioreg-run-failed"', 1)[1].split("</div>", 1)[0]
    assert "This run failed at" in banner and "05_gru" in banner and "ValueError: the loss diverged" in banner
    items = {line.split('href="', 1)[1].split(".html", 1)[0]: line for line in index.splitlines() if "<li>" in line}
    assert "<b>failed</b>" in items["05_gru"] and "by this run" in items["05_gru"]
    assert "<b>stale</b>: 05_gru failed" in items["06_error_analysis"]
    assert "not run again: this run stopped at 05_gru" in items["06_error_analysis"]
    assert "by an earlier run of this run id" in items["04_rf"] and "stale" not in items["04_rf"]
    # the earlier summary is gone, from the index and from the report's metrics.json
    assert "0.4321" not in index and "No current summary" in index
    assert not (first.report_dir / "metrics.json").exists()
    # 05's page and executed notebook are this run's, showing the error, not the earlier success
    page = (first.report_dir / "05_gru.html").read_text(encoding="utf-8")
    assert "the loss diverged" in page and "went well" not in page
    nb = nbformat.read(str(first.run_dir / "05_gru.ipynb"), as_version=4)
    assert any(o.get("ename") == "ValueError" for c in nb.cells for o in c.get("outputs", []))
    assert nb.metadata.papermill.output_path == str(first.run_dir / "05_gru.ipynb")
    assert not list(first.run_dir.glob(".*.tmp"))


def test_a_full_disk_in_a_kernel_is_one_line_naming_the_folder(tmp_path, monkeypatch, capsys):
    full = tmp_path / "full disk" / "models"
    project = _project(tmp_path / "project", **{
        "05_gru": f"raise OSError({errno.ENOSPC}, 'No space left on device', {str(full / 'best.pt')!r})"})
    monkeypatch.chdir(project)
    assert cli.main(["run", "--run-id", "k", "--only", "05_gru"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"audioreg: error: no space left on {full}") and err.count("\n") == 1, err
    assert "05_gru stopped" in err


def test_a_full_disk_under_the_executed_notebook_is_one_line_and_leaves_no_truncated_notebook(
        tmp_path, monkeypatch, capsys):
    """papermill writes the executed notebook as it goes; here the disk fills halfway through a write."""
    import papermill.iorw

    project = _project(tmp_path)
    monkeypatch.chdir(project)

    def half_then_full(self, buf, path):
        Path(path).write_text(buf[: len(buf) // 2], encoding="utf-8")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(papermill.iorw.LocalHandler, "write", half_then_full)
    run_dir = project / "runs" / "w"
    assert cli.main(["run", "--run-id", "w", "--only", "01_ingest"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"audioreg: error: no space left on {run_dir}") and err.count("\n") == 1, err
    assert not (run_dir / "01_ingest.ipynb").exists() and not list(run_dir.glob(".*.tmp"))
    index = (project / "reports" / "w" / "index.html").read_text(encoding="utf-8")
    assert 'id="audioreg-run-failed"' in index and "01_ingest" in index and "No space left on device" in index


# --- a stopped or killed run: its kernel and the workers the kernel started stop too

#: 01 as a stand-in for 02's extraction: a worker process and the kernel each write a file every 20 ms
WORKING = """import pathlib, subprocess, sys, time
out = pathlib.Path(root, 'ticks')
out.mkdir(exist_ok=True)
loop = ("import pathlib, sys, time\\n"
        "for i in range(3000):\\n    pathlib.Path(sys.argv[1], f'w{i}').touch()\\n    time.sleep(0.02)")
worker = subprocess.Popen([sys.executable, '-c', loop, str(out)])
for i in range(3000):
    (out / f'k{i}').touch()
    time.sleep(0.02)
"""


def _processes() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, state)."""
    procs = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            procs[int(d.name)] = (int(fields[1]), fields[0])
    return procs


def _descendants(pid: int) -> set[int]:
    procs = _processes()
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        kids = {p for p, (pp, _) in procs.items() if pp == parent} - found
        found |= kids
        todo.extend(kids)
    return found


def _alive(pids) -> set[int]:
    procs = _processes()
    return {p for p in pids if p in procs and procs[p][1] != "Z"}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the kernel's processes through /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_killing_the_runs_process_group_stops_its_kernel_and_workers(tmp_path, sig):
    project = _project(tmp_path, **{"01_ingest": WORKING})
    ticks = project / "ticks"
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "audioreg", "run", "--run-id", "k", "--only", "01_ingest"],
                                cwd=project, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while not (ticks / "w2").exists() or not (ticks / "k2").exists():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            seen |= _descendants(proc.pid)
            time.sleep(0.02)
        seen |= _descendants(proc.pid)
        assert len(seen) >= 2, seen  # the kernel and its worker
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while _alive(seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(seen), f"still running after {sig.name} to the run's group: {sorted(_alive(seen))}"
        before = sorted(p.name for p in ticks.iterdir())
        time.sleep(0.3)
        assert sorted(p.name for p in ticks.iterdir()) == before  # nothing writes for the run any more
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in _alive(seen):
            os.kill(pid, signal.SIGKILL)

    index = (project / "reports" / "k" / "index.html").read_text(encoding="utf-8")
    assert not (project / "runs" / "k" / "01_ingest.ipynb").exists()
    if sig != signal.SIGKILL:  # Ctrl-C or kill: the runner stops its kernel, says so, and the report too
        assert proc.returncode == 128 + sig
        assert f"audioreg: stopped by {sig.name} during 01_ingest" in log.read_text(errors="replace")
        assert 'id="audioreg-run-stopped"' in index and f"stopped by {sig.name}" in index
    else:  # killed outright: the report still says the run never finished
        assert proc.returncode == -signal.SIGKILL
        assert 'id="audioreg-run-unfinished"' in index


@pytest.mark.slow  # the kernel's death takes nbclient a few seconds to notice
def test_a_kernel_that_dies_is_a_failed_stage_and_one_line(tmp_path, capsys, monkeypatch):
    """Not a traceback: a kernel killed (as for lack of memory) fails its stage in the report and
    on the command line, and leaves no executed notebook under its final name."""
    project = _project(tmp_path, **{"02_extract": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"})
    monkeypatch.chdir(project)
    rc = cli.main(["run", "--run-id", "k", "--only", "01_ingest,02_extract"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("audioreg: error: 02_extract failed: its kernel died"), err
    index = (project / "reports" / "k" / "index.html").read_text(encoding="utf-8")
    assert "This run failed at" in index and "its kernel died" in index
    assert not (project / "runs" / "k" / "02_extract.ipynb").exists()
