"""The extraction driver: files in, cached feature matrices out.

The feature functions in :mod:`audioreg.features` are pure; this module owns file
iteration, the per-file timeout, parallelism, atomic writes and the failures table.
A cache folder holds ``<name>.npy`` per track (written atomically, so a file that
exists is complete), ``index.csv`` (the aligned index) and ``failures.csv``.
A killed run leaves at most temp files (``.<name>.<host>-<pid>.tmp``), which are never
read and are deleted by the next run once their writer is gone.

Two backends run :func:`extract_file` over the files, with the same output: a local
process pool (``workers``), or a Dask distributed cluster (``scheduler``, an address
such as ``tcp://host:8786``; needs ``pip install "audioreg[cluster]"``). On a cluster
each worker reads the audio and writes its ``.npy`` itself, so the audio paths and
the output folder must be the same paths on every worker (a shared filesystem), and
``audioreg`` must be installed on the workers. Every backend computes with one BLAS
thread per process, so the arrays are byte-identical whichever ran. The per-file
timeout uses SIGALRM, which only works in a process's main thread: Dask runs tasks on
worker threads, so there the timeout is not enforced (a file that hangs keeps its
worker busy).

A third way (``device="cuda"``, see :func:`feature_device`): the pool's processes only
decode, and the features of batches of tracks are computed with torch on a GPU
(:mod:`audioreg.features.torch_batch`: within its tolerances of the CPU values, not bit for bit).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import re
import hashlib
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import atomic
from ..data.audio import load_audio
from ..errors import one_line
from . import frames
from .numba_cache import ensure_compiled

log = logging.getLogger(__name__)

INDEX_COLUMNS = ("track_id", "file", "n_frames", "duration_s", "seconds")
FAILURE_COLUMNS = ("track_id", "path", "stage", "reason")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")


def array_name(track_id: str) -> str:
    """File name of a track's feature matrix (track ids that are unsafe as file names are hashed).

    The hash is of the id's UTF-8 bytes; an id from a file name with undecodable bytes
    (held by Python as lone surrogates) hashes those original bytes.
    """
    tid = str(track_id)
    if _SAFE.match(tid):
        return f"{tid}.npy"
    return f"id-{hashlib.sha1(tid.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}.npy"


class FileTimeout(TimeoutError):
    pass


def _on_alarm(signum, frame):  # pragma: no cover - exercised through extract_file
    raise FileTimeout()


def _guarded(path: str, timeout_s: float, work) -> dict:
    """Run ``work()`` (which returns a result dict) under the per-file timeout.

    Exceptions are turned into ``{"ok": False, "reason": ...}`` naming the file, so one
    bad file never stops a batch.
    """
    use_alarm = timeout_s and timeout_s > 0 and hasattr(signal, "SIGALRM")
    if use_alarm:
        try:
            previous = signal.signal(signal.SIGALRM, _on_alarm)
            signal.setitimer(signal.ITIMER_REAL, float(timeout_s))
        except ValueError:  # not in the main thread: no timeout available
            use_alarm = False
    try:
        return work()
    except FileTimeout:
        return {"ok": False, "reason": f"{path}: timed out after {timeout_s:g} s"}
    except Exception as exc:  # one bad file must never stop the batch: record why
        return {"ok": False, "reason": _reason(path, exc)}
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _reason(path: str, exc: BaseException) -> str:
    """``"<ExceptionType>: <path>: <first line of the message>"``."""
    msg = str(exc).strip().splitlines()
    text = msg[0] if msg else ""
    if str(path) not in text:
        text = f"{path}: {text}" if text else str(path)
    return f"{type(exc).__name__}: {text}"


def extract_file(path: str, out_path: str, *, timeout_s: float = 0.0) -> dict:
    """Decode one file, compute its features and save them atomically.

    Returns a result dict: ``ok``, ``n_frames``, ``duration_s``, ``seconds`` or ``reason``.
    Exceptions are turned into a ``reason`` naming the file, so one bad file never
    stops a batch.
    """
    t0 = time.perf_counter()

    def work():
        y, sr = load_audio(path, sr=frames.SR)
        feats = frames.extract_features(y=y, sr=sr)  # long tracks go in blocks: bounded memory, same values
        atomic.save_npy(out_path, feats)
        return {"ok": True, "n_frames": int(feats.shape[0]), "duration_s": y.size / sr,
                "seconds": time.perf_counter() - t0}

    return _guarded(path, timeout_s, work)


def decode_file(path: str, *, timeout_s: float = 0.0) -> dict:
    """Decode one file for the batched torch path: ``ok``, ``y``, ``duration_s``, ``seconds`` or ``reason``."""
    t0 = time.perf_counter()

    def work():
        y, sr = load_audio(path, sr=frames.SR)
        return {"ok": True, "y": y, "duration_s": y.size / sr, "seconds": time.perf_counter() - t0}

    return _guarded(path, timeout_s, work)


def _one_blas_thread():
    """Limit BLAS/OpenMP to one thread (a context manager; as a call, the limit stays).

    Every backend extracts with one BLAS thread: the thread count changes the float
    summation order, and so the last bits of the features. One thread keeps the
    arrays byte-identical whichever backend computed them.
    """
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1)
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()


_prepared = False


def prepare_process() -> None:
    """Get this process ready to extract before any file's timer starts.

    The compiled functions are cached on disk by one process (:func:`ensure_compiled`,
    which also repairs a poisoned cache), then loaded here by one short extraction,
    which also builds the filter banks. A pool forked after this inherits all of it;
    a spawned worker or a Dask worker calls it itself, and only loads. Either way a
    first file never pays a compilation inside its timeout. Runs once per process.
    """
    global _prepared
    if _prepared:
        return
    ensure_compiled()
    y = (0.1 * np.random.default_rng(0).standard_normal(frames.N_FFT * 4)).astype(np.float32)
    with _one_blas_thread():
        frames.extract_features(y=y, sr=frames.SR)
    _prepared = True


def _init_worker(prepare: bool = False) -> None:
    _one_blas_thread()
    if prepare:  # a spawned worker; a forked one inherits the parent's
        prepare_process()


def _prepare_dask_worker() -> int:
    """Run on every Dask worker before tasks are sent: one BLAS thread, and the process
    prepared (:func:`prepare_process`; one worker compiles, under the cache's lock, on a
    shared filesystem too, the others load)."""
    _one_blas_thread()
    prepare_process()
    return os.getpid()


def _extract_on_worker(path: str, out_path: str, *, timeout_s: float = 0.0) -> dict:
    """:func:`extract_file` as a Dask task, on a worker prepared before the file's timeout
    starts (a no-op after :func:`_prepare_dask_worker`; a worker that joined later prepares here)."""
    _prepare_dask_worker()
    return extract_file(path, out_path, timeout_s=timeout_s)


def _process_pool(n_workers: int, *, prepare: bool = False) -> cf.ProcessPoolExecutor:
    """The local pool: fork on Linux (works from scripts without a ``__main__`` guard and
    starts fast), spawn elsewhere; one BLAS thread per worker. With ``prepare``, each
    worker is ready to extract before its first file (forked: from this process, which
    is prepared now; spawned: each prepares itself, loading the cache this one filled)."""
    fork = sys.platform.startswith("linux")
    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    if prepare:
        prepare_process()
    return cf.ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_init_worker,
                                  initargs=(prepare and not fork,))


def _each_file(items: list, work, *, n_workers: int, prepare: bool, timeout_s: float):
    """Yield ``(item, work(*item[1:], timeout_s=timeout_s))`` for items ``(track_id, path, ...)``,
    in this process (``n_workers <= 1``) or in the local pool as they complete; with ``prepare``,
    each process is ready to extract first (:func:`prepare_process`). A worker that dies (e.g. a
    decoder crashed) gives a failed result naming the file; the rest go on."""
    if n_workers <= 1:
        if prepare:
            prepare_process()
        with _one_blas_thread():
            for item in items:
                yield item, work(*item[1:], timeout_s=timeout_s)
        return
    with _process_pool(n_workers, prepare=prepare) as pool:
        futures = {pool.submit(work, *item[1:], timeout_s=timeout_s): item for item in items}
        for fut in cf.as_completed(futures):
            item = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:  # a worker died: record it, keep going
                res = _worker_failed(item[1], exc)
            yield item, res


def _worker_failed(path: str, exc: BaseException) -> dict:
    """The failed result of a file whose pool worker died (e.g. a decoder crashed)."""
    return {"ok": False, "reason": f"worker failed on {path}: {type(exc).__name__}: {exc}"}


def _import_distributed(scheduler: str):
    """The ``distributed`` module (an optional dependency), or an ImportError saying how to get it."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"extracting on a Dask cluster (scheduler={scheduler!r}) needs the 'distributed' package: "
            'pip install "audioreg[cluster]"'
        ) from exc
    return distributed


