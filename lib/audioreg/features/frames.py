"""Frame-level audio features: pure functions, arrays in, arrays out.

Every track becomes a float32 matrix ``[time_steps, 46]``:

========================  =====  ================================================
block                     dims   computed from
========================  =====  ================================================
MFCC                      20     log-mel power spectrogram (128 mel bands)
chroma                    12     STFT power spectrogram (tuning estimated per track)
spectral contrast         7      STFT magnitude: peak - valley (dB) of 7 octave bands
tonnetz                   6      the chroma above
zero-crossing rate        1      waveform, frame 2048, hop 512, centred
========================  =====  ================================================

:func:`extract_features` computes one STFT and derives every block from it;
:func:`audioreg.features.torch_batch.extract_features_batch` is the same on a GPU, for
batches of tracks.
:func:`reference_features` is the straightforward path (each librosa feature
function called on the waveform, tonnetz through a CQT chroma), kept to compare
values and speed side by side.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from pathlib import Path

import numpy as np

from .. import atomic
from ..data.audio import SR  # the one sample rate
from . import banks

#: Bump when the feature values change: it is part of every feature cache key.
FEATURE_VERSION = "2"

N_FFT = 2048
HOP_LENGTH = 512
N_MFCC = 20
N_MELS = 128
N_CHROMA = 12
N_CONTRAST_BANDS = 6

BLOCKS: tuple[tuple[str, int], ...] = (
    ("mfcc", N_MFCC),
    ("chroma", N_CHROMA),
    ("contrast", N_CONTRAST_BANDS + 1),
    ("tonnetz", 6),
    ("zcr", 1),
)
N_FEATURES = sum(n for _, n in BLOCKS)  # 46

#: Frames per block of :func:`extract_features` (~1.5 s at hop 512): one block's frames and
#: spectrum (1 MiB each) stay in cache while every feature is taken from them; blocks of
#: 1024 frames are ~25 % slower.
BLOCK_FRAMES = 64


def feature_names() -> list[tuple[str, int]]:
    """Names of the 46 columns, as ``(block, index)`` pairs, e.g. ``("mfcc", 3)``."""
    return [(block, i) for block, n in BLOCKS for i in range(n)]


def feature_params() -> dict:
    """The settings that determine feature values (part of the cache key)."""
    return {
        "version": FEATURE_VERSION,
        "sr": SR,
        "n_fft": N_FFT,
        "hop_length": HOP_LENGTH,
        "n_mfcc": N_MFCC,
        "n_mels": N_MELS,
        "n_chroma": N_CHROMA,
        "n_contrast_bands": N_CONTRAST_BANDS,
        "blocks": [list(b) for b in BLOCKS],
    }


def n_frames(n_samples: int, *, hop_length: int = HOP_LENGTH) -> int:
    """Number of centred frames for a signal of ``n_samples``."""
    return 1 + int(n_samples) // hop_length


def extract_features(
    *,
    y: np.ndarray,
    sr: int = SR,
    n_fft: int = N_FFT,
    hop_length: int = HOP_LENGTH,
    block_frames: int | None = None,
    timings: dict[str, float] | None = None,
) -> np.ndarray:
    """One-pass features from a shared STFT, in blocks of frames.

    The signal is cut into blocks of frames; each block's STFT is computed once and
    every feature is derived from it while it is in cache: :func:`kernels._frame_pass` takes the
    power, the contrast peaks and valleys and the pitch peaks of the tuning estimate in
    one compiled pass over each frame, :func:`kernels._mel_into` the mel bands. Two things are
    not framewise and are finished over the whole signal: the chroma tuning (the pitch
    peaks of all frames are pooled, as :func:`librosa.estimate_tuning` does) and the
    ``top_db`` floors of the log-mel and of the contrast's peaks and valleys. So the
    values do not depend on ``block_frames``.

    Every block equals librosa's own function called with the same settings, to the
    tolerances that ``tests/test_features.py`` checks (see :data:`TOLERANCES`).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono waveform at ``sr``. Signals shorter than one analysis window are
        zero-padded by the centred STFT, as librosa does.
    sr : int
        Sample rate of ``y``.
    n_fft, hop_length : int
        STFT window and hop (a Hann window, centred frames, zero padding).
    block_frames : int or None
        Frames per block; ``None`` means :data:`BLOCK_FRAMES`, ``0`` one block.
        Memory is one block's STFT plus the ``[t, 128]`` mel matrix and, for signals
        up to :data:`KEEP_POWER_FRAMES` frames, the power spectrogram kept for the
        chroma (longer signals recompute each block's STFT for the chroma instead).
    timings : dict or None
        When given, seconds spent per stage are added to it (keys ``stft``,
        ``power+contrast+peaks``, ``mel``, ``zcr``, ``chroma``, ``mfcc``, ``tonnetz+stack``;
        the second STFT of signals over :data:`KEEP_POWER_FRAMES` counts as ``chroma``).

    Returns
    -------
    F : np.ndarray [shape=(t, 46)], float32
        ``t = 1 + n // hop_length``; columns as in :func:`feature_names`.
    """
    from . import kernels  # numba: imported by the first extraction, not by what only reads the settings

    y = _check_signal(y)
    clock = _Clock(timings)
    bank = _banks(int(sr), int(n_fft))
    n_total = n_frames(y.size, hop_length=hop_length)
    block_frames = BLOCK_FRAMES if block_frames is None else int(block_frames)
    if block_frames <= 0:
        block_frames = n_total
    keep_power = n_total <= KEEP_POWER_FRAMES
    half = n_fft // 2

    nf = n_fft // 2 + 1
    out = np.empty((n_total, N_FEATURES), np.float32)
    cols = _columns()
    mel = np.empty((n_total, N_MELS), np.float32)
    peak = np.empty((n_total, N_CONTRAST_BANDS + 1))
    valley = np.empty_like(peak)
    power_all = np.empty((n_total, nf), np.float32) if keep_power else None
    power_block = None if keep_power else np.empty((block_frames, nf), np.float32)
    pitches, mags, buffers = [], [], {}
    for k0 in range(0, n_total, block_frames):
        k1 = min(k0 + block_frames, n_total)
        spectrum = _spectrum(_segment(y, k0, k1, hop_length, half, "constant"), bank, n_fft, hop_length, buffers)
        clock("stft")
        power = power_all[k0:k1] if keep_power else power_block[: k1 - k0]
        pitch, mag, count = kernels._frame_pass(spectrum, bank.contrast_bands, bank.pitch_bins, float(sr), float(n_fft),
                                                power, peak[k0:k1], valley[k0:k1])
        pitches.append(pitch[:count])
        mags.append(mag[:count])
        clock("power+contrast+peaks")
        kernels._mel_into(power, bank.mel, bank.mel_bins, mel[k0:k1])
        clock("mel")
        seg = _segment(y, k0, k1, hop_length, half, "edge")
        out[k0:k1, cols["zcr"]] = kernels._zero_crossings(seg, k1 - k0, hop_length, n_fft, np.float32(1e-10))[:, None]
        clock("zcr")
    out[:, cols["zcr"]] /= n_fft

    tuning = _tuning(np.concatenate(pitches), np.concatenate(mags))
    chroma_t = _chroma_bank(sr, n_fft, tuning)
    chroma = out[:, cols["chroma"]]
    if keep_power:
        chroma[:] = power_all @ chroma_t
        del power_all
    else:
        for k0 in range(0, n_total, block_frames):
            k1 = min(k0 + block_frames, n_total)
            spectrum = _spectrum(_segment(y, k0, k1, hop_length, half, "constant"), bank, n_fft, hop_length, buffers)
            kernels._power_into(spectrum, power_block[: k1 - k0])
            chroma[k0:k1] = power_block[: k1 - k0] @ chroma_t
    chroma[:] = banks.normalize(chroma, norm=np.inf, axis=1)
    clock("chroma")

    log_mel = _power_to_db(mel)  # in place
    out[:, cols["mfcc"]] = log_mel.astype(np.float64) @ bank.dct_t
    clock("mfcc")
    out[:, cols["contrast"]] = banks.power_to_db(peak) - banks.power_to_db(valley)
    out[:, cols["tonnetz"]] = banks.tonnetz(chroma.T).T
    np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    clock("tonnetz+stack")
    return out


def rotate_pitch(feats: np.ndarray, semitones: int) -> np.ndarray:
    """Frame features as they would be for the same audio ``semitones`` higher (key-rotation
    augmentation).

    Parameters
    ----------
    feats : np.ndarray [shape=(t, d >= 46)]
        Frames in :func:`extract_features`' column order; columns past the 46th are kept.
    semitones : int
        Rotation of the pitch classes (any integer; taken mod 12).

    Returns
    -------
    rotated : np.ndarray [shape=(t, d)]
        The chroma bins rotated by ``semitones`` (bin ``i`` moves to ``i + semitones``), the
        tonnetz recomputed from the rotated chroma; MFCC, contrast and ZCR unchanged (a
        transposition moves them little, and no rotation of them is exact).
    """
    cols = _columns()
    out = np.array(feats, copy=True)
    if out.ndim != 2 or out.shape[1] < N_FEATURES:
        raise ValueError(f"expected frames [t, >= {N_FEATURES}], got {out.shape}")
    chroma = np.roll(out[:, cols["chroma"]], int(semitones) % N_CHROMA, axis=1)
    out[:, cols["chroma"]] = chroma
    tonnetz = banks.tonnetz(np.asarray(chroma, dtype=np.float64).T).T
    out[:, cols["tonnetz"]] = np.nan_to_num(tonnetz, nan=0.0, posinf=0.0, neginf=0.0)
    return out


#: Tolerances against librosa's own functions with the same settings (absolute, in each
#: feature's units), checked per feature by tests/test_features.py. The STFT is computed
#: in float64 and stored in float32 as librosa does; differences come from float32
#: summation order in the filter-bank products (MFCC in dB units; chroma and tonnetz
#: are in [0, 1]) and from summing the contrast's quantile means in another order (dB).
TOLERANCES = {"mfcc": 2e-3, "chroma": 1e-5, "contrast": 1e-3, "tonnetz": 1e-5, "zcr": 0.0}

#: Power spectrograms up to this many frames (~6 min at hop 512, 64 MiB) are kept between
#: the pass that estimates the tuning and the chroma; longer signals recompute the STFT.
KEEP_POWER_FRAMES = 16384


class _Clock:
    """Adds the seconds since the previous call to ``timings[stage]`` (no-op without a dict)."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings = timings
        self.t0 = time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self.timings is None:
            return
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self.t0
        self.t0 = now


def _columns() -> dict[str, slice]:
    cols, start = {}, 0
    for name, n in BLOCKS:
        cols[name] = slice(start, start + n)
        start += n
    return cols


class _Banks:
    """Window and filter banks for one ``(sr, n_fft)``, built once per process."""

    def __init__(self, sr: int, n_fft: int):
        # float64 window: frames are transformed in double precision, as librosa.stft does
        self.window = banks.hann(n_fft)
        self.mel = banks.mel(sr=sr, n_fft=n_fft, n_mels=N_MELS)  # [128, nf] float32
        nonzero = self.mel != 0  # each triangle's bins, so the mel product skips the zeros
        any_bin = nonzero.any(axis=1)
        self.mel_bins = np.stack([np.where(any_bin, nonzero.argmax(axis=1), 0),
                                  np.where(any_bin, nonzero.shape[1] - nonzero[:, ::-1].argmax(axis=1), 0)], axis=1)
        self.mel_bins = self.mel_bins.astype(np.int64)
        self.dct_t = dct_matrix(N_MELS, N_MFCC)
        freqs = banks.fft_frequencies(sr=sr, n_fft=n_fft)
        self.contrast_bands = _contrast_bands(freqs, sr=sr)
        # piptrack's defaults in estimate_tuning: 150 <= f < 4000 Hz
        inside = np.flatnonzero((freqs >= 150.0) & (freqs < min(4000.0, sr / 2)))
        self.pitch_bins = np.array([max(inside[0], 1), min(inside[-1] + 1, freqs.size - 1)], np.int64)


@functools.lru_cache(maxsize=4)
def _banks(sr: int, n_fft: int) -> _Banks:
    return _Banks(sr, n_fft)


@functools.lru_cache(maxsize=32)
def _chroma_bank(sr: float, n_fft: int, tuning: float) -> np.ndarray:
    """``[nf, 12]`` float32: the chroma filter bank for a tuning, transposed (read-only).

    Tunings are bins of a 0.01-wide histogram, so tracks share a few dozen of them, and
    building the bank costs about as much as the chroma product of a 30-second track.
    """
    bank_t = np.ascontiguousarray(banks.chroma(sr=sr, n_fft=n_fft, tuning=tuning, n_chroma=N_CHROMA).T)
    bank_t.flags.writeable = False
    return bank_t


def dct_matrix(n: int, k: int, *, cache_dir: str | Path | None = None) -> np.ndarray:
    """``[n, k]`` float64: the first ``k`` orthonormal DCT-II basis vectors, as columns.

    ``x @ dct_matrix(n, k)`` is ``scipy.fft.dct(x, type=2, norm="ortho")[..., :k]`` (the
    MFCC of :func:`librosa.feature.mfcc`), with scipy's own values, bit for bit. Importing
    ``scipy.fft`` takes longer than extracting a 30-second file, so the matrix scipy
    computes is kept on disk beside the compiled code (``cache_dir``, by default this
    package's ``__pycache__``), named by the scipy and NumPy versions, and loaded from there
    by every later process. A file that cannot be read is computed again; a folder that
    cannot be written only costs the import.
    """
    import scipy  # the package alone is cheap; scipy.fft is not

    folder = Path(cache_dir) if cache_dir is not None else Path(__file__).with_name("__pycache__")
    path = folder / f"dct2-ortho-{n}x{k}-scipy{scipy.__version__}-numpy{np.__version__}.npy"
    with contextlib.suppress(OSError, ValueError, EOFError):
        cached = np.load(path)
        if cached.shape == (n, k) and cached.dtype == np.float64:
            return cached
    import scipy.fft

    matrix = scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0)[:k].T.copy()
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        atomic.save_npy(path, matrix)
    return matrix


