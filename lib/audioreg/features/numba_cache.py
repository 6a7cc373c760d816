"""One writer for numba's on-disk cache, and a cache that heals itself.

librosa's gufuncs and our compiled frame pass are cached on disk by numba
(``cache=True``). When two processes compile the same ``guvectorize`` function at
once, they can write its two cache files (the kernel and the gufunc wrapper) with
different internal names (numba issue 10128). From then on every process that loads
it dies with a segmentation fault, until the files are deleted. Starting several
workers on a cold cache is exactly that situation.

:func:`ensure_compiled` is called by everything that starts workers or computes
features (the extraction driver on every backend, the runner, the CLI) before any of
its processes touches librosa:

1. It takes an exclusive lock (``audioreg-numba.lock``) beside the cache, so only one
   process on any host that shares the cache compiles at a time.
2. It fingerprints the cache: the size and mtime of every ``.nbi``/``.nbc`` file in
   the cache folders of librosa and audioreg, of their source files, and the numba and
   Python versions. If the fingerprint equals the one recorded after the last
   successful probe (``audioreg-numba.json``), it returns: a few dozen ``stat`` calls.
3. Otherwise it runs a probe in a fresh process (``python -m audioreg.features.numba_cache``)
   that imports and calls every compiled function audioreg uses. A cold cache is
   filled by that one process. The probe is run again on the filled cache: a process
   that only loads must survive too.
4. If a probe dies (a poisoned cache: a segmentation fault on load), the cached
   files of librosa and audioreg are deleted, one warning says so, and the probe
   compiles them again.

Processes started after it (pool workers, Dask tasks, notebook kernels) only load
from the cache, so they never race to write it, and a first file never pays a
compilation inside its per-file timeout. A process outside audioreg that calls
librosa on a cold cache at the same moment can still race with it (that is numba's
bug); the next audioreg start detects the damage and repairs it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from .. import atomic

log = logging.getLogger(__name__)

#: Packages whose numba-cached functions audioreg calls.
PACKAGES = ("librosa", "audioreg")

#: Bump when :func:`_exercise` calls something new: it is part of the fingerprint.
PROBE_VERSION = "4"  # 2: the expert estimators (beat tracker, CQT chroma); 3: all beat kernels cached; 4: kernels split out

LOCK_NAME = "audioreg-numba.lock"
STAMP_NAME = "audioreg-numba.json"
_CACHE_SUFFIXES = (".nbi", ".nbc")

_ensured: str | None = None  # the fingerprint this process last checked (skips the lock next time)


class CompiledCacheError(RuntimeError):
    """The compiled-code cache could not be built: the probe failed even on an empty cache."""


def _package_dirs(package: str) -> list[Path]:
    """Every folder of ``package`` that holds Python source, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    dirs = []
    for top in spec.submodule_search_locations:
        for folder, subdirs, files in os.walk(top):
            subdirs[:] = sorted(d for d in subdirs if d != "__pycache__" and not d.startswith("."))
            if any(f.endswith(".py") for f in files):
                dirs.append(Path(folder))
    return dirs


def _dummy():  # pragma: no cover - only its code object is read
    pass


def cache_dir_for(source_dir: Path) -> Path | None:
    """The folder numba caches the functions of ``source_dir/*.py`` in.

    Asks numba's own locators in numba's order: ``NUMBA_CACHE_DIR`` if set, else the
    ``__pycache__`` beside the source if writable, else the user-wide cache folder.
    """
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")  # numba >= 0.62 / older
    source = str(Path(source_dir) / "__init__.py")
    for cls in impl._locator_classes:
        try:
            locator = cls.from_function(_dummy, source)
        except Exception:  # a locator that does not apply to plain files (IPython, zip)
            continue
        if locator is not None:
            return Path(locator.get_cache_path())
    return None


@functools.lru_cache(maxsize=None)
def _layout() -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """``(source files, cache folders)`` of :data:`PACKAGES`.

    The source files are those that define numba-cached functions (their sizes and
    times are part of the fingerprint: an upgraded or edited module recompiles); the
    first cache folder is librosa's, where the lock and the stamp live.
    """
    sources, caches = [], []
    for package in PACKAGES:
        for folder in _package_dirs(package):
            for py in sorted(folder.glob("*.py")):
                try:
                    if "cache=True" in py.read_text(encoding="utf-8", errors="replace"):
                        sources.append(py)
                except OSError:
                    continue
            c = cache_dir_for(folder)
            if c is not None and c not in caches:
                caches.append(c)
    return tuple(sources), tuple(caches)


