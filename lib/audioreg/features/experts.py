"""Expert estimators: the field's DSP answers for tempo and key, from decoded audio.

Pure functions, arrays in, numbers out (librosa's beat tracker and a CQT chroma), all
permissive and offline. The third expert, integrated loudness over the original channels,
is :func:`audioreg.data.audio.measure_loudness`. They serve as the "dsp" model row and as
the reference of a label audit; :mod:`audioreg.evaluate` scores them on annotated music.
"""

from __future__ import annotations

import numpy as np

#: Key profiles (major, minor), C first: the weight of each pitch class in a key.
#: Krumhansl & Kessler (1982) probe-tone ratings; Temperley (1999, "What's key for key?").
KEY_PROFILES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "krumhansl": ((6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
                  (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)),
    "temperley": ((5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0),
                  (5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0)),
}


def key_from_chroma(chroma: np.ndarray, *, profile: str = "krumhansl") -> tuple[int, int, float]:
    """Key and mode by key-profile correlation (Krumhansl-Schmuckler).

    Parameters
    ----------
    chroma : np.ndarray [shape=(12,)] or [shape=(12, t)]
        Pitch-class energy, C first (frames are summed).
    profile : {"krumhansl", "temperley"}

    Returns
    -------
    key : int
        Tonic pitch class, 0 = C (Spotify's encoding).
    mode : int
        1 major, 0 minor.
    r : float
        Pearson correlation of the chroma with the winning rotated profile, in [-1, 1].
    """
    c = np.asarray(chroma, dtype=np.float64)
    if c.ndim == 2:
        c = c.sum(axis=1)
    if c.shape != (12,) or not np.all(np.isfinite(c)):
        raise ValueError(f"expected a finite 12-bin chroma, got shape {c.shape}")
    if np.ptp(c) == 0:
        raise ValueError("the chroma is flat (silence or noise): no key to estimate")
    major, minor = (np.asarray(p, dtype=np.float64) for p in KEY_PROFILES[profile])
    best = (-2.0, 0, 1)
    for mode, base in ((1, major), (0, minor)):
        for key in range(12):
            r = float(np.corrcoef(c, np.roll(base, key))[0, 1])
            if r > best[0]:
                best = (r, key, mode)
    return best[1], best[2], best[0]


def chroma_cqt_energy(y: np.ndarray, *, sr: int) -> np.ndarray:
    """Pitch-class energy of a signal over its whole length: ``chroma_cqt(norm=None)`` summed, [12]."""
    import librosa

    return librosa.feature.chroma_cqt(y=np.asarray(y, dtype=np.float32), sr=sr, norm=None).sum(axis=1)


def tempo_candidates(y: np.ndarray, *, sr: int) -> dict[str, float]:
    """Global tempo from librosa's beat tracker, with its half and double as the octave
    candidates a label audit compares with: ``{"tempo", "tempo_half", "tempo_double"}`` in BPM
    (``tempo`` 0 when no beat is found)."""
    import librosa

    bpm = float(np.atleast_1d(librosa.beat.beat_track(y=np.asarray(y, dtype=np.float32), sr=sr)[0])[0])
    return {"tempo": bpm, "tempo_half": bpm / 2, "tempo_double": bpm * 2}


def estimate(y: np.ndarray, *, sr: int, profile: str = "krumhansl") -> dict[str, float]:
    """Every DSP estimate of one mono signal: tempo (with candidates), key, mode and the key
    profile's correlation (``key_strength``)."""
    key, mode, r = key_from_chroma(chroma_cqt_energy(y, sr=sr), profile=profile)
    return {**tempo_candidates(y, sr=sr), "key": key, "mode": mode, "key_strength": r}
