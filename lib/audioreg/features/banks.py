"""librosa's filter banks and small transforms, in numpy, for the one-pass extractor.

:func:`audioreg.features.frames.extract_features` needs a Hann window, the mel and chroma
filter banks, two normalizations, a dB conversion, the tuning histogram and the tonnetz
projection. librosa has each of them, but importing the modules that hold them imports
``scipy.signal`` and ``scipy.stats`` (1-2 s on a 2-core machine, more than extracting a
30-second file), so a process that only extracts features would spend most of its life
importing. Each function here is the same arithmetic as librosa's (0.11) in the same
order and types, so the values are identical: ``tests/test_features.py`` compares every
one with librosa's to the bit.
"""

from __future__ import annotations

import warnings

import numpy as np


def hann(n: int) -> np.ndarray:
    """The periodic Hann window of ``n`` points, float64: ``scipy.signal.get_window("hann", n)``
    (librosa's ``filters.get_window("hann", n, fftbins=True)``)."""
    fac = np.linspace(-np.pi, np.pi, n + 1, dtype=np.float64)
    w = np.zeros(n + 1, dtype=np.float64)
    for k, a in enumerate(np.asarray([0.5, 1.0 - 0.5], dtype=np.float64)):
        w += a * np.cos(k * fac)
    return w[:-1]


def fft_frequencies(*, sr: float, n_fft: int) -> np.ndarray:
    """Centre frequency of each rFFT bin, Hz: ``librosa.fft_frequencies``."""
    return np.fft.rfftfreq(n=n_fft, d=1.0 / sr)


_F_SP = 200.0 / 3  # Slaney's mel scale: linear below 1 kHz, 3 bins per 200 Hz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(f: float) -> float:
    mel = f / _F_SP
    return _MIN_LOG_MEL + np.log(f / _MIN_LOG_HZ) / _LOGSTEP if f >= _MIN_LOG_HZ else mel


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    freqs = _F_SP * mels
    log_t = mels >= _MIN_LOG_MEL
    freqs[log_t] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels[log_t] - _MIN_LOG_MEL))
    return freqs


def mel(*, sr: float, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-normalized mel filter bank ``[n_mels, 1 + n_fft // 2]`` float32, 0 Hz to ``sr / 2``:
    ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)``."""
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    fftfreqs = fft_frequencies(sr=sr, n_fft=n_fft)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(float(sr) / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    return weights


def hz_to_octs(frequencies: np.ndarray, *, tuning: float = 0.0, bins_per_octave: int = 12) -> np.ndarray:
    """Octave number of each frequency (A0 = 27.5 Hz is 0, with the tuning): ``librosa.hz_to_octs``."""
    a440 = 440.0 * 2.0 ** (tuning / bins_per_octave)
    return np.log2(np.asanyarray(frequencies) / (float(a440) / 16))


def chroma(*, sr: float, n_fft: int, tuning: float, n_chroma: int = 12) -> np.ndarray:
    """Chroma filter bank ``[n_chroma, 1 + n_fft // 2]`` float32 (C first, Gaussian octave
    weighting around C5 +- 2 octaves, each column L2-normalized):
    ``librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning, n_chroma=n_chroma)``."""
    ctroct, octwidth = 5.0, 2
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    frqbins = n_chroma * hz_to_octs(frequencies, tuning=tuning, bins_per_octave=n_chroma)
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    D = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    n_chroma2 = np.round(float(n_chroma) / 2)
    D = np.remainder(D + n_chroma2 + 10 * n_chroma, n_chroma) - n_chroma2
    wts = np.exp(-0.5 * (2 * D / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    wts = normalize(wts, norm=2, axis=0)
    wts *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - ctroct) / octwidth) ** 2)), (n_chroma, 1))
    wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)], dtype=np.float32)


def normalize(S: np.ndarray, *, norm: float, axis: int) -> np.ndarray:
    """``S`` scaled to unit max (``norm=np.inf``), L1 or L2 norm along ``axis``; slices whose
    norm is below the dtype's smallest normal number are left as they are:
    ``librosa.util.normalize(S, norm=norm, axis=axis)``."""
    if not np.all(np.isfinite(S)):
        raise ValueError("Input must be finite")
    mag = np.abs(S).astype(float)
    if norm == np.inf:
        length = np.max(mag, axis=axis, keepdims=True)
    elif norm > 0:
        length = np.sum(mag**norm, axis=axis, keepdims=True) ** (1.0 / norm)
    else:
        raise ValueError(f"unsupported norm {norm!r}")
    length[length < np.finfo(S.dtype).tiny] = 1.0
    out = np.empty_like(S)
    out[:] = S / length
    return out


def power_to_db(S: np.ndarray, *, amin: float = 1e-10, top_db: float = 80.0) -> np.ndarray:
    """``10 log10(max(S, amin))`` floored ``top_db`` below its maximum: ``librosa.power_to_db(S)``
    (``ref=1.0``)."""
    log_spec = 10.0 * np.log10(np.maximum(amin, S))
    log_spec -= 10.0 * np.log10(np.maximum(amin, 1.0))
    return np.maximum(log_spec, log_spec.max() - top_db)


def pitch_tuning(frequencies: np.ndarray, *, resolution: float = 0.01, bins_per_octave: int = 12) -> float:
    """The tuning offset (fractions of a bin, in [-0.5, 0.5)) most frequencies share:
    ``librosa.pitch_tuning``; 0 (with a warning) for no positive frequency."""
    frequencies = np.atleast_1d(frequencies)
    frequencies = frequencies[frequencies > 0]
    if not np.any(frequencies):
        warnings.warn("Trying to estimate tuning from empty frequency set.", stacklevel=2)
        return 0.0
    residual = np.mod(bins_per_octave * hz_to_octs(frequencies), 1.0)
    residual[residual >= 0.5] -= 1.0
    bins = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / resolution)) + 1)
    counts, tuning = np.histogram(residual, bins)
    return tuning[np.argmax(counts)]


def tonnetz(chroma: np.ndarray) -> np.ndarray:
    """Tonal centroids ``[..., 6, t]`` (fifths, minor thirds, major thirds as x/y pairs) of a
    chroma ``[..., 12, t]``, L1-normalized per frame first: ``librosa.feature.tonnetz(chroma=chroma)``."""
    dim_map = np.linspace(0, 12, num=chroma.shape[-2], endpoint=False)
    scale = np.asarray([7.0 / 6, 7.0 / 6, 3.0 / 2, 3.0 / 2, 2.0 / 3, 2.0 / 3])
    V = np.multiply.outer(scale, dim_map)
    V[::2] -= 0.5
    R = np.array([1, 1, 1, 1, 0.5, 0.5])
    phi = R[:, np.newaxis] * np.cos(np.pi * V)
    return np.einsum("pc,...ci->...pi", phi, normalize(chroma, norm=1, axis=-2), optimize=True)
