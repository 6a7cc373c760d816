"""Training, checkpointing and prediction for the GRU network (:class:`audioreg.models.network.GRUNet`).

Users fit :class:`audioreg.models.GRUNet`, the estimator that builds a
:class:`~audioreg.models.network.GRUConfig` and a :class:`TrainConfig` once and calls
:func:`train_gru` with them.

Data flow: frame sequences [t_i, 46] -> :class:`SequenceDataset` (mean-pool blocks of
``frame_pool`` frames, z-score features and targets with :func:`fit_normalizers`) ->
:class:`LengthBucketSampler` (batches of similar length) -> :func:`collate_padded` ->
the GRU. :func:`train_gru` writes ``last.pt``, ``best.pt`` and ``history.csv`` into a
checkpoint folder and resumes from ``last.pt``; :func:`predict_gru` returns raw target units.

Faults: every file is written to a temporary name, flushed to disk and renamed, so a run
killed at any point leaves the previous epoch's files intact. Temporary files left by a
killed writer are deleted when training starts again; an unreadable ``last.pt`` (cut short
by a crash of the machine or of the disk) makes the run resume from ``best.pt`` instead.
An unreadable, missing or stale ``best.pt`` is rebuilt from ``last.pt`` when that holds the
best epoch; otherwise the best epoch's weights are lost and resuming trains the run anew
(:func:`_repair_best`), so ``best.pt`` is always the epoch chosen on validation.

Randomness: :func:`train_gru` never leaves a trace on the caller's global RNGs. Weight init
and the network's random masks draw from torch's global generator, so the run is wrapped in
:func:`torch.random.fork_rng`: inside, torch (and, for completeness, NumPy's and Python's
global RNGs) are seeded from ``random_state`` or restored from the checkpoint; on exit the
caller's states are put back. Batch order comes from the sampler's own generator, seeded by
``(random_state, epoch)``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from audioreg import atomic
from audioreg._pandas import pd
from audioreg.device import resolve_device
from audioreg.errors import CheckpointError, one_line
from audioreg.models.moments import streaming_moments
from audioreg.targets import TARGETS
from audioreg.models.coding import TargetCoding
from audioreg.models.network import GRUConfig, GRUNet

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointError",
    "KeyRotation",
    "LengthBucketSampler",
    "SequenceDataset",
    "TrainConfig",
    "TrainResult",
    "collate_padded",
    "fit_normalizers",
    "load_best_checkpoint",
    "load_checkpoint",
    "pool_frames",
    "pooled_length",
    "checkpoint_coding",
    "predict_gru",
    "predict_table",
    "train_gru",
]

#: Standard deviations below this are replaced by 1 (constant feature or target).
STD_FLOOR = 1e-6

CHECKPOINT_FORMAT = 2  # 2: the target coding (classes, log2 tempo, loss weights)
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds", "is_best")


def history_frame(history: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A training history as a table: :data:`HISTORY_COLUMNS`, then each ``val_<target>`` column
    its epochs hold (the validation loss of that target alone), in the network's head order."""
    base = list(HISTORY_COLUMNS)
    extra = list(dict.fromkeys(k for row in history for k in row if k.startswith("val_") and k not in base))
    return pd.DataFrame(list(history), columns=base + extra)