def _contrast_bands(freqs: np.ndarray, *, sr: int, fmin: float = 200.0, quantile: float = 0.02) -> np.ndarray:
    """``[a, b, q]`` per octave band: bins ``a:b`` and the quantile count, as librosa builds them.

    :func:`librosa.feature.spectral_contrast` selects the bins of band ``k`` with a mask
    (one bin below its lower edge for ``k > 0``, everything above for the last band, and
    drops the top bin of every band but the last), and averages the ``q`` smallest and
    largest magnitudes, ``q = max(1, rint(quantile * mask.sum()))``.
    """
    octa = np.zeros(N_CONTRAST_BANDS + 2)
    octa[1:] = fmin * (2.0 ** np.arange(0, N_CONTRAST_BANDS + 1))
    if np.any(octa[:-1] >= 0.5 * sr):
        raise ValueError(f"spectral contrast bands exceed the Nyquist frequency at sr={sr}")
    rows = []
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):
        band = (freqs >= f_low) & (freqs <= f_high)
        idx = np.flatnonzero(band)
        if k > 0:
            band[idx[0] - 1] = True
        if k == N_CONTRAST_BANDS:
            band[idx[-1] + 1 :] = True
        sel = np.flatnonzero(band)
        q = int(max(np.rint(quantile * band.sum()), 1))
        stop = sel[-1] + 1 if k == N_CONTRAST_BANDS else sel[-1]
        rows.append((sel[0], stop, q))
    return np.array(rows, np.int64)


