"""Loudness of audio: the ITU-R BS.1770 integrated loudness (dB LUFS), vectorized.

The one meter the package uses: the sample set masters its tracks with it and measures
its ``loudness`` labels with it. It gives ``pyloudnorm.Meter(sr).integrated_loudness``'s
value (the same K-weighting coefficients and gating) to within 0.001 dB, about 3 times
faster.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.signal


@functools.lru_cache(maxsize=16)
def _k_weighting_coefficients(sr: int) -> tuple[tuple[float, ...], ...]:
    """pyloudnorm's K-weighting filters at ``sr``, as hashable second-order sections (cached)."""
    from pyloudnorm.iirfilter import IIRfilter

    shelf = IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sr, "high_shelf")
    hp = IIRfilter(0.0, 0.5, 38.0, sr, "high_pass")
    sos = np.vstack([scipy.signal.tf2sos(f.b, f.a) for f in (shelf, hp)])
    sos[0, :3] *= shelf.passband_gain * hp.passband_gain
    return tuple(map(tuple, sos))


def _k_weighting_sos(sr: int) -> np.ndarray:
    """BS.1770 K-weighting (pyloudnorm's coefficients) as second-order sections [shape=(2, 6)]."""
    return np.array(_k_weighting_coefficients(int(sr)))


def integrated_loudness(x: np.ndarray, *, sr: int) -> float:
    """BS.1770 integrated loudness, vectorized (the algorithm of ``pyloudnorm.Meter``).

    The signal is K-weighted (a +4 dB high shelf above about 1.5 kHz, then a 38 Hz
    high-pass; pyloudnorm's coefficients), cut into 400 ms blocks every 100 ms, and the
    mean power of the blocks that pass both gates (absolute: -70 LUFS; relative: 10 dB
    below the mean of the blocks above -70 LUFS) is summed over the channels, each with
    weight 1.

    Blocks are built from 100 ms hops of ``int(0.1 * sr)`` samples, so block edges may
    differ from pyloudnorm's by a sample (agreement is better than 0.001 dB; tested
    against ``pyloudnorm.Meter(sr).integrated_loudness``).

    Parameters
    ----------
    x : np.ndarray [shape=(channels, n)] or [shape=(n,)]
        Samples, full scale 1.0; filtered in their own dtype (float32 stays float32),
        block energies summed in float64.
    sr : int
        Sample rate (Hz).

    Returns
    -------
    loudness : float
        dB (LUFS); ``-inf`` for silence (no block passes the gates). A full-scale
        997 Hz sine in one channel reads about -3 LUFS.
    """
    x = np.atleast_2d(np.asarray(x))
    y = scipy.signal.sosfilt(_k_weighting_sos(sr).astype(x.dtype), x, axis=-1)
    hop = int(0.1 * sr)
    m = x.shape[1] // hop
    hops = np.square(y[:, : m * hop]).reshape(y.shape[0], m, hop).sum(axis=2, dtype=np.float64)
    partial = np.square(y[:, m * hop :]).sum(axis=1, dtype=np.float64)
    return _gated_loudness(hops, partial, n_samples=x.shape[1], sr=sr)


def _gated_loudness(hops: np.ndarray, partial: np.ndarray, *, n_samples: int, sr: int) -> float:
    """BS.1770 gating from the K-weighted energy of each full 100 ms hop ``[channels, m]`` and
    of the samples after the last full hop ``[channels]``."""
    hop = int(0.1 * sr)
    T_g, step = 0.4, 0.25
    T = n_samples / sr
    n_blocks = int(np.round((T - T_g) / (T_g * step))) + 1
    n_hops = n_blocks + 3
    e = np.zeros((hops.shape[0], n_hops))
    m = min(hops.shape[1], n_hops)
    e[:, :m] = hops[:, :m]
    if m < n_hops and m * hop < n_samples:
        e[:, m] = partial
    c = np.concatenate([np.zeros((e.shape[0], 1)), np.cumsum(e, axis=1)], axis=1)
    z = (c[:, 4 : n_blocks + 4] - c[:, :n_blocks]) / (T_g * sr)  # (channels, blocks)
    power = z.sum(axis=0)
    with np.errstate(divide="ignore"):
        lj = -0.691 + 10 * np.log10(power)
    gated = lj >= -70.0
    if not gated.any():
        return float("-inf")
    rel = -0.691 + 10 * np.log10(z[:, gated].mean(axis=1).sum()) - 10.0
    gated = (lj > rel) & (lj > -70.0)
    if not gated.any():
        return float("-inf")
    return float(-0.691 + 10 * np.log10(z[:, gated].mean(axis=1).sum()))


class LoudnessMeter:
    """:func:`integrated_loudness` fed block by block, so a long file is measured without
    holding it: ``update`` with consecutive ``[channels, n]`` blocks, then ``integrated()``.

    The K-weighting filter keeps its state across blocks and the energy of each 100 ms hop
    is summed as it completes, so the result is that of the whole signal (in float64).
    """

    def __init__(self, *, sr: int, channels: int) -> None:
        self.sr, self.channels = int(sr), int(channels)
        self._sos = _k_weighting_sos(self.sr)
        self._zi = np.zeros((self._sos.shape[0], self.channels, 2))
        self._hop = int(0.1 * self.sr)
        self._rest = np.zeros((self.channels, 0))
        self._hops: list[np.ndarray] = []
        self.n_samples = 0

    def update(self, block: np.ndarray) -> None:
        x = np.atleast_2d(np.asarray(block, dtype=np.float64))
        if x.shape[0] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got a block of shape {x.shape}")
        y, self._zi = scipy.signal.sosfilt(self._sos, x, axis=-1, zi=self._zi)
        self.n_samples += x.shape[1]
        y = np.concatenate([self._rest, y], axis=1)
        m = y.shape[1] // self._hop
        if m:
            self._hops.append(np.square(y[:, : m * self._hop]).reshape(self.channels, m, self._hop).sum(axis=2))
        self._rest = y[:, m * self._hop :]

    def integrated(self) -> float:
        """dB (LUFS) of everything fed so far; ``-inf`` for silence."""
        hops = np.concatenate(self._hops, axis=1) if self._hops else np.zeros((self.channels, 0))
        return _gated_loudness(hops, np.square(self._rest).sum(axis=1), n_samples=self.n_samples, sr=self.sr)