#: Files :func:`train_gru` writes into its checkpoint folder.
CHECKPOINT_FILES = ("last.pt", "best.pt", "history.csv")
#: Entries a checkpoint needs to be resumed from or predicted with.
CHECKPOINT_KEYS = frozenset(
    {"model_config", "model_state", "optimizer_state", "normalizers", "frame_pool",
     "train_config", "epoch", "best_val_loss", "best_epoch", "history", "rng_states"}
)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def pooled_length(n_frames: int, *, frame_pool: int) -> int:
    """Length after :func:`pool_frames`: ``ceil(n_frames / frame_pool)``."""
    return -(-int(n_frames) // int(frame_pool))


def pool_frames(frames: np.ndarray, *, frame_pool: int) -> np.ndarray:
    """Average non-overlapping blocks of ``frame_pool`` frames; a last partial block is kept.

    Parameters
    ----------
    frames : np.ndarray [shape=(t, d)]
    frame_pool : int
        Block size; 1 returns the frames unchanged (as float64).

    Returns
    -------
    pooled : np.ndarray [shape=(ceil(t / frame_pool), d), dtype=float64]
        ``pooled[j] = frames[j * frame_pool : (j + 1) * frame_pool].mean(axis=0)``.
    """
    if frame_pool < 1:
        raise ValueError(f"frame_pool must be >= 1, got {frame_pool}")
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty [time, features] array, got shape {x.shape}")
    if frame_pool == 1:
        return x
    n_full = x.shape[0] // frame_pool
    blocks = [x[: n_full * frame_pool].reshape(n_full, frame_pool, x.shape[1]).mean(axis=1)]
    if x.shape[0] > n_full * frame_pool:
        blocks.append(x[n_full * frame_pool :].mean(axis=0, keepdims=True))
    return np.concatenate(blocks)


def _floored(std: np.ndarray) -> np.ndarray:
    return np.where(std > STD_FLOOR, std, 1.0)


def fit_normalizers(
    sequences: Sequence[np.ndarray], targets: np.ndarray | None
) -> dict[str, np.ndarray | None]:
    """Feature and target means and standard deviations of the training data.

    Parameters
    ----------
    sequences : sequence of np.ndarray [shape=(t_i, d)]
        Training frame sequences, streamed in chunks (memmaps stay on disk).
    targets : np.ndarray [shape=(n_tracks, n_targets)] or None
        Training targets in raw units.

    Returns
    -------
    normalizers : dict
        ``feature_mean``, ``feature_std`` [shape=(d,)] over all frames of all tracks, and
        ``target_mean``, ``target_std`` [shape=(n_targets,)] (None without targets); float64.
        A standard deviation below :data:`STD_FLOOR` (a constant column) is set to 1.
    """
    n_total, mean_total, m2_total = 0, None, None
    for i, seq in enumerate(sequences):
        if seq.ndim != 2 or seq.shape[0] == 0:
            raise ValueError(f"sequence {i}: expected non-empty [time, features], got {seq.shape}")
        n, mean, m2 = streaming_moments(seq)
        if mean_total is None:
            n_total, mean_total, m2_total = n, mean, m2
            continue
        total = n_total + n
        delta = mean - mean_total
        mean_total = mean_total + delta * (n / total)
        m2_total = m2_total + m2 + np.square(delta) * (n_total * n / total)
        n_total = total
    if mean_total is None:
        raise ValueError("no training sequences")
    normalizers: dict[str, np.ndarray | None] = {
        "feature_mean": mean_total,
        "feature_std": _floored(np.sqrt(m2_total / n_total)),
        "target_mean": None,
        "target_std": None,
    }
    if targets is not None:
        y = np.asarray(targets, dtype=np.float64)
        if y.ndim != 2 or len(y) != len(sequences):
            raise ValueError(f"targets must be [{len(sequences)}, n_targets], got {y.shape}")
        normalizers.update(target_normalizers(y))
    return normalizers


def target_normalizers(targets: np.ndarray) -> dict[str, np.ndarray]:
    """``target_mean`` and ``target_std`` of each column of ``targets`` [n, k] over its labelled
    (finite) rows; a standard deviation below :data:`STD_FLOOR`, or a column without labels,
    gets 1 (and such a column mean 0)."""
    y = np.asarray(targets, dtype=np.float64)
    mean, std = np.zeros(y.shape[1]), np.ones(y.shape[1])
    for j in range(y.shape[1]):
        v = y[np.isfinite(y[:, j]), j]
        if len(v):
            mean[j], std[j] = v.mean(), v.std()
    return {"target_mean": mean, "target_std": _floored(std)}


class SequenceDataset(Dataset):
    """Pooled, normalized frame sequences with z-scored targets, read lazily per item.

    Parameters
    ----------
    sequences : sequence of np.ndarray [shape=(t_i, d)]
        Frame sequences; memmaps are only read in ``__getitem__``.
    targets : np.ndarray [shape=(n_tracks, n_targets)] or None
        Raw targets. Without them items carry ``None`` as the target.
    frame_pool : int
        Mean-pool blocks of this many frames (:func:`pool_frames`).
    feature_mean, feature_std : np.ndarray [shape=(d,)] or None
        Feature normalizer (None: features are not normalized).
    target_mean, target_std : np.ndarray [shape=(n_targets,)] or None
        Target normalizer (None: targets are not normalized).
    augment : callable or None
        ``augment(frames, targets, rng) -> (frames, targets)``, applied to the raw frames and
        raw targets of each item before pooling and normalizing (training only). ``rng`` is a
        NumPy generator seeded by ``(random_state, epoch, index)`` (see :meth:`set_epoch`), so
        an epoch's augmentations are the same after a resume.
    random_state : int
        Seeds ``augment``'s generators.

    Notes
    -----
    Item ``i`` is ``(x, y)`` with ``x`` a float32 tensor [shape=(ceil(t_i / frame_pool), d)]
    and ``y`` a float32 tensor [shape=(n_targets,)] or None.
    """

    def __init__(
        self,
        sequences: Sequence[np.ndarray],
        targets: np.ndarray | None = None,
        *,
        frame_pool: int = 1,
        feature_mean: np.ndarray | None = None,
        feature_std: np.ndarray | None = None,
        target_mean: np.ndarray | None = None,
        target_std: np.ndarray | None = None,
        augment=None,
        random_state: int = 0,
    ) -> None:
        if frame_pool < 1:
            raise ValueError(f"frame_pool must be >= 1, got {frame_pool}")
        self.sequences = sequences
        self.targets = None if targets is None else np.asarray(targets, dtype=np.float64)
        if self.targets is not None and len(self.targets) != len(sequences):
            raise ValueError(f"{len(sequences)} sequences but {len(self.targets)} target rows")
        self.frame_pool = int(frame_pool)
        self.augment, self.random_state, self.epoch = augment, int(random_state), 0

        def as64(a):
            return None if a is None else np.asarray(a, dtype=np.float64)

        self.feature_mean, self.feature_std = as64(feature_mean), as64(feature_std)
        self.target_mean, self.target_std = as64(target_mean), as64(target_std)

    def __len__(self) -> int:
        return len(self.sequences)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations :meth:`__getitem__` draws."""
        self.epoch = int(epoch)

    @property
    def lengths(self) -> np.ndarray:
        """Pooled length of every item [shape=(n_tracks,)], from array shapes only."""
        lengths = np.array([seq.shape[0] for seq in self.sequences], dtype=np.int64)
        if np.any(lengths < 1):
            raise ValueError(f"sequences {np.flatnonzero(lengths < 1).tolist()} have no frames")
        return -(-lengths // self.frame_pool)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        frames = self.sequences[index]
        y = None if self.targets is None else self.targets[index]
        if self.augment is not None:
            rng = np.random.default_rng([self.random_state, self.epoch, int(index)])
            frames, y = self.augment(np.asarray(frames), y, rng)
        x = pool_frames(frames, frame_pool=self.frame_pool)
        if self.feature_mean is not None:
            x = x - self.feature_mean
        if self.feature_std is not None:
            x = x / self.feature_std
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if y is None:
            return x, None
        if self.target_mean is not None:
            y = y - self.target_mean
        if self.target_std is not None:
            y = y / self.target_std
        return x, torch.from_numpy(np.asarray(y, dtype=np.float32))


class KeyRotation:
    """Key-rotation augmentation: each training item is moved by a random 0-11 semitones.

    The chroma bins rotate and the tonnetz is recomputed from them
    (:func:`audioreg.features.frames.rotate_pitch`), expert key correlations among the input
    columns rotate with them, and the key label moves by the same amount (mode unchanged).

    Parameters
    ----------
    coding : TargetCoding
        The coded label layout (where the key is).
    columns : sequence of str or None
        Names of the input columns past the 46 frame features (e.g. ``lufs``, ``dsp_key_r0``);
        expert key correlations among them (``dsp_key_r<i>``) are rotated.
    """

    def __init__(self, coding: TargetCoding, columns: Sequence[str] | None = None) -> None:
        from audioreg.features import experts, frames

        self.coding = coding
        self.expert_columns = {n[4:]: frames.N_FEATURES + i for i, n in enumerate(columns or [])
                               if n.startswith("dsp_") and n[4:] in experts.FEATURES}

    def __call__(self, x: np.ndarray, y: np.ndarray | None, rng: np.random.Generator):
        from audioreg.features import experts, frames

        k = int(rng.integers(12))
        if k == 0:
            return x, y
        x = frames.rotate_pitch(x, k)
        if len(self.expert_columns) == len(experts.FEATURES):
            x = experts.rotate_features(x, k, columns=self.expert_columns)
        return x, (None if y is None else self.coding.rotate(y, k))


def collate_padded(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor | None]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Zero-pad a list of ``(x [t_i, d], y [n_targets] or None)`` items.

    Returns
    -------
    x : torch.Tensor [shape=(batch, max t_i, d)]
    lengths : torch.Tensor [shape=(batch,), dtype=int64]
        On the CPU, as :func:`~torch.nn.utils.rnn.pack_padded_sequence` wants.
    y : torch.Tensor [shape=(batch, n_targets)] or None
    """
    xs = [item[0] for item in batch]
    lengths = torch.tensor([len(x) for x in xs], dtype=torch.int64)
    x = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
    ys = [item[1] for item in batch]
    y = None if any(t is None for t in ys) else torch.stack(ys)
    return x, lengths, y


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of tracks with similar lengths, in a reproducible per-epoch random order.

    With ``shuffle``, each epoch permutes the tracks, cuts the permutation into pools of
    ``batch_size * pool_batches`` tracks, sorts each pool by length, cuts it into batches and
    shuffles the order of all batches. The generator is seeded by ``(random_state, epoch)``,
    so an epoch's batches depend only on those two numbers (set with :meth:`set_epoch`), which
    makes resuming exact. Without ``shuffle`` the batches follow the global length order.

    Parameters
    ----------
    lengths : array-like of int [shape=(n_tracks,)]
    batch_size : int
    shuffle : bool
    random_state : int
    pool_batches : int
        Batches per sorting pool: larger groups lengths more tightly, smaller mixes more.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        *,
        batch_size: int,
        shuffle: bool = True,
        random_state: int = 0,
        pool_batches: int = 50,
    ) -> None:
        if batch_size < 1 or pool_batches < 1:
            raise ValueError("batch_size and pool_batches must be >= 1")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.random_state = int(random_state)
        self.pool_batches = int(pool_batches)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batch order :meth:`__iter__` yields."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, int]:
        return {"random_state": self.random_state, "epoch": self.epoch}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.random_state = int(state["random_state"])
        self.epoch = int(state["epoch"])

    def batches(self) -> list[list[int]]:
        """The batches of the current epoch, as lists of track indices."""
        n = len(self.lengths)
        bs = self.batch_size
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            return [order[i : i + bs].tolist() for i in range(0, n, bs)]
        rng = np.random.default_rng([self.random_state, self.epoch])
        perm = rng.permutation(n)
        pool = bs * self.pool_batches
        batches = []
        for start in range(0, n, pool):
            chunk = perm[start : start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + bs].tolist() for i in range(0, len(chunk), bs))
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        n, bs, pool = len(self.lengths), self.batch_size, self.batch_size * self.pool_batches
        if not self.shuffle:
            return math.ceil(n / bs)
        return (n // pool) * self.pool_batches + math.ceil((n % pool) / bs)


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def _plain(obj: Any) -> Any:
    """Reduce run parameters to types ``torch.load(weights_only=True)`` accepts."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)  # Path, datetime from YAML, ...


def _rng_states(device: torch.device, sampler: LengthBucketSampler) -> dict[str, Any]:
    name, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": [name, key.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
        "sampler": sampler.state_dict(),
    }


def _set_rng_states(states: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and states.get("cuda") is not None:
        torch.cuda.set_rng_state(states["cuda"], device)
    name, key, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


#: Torch threads for training and prediction on the CPU. These models are small: on an idle
#: 2-core machine two threads make a batch 1.3x faster than one, but with the other core busy
#: they make it 4.5x slower (intra-op threads wait on each other), and an epoch took 225 s
#: instead of 12 s. One thread never stalls, and its results do not depend on the core count.
CPU_THREADS = 1


@contextlib.contextmanager
def _cpu_threads(device: torch.device) -> Iterator[None]:
    """On the CPU, run the body with :data:`CPU_THREADS` torch threads; put the caller's count back."""
    if device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _private_global_rngs(device: torch.device) -> Iterator[None]:
    """Let the body reseed global RNGs; put the caller's states back on exit."""
    np_state, py_state = np.random.get_state(), random.getstate()
    cuda_devices = []
    if device.type == "cuda":
        cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    try:
        with torch.random.fork_rng(devices=cuda_devices, device_type="cuda"):
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def _seed_global_rngs(seed: int, device: torch.device) -> None:
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint on the CPU; :class:`CheckpointError` if it is not a complete one."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... here
        reason = one_line(exc)  # torch's unpickler goes on for lines about weights_only=False: not the point
        raise CheckpointError(f"{path}: unreadable checkpoint ({reason.split('. ')[0]})") from exc
    missing = CHECKPOINT_KEYS - set(checkpoint) if isinstance(checkpoint, dict) else CHECKPOINT_KEYS
    if missing:
        raise CheckpointError(f"{path}: not a train_gru checkpoint (missing {sorted(missing)})")
    return checkpoint


def _remove_stale_temp_files(checkpoint_dir: Path) -> None:
    """Delete temporary files a killed writer left behind; they are never read."""
    if n := atomic.remove_stale_temps(checkpoint_dir, names=CHECKPOINT_FILES):
        logger.info("%s: removed %d temp file(s) left by an interrupted write", checkpoint_dir, n)


def _resume_checkpoint(checkpoint_dir: Path) -> dict[str, Any] | None:
    """The checkpoint to resume from: ``last.pt``, or ``best.pt`` when ``last.pt`` is unreadable.

    After falling back, ``last.pt`` and ``history.csv`` are rewritten from ``best.pt`` so the
    folder is consistent again; the epochs after the best one are trained anew (with the
    stored RNG states, they come out the same). ``best.pt`` is checked by the caller
    (:func:`_repair_best`).
    """
    last_path, best_path = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"
    if not last_path.exists():
        return None
    try:
        return _load(last_path)
    except CheckpointError as exc:
        advice = f"delete {checkpoint_dir} or pass resume=False to start over"
        if not best_path.exists():
            raise CheckpointError(f"{exc}; no best.pt to fall back to: {advice}") from exc
        try:
            checkpoint = _load(best_path)
        except CheckpointError as best_exc:
            raise CheckpointError(f"{exc}; and {best_exc}: {advice}") from best_exc
        logger.warning("%s; resuming from %s (epoch %d)", exc, best_path, checkpoint["epoch"])
        _save_epoch(checkpoint_dir, checkpoint, is_best=False, source=best_path)
        return checkpoint


def _best_problem(best_path: Path, checkpoint: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """``(problem, stored)``: what keeps ``best.pt`` from being the best epoch ``checkpoint``
    (``last.pt``) records, None when it is that epoch (its number and validation loss match);
    and ``best.pt`` as read, None when it could not be."""
    try:
        stored = _load(best_path)
    except FileNotFoundError:
        return f"{best_path} is missing", None
    except CheckpointError as exc:
        return str(exc), None
    if (stored["epoch"], stored["best_val_loss"]) != (checkpoint["best_epoch"], checkpoint["best_val_loss"]):
        return f"{best_path} holds epoch {stored['epoch']} (validation loss {stored['best_val_loss']:.6g})", stored
    return None, stored


def _repair_best(checkpoint_dir: Path, checkpoint: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any] | None]:
    """Make ``best.pt`` the epoch ``last.pt`` (``checkpoint``) names as best, where it can be.

    ``last.pt`` is written before ``best.pt``: a run killed between the two renames leaves a
    ``last.pt`` whose own epoch is the best one and an older ``best.pt``. That ``last.pt`` is
    then a byte-exact ``best.pt``; it is copied over, on every resume, finished runs included,
    and likewise over a ``best.pt`` that is unreadable, missing or of another epoch.

    Returns ``(None, best)`` when ``best.pt`` is the best epoch (now), ``best`` being its
    contents (read once here, for a caller that loads it); otherwise ``(problem, None)``,
    what is wrong with it: ``last.pt`` holds a later epoch, and the best epoch's weights are
    lost with ``best.pt``.
    """
    best_path, last_path = checkpoint_dir / "best.pt", checkpoint_dir / "last.pt"
    problem, stored = _best_problem(best_path, checkpoint)
    if problem is None:
        return None, stored
    if checkpoint["best_epoch"] != checkpoint["epoch"]:
        return problem, None
    atomic.write_with(best_path, lambda tmp: shutil.copyfile(last_path, tmp))
    logger.warning("%s, but %s records its own epoch %d as the best: copied from last.pt",
                   problem, last_path, checkpoint["epoch"])
    return None, checkpoint  # best.pt is now a byte copy of last.pt


def _lost_best(problem: str, checkpoint: Mapping[str, Any], last_path: Path) -> str:
    """The sentence that says the best epoch's weights went with ``best.pt``."""
    return (f"{problem}, and {last_path} holds epoch {checkpoint['epoch']}, not the best epoch "
            f"{checkpoint['best_epoch']}: that epoch's weights are lost")


def load_checkpoint(
    path: str | os.PathLike, *, device: str | torch.device = "auto"
) -> tuple[GRUNet, dict[str, Any]]:
    """Rebuild the model stored by :func:`train_gru`.

    Parameters
    ----------
    path : path-like
        ``best.pt`` or ``last.pt``.
    device : str or torch.device
        See :func:`resolve_device`.

    Returns
    -------
    model : GRUNet
        On ``device``, in eval mode.
    checkpoint : dict
        Everything stored (loaded on the CPU): ``model_state``, ``optimizer_state``, ``epoch``,
        ``best_val_loss``, ``best_epoch``, ``history`` (list of dicts), ``rng_states``,
        ``normalizers`` (float64 tensors), ``model_config``, ``frame_pool``, ``train_config``,
        ``params`` (the merged run parameters).

    Raises
    ------
    CheckpointError
        If ``path`` exists but is not a complete checkpoint (e.g. a truncated file).
    """
    return _model_of(_load(path), device=device)


def _model_of(checkpoint: Mapping[str, Any], *, device: str | torch.device) -> tuple[GRUNet, Mapping[str, Any]]:
    """The network a loaded checkpoint stores, on ``device`` in eval mode, and the checkpoint."""
    model = GRUNet(GRUConfig(**checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model_state"])
    model.to(resolve_device(device)).eval()
    return model, checkpoint


def load_best_checkpoint(
    path: str | os.PathLike, *, device: str | torch.device = "auto"
) -> tuple[GRUNet, dict[str, Any]]:
    """:func:`load_checkpoint` of a ``best.pt``, checked against the ``last.pt`` beside it.

    A ``best.pt`` that is unreadable, missing or holds another epoch than the one ``last.pt``
    records as best is rebuilt as a byte copy of ``last.pt`` when that is its own best epoch
    (with one warning; where the folder cannot be written, ``last.pt`` itself is loaded); a
    ``best.pt`` without a readable ``last.pt`` beside it is loaded as is.

    Raises
    ------
    CheckpointError
        If the best epoch's weights are lost (``last.pt`` holds a later epoch), or neither
        file can be read: the message names ``best.pt`` and says to train again (a fit with
        ``resume=True`` in this folder trains the run anew).
    FileNotFoundError
        If neither ``best.pt`` nor ``last.pt`` exists.
    """
    path = Path(path)
    last_path = path.with_name("last.pt")
    advice = (f"train this configuration again to rebuild it (GRURegressor.fit with resume=True and "
              f"checkpoint_dir={path.parent}, as notebook 05_gru does, trains it anew)")
    try:
        last = _load(last_path)
    except FileNotFoundError:
        last, why_not_last = None, f"no {last_path} to rebuild it from"
    except CheckpointError as exc:
        last, why_not_last = None, f"and {exc}"
    if last is None:
        try:
            return load_checkpoint(path, device=device)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; {why_not_last}: {advice}") from exc
    try:
        problem, best = _repair_best(path.parent, last)
    except OSError as exc:  # a folder we may not write to: last.pt is that epoch, read it instead
        logger.warning("%s records its own epoch %d as the best, but %s could not be rebuilt from it (%s): "
                       "loaded last.pt instead", last_path, last["epoch"], path, one_line(exc))
        return load_checkpoint(last_path, device=device)
    if problem:
        raise CheckpointError(f"{_lost_best(problem, last, last_path)}: {advice}")
    return _model_of(best, device=device)  # read once, by the check


def _normalizers_to_numpy(normalizers: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in normalizers.items()}


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _save_epoch(
    checkpoint_dir: Path, state: dict[str, Any], *, is_best: bool, source: Path | None = None
) -> None:
    """Write ``last.pt``, ``best.pt`` (when ``is_best``) and ``history.csv``, each atomically.

    With ``source``, ``last.pt`` is a byte copy of that file (which holds ``state``). A kill
    between the renames of ``last.pt`` and ``best.pt`` is repaired on resume (:func:`_repair_best`).
    """
    last_path = checkpoint_dir / "last.pt"
    if source is None:
        atomic.write_with(last_path, lambda tmp: torch.save(state, tmp))
    else:
        atomic.write_with(last_path, lambda tmp: shutil.copyfile(source, tmp))
    if is_best:
        atomic.write_with(checkpoint_dir / "best.pt", lambda tmp: shutil.copyfile(last_path, tmp))
    history = history_frame(state["history"])
    atomic.write_with(checkpoint_dir / "history.csv", lambda tmp: history.to_csv(tmp, index=False))


@dataclass
class TrainResult:
    """What :func:`train_gru` produced.

    Attributes
    ----------
    history : pandas.DataFrame
        One row per epoch: epoch, train_loss, val_loss (MSE on z-scored targets), lr,
        seconds, is_best, then ``val_<target>`` per head (:func:`history_frame`). Also written
        to ``history.csv``.
    best_checkpoint : Path
        ``best.pt``: the epoch with the lowest validation loss.
    last_checkpoint : Path
        ``last.pt``: the latest epoch, used for resuming.
    best_epoch : int
    """

    history: pd.DataFrame
    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int


def _autocast(device: torch.device, amp: bool):
    """bfloat16 autocast on CUDA when ``amp`` (no gradient scaling needed); a no-op elsewhere."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _train_one_epoch(model, loader, optimizer, *, coding, grad_clip, device, amp, progress, desc) -> float:
    model.train()
    total, count = 0.0, 0
    for x, lengths, y in tqdm(loader, desc=desc, disable=not progress, leave=False):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, amp):
            out = model(x, lengths)
        loss = coding.combine(*coding.loss_terms(out, y))
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        total += loss.item() * len(y)
        count += len(y)
    return total / count


@torch.no_grad()
def _evaluate(model, loader, *, coding, device, amp) -> tuple[float, dict[str, float]]:
    """The loss over the whole loader (each target's mean over all its labelled rows, combined),
    and each head's own mean as ``val_<target>``: the squared error of the z-scored target, or
    the negative log-likelihood of a class head (NaN for a target with no labelled row)."""
    model.eval()
    sums, counts = 0.0, 0.0
    for x, lengths, y in loader:
        with _autocast(device, amp):
            out = model(x.to(device, non_blocking=True), lengths)
        s, c = coding.loss_terms(out, y.to(device, non_blocking=True))
        sums, counts = sums + s.double(), counts + c.double()
    per_head = torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, math.nan))
    return float(coding.combine(sums, counts)), {f"val_{t}": float(v) for (t, _), v in zip(coding.heads, per_head)}


@dataclass(frozen=True)
class TrainConfig:
    """How the network is trained: built once, hashed with :class:`GRUConfig` into the
    checkpoint folder's name, stored in every checkpoint.

    The defaults live in :class:`audioreg.models.gru.GRURegressor`.

    Attributes
    ----------
    lr, weight_decay : float
        Adam settings.
    epochs : int
        Total epochs of the run, counting epochs done before a resume.
    batch_size : int
    frame_pool : int
        Mean-pool blocks of this many frames before the GRU.
    grad_clip : float or None
        Max gradient norm; None or 0 disables clipping.
    random_state : int
        Seeds weight init, the random masks, batch order and augmentations.
    key_rotation : bool
        Key-rotation augmentation of the training items (:class:`KeyRotation`).
    amp : bool
        bfloat16 mixed precision on CUDA (ignored on the CPU).
    """

    lr: float
    weight_decay: float
    epochs: int
    batch_size: int
    frame_pool: int
    grad_clip: float | None
    random_state: int
    key_rotation: bool = False
    amp: bool = False

    def __post_init__(self):
        for name, kind in (("lr", float), ("weight_decay", float), ("epochs", int), ("batch_size", int),
                           ("frame_pool", int), ("random_state", int), ("key_rotation", bool), ("amp", bool)):
            object.__setattr__(self, name, kind(getattr(self, name)))
        if self.grad_clip is not None:
            object.__setattr__(self, "grad_clip", float(self.grad_clip))
        if self.epochs < 0 or self.batch_size < 1 or self.frame_pool < 1:
            raise ValueError(f"epochs must be >= 0, batch_size and frame_pool >= 1: {self}")

    def as_dict(self) -> dict:
        return asdict(self)


def train_gru(
    train_sequences: Sequence[np.ndarray],
    train_targets: np.ndarray,
    val_sequences: Sequence[np.ndarray],
    val_targets: np.ndarray,
    *,
    net: GRUConfig,
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike,
    coding: TargetCoding | None = None,
    columns: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    device: str | torch.device = "auto",
    resume: bool = True,
    progress: bool = False,
) -> TrainResult:
    """Train a :class:`~audioreg.models.network.GRUNet` with Adam on coded, z-scored targets.

    The loss is ``coding``'s (:class:`~audioreg.models.coding.TargetCoding`): with plain
    coding, the MSE over all targets after z-scoring each with the training mean and
    standard deviation, so the 11 targets weigh the same; a missing label (NaN) is left out
    of its target's loss. Every epoch: one pass over the
    training set in length-bucketed batches, a no-grad validation pass, then ``last.pt``
    (model, optimizer, epoch, best validation loss, history, RNG states, normalizers, the
    two configs, ``params``), ``best.pt`` when the validation loss improved, and
    ``history.csv`` are written atomically into ``checkpoint_dir``.

    Parameters
    ----------
    train_sequences, val_sequences : sequence of np.ndarray [shape=(t_i, d)]
        Frame sequences (memmaps are read lazily, one batch at a time).
    train_targets, val_targets : np.ndarray [shape=(n_i, 11)] or [shape=(n_i, 12)]
        Raw targets in :data:`audioreg.targets.TARGETS` order, and optionally the mode
        (1 major, 0 minor) as a 12th column; NaN where a label is missing.
    net : GRUConfig
        The network; ``n_features`` must match the data and ``heads`` the coding's.
    config : TrainConfig
        Optimizer, epochs, batching, pooling, clipping, seed, augmentation, precision.
    checkpoint_dir : path-like
        Created if missing.
    coding : TargetCoding or None
        How the targets are coded (None: plain regression of the 11).
    columns : sequence of str or None
        Names of the input columns past the 46 frame features (for key rotation).
    params : mapping or None
        Merged run parameters, stored verbatim (reduced to plain types) in every checkpoint.
    device : str or torch.device
        ``"auto"`` picks CUDA when available.
    resume : bool
        Continue from ``checkpoint_dir/last.pt`` when it exists (from ``best.pt`` when
        ``last.pt`` is unreadable). ``net`` and ``frame_pool`` must match it; ``lr``
        and ``weight_decay`` of this call win over the stored optimizer's. A ``best.pt``
        that is unreadable, missing or of another epoch is copied from ``last.pt`` when
        that holds the best epoch; otherwise the best weights are lost and the run is
        trained anew (on the CPU, to the same weights), with one warning.
    progress : bool
        Show tqdm bars over batches.

    Returns
    -------
    result : TrainResult

    Raises
    ------
    ValueError
        If the data do not fit ``net``, or resuming from a checkpoint of a different
        network or ``frame_pool``.
    CheckpointError
        If resuming and neither ``last.pt`` nor ``best.pt`` can be read.
    FloatingPointError
        If a loss becomes NaN or infinite.

    Notes
    -----
    On the CPU (``num_workers=0``), a run interrupted after any epoch and resumed ends with
    bit-identical weights to an uninterrupted run. On CUDA, cuDNN's GRU kernels are not
    guaranteed deterministic. The caller's global RNG states are unchanged on return.
    """
    device = resolve_device(device)
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"
    _remove_stale_temp_files(checkpoint_dir)

    coding = coding or TargetCoding()
    train_coded, val_coded = _coded(coding, train_targets), _coded(coding, val_targets)
    if len(train_sequences) == 0 or len(val_sequences) == 0:
        raise ValueError("train and validation sets must be non-empty")
    n_features = int(train_sequences[0].shape[1])
    if n_features != net.n_features or net.heads != coding.head_sizes:
        raise ValueError(f"the data have {n_features} features and the coding {coding.n_outputs} outputs; the "
                         f"network is built for {net.n_features} features and heads {net.heads}")
    model_config, train_config = net.as_dict(), config.as_dict()
    lr, weight_decay, epochs, batch_size = config.lr, config.weight_decay, config.epochs, config.batch_size
    frame_pool, grad_clip, random_state = config.frame_pool, config.grad_clip, config.random_state

    checkpoint = _resume_checkpoint(checkpoint_dir) if resume else None
    if checkpoint is not None and checkpoint["epoch"] > epochs:
        raise ValueError(
            f"{checkpoint_dir} already holds a run of {checkpoint['epoch']} epochs and this run asks for "
            f"epochs={epochs}: its model and history would not be a {epochs}-epoch run. Ask for "
            f"epochs >= {checkpoint['epoch']} to reuse (or continue) it, or resume=False to train {epochs} "
            "epochs anew in its place"
        )
    if checkpoint is not None:
        stored = (checkpoint["model_config"], checkpoint["frame_pool"])
        if stored != (model_config, int(frame_pool)) or checkpoint.get("coding") != coding.as_dict():
            raise ValueError(
                f"{last_path} holds model config {stored[0]} with frame_pool={stored[1]} and target coding "
                f"{checkpoint.get('coding')}, this run asks for {model_config} with frame_pool={frame_pool} "
                f"and {coding.as_dict()}: "
                "use another checkpoint_dir or resume=False"
            )
        changed = {
            k: (checkpoint["train_config"].get(k), v)
            for k, v in train_config.items()
            if k != "epochs" and checkpoint["train_config"].get(k) != v
        }
        if changed:
            logger.warning(
                "resuming %s with changed settings (stored, now): %s", last_path, changed
            )
    if checkpoint is not None and (problem := _repair_best(checkpoint_dir, checkpoint)[0]):
        # Resuming would choose among the epochs still to come only; serving last.pt's weights
        # would pass the last epoch off as the one chosen on validation. Start over instead.
        logger.warning("%s; training %s anew (%d epochs) to rebuild it",
                       _lost_best(problem, checkpoint, last_path), checkpoint_dir, epochs)
        checkpoint = None
    if checkpoint is not None:
        normalizers = _normalizers_to_numpy(checkpoint["normalizers"])
    else:
        normalizers = {**fit_normalizers(train_sequences, None), **coding.fit(train_coded)}

    augment = KeyRotation(coding, columns) if config.key_rotation else None
    train_set = SequenceDataset(train_sequences, train_coded, frame_pool=frame_pool, augment=augment,
                                random_state=random_state, **normalizers)
    val_set = SequenceDataset(val_sequences, val_coded, frame_pool=frame_pool, **normalizers)
    sampler = LengthBucketSampler(
        train_set.lengths, batch_size=batch_size, shuffle=True, random_state=random_state
    )
    val_sampler = LengthBucketSampler(val_set.lengths, batch_size=batch_size, shuffle=False)
    pin = device.type == "cuda"
    loader_args = {"collate_fn": collate_padded, "num_workers": 0, "pin_memory": pin}
    # A private generator: DataLoader would otherwise draw a (here unused) seed from the global one.
    train_loader = DataLoader(
        train_set, batch_sampler=sampler, generator=torch.Generator(), **loader_args
    )
    val_loader = DataLoader(
        val_set, batch_sampler=val_sampler, generator=torch.Generator(), **loader_args
    )

    run_info = {  # stored in every checkpoint besides the per-epoch state
        "format": CHECKPOINT_FORMAT,
        "normalizers": {k: torch.as_tensor(v, dtype=torch.float64) for k, v in normalizers.items()},
        "model_config": model_config,
        "frame_pool": int(frame_pool),
        "train_config": train_config,
        "coding": coding.as_dict(),
        "label_counts": label_counts(train_targets),
        "params": _plain(params or {}),
        "torch_version": str(torch.__version__),
    }
    with _private_global_rngs(device), _cpu_threads(device):
        _seed_global_rngs(random_state, device)
        model = GRUNet(net).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        history: list[dict[str, Any]] = []
        best_val_loss, best_epoch, start_epoch = math.inf, 0, 1
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model_state"])
            optimizer.load_state_dict(checkpoint["optimizer_state"])
            for group in optimizer.param_groups:
                group["lr"], group["weight_decay"] = lr, weight_decay
            history = list(checkpoint["history"])
            best_val_loss, best_epoch = checkpoint["best_val_loss"], checkpoint["best_epoch"]
            start_epoch = checkpoint["epoch"] + 1
            _set_rng_states(checkpoint["rng_states"], device)
            sampler.load_state_dict(checkpoint["rng_states"]["sampler"])
            logger.info("resumed %s at epoch %d", last_path, start_epoch)

        if start_epoch > epochs:
            logger.info("%s already holds %d of %d epochs", last_path, start_epoch - 1, epochs)
        for epoch in range(start_epoch, epochs + 1):
            started = time.perf_counter()
            sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            train_loss = _train_one_epoch(
                model,
                train_loader,
                optimizer,
                coding=coding,
                grad_clip=grad_clip,
                device=device,
                amp=config.amp,
                progress=progress,
                desc=f"epoch {epoch}/{epochs}",
            )
            val_loss, val_per_target = _evaluate(model, val_loader, coding=coding, device=device, amp=config.amp)
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                raise FloatingPointError(
                    f"epoch {epoch}: train loss {train_loss}, validation loss {val_loss}"
                )
            is_best = val_loss < best_val_loss
            if is_best:
                best_val_loss, best_epoch = val_loss, epoch
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "lr": optimizer.param_groups[0]["lr"],
                    "seconds": time.perf_counter() - started,
                    "is_best": is_best,
                    **val_per_target,
                }
            )
            state = {
                **run_info,
                "model_state": model.state_dict(),
                "optimizer_state": optimizer.state_dict(),
                "epoch": epoch,
                "best_val_loss": best_val_loss,
                "best_epoch": best_epoch,
                "history": history,
                "rng_states": _rng_states(device, sampler),
            }
            _save_epoch(checkpoint_dir, state, is_best=is_best)
            logger.info(
                "epoch %d/%d train %.4f val %.4f%s (%.1f s)",
                epoch,
                epochs,
                train_loss,
                val_loss,
                " *" if is_best else "",
                history[-1]["seconds"],
            )

    return TrainResult(
        history=history_frame(history),
        best_checkpoint=best_path,
        last_checkpoint=last_path,
        best_epoch=best_epoch,
    )


def _coded(coding: TargetCoding, targets: np.ndarray) -> np.ndarray:
    """Raw targets [n, 11] (or [n, 12] with the mode last) as ``coding``'s label matrix."""
    y = np.asarray(targets, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] not in (11, 12):
        raise ValueError(f"targets must be [n, 11], or [n, 12] with the mode last; got {y.shape}")
    return coding.encode(y[:, :11], y[:, 11] if y.shape[1] == 12 else None)


def checkpoint_coding(checkpoint: Mapping[str, Any]) -> TargetCoding:
    """The target coding a checkpoint was trained with (plain for format-1 checkpoints)."""
    return TargetCoding(**checkpoint.get("coding", {}))


# --------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------


def predict_gru(model_or_checkpoint_path, sequences: Sequence[np.ndarray], **options) -> np.ndarray:
    """Predict raw target units with a trained GRU: :func:`predict_table`'s 11 targets (same
    arguments), ``[n_tracks, 11]`` float64 in TARGETS order."""
    from audioreg.targets import TARGETS

    table = predict_table(model_or_checkpoint_path, sequences, **options)
    return table[list(TARGETS)].to_numpy(dtype=np.float64)


@torch.no_grad()
def predict_table(
    model_or_checkpoint_path: str | os.PathLike | tuple[GRUNet, Mapping[str, Any]],
    sequences: Sequence[np.ndarray],
    *,
    batch_size: int = 32,
    device: str | torch.device = "auto",
) -> pd.DataFrame:
    """Predict with a trained GRU, in Spotify's units and encodings.

    Parameters
    ----------
    model_or_checkpoint_path : path-like or (GRUNet, dict)
        A checkpoint written by :func:`train_gru`, or the pair returned by
        :func:`load_checkpoint` (its normalizers and ``frame_pool`` are used).
    sequences : sequence of np.ndarray [shape=(t_i, d)]
    batch_size : int
    device : str or torch.device
        Where to run; the model is moved there.

    Returns
    -------
    table : pandas.DataFrame [shape=(n_tracks, 15)]
        The 11 targets in raw units (regressed ones: the model's z-scores times the training
        std plus the training mean; classes: the most probable), ``mode`` and the class
        probabilities (:meth:`~audioreg.models.coding.TargetCoding.decode`).
    """
    if isinstance(model_or_checkpoint_path, (str, os.PathLike)):
        model, checkpoint = load_checkpoint(model_or_checkpoint_path, device=device)
    elif isinstance(model_or_checkpoint_path, tuple) and len(model_or_checkpoint_path) == 2:
        model, checkpoint = model_or_checkpoint_path
    else:
        raise TypeError(
            "pass a checkpoint path or the (model, checkpoint) pair from load_checkpoint: "
            "a bare model lacks the normalizers needed for raw units"
        )
    device = resolve_device(device)
    normalizers = _normalizers_to_numpy(checkpoint["normalizers"])
    dataset = SequenceDataset(
        sequences,
        frame_pool=checkpoint["frame_pool"],
        feature_mean=normalizers["feature_mean"],
        feature_std=normalizers["feature_std"],
    )
    sampler = LengthBucketSampler(dataset.lengths, batch_size=batch_size, shuffle=False)
    was_training = model.training
    model.to(device).eval()
    try:
        z = np.empty((len(dataset), model.config.n_outputs), dtype=np.float64)
        with _cpu_threads(device):
            for batch in sampler:
                x, lengths, _ = collate_padded([dataset[i] for i in batch])
                z[batch] = model(x.to(device), lengths).double().cpu().numpy()
    finally:
        model.train(was_training)
    return untrained_to_nan(checkpoint_coding(checkpoint).decode(z, normalizers), checkpoint.get("label_counts", {}))


def label_counts(targets: np.ndarray) -> dict[str, int]:
    """Labelled (finite) training rows per target, in TARGETS order (``mode`` too when
    ``targets`` has its 12th column): stored in every checkpoint."""
    y = np.asarray(targets, dtype=np.float64)
    names = list(TARGETS) + (["mode"] if y.shape[1] > len(TARGETS) else [])
    return {t: int(np.isfinite(y[:, j]).sum()) for j, t in enumerate(names)}


#: The columns of a prediction table that a target's output carries with it.
_CARRIED = {"key": ("key_prob", "mode", "mode_prob"), "mode": ("mode_prob",), "time_signature": ("time_signature_prob",)}


def untrained_to_nan(table: pd.DataFrame, counts: Mapping[str, int]) -> pd.DataFrame:
    """``table`` with NaN for every target no training row was labelled for (its head saw no
    loss: its output means nothing), and the class columns that come with it."""
    for t, n in counts.items():
        if n == 0 and t in table.columns:
            for c in (t, *_CARRIED.get(t, ())):
                table[c] = np.nan
    return table