def _spectrum(seg: np.ndarray, bank: _Banks, n_fft: int, hop_length: int, buffers: dict) -> np.ndarray:
    """STFT of uncentred frames of ``seg``: ``[t, 1 + n_fft // 2]`` complex128, time-major.

    The windowed frames are transformed in float64, as :func:`librosa.stft` does;
    :func:`kernels._frame_pass` rounds the spectrum to complex64 before squaring, as librosa
    stores it. ``buffers`` holds the block-sized work arrays, reused block after block
    (the result is a view into one of them).
    """
    from . import kernels

    t = 1 + (seg.size - n_fft) // hop_length
    if buffers.get("frames") is None or buffers["frames"].shape[0] < t:
        buffers["frames"] = np.empty((t, n_fft))
        buffers["spectrum"] = np.empty((t, n_fft // 2 + 1), np.complex128)
    windowed = buffers["frames"][:t]
    kernels._window_into(seg, bank.window, hop_length, windowed)
    return np.fft.rfft(windowed, axis=-1, out=buffers["spectrum"][:t])


def _power_to_db(S: np.ndarray, *, amin: float = 1e-10, top_db: float = 80.0) -> np.ndarray:
    """:func:`librosa.power_to_db` with ``ref=1.0``, in place on a float32 array."""
    np.maximum(S, np.float32(amin), out=S)
    np.log(S, out=S)  # 3x faster than log10 in float32; same values to ~1e-5 dB
    S *= np.float32(10.0 / np.log(10.0))
    np.maximum(S, S.max() - np.float32(top_db), out=S)
    return S


def _tuning(pitch: np.ndarray, mag: np.ndarray) -> float:
    """:func:`librosa.estimate_tuning` from pooled piptrack peaks (median magnitude threshold)."""
    threshold = np.median(mag) if mag.size else 0.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Trying to estimate tuning from empty frequency set")
        return float(banks.pitch_tuning(pitch[mag >= threshold], resolution=0.01, bins_per_octave=N_CHROMA))


def _check_signal(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"expected a mono signal of shape (n,), got shape {y.shape}")
    if y.size == 0:
        raise ValueError("empty signal")
    if not np.all(np.isfinite(y)):
        raise ValueError("signal contains NaN or infinity")
    return np.ascontiguousarray(y, dtype=np.float32)


def _segment(y: np.ndarray, k0: int, k1: int, hop: int, half: int, mode: str) -> np.ndarray:
    """Samples under centred frames ``k0..k1-1``, padded past the signal's ends as librosa pads."""
    start, stop = k0 * hop - half, (k1 - 1) * hop + half
    seg = y[max(start, 0) : min(stop, y.size)]
    before, after = max(0, -start), max(0, stop - y.size)
    if before or after:
        seg = np.pad(seg, (before, after), mode=mode)
    return seg