def _run_on_dask(client, todo: list, *, timeout_s: float):
    """Run :func:`extract_file` per ``(track_id, path, target)`` on a Dask cluster.

    Yields ``(item, result)`` as tasks complete. A task that raises, or whose worker
    died too often (``KilledWorker``), gives a failed result naming the file.
    """
    from distributed import as_completed

    client.run(_prepare_dask_worker)  # before any task: compiled once, loaded by each worker
    futures = {}
    for item in todo:
        tid, path, target = item
        fut = client.submit(_extract_on_worker, path, target, timeout_s=timeout_s, pure=False,
                            key=f"audioreg-extract-{array_name(tid)}-{os.urandom(4).hex()}")
        futures[fut] = item
    for fut in as_completed(futures):
        item = futures.pop(fut)
        try:
            res = fut.result()
        except Exception as exc:  # the task or its worker failed: record it, keep going
            res = {"ok": False, "reason": f"worker failed on {item[1]}: {one_line(exc)}"}
        fut.release()
        yield item, res


@dataclass
class ExtractResult:
    out_dir: Path
    index: pd.DataFrame
    failures: pd.DataFrame
    computed: int
    reused: int


def feature_device(device: str | None):
    """Where features are computed: ``None`` for the compiled CPU path, else a torch device.

    ``"cpu"`` (or empty) is :func:`audioreg.features.extract_features`; ``"auto"`` is CUDA
    when torch sees a GPU, else the CPU path; ``"cuda"``, ``"cuda:1"``... run
    :func:`audioreg.features.torch_batch.extract_features_batch` on that GPU (an error if there
    is none); ``"torch-cpu"`` runs that torch path on the CPU (to check it without a GPU).
    """
    name = str(device or "cpu").strip().lower()
    if name == "cpu":
        return None
    import torch

    from ..device import resolve_device

    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else None
    if name == "torch-cpu":
        return torch.device("cpu")
    if not name.startswith("cuda"):
        raise ValueError(f"device must be cpu, auto, cuda, cuda:N or torch-cpu, not {device!r}")
    return resolve_device(name)


