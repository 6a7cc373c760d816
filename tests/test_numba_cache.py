"""The compiled-code cache: one writer under concurrency, and a poisoned cache repaired.

Each test runs its processes with ``NUMBA_CACHE_DIR`` in a temp folder, so the cache
starts cold and the install's own cache is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audioreg.features import numba_cache as NC

# A plain process calling the librosa gufuncs that numba issue 10128 leaves broken:
# on a poisoned cache it dies with SIGSEGV.
LIBROSA_CALLS = ("import librosa, numpy as np\n"
                 "y = np.random.default_rng(0).standard_normal(66150).astype('float32')\n"
                 "librosa.estimate_tuning(y=y, sr=22050)\n"
                 "librosa.feature.zero_crossing_rate(y)\n"
                 "librosa.util.localmax(y)\n")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """A ``NUMBA_CACHE_DIR`` for this module's processes, seeded with a copy of the
    install's cache (filled by conftest), so that each test compiles only what it deletes."""
    from numba.core.caching import UserProvidedCacheLocator

    cache = tmp_path_factory.mktemp("numba-cache")
    for package in NC.PACKAGES:
        for folder in NC._package_dirs(package):
            installed = NC.cache_dir_for(folder)
            files = NC.cached_files([installed]) if installed is not None else []
            if files:
                dest = cache / UserProvidedCacheLocator.get_suitable_cache_subpath(str(folder / "__init__.py"))
                dest.mkdir(exist_ok=True)
                for f in files:
                    shutil.copy2(f, dest / f.name)
    return cache


