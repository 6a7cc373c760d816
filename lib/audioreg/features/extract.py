"""The extraction driver: files in, cached feature matrices out.

The feature functions in :mod:`audioreg.features` are pure; this module owns file
iteration, the per-file timeout, parallelism, atomic writes and the failures table.
A cache folder holds ``<name>.npy`` per track (written atomically, so a file that
exists is complete), ``index.csv`` (the aligned index) and ``failures.csv``.
A killed run leaves at most temp files (``.<name>.<host>-<pid>.tmp``), which are never
read and are deleted by the next run once their writer is gone.

Each array's record (frames, duration, CRC-32 of its values) is appended to its writer's
journal (``journal-<host>-<pid>.jsonl``) *before* the array gets its final name, and
gathered into ``index.csv`` at the end of the run. A cached array is reused only when a
record vouches for it and it matches (shape; checksum where asked): a damaged array is
recomputed with one log line, and an interrupted run resumes with the exact durations.
A failure that may pass on another try (a timeout, a worker that died, a full disk, no
memory) is marked ``transient`` in ``failures.csv`` and retried by the next run.

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

Nothing here imports pandas until a caller asks for a table (:attr:`ExtractResult.index`):
``audioreg extract`` on one file starts in well under a second.

A third way (``device="cuda"``, see :func:`feature_device`): the pool's processes only
decode, and the features of batches of tracks are computed with torch on a GPU
(:mod:`audioreg.features.torch_batch`: within its tolerances of the CPU values, not bit for bit).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import errno
import logging
import multiprocessing
import os
import re
import hashlib
import json
import signal
import socket
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import atomic
from ..data.audio import load_audio, walk_audio
from ..errors import is_out_of_space, one_line, out_of_space
from . import frames
from .numba_cache import ensure_compiled

if TYPE_CHECKING:  # tables are made only when asked for (ExtractResult.index)
    import pandas as pd

log = logging.getLogger(__name__)

INDEX_COLUMNS = ("track_id", "file", "n_frames", "duration_s", "crc32", "seconds")
FAILURE_COLUMNS = ("track_id", "path", "stage", "reason", "transient")
JOURNAL_GLOB = "journal-*.jsonl"
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


class _WriteFailed(Exception):
    """Writing a result failed: the reason names the output (and a full disk as such), not the input."""

    def __init__(self, reason: str, transient: bool):
        super().__init__(reason)
        self.reason, self.transient = reason, transient


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
        return {"ok": False, "reason": f"{path}: timed out after {timeout_s:g} s", "transient": True}
    except _WriteFailed as exc:
        return {"ok": False, "reason": exc.reason, "transient": exc.transient}
    except Exception as exc:  # one bad file must never stop the batch: record why
        return {"ok": False, "reason": _reason(path, exc),
                "transient": is_out_of_space(exc) or isinstance(exc, MemoryError)}
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


def journal_path(out_dir: str | os.PathLike) -> Path:
    """This process's journal in ``out_dir``: one JSON record per array it wrote."""
    return Path(out_dir) / f"journal-{socket.gethostname()}-{os.getpid()}.jsonl"