def _extract_batched(todo: list, record, bar, *, device, batch_size: int, n_workers: int, timeout_s: float) -> None:
    """The torch path: files decoded by ``n_workers`` processes, features in batches on ``device``.

    At most three batches of decoded audio are held at a time. A batch that fails (e.g.
    out of device memory) is retried track by track, so only the track that fails is
    recorded as a failure.
    """
    from .torch_batch import extract_features_batch

    batch: list = []

    def flush():
        if not batch:
            return
        t0 = time.perf_counter()
        try:
            feats = extract_features_batch([res["y"] for _, res in batch], sr=frames.SR, device=device)
        except Exception:  # isolate the track that fails
            feats = []
            for (_, path, _), res in batch:
                try:
                    feats.append(extract_features_batch([res["y"]], sr=frames.SR, device=device)[0])
                except Exception as exc:
                    feats.append(exc)
        share = (time.perf_counter() - t0) / len(batch)
        for ((tid, path, target), res), f in zip(batch, feats):
            if isinstance(f, Exception):
                record(tid, path, target, {"ok": False, "reason": _reason(path, f)})
                continue
            try:
                atomic.save_npy(target, f)
            except OSError as exc:
                record(tid, path, target, {"ok": False, "reason": _reason(path, exc)})
                continue
            record(tid, path, target, {"ok": True, "n_frames": int(f.shape[0]), "duration_s": res["duration_s"],
                                       "seconds": res["seconds"] + share})
        batch.clear()

    def take(item, res):
        if not res["ok"]:
            record(*item, res)
        else:
            batch.append((item, res))
            if len(batch) >= batch_size:
                flush()
        bar.update()

    if n_workers <= 1:
        for item in todo:
            take(item, decode_file(item[1], timeout_s=timeout_s))
    else:
        with _process_pool(n_workers) as pool:
            # start every worker now, before torch runs here: a fork taken after torch has
            # started its thread pools could hang in the child
            cf.wait([pool.submit(os.getpid) for _ in range(n_workers)])
            queue, pending = list(todo), {}
            while queue or pending:
                while queue and len(pending) < 2 * batch_size:
                    item = queue.pop(0)
                    pending[pool.submit(decode_file, item[1], timeout_s=timeout_s)] = item
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    item = pending.pop(fut)
                    try:
                        res = fut.result()
                    except Exception as exc:  # a worker died: record it, keep going
                        res = _worker_failed(item[1], exc)
                    take(item, res)
    flush()


