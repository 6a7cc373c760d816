"""Frame-level audio features: pure functions, arrays in, arrays out.

Every track becomes a float32 matrix ``[time_steps, 46]``:

========================  =====  ================================================
block                     dims   computed from
========================  =====  ================================================
MFCC                      20     log-mel power spectrogram (128 mel bands)
chroma                    12     STFT power spectrogram (tuning estimated per track)
spectral contrast         7      STFT magnitude (6 bands + valley)
tonnetz                   6      the chroma above
zero-crossing rate        1      waveform, frame 2048, hop 512, centred
========================  =====  ================================================

:func:`extract_features` computes one STFT and derives every block from it.
:func:`reference_features` is the straightforward path (each librosa feature
function called on the waveform, tonnetz through a CQT chroma), kept to compare
values and speed side by side.
"""

from __future__ import annotations

import numpy as np

#: Bump when the feature values change: it is part of every feature cache key.
FEATURE_VERSION = "1"

SR = 22050
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

#: Signals longer than this many frames (~95 s at hop 512) are processed in blocks of this size:
#: a 30-minute track then peaks at ~0.7 GB instead of several GB, at the same speed.
BLOCK_FRAMES = 4096


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
) -> np.ndarray:
    """One-pass features from a shared STFT.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono waveform at ``sr``. Signals shorter than one analysis window are
        zero-padded by the centred STFT, as librosa does.
    sr : int
        Sample rate of ``y``.
    block_frames : int or None
        Signals longer than this many frames are processed in blocks of this many
        frames (:func:`_extract_blocked`: same values to float rounding, bounded
        memory); ``None`` means :data:`BLOCK_FRAMES`, ``0`` never uses blocks.

    Returns
    -------
    F : np.ndarray [shape=(t, 46)], float32
        ``t = 1 + n // hop_length``; columns as in :func:`feature_names`.
    """
    y = _check_signal(y)
    block_frames = BLOCK_FRAMES if block_frames is None else int(block_frames)
    if block_frames > 0 and n_frames(y.size, hop_length=hop_length) > block_frames:
        return _extract_blocked(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, block_frames=block_frames)
    return _extract_whole(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length)


def _extract_whole(*, y: np.ndarray, sr: int, n_fft: int, hop_length: int) -> np.ndarray:
    import librosa

    stft = librosa.stft(y, n_fft=n_fft, hop_length=hop_length, center=True)
    mag = np.abs(stft)
    power = mag**2
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_fft=n_fft, n_mels=N_MELS)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=n_fft, hop_length=hop_length, n_chroma=N_CHROMA)
    contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=n_fft, hop_length=hop_length, n_bands=N_CONTRAST_BANDS)
    tonnetz = librosa.feature.tonnetz(chroma=chroma, sr=sr)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length, center=True)
    return _stack([mfcc, chroma, contrast, tonnetz, zcr])


def reference_features(*, y: np.ndarray, sr: int = SR) -> np.ndarray:
    """The straightforward path: each librosa feature called on the waveform.

    MFCC, STFT chroma and spectral contrast each recompute their own spectrogram,
    and tonnetz uses librosa's default CQT chroma. Same output layout as
    :func:`extract_features`; values differ only in the tonnetz block (CQT vs STFT
    chroma).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    sr : int

    Returns
    -------
    F : np.ndarray [shape=(t, 46)], float32
    """
    import librosa

    y = _check_signal(y)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP_LENGTH, n_chroma=N_CHROMA)
    contrast = librosa.feature.spectral_contrast(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP_LENGTH, n_bands=N_CONTRAST_BANDS)
    tonnetz = librosa.feature.tonnetz(y=y, sr=sr, hop_length=HOP_LENGTH)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP_LENGTH, center=True)
    return _stack([mfcc, chroma, contrast, tonnetz, zcr])


def _check_signal(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"expected a mono signal of shape (n,), got shape {y.shape}")
    if y.size == 0:
        raise ValueError("empty signal")
    if not np.all(np.isfinite(y)):
        raise ValueError("signal contains NaN or infinity")
    return np.ascontiguousarray(y, dtype=np.float32)