def _stat(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return (str(path), -1, -1)
    return (str(path), st.st_size, st.st_mtime_ns)


def _stat_entries(folder: Path, suffixes: tuple[str, ...]) -> list[tuple[str, int, int]]:
    out = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if e.name.endswith(suffixes):
                    try:
                        st = e.stat()
                    except FileNotFoundError:
                        continue
                    out.append((e.path, st.st_size, st.st_mtime_ns))
    except FileNotFoundError:
        pass
    return sorted(out)


def fingerprint(sources, caches) -> str:
    """A hash of the cache files, the source files they were compiled from and the toolchain."""
    import numba

    h = hashlib.sha256()
    h.update(json.dumps([PROBE_VERSION, numba.__version__, sys.version, sys.executable]).encode())
    h.update(json.dumps([_stat(p) for p in sources]).encode())
    for d in caches:
        h.update(json.dumps(_stat_entries(d, _CACHE_SUFFIXES)).encode())
    return h.hexdigest()


def cached_files(caches) -> list[Path]:
    """The ``.nbi``/``.nbc`` files in ``caches``."""
    return [Path(p) for d in caches for p, _, _ in _stat_entries(d, _CACHE_SUFFIXES)]


def _probe_env() -> dict:
    """The environment of a probe: this one, with audioreg importable from where it was imported."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def _run_probe(timeout_s: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "faulthandler", "-m", "audioreg.features.numba_cache"], env=_probe_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s)


def _describe(proc: subprocess.CompletedProcess) -> str:
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        return f"died with {name}"
    tail = (proc.stderr or "").strip().splitlines()[-3:]
    return f"exited with code {proc.returncode}" + (": " + " | ".join(tail) if tail else "")


def ensure_compiled(*, timeout_s: float = 900.0) -> None:
    """Make sure librosa's and audioreg's compiled functions are cached, once, by one process.

    Call it before starting workers or touching librosa. Cheap when nothing changed
    (a fingerprint of file sizes and times); otherwise it runs the probe in a fresh
    process under a lock (a first run on a new install compiles for about a minute),
    and repairs a poisoned cache (see the module notes).

    Raises
    ------
    CompiledCacheError
        When the probe still fails after the cache was deleted and rebuilt.
    """
    global _ensured
    sources, caches = _layout()
    if not caches:  # numba cannot cache here at all: nothing on disk to race over
        return
    if _ensured is not None and _ensured == fingerprint(sources, caches):
        return
    lock, stamp = caches[0] / LOCK_NAME, caches[0] / STAMP_NAME
    with atomic.locked(lock, doing="to finish compiling"):
        current = fingerprint(sources, caches)
        try:
            recorded = json.loads(stamp.read_text())["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            recorded = None
        if recorded == current:
            _ensured = current
            return
        t0 = time.monotonic()
        cold = not cached_files(caches)
        if cold:
            log.info("compiling librosa's and audioreg's numba functions once for this install "
                     "(about a minute; cached in %s)", caches[0])
        repairs = _probe_until_clean(sources, caches, timeout_s)
        current = fingerprint(sources, caches)
        if repairs:
            log.warning("the numba cache was corrupt (a probe process %s): deleted %d cached files in %s "
                        "and rebuilt them in %.0f s", repairs[0][0], sum(r[1] for r in repairs),
                        ", ".join(str(c) for r in repairs for c in r[2]), time.monotonic() - t0)
        elif cold:
            log.info("compiled and cached in %.0f s", time.monotonic() - t0)
        atomic.write_json(stamp, {"fingerprint": current, "written": time.strftime("%Y-%m-%dT%H:%M:%S")})
        _ensured = current


def _probe_until_clean(sources, caches, timeout_s: float) -> list[tuple[str, int, list[Path]]]:
    """Run the probe until a run that compiles nothing succeeds; delete cached files when one dies.

    A probe that dies is repaired first where it died (the cache folder of the
    innermost Python frame of its faulthandler trace, e.g. librosa's ``core``), then,
    if it dies again, in every cache folder. Returns ``(what happened, files deleted,
    folders)`` per repair; raises :class:`CompiledCacheError` when a probe still dies
    after everything was deleted.
    """
    repairs: list[tuple[str, int, list[Path]]] = []
    compiling_runs = 0
    while True:
        before = fingerprint(sources, caches)
        proc = _run_probe(timeout_s)
        if proc.returncode == 0:
            if fingerprint(sources, caches) == before:
                return repairs  # it loaded everything and compiled nothing: the cache is whole
            compiling_runs += 1  # it compiled, as the only writer: the next run checks that it loads
            if compiling_runs > 3:  # pragma: no cover - a cache that is never kept
                raise CompiledCacheError(f"the numba cache in {caches[0]} is rewritten on every run: it is not kept")
            continue
        if repairs and repairs[-1][2] == list(caches):
            raise CompiledCacheError(
                f"the numba cache probe ({sys.executable} -m audioreg.features.numba_cache) {_describe(proc)} "
                f"even after its cache was deleted and rebuilt in {caches[0]}")
        where = None if repairs else _crash_cache_dir(proc.stderr)
        folders = [where] if where in caches else list(caches)
        doomed = cached_files(folders)
        for p in doomed:
            p.unlink(missing_ok=True)
        repairs.append((_describe(proc), len(doomed), folders))


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line \d+ in ')


def _crash_cache_dir(stderr: str) -> Path | None:
    """The cache folder of the innermost frame of librosa or audioreg in a faulthandler trace.

    Frames of numba itself (the gufunc's ``__call__``) and of the probe are skipped:
    the frame that called the broken function names the module it lives beside.
    """
    ours = {d.resolve() for p in PACKAGES for d in _package_dirs(p)}
    for line in (stderr or "").splitlines():
        m = _FRAME.match(line)
        if not m:
            continue
        path = Path(m["file"])
        if path.name != "numba_cache.py" and path.parent.resolve() in ours:
            return cache_dir_for(path.parent)
    return None


def _exercise() -> None:
    """Import and call every numba-cached function audioreg uses, on small signals.

    Run in the probe process: on a cold cache it compiles them (one writer); on a
    warm one it loads them, and a poisoned entry kills it with SIGSEGV.
    """
    import numpy as np

    from . import experts, frames, kernels

    librosa = experts.librosa()  # before anything imports librosa without deferring and caching its kernels
    experts.build_deferred()  # every deferred kernel compiled here, by the one writer: none left to a worker

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        y = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(frames.SR) / frames.SR) + 0.01 * rng.standard_normal(frames.SR)).astype(dtype)
        librosa.estimate_tuning(y=y, sr=frames.SR)
        librosa.feature.zero_crossing_rate(y)
        librosa.zero_crossings(y)
        librosa.util.localmax(y)
        librosa.util.localmin(y)
        librosa.util.peak_pick(y, pre_max=3, post_max=3, pre_avg=3, post_avg=5, delta=0.1, wait=10)
        librosa.util.abs2(y.astype(np.complex64 if dtype == np.float32 else np.complex128))
        librosa.util.phasor(y)
    for dtype in (np.int16, np.int32, np.int64):
        librosa.util.localmax(np.arange(8, dtype=dtype))
        librosa.util.localmin(np.arange(8, dtype=dtype))
    y = (0.3 * rng.standard_normal(2 * frames.SR)).astype(np.float32)
    frames.extract_features(y=y, sr=frames.SR)
    experts.estimate_all(y, sr=frames.SR)  # the beat tracker's dynamic programme is numba code
    spectrum = np.zeros((2, frames.N_FFT // 2 + 1), np.complex128)
    kernels._power_into(spectrum, np.empty(spectrum.shape, np.float32))  # the recompute path of long tracks


def clear_cache() -> list[Path]:
    """Delete the cached compiled code of librosa and audioreg (and the stamp); returns the
    files deleted. The next :func:`ensure_compiled` rebuilds it. Takes the lock, so it
    never deletes under a process that is compiling."""
    global _ensured
    _, caches = _layout()
    if not caches:
        return []
    with atomic.locked(caches[0] / LOCK_NAME, doing="to finish compiling"):
        doomed = cached_files(caches) + [p for p in [caches[0] / STAMP_NAME] if p.exists()]
        for p in doomed:
            p.unlink(missing_ok=True)
    _ensured = None
    return doomed


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m audioreg.features.numba_cache",
                                     description="Without options: the probe (import and call every compiled "
                                                 "function audioreg uses; what ensure_compiled runs).")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--clear", action="store_true", help="delete the cached compiled code of librosa and audioreg")
    group.add_argument("--check", action="store_true", help="check the cache (and fill or repair it) as a run does")
    args = parser.parse_args(argv)
    if args.clear:
        files = clear_cache()
        folders = sorted({str(f.parent) for f in files})
        print(f"deleted {len(files)} cached files" + (" in " + ", ".join(folders) if folders else ""))
    elif args.check:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        ensure_compiled()
        print("compiled-code cache: ok (" + ", ".join(str(c) for c in _layout()[1]) + ")")
    else:
        _exercise()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