def resolve_workers(workers: int) -> int:
    """``0`` means all cores."""
    workers = int(workers)
    return (os.cpu_count() or 1) if workers <= 0 else workers


def extract_many(
    files: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    workers: int = 0,
    timeout_s: float = 120.0,
    progress: bool = False,
    scheduler: str | None = None,
    device: str = "cpu",
    batch_size: int = 16,
) -> ExtractResult:
    """Extract features for ``files`` (columns ``track_id``, ``path``) into ``out_dir``.

    Tracks whose array already exists are reused, so an interrupted run picks up where
    it stopped. Writes ``index.csv`` and ``failures.csv`` in ``out_dir``.

    Parameters
    ----------
    files : DataFrame with ``track_id`` and ``path``
    out_dir : the cache folder (created if missing)
    workers : local processes; 0 means all cores, 1 runs in this process.
        Ignored when ``scheduler`` is given.
    timeout_s : per-file timeout (0: none); not enforced on Dask workers (see the module notes)
    progress : show a progress bar
    scheduler : address of a Dask distributed scheduler (``tcp://host:8786``); None or
        "" uses the local pool. Workers must see ``files["path"]`` and ``out_dir`` at
        the same paths (shared filesystem).
    device : ``"cpu"`` (default: :func:`audioreg.features.extract_features` in each
        worker), ``"auto"``, ``"cuda"``, ``"cuda:N"`` or ``"torch-cpu"`` (see
        :func:`feature_device`). On a torch device, ``workers`` processes decode and the
        features are computed in batches of ``batch_size`` tracks by
        :func:`audioreg.features.torch_batch.extract_features_batch`: the same layout, values
        within its ``TOLERANCES`` of the CPU path rather than byte-identical.
    batch_size : tracks per batch on a torch device.

    A file that fails, times out, or whose worker dies becomes a row of ``failures.csv``
    naming the file; the batch always goes on. The arrays and tables do not depend on
    the backend.

    A killed run leaves only complete arrays under final names; the next run reuses
    them and deletes the temp files the killed writers left. Reused arrays keep the
    ``duration_s`` recorded in ``index.csv``; arrays finished by a killed run, which
    never wrote its index, get it from their frame count (within one hop, 23 ms).

    File names with bytes that are not UTF-8 (Python holds them as lone surrogates)
    are extracted like any other; the returned frames keep the names as Python holds
    them, while ``index.csv`` and ``failures.csv`` write those bytes as ``\\xNN``
    escapes (``bad\\xff name.wav``), so both files are always valid UTF-8.
    """
    from tqdm.auto import tqdm

    distributed = _import_distributed(scheduler) if scheduler else None  # fail before any work
    torch_device = feature_device(device)
    if torch_device is not None and scheduler:
        raise ValueError("a Dask scheduler and a torch device cannot be combined: the cluster's workers "
                         "compute features on their CPUs (drop --device, or --scheduler)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if n := atomic.remove_stale_temps(out_dir):
        log.info("%s: deleted %d temp file(s) left by a killed run", out_dir, n)
    rows, failures, todo = [], [], []
    reused = 0
    previous = {}  # the last run's index rows: a reused array keeps its recorded duration
    if (out_dir / "index.csv").is_file():
        previous = pd.read_csv(out_dir / "index.csv", dtype={"track_id": str}).set_index("file").to_dict("index")
    for tid, path in zip(files["track_id"], files["path"]):
        target = out_dir / array_name(tid)
        if target.is_file():
            try:
                arr = np.load(target, mmap_mode="r")
                if arr.ndim == 2 and arr.shape[1] == frames.N_FEATURES:
                    known = previous.get(target.name, {})
                    duration = (known["duration_s"] if known.get("n_frames") == arr.shape[0]
                                else (arr.shape[0] - 1) * frames.HOP_LENGTH / frames.SR)  # arrays of a killed run: from frames
                    rows.append({"track_id": tid, "file": target.name, "n_frames": arr.shape[0],
                                 "duration_s": duration, "seconds": 0.0})
                    reused += 1
                    continue
            except (ValueError, OSError) as exc:
                log.warning("%s: unreadable cached features (%s); recomputing", target, exc)
        todo.append((tid, str(path), str(target)))

    def record(tid, path, target, res):
        if res["ok"]:
            rows.append({"track_id": tid, "file": Path(target).name, "n_frames": res["n_frames"],
                         "duration_s": res["duration_s"], "seconds": res["seconds"]})
        else:
            failures.append({"track_id": tid, "path": path, "stage": "extract", "reason": res["reason"]})

    n_workers = min(resolve_workers(workers), max(len(todo), 1))
    if todo:  # compiled code cached by one process before any worker may need it
        ensure_compiled()
    client = distributed.Client(scheduler) if distributed is not None and todo else None
    bar = tqdm(total=len(todo), desc="extract", unit="file", disable=not progress)
    if client is not None:
        try:
            for (tid, path, target), res in _run_on_dask(client, todo, timeout_s=timeout_s):
                record(tid, path, target, res)
                bar.update()
        finally:
            client.close()
    elif torch_device is not None:
        _extract_batched(todo, record, bar, device=torch_device, batch_size=max(1, int(batch_size)),
                         n_workers=n_workers, timeout_s=timeout_s)
    else:
        for (tid, path, target), res in _each_file(todo, extract_file, n_workers=n_workers, prepare=True,
                                                   timeout_s=timeout_s):
            record(tid, path, target, res)
            bar.update()
    bar.close()
    order = {tid: i for i, tid in enumerate(files["track_id"])}
    index = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    index = index.sort_values("track_id", key=lambda s: s.map(order)).reset_index(drop=True)
    failed = pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))
    atomic.write_csv(out_dir / "index.csv", index)
    atomic.write_csv(out_dir / "failures.csv", failed)
    return ExtractResult(out_dir=out_dir, index=index, failures=failed, computed=len(todo) - len(failed), reused=reused)