def _stack(blocks: list[np.ndarray]) -> np.ndarray:
    t = min(b.shape[-1] for b in blocks)
    F = np.concatenate([b[..., :t] for b in blocks], axis=0).T
    return np.nan_to_num(F, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)






def _extract_blocked(*, y: np.ndarray, sr: int, n_fft: int, hop_length: int, block_frames: int) -> np.ndarray:
    """The features in blocks of frames, for long signals in bounded memory.

    The same values as the whole-signal path (to float rounding), but no array
    larger than one block's STFT plus the ``[128, t]`` mel spectrogram is held:
    a 30-minute track needs about 0.2 GB here instead of several. Two things are not
    framewise and are handled globally: the chroma tuning (pitch peaks of every
    block are pooled, as :func:`librosa.estimate_tuning` does, then chroma is computed
    in a second pass) and the ``top_db`` floor of the MFCC's log-mel (applied to the
    whole mel spectrogram).

    Returns
    -------
    F : np.ndarray [shape=(1 + n // hop_length, 46)], float32
    """
    import librosa

    n_total = n_frames(y.size, hop_length=hop_length)
    half = n_fft // 2
    mel = np.empty((N_MELS, n_total), np.float32)
    contrast = np.empty((N_CONTRAST_BANDS + 1, n_total), np.float32)
    zcr = np.empty((1, n_total), np.float32)
    pitches, mags = [], []
    for k0 in range(0, n_total, block_frames):
        k1 = min(k0 + block_frames, n_total)
        power = np.abs(librosa.stft(_segment(y, k0, k1, hop_length, half, "constant"), n_fft=n_fft,
                                    hop_length=hop_length, center=False)) ** 2
        mel[:, k0:k1] = librosa.feature.melspectrogram(S=power, sr=sr, n_fft=n_fft, n_mels=N_MELS)
        contrast[:, k0:k1] = librosa.feature.spectral_contrast(S=np.sqrt(power), sr=sr, n_fft=n_fft,
                                                               hop_length=hop_length, n_bands=N_CONTRAST_BANDS)
        zcr[:, k0:k1] = librosa.feature.zero_crossing_rate(_segment(y, k0, k1, hop_length, half, "edge"),
                                                           frame_length=n_fft, hop_length=hop_length, center=False)
        pitch, mag = librosa.piptrack(S=power, sr=sr, n_fft=n_fft)
        mask = pitch > 0
        pitches.append(pitch[mask])
        mags.append(mag[mask])
    pitch, mag = np.concatenate(pitches), np.concatenate(mags)
    threshold = np.median(mag) if mag.size else 0.0
    tuning = librosa.pitch_tuning(pitch[mag >= threshold], resolution=0.01, bins_per_octave=N_CHROMA)
    chroma = np.empty((N_CHROMA, n_total), np.float32)
    for k0 in range(0, n_total, block_frames):
        k1 = min(k0 + block_frames, n_total)
        power = np.abs(librosa.stft(_segment(y, k0, k1, hop_length, half, "constant"), n_fft=n_fft,
                                    hop_length=hop_length, center=False)) ** 2
        chroma[:, k0:k1] = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=n_fft, hop_length=hop_length,
                                                       n_chroma=N_CHROMA, tuning=tuning)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC)
    tonnetz = librosa.feature.tonnetz(chroma=chroma, sr=sr)
    return _stack([mfcc, chroma, contrast, tonnetz, zcr])


def _segment(y: np.ndarray, k0: int, k1: int, hop: int, half: int, mode: str) -> np.ndarray:
    """Samples under centred frames ``k0..k1-1``, padded past the signal's ends as librosa pads."""
    start, stop = k0 * hop - half, (k1 - 1) * hop + half
    seg = y[max(start, 0) : min(stop, y.size)]
    before, after = max(0, -start), max(0, stop - y.size)
    if before or after:
        seg = np.pad(seg, (before, after), mode=mode)
    return seg