def save_features(out_path: str | os.PathLike, feats: np.ndarray, *, duration_s: float) -> dict:
    """Record ``feats`` in this process's journal, then save it atomically under ``out_path``.

    Returns the record (``file``, ``n_frames``, ``duration_s``, ``crc32``). The record is
    written first, so an array under its final name always has one. Raises
    :class:`_WriteFailed` naming the output (a full disk as ``no space left on <folder>``).
    """
    out_path = Path(out_path)
    feats = np.ascontiguousarray(feats)
    rec = {"file": out_path.name, "n_frames": int(feats.shape[0]), "duration_s": float(duration_s),
           "crc32": zlib.crc32(feats)}
    try:
        with open(journal_path(out_path.parent), "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        atomic.save_npy(out_path, feats)
    except FileTimeout:  # a TimeoutError, so an OSError: the file's time ran out while writing
        raise
    except OSError as exc:
        if is_out_of_space(exc):
            raise _WriteFailed(f"OSError: {out_of_space(out_path.parent)}: could not write {out_path.name}", True) from exc
        raise _WriteFailed(f"{type(exc).__name__}: could not write {out_path}: {exc}", False) from exc
    return rec


def verify_array(path: str | os.PathLike, record: dict | None, *, checksum: bool = True) -> str | None:
    """What is wrong with the cached array at ``path`` given its ``record``, or None if it is sound.

    Sound means: a record vouches for it, it loads as ``[n_frames, N_FEATURES]`` float32 with
    the recorded ``n_frames`` (so its size is right), and, with ``checksum``, its values have
    the recorded CRC-32 (a record without one, from an older index, is checked by shape only).
    """
    if record is None:
        return "no record of it in index.csv or a journal (written by an interrupted run before its record)"
    try:
        arr = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        return f"unreadable ({one_line(exc)})"
    if arr.ndim != 2 or arr.shape[1] != frames.N_FEATURES or arr.dtype != np.float32:
        return f"holds {arr.dtype} {arr.shape}, not [t, {frames.N_FEATURES}] float32"
    if arr.shape[0] != int(record["n_frames"]):
        return f"holds {arr.shape[0]} frames where its record says {int(record['n_frames'])}"
    crc = record.get("crc32")
    if checksum and crc is not None and crc == crc and zlib.crc32(np.ascontiguousarray(arr)) != int(crc):
        return "its values do not match the recorded checksum"
    return None


def read_records(out_dir: str | os.PathLike) -> dict[str, dict]:
    """Every array's record in ``out_dir``, by file name: ``index.csv``'s rows, then the
    journals' lines (a later record of a file replaces an earlier one; a torn last line,
    from a killed writer, is skipped)."""
    out_dir = Path(out_dir)
    records: dict[str, dict] = {}
    for row in _read_table(out_dir / "index.csv"):
        try:
            records[row["file"]] = {**row, "n_frames": int(row["n_frames"]), "duration_s": float(row["duration_s"]),
                                    "crc32": int(row["crc32"]) if row.get("crc32") else None}
        except (KeyError, ValueError):  # a row this version cannot vouch for: its array is recomputed
            continue
    for journal in sorted(out_dir.glob(JOURNAL_GLOB), key=lambda p: p.stat().st_mtime_ns):
        records.update((rec["file"], rec) for rec in _journal_records(journal))
    return records


def _journal_records(journal: Path) -> list[dict]:
    """The complete records of one journal, in order. A torn last line (its writer was killed
    while writing it) is skipped: the array it was for was never published."""
    recs = []
    for line in journal.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and {"file", "n_frames", "duration_s", "crc32"} <= rec.keys():
            recs.append(rec)
    return recs


def _read_table(path: Path) -> list[dict]:
    """The rows of a CSV this module wrote, as dicts of text (none if it is missing)."""
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _remove_merged_journals(out_dir: Path, index_rows: list[dict]) -> None:
    """Delete the journals whose every record ``index_rows`` now hold (same file, same checksum)."""
    held = {r["file"]: r["crc32"] for r in index_rows}
    for journal in out_dir.glob(JOURNAL_GLOB):
        try:
            recs = _journal_records(journal)
        except OSError:
            continue
        if all(held.get(r["file"]) == r["crc32"] for r in recs):
            journal.unlink(missing_ok=True)


def extract_file(path: str, out_path: str, *, timeout_s: float = 0.0) -> dict:
    """Decode one file, compute its features and save them atomically (:func:`save_features`).

    Returns a result dict: ``ok``, ``n_frames``, ``duration_s``, ``crc32``, ``seconds``, or
    ``reason`` and ``transient``. Exceptions are turned into a ``reason`` naming the file
    (or, for a failed write, the output), so one bad file never stops a batch.
    """
    t0 = time.perf_counter()

    def work():
        y, sr = load_audio(path, sr=frames.SR)
        feats = frames.extract_features(y=y, sr=sr)  # long tracks go in blocks: bounded memory, same values
        rec = save_features(out_path, feats, duration_s=y.size / sr)
        return {"ok": True, **rec, "seconds": time.perf_counter() - t0}

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
    return {"ok": False, "reason": f"worker failed on {path}: {type(exc).__name__}: {exc}", "transient": True}


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
            res = {"ok": False, "reason": f"worker failed on {item[1]}: {one_line(exc)}", "transient": True}
        fut.release()
        yield item, res


@dataclass
class ExtractResult:
    """What an extraction run left in ``out_dir``: its index and failures (as written to
    ``index.csv`` and ``failures.csv``), and how many arrays were computed and reused."""

    out_dir: Path
    index_rows: list[dict]
    failure_rows: list[dict]
    computed: int
    reused: int

    @property
    def index(self):
        """``index.csv`` as a DataFrame (:data:`INDEX_COLUMNS`), one row per track with features."""
        from .._pandas import pd

        return pd.DataFrame(self.index_rows, columns=list(INDEX_COLUMNS))

    @property
    def failures(self):
        """``failures.csv`` as a DataFrame (:data:`FAILURE_COLUMNS`), one row per file that failed."""
        from .._pandas import pd

        return pd.DataFrame(self.failure_rows, columns=list(FAILURE_COLUMNS))


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
                record(tid, path, target, {"ok": False, "reason": _reason(path, f),
                                           "transient": is_out_of_space(f) or isinstance(f, MemoryError)})
                continue
            try:
                rec = save_features(target, f, duration_s=res["duration_s"])
            except _WriteFailed as exc:
                record(tid, path, target, {"ok": False, "reason": exc.reason, "transient": exc.transient})
                continue
            record(tid, path, target, {"ok": True, **rec, "seconds": res["seconds"] + share})
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


def _crc(record: dict, path: Path) -> int:
    """The record's checksum, or (a record from an older index without one) the array's own."""
    crc = record.get("crc32")
    if crc is None or crc != crc:
        crc = zlib.crc32(np.ascontiguousarray(np.load(path, mmap_mode="r")))
    return int(crc)


def resolve_workers(workers: int) -> int:
    """``0`` means all cores."""
    workers = int(workers)
    return (os.cpu_count() or 1) if workers <= 0 else workers


def extract_many(
    files,
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
    files : DataFrame (or a mapping of lists) with ``track_id`` and ``path``
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

    A killed run leaves only complete arrays under final names, each with its record in a
    journal; the next run reuses them (with their recorded duration, exactly) and deletes
    the temp files the killed writers left. A cached array is reused only when a record
    vouches for it and it matches (:func:`verify_array`, checksum included); any other is
    recomputed, with one log line. ``failures.csv`` marks each failure ``transient`` (a
    timeout, a worker that died, a full disk, no memory: another run may pass) or not.

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
    records = read_records(out_dir)  # what vouches for each cached array: the index, then the journals
    for tid, path in zip(files["track_id"], files["path"]):
        target = out_dir / array_name(tid)
        if target.is_file():
            rec = records.get(target.name)
            problem = verify_array(target, rec)
            if problem is None:
                rows.append({"track_id": tid, "file": target.name, "n_frames": int(rec["n_frames"]),
                             "duration_s": rec["duration_s"], "crc32": _crc(rec, target), "seconds": 0.0})
                reused += 1
                continue
            log.warning("%s: cached features not reused: %s; recomputing", target, problem)
        todo.append((tid, str(path), str(target)))

    def record(tid, path, target, res):
        if res["ok"]:
            rows.append({"track_id": tid, "file": Path(target).name, "n_frames": res["n_frames"],
                         "duration_s": res["duration_s"], "crc32": res["crc32"], "seconds": res["seconds"]})
        else:
            failures.append({"track_id": tid, "path": path, "stage": "extract", "reason": res["reason"],
                             "transient": bool(res.get("transient", False))})

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
    rows.sort(key=lambda r: order[r["track_id"]])
    try:
        atomic.write_rows(out_dir / "index.csv", INDEX_COLUMNS, rows)
        atomic.write_rows(out_dir / "failures.csv", FAILURE_COLUMNS, failures)
    except OSError as exc:
        if is_out_of_space(exc):
            full = OSError(f"{out_of_space(out_dir)}: could not write index.csv and failures.csv")
            full.errno = errno.ENOSPC
            raise full from exc
        raise
    _remove_merged_journals(out_dir, rows)
    return ExtractResult(out_dir=out_dir, index_rows=rows, failure_rows=failures, computed=len(todo) - len(failures),
                         reused=reused)


# ------------------------------------------------------------------ a folder, from the command line
def write_features_meta(out_dir: str | os.PathLike, res: ExtractResult, **extra) -> dict:
    """Write ``meta.json`` of a features folder (last: it marks the folder complete)."""
    meta = {**extra, "feature_params": frames.feature_params(), "feature_names": [list(n) for n in frames.feature_names()],
            "n_tracks": len(res.index_rows), "n_failures": len(res.failure_rows)}
    atomic.write_json(Path(out_dir) / "meta.json", meta)
    return meta


def audio_files(audio_dir: str | os.PathLike) -> dict[str, list]:
    """Every audio file below ``audio_dir``, by track id: columns (lists) ``track_id`` (the
    file stem), ``path`` (absolute), ``size`` and ``mtime_ns``, sorted by track id.

    The track id is the NFC-normalized stem, as the linker's ``<track_id>.<ext>`` rule
    expects. Raises FileNotFoundError for a missing folder, and ValueError listing the
    stems that name more than one file.
    """
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"{audio_dir}: audio folder not found")
    found = walk_audio(audio_dir)
    by_stem: dict[str, list[str]] = {}
    for path, stem in found:
        by_stem.setdefault(stem, []).append(path)
    dup = {stem: paths for stem, paths in by_stem.items() if len(paths) > 1}
    if dup:
        listing = "; ".join(f"{stem}: {', '.join(sorted(os.path.relpath(p, audio_dir) for p in paths))}"
                            for stem, paths in sorted(dup.items())[:20])
        more = f" (and {len(dup) - 20} more)" if len(dup) > 20 else ""
        raise ValueError(f"{audio_dir}: {len(dup)} file stem(s) name more than one audio file, so the "
                         f"track id (the stem) is ambiguous: {listing}{more}")
    found.sort(key=lambda f: f[1])
    paths = [str(Path(p).resolve()) for p, _ in found]
    stats = [os.stat(p) for p in paths]
    return {"track_id": [stem for _, stem in found], "path": paths,
            "size": [st.st_size for st in stats], "mtime_ns": [st.st_mtime_ns for st in stats]}


def extract_folder(
    audio_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    workers: int = 0,
    scheduler: str | None = None,
    timeout_s: float = 120.0,
    progress: bool = True,
    device: str = "cpu",
    batch_size: int = 16,
) -> ExtractResult:
    """Features of every audio file below ``audio_dir``, in the notebooks' cache layout
    (``audioreg extract``).

    ``out_dir`` gets ``<track_id>.npy`` per file (track id = file stem), ``index.csv``,
    ``failures.csv`` and, last, ``meta.json`` (feature parameters and names, and each
    file's size and mtime). A re-run reuses every finished array; an array whose audio
    file changed size or mtime since the last run is recomputed. ``workers``,
    ``scheduler``, ``device`` and ``batch_size`` are as in :func:`extract_many`; the
    output does not depend on the first two, and a torch ``device`` agrees within
    :data:`audioreg.features.torch_batch.TOLERANCES`.
    """
    audio_dir, out_dir = Path(audio_dir), Path(out_dir)
    files = audio_files(audio_dir)
    meta_path = out_dir / "meta.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text(encoding="utf-8"))
        if old.get("feature_params") != frames.feature_params():
            raise ValueError(f"{out_dir} holds features computed with other settings "
                             f"({old.get('feature_params')}); choose another folder or delete it")
        seen = old.get("files", {})
        for tid, size, mtime in zip(files["track_id"], files["size"], files["mtime_ns"]):
            if tid in seen and seen[tid] != [int(size), int(mtime)]:
                stale = out_dir / array_name(tid)
                log.info("%s: audio file changed since it was extracted; recomputing", stale)
                stale.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)  # written again last: a folder without it is being (re)built
    out_dir.mkdir(parents=True, exist_ok=True)
    res = extract_many(files, out_dir, workers=workers, timeout_s=timeout_s, progress=progress,
                       scheduler=scheduler or None, device=device, batch_size=batch_size)
    write_features_meta(out_dir, res, audio_dir=str(audio_dir.resolve()), device=device,
                        files={t: [int(a), int(b)] for t, a, b in zip(files["track_id"], files["size"], files["mtime_ns"])})
    return res


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

    from .._pandas import pd

    items = list(zip(files["track_id"], files["path"].astype(str)))
    rows, failures = {}, []

    def record(tid, path, res):
        if res.pop("ok"):
            rows[tid] = {"track_id": tid, **res}
        else:
            failures.append({"track_id": tid, "path": path, "stage": "experts", "reason": res["reason"],
                             "transient": bool(res.get("transient", False))})

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
