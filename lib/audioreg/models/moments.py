"""Per-column moments of a sequence of frames, streamed: what the forest's song statistics and
the GRU's input standardization are computed from (numpy only, so neither pulls in the other's
libraries)."""

from __future__ import annotations

import numpy as np

#: Frames read at a time when streaming over a (possibly memory-mapped) sequence.
CHUNK_FRAMES = 8192


def streaming_moments(
    frames: np.ndarray, *, chunk_frames: int = CHUNK_FRAMES
) -> tuple[int, np.ndarray, np.ndarray]:
    """Count, mean and sum of squared deviations of every column, read in chunks.

    Chunks are combined with Chan et al.'s pairwise update in float64, so a memory-mapped
    array is never loaded whole and the result does not suffer from the cancellation of the
    naive ``E[x^2] - E[x]^2`` formula.

    Parameters
    ----------
    frames : np.ndarray [shape=(t, d)]
        One sequence of frames (an ``np.memmap`` works).
    chunk_frames : int
        Frames read per chunk.

    Returns
    -------
    n : int
        Number of frames ``t``.
    mean : np.ndarray [shape=(d,), dtype=float64]
    m2 : np.ndarray [shape=(d,), dtype=float64]
        Sum of squared deviations from the mean (``var = m2 / n``).
    """
    if frames.ndim != 2:
        raise ValueError(f"expected a 2-D [time, features] array, got shape {frames.shape}")
    n_frames, n_dims = frames.shape
    n = 0
    mean = np.zeros(n_dims, dtype=np.float64)
    m2 = np.zeros(n_dims, dtype=np.float64)
    for start in range(0, n_frames, chunk_frames):
        block = np.asarray(frames[start : start + chunk_frames], dtype=np.float64)
        n_block = block.shape[0]
        block_mean = block.mean(axis=0)
        block_m2 = np.square(block - block_mean).sum(axis=0)
        total = n + n_block
        delta = block_mean - mean
        mean += delta * (n_block / total)
        m2 += block_m2 + np.square(delta) * (n * n_block / total)
        n = total
    return n, mean, m2