def _env(cache: Path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONUNBUFFERED="1")
    lib = str(Path(NC.__file__).resolve().parents[1])
    env["PYTHONPATH"] = lib + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _python(code: str, cache: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=_env(cache), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _subdir(cache: Path, prefix: str) -> Path:
    """The cache subfolder of a source folder (numba names it ``<folder>_<sha1 of its path>``)."""
    (found,) = [p for p in cache.iterdir() if p.is_dir() and p.name.startswith(prefix + "_")]
    return found


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    import soundfile as sf

    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(1)
    t = np.arange(3 * 22050) / 22050
    for i in range(4):
        y = 0.3 * np.sin(2 * np.pi * (220 + 60 * i) * t) + 0.02 * rng.standard_normal(t.size)
        sf.write(folder / f"t{i}.wav", y.astype(np.float32), 22050)
    return folder


@pytest.mark.slow
def test_concurrent_runs_on_a_cold_cache_leave_it_loadable(cache_dir, audio_dir, tmp_path):
    """Four processes at once (three ``audioreg extract --workers 2`` and a script that
    calls the librosa gufuncs) on a cache where two librosa gufunc modules (``core``'s
    zero crossings and pitch interpolation) and our kernels are cold. Without one writer
    the workers race to compile them: files time out, and the cache ends poisoned (a
    fresh process calling librosa dies with SIGSEGV), in every try on the code before
    the fix (two rounds each, every round failed; one round is kept here)."""
    script = "from audioreg.features.numba_cache import ensure_compiled\nensure_compiled()\n" + LIBROSA_CALLS
    for round_ in range(1):
        cold = [*_subdir(cache_dir, "core").glob("*_zc_wrapper*"), *_subdir(cache_dir, "core").glob("*_pi_wrapper*"),
                *_subdir(cache_dir, "features").glob("frames.*.nb*")]
        assert len(cold) >= 12, cold  # both gufuncs (kernel and wrapper files) and our kernels are there to delete
        for p in cold:
            p.unlink()
        procs = []
        for k in range(3):
            out = tmp_path / f"r{round_}-{k}"
            cmd = [sys.executable, "-m", "audioreg", "extract", str(audio_dir), "--out", str(out),
                   "--workers", "2", "--timeout", "30", "--no-progress"]
            procs.append((out, subprocess.Popen(cmd, env=_env(cache_dir), stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)))
        procs.append((None, subprocess.Popen([sys.executable, "-c", script], env=_env(cache_dir),
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                             stdin=subprocess.DEVNULL)))
        for out, proc in procs:
            text, _ = proc.communicate(timeout=900)
            assert proc.returncode == 0, f"round {round_}: {proc.args} exited {proc.returncode}:\n{text[-2000:]}"
            if out is not None:
                failures = pd.read_csv(out / "failures.csv")
                assert failures.empty, f"round {round_}: {failures['reason'].tolist()}"
                assert len(pd.read_csv(out / "index.csv")) == 4
        after = _python(LIBROSA_CALLS, cache_dir)
        assert after.returncode == 0, f"round {round_}: a fresh process calling librosa exited {after.returncode}"


def _poison(cache: Path) -> None:
    """Leave the cache as numba issue 10128 does: ``_zc_wrapper``'s kernel written by one
    process and its gufunc wrapper by another that had compiled other functions first."""
    core = _subdir(cache, "core")
    kept = {p.name: p.read_bytes() for p in core.glob("audio._zc_wrapper*")}
    for p in core.glob("*_zc_wrapper*"):
        p.unlink()
    other = _python("import numba\n"
                    "for i in range(7):\n    numba.njit(lambda x, i=i: x + i)(1)\n"
                    "import librosa.core.audio\n", cache)
    assert other.returncode == 0, other.stderr
    for name, data in kept.items():  # the kernel of the first compilation, the wrapper of the second
        (core / name).write_bytes(data)


@pytest.mark.slow
def test_a_poisoned_cache_is_detected_and_rebuilt(cache_dir):
    ready = _python("from audioreg.features.numba_cache import ensure_compiled\nensure_compiled()\n", cache_dir)
    assert ready.returncode == 0, ready.stderr
    _poison(cache_dir)
    crashed = _python(LIBROSA_CALLS, cache_dir)
    assert crashed.returncode == -11, f"the poisoned cache did not crash a fresh process: {crashed.returncode}"

    healed = _python("import logging\nlogging.basicConfig(level=logging.INFO)\n"
                     "from audioreg.features.numba_cache import ensure_compiled\nensure_compiled()\n", cache_dir)
    assert healed.returncode == 0, healed.stderr
    warnings = [line for line in healed.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "numba cache was corrupt" in warnings[0] and "SIGSEGV" in warnings[0], healed.stderr
    assert _python(LIBROSA_CALLS, cache_dir).returncode == 0
    again = _python("import logging\nlogging.basicConfig(level=logging.INFO)\n"
                    "from audioreg.features.numba_cache import ensure_compiled\nensure_compiled()\n", cache_dir)
    assert again.returncode == 0 and "WARNING" not in again.stderr


def test_probe_runs_only_when_the_cache_changed(tmp_path, monkeypatch):
    """The start-up check is a fingerprint of file sizes and times: the probe runs when a
    cached file changes, not on every start."""
    src, cache = tmp_path / "src", tmp_path / "cache"
    src.mkdir(), cache.mkdir()
    (src / "mod.py").write_text("@numba.njit(cache=True)\n")
    (cache / "mod.f-1.py311.nbi").write_bytes(b"index")
    monkeypatch.setattr(NC, "_layout", lambda: ((src / "mod.py",), (cache,)))
    monkeypatch.setattr(NC, "_ensured", None)
    runs = []

    def probe(timeout_s):
        runs.append(1)
        if len(runs) == 1:  # the first run compiles (writes a file); later runs only load
            (cache / "mod.f-1.py311.1.nbc").write_bytes(b"compiled")
        return subprocess.CompletedProcess([], 0, "", "")

    monkeypatch.setattr(NC, "_run_probe", probe)
    NC.ensure_compiled()
    assert len(runs) == 2  # a compiling run, then a run in another process that only loads
    NC.ensure_compiled()
    monkeypatch.setattr(NC, "_ensured", None)  # another process: reads the stamp
    NC.ensure_compiled()
    assert len(runs) == 2
    (cache / "mod.f-1.py311.2.nbc").write_bytes(b"written by someone else")
    NC.ensure_compiled()
    assert len(runs) == 3
    (src / "mod.py").write_text("@numba.njit(cache=True)\n# edited\n")
    NC.ensure_compiled()
    assert len(runs) == 4


def test_a_crash_is_repaired_where_it_happened_then_everywhere_then_reported(tmp_path, monkeypatch):
    """A probe that dies in a module's code first loses that folder's cache, then all of
    it; a probe that dies even then is an error naming the cache."""
    core, util = tmp_path / "core", tmp_path / "util"
    for d in (core, util):
        d.mkdir()
        (d / "mod.f-1.py311.nbi").write_bytes(b"index")
    (tmp_path / "src" / "core").mkdir(parents=True)
    monkeypatch.setattr(NC, "_layout", lambda: ((), (util, core)))
    monkeypatch.setattr(NC, "cache_dir_for", lambda folder: core if folder.name == "core" else None)
    monkeypatch.setattr(NC, "_package_dirs", lambda package: [tmp_path / "src" / "core"] if package == "librosa" else [])
    monkeypatch.setattr(NC, "_ensured", None)
    trace = ("Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n"
             '  File "/x/numba/np/ufunc/gufunc.py", line 263 in __call__\n'
             f'  File "{tmp_path}/src/core/audio.py", line 1209 in zero_crossings\n'
             '  File "/x/audioreg/numba_cache.py", line 300 in _exercise\n')
    deleted = []

    def probe(timeout_s):
        deleted.append((not (core / "mod.f-1.py311.nbi").exists(), not (util / "mod.f-1.py311.nbi").exists()))
        return subprocess.CompletedProcess([], -11, "", trace)

    monkeypatch.setattr(NC, "_run_probe", probe)
    with pytest.raises(NC.CompiledCacheError, match=r"died with SIGSEGV even after its cache was deleted and rebuilt"):
        NC.ensure_compiled()
    # run 1: nothing deleted; run 2: the crashing module's folder; run 3: everything
    assert deleted == [(False, False), (True, False), (True, True)]


def test_cache_dir_follows_numba_cache_dir(tmp_path):
    code = ("from pathlib import Path\nimport audioreg.features.numba_cache as NC, audioreg\n"
            "print(NC.cache_dir_for(Path(audioreg.__file__).parent))\n")
    res = _python(code, tmp_path)
    assert res.returncode == 0, res.stderr
    printed = Path(res.stdout.strip())
    assert printed.parent == tmp_path and printed.name.startswith("audioreg_")


def test_clear_deletes_the_cached_code_and_the_stamp_only(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("utils._localmax-1035.py311.nbi", "utils._localmax-1035.py311.1.nbc", NC.STAMP_NAME,
                 "utils.cpython-311.pyc"):
        (cache / name).write_bytes(b"x")
    monkeypatch.setattr(NC, "_layout", lambda: ((), (cache,)))
    deleted = NC.clear_cache()
    assert sorted(p.name for p in deleted) == sorted(["utils._localmax-1035.py311.nbi",
                                                      "utils._localmax-1035.py311.1.nbc", NC.STAMP_NAME])
    assert sorted(p.name for p in cache.iterdir()) == sorted([NC.LOCK_NAME, "utils.cpython-311.pyc"])
