"""The straightforward feature path: each librosa feature function called on the waveform.

Kept to compare values and speed with :func:`audioreg.features.extract_features`.
"""

from __future__ import annotations

import numpy as np

from .frames import HOP_LENGTH, N_CHROMA, N_CONTRAST_BANDS, N_FFT, N_MELS, N_MFCC, SR, _check_signal


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


def _stack(blocks: list[np.ndarray]) -> np.ndarray:
    t = min(b.shape[-1] for b in blocks)
    F = np.concatenate([b[..., :t] for b in blocks], axis=0).T
    return np.nan_to_num(F, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)