# ------------------------------------------------------------------ expert estimates
def experts_file(path: str, *, timeout_s: float = 0.0) -> dict:
    """Decode one file and run the expert estimators on it
    (:func:`audioreg.features.experts.estimate_all`): ``ok`` and the estimates, or ``reason``."""
    from . import experts

    def work():
        y, sr = load_audio(path, sr=frames.SR)
        return {"ok": True, **experts.estimate_all(y, sr=sr)}

    return _guarded(path, timeout_s, work)


def experts_many(files: pd.DataFrame, *, workers: int = 0, timeout_s: float = 120.0,
                 progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The expert estimates of every file in ``files`` (``track_id``, ``path``).

    Returns ``(table, failures)``: one row per file that could be estimated (``track_id`` and
    :data:`audioreg.features.experts.ESTIMATES` + ``FEATURES``), in ``files``' order, and one
    row per file that failed, timed out or killed its worker, with the reason. The compiled
    code is cached by one process before any worker starts (the beat tracker is numba code).
    """
    from tqdm.auto import tqdm

    items = list(zip(files["track_id"], files["path"].astype(str)))
    rows, failures = {}, []

    def record(tid, path, res):
        if res.pop("ok"):
            rows[tid] = {"track_id": tid, **res}
        else:
            failures.append({"track_id": tid, "path": path, "stage": "experts", "reason": res["reason"]})

    n_workers = min(resolve_workers(workers), max(len(items), 1))
    if items:
        ensure_compiled()
    bar = tqdm(total=len(items), desc="experts", unit="file", disable=not progress)
    for (tid, path), res in _each_file(items, experts_file, n_workers=n_workers, prepare=False, timeout_s=timeout_s):
        record(tid, path, res)
        bar.update()
    bar.close()
    table = pd.DataFrame([rows[tid] for tid, _ in items if tid in rows])
    return table, pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))
