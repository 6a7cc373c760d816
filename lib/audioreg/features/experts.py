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
    # EDMA: profiles drawn from a corpus of electronic dance music. Á. Faraldo, E. Gómez, S. Jordà and
    # P. Herrera, "Key estimation in electronic dance music", ECIR 2016 (Padova). The values Essentia
    # ships as profileType "edma" (MTG/essentia, src/algorithms/tonal/key.cpp), equal to the authors'
    # own "edma_ecir" templates; tonic first, so C first for C major and C minor.
    "edma": ((0.16519551, 0.04749026, 0.08293076, 0.06687112, 0.09994645, 0.09274123,
              0.05294487, 0.13159476, 0.05218986, 0.07443653, 0.06940723, 0.0642515),
             (0.17235348, 0.05336489, 0.0761009, 0.10043649, 0.05621498, 0.08527853,
              0.0497915, 0.13451001, 0.07458916, 0.05003023, 0.09187879, 0.05545106)),
}


def key_correlations(chroma: np.ndarray, *, profile: str = "krumhansl") -> np.ndarray:
    """Pearson correlation of a chroma with each of the 24 rotated key profiles.

    Parameters
    ----------
    chroma : np.ndarray [shape=(12,)] or [shape=(12, t)]
        Pitch-class energy, C first (frames are summed).
    profile : one of :data:`KEY_PROFILES` ("krumhansl", "temperley", "edma")

    Returns
    -------
    r : np.ndarray [shape=(24,)]
        ``r[k]``: the major key with tonic ``k`` (C = 0); ``r[12 + k]``: the minor key. Rotating
        the chroma by ``s`` semitones rotates each half by ``s``: the models' key-rotation
        augmentation relies on it.
    """
    c = np.asarray(chroma, dtype=np.float64)
    if c.ndim == 2:
        c = c.sum(axis=1)
    if c.shape != (12,) or not np.all(np.isfinite(c)):
        raise ValueError(f"expected a finite 12-bin chroma, got shape {c.shape}")
    if np.ptp(c) == 0:
        raise ValueError("the chroma is flat (silence or noise): no key to estimate")
    c = (c - c.mean()) / np.linalg.norm(c - c.mean())
    out = np.empty(24)
    for half, base in enumerate(KEY_PROFILES[profile]):  # major first
        base = np.asarray(base, dtype=np.float64)
        rolled = np.stack([np.roll(base, k) for k in range(12)])
        rolled = rolled - rolled.mean(axis=1, keepdims=True)
        out[12 * half : 12 * half + 12] = rolled @ c / np.linalg.norm(rolled, axis=1)
    return out


def key_from_chroma(chroma: np.ndarray, *, profile: str = "krumhansl") -> tuple[int, int, float]:
    """Key and mode by key-profile correlation (Krumhansl-Schmuckler): the best of
    :func:`key_correlations` (same arguments), as ``(key, mode, r)``: the tonic's pitch class
    (0 = C, Spotify's encoding), 1 major or 0 minor, and that correlation, in [-1, 1]."""
    return _key_of(key_correlations(chroma, profile=profile))


def _key_of(r: np.ndarray) -> tuple[int, int, float]:
    best = int(np.argmax(r))  # major before minor, lower tonic first on a tie
    return best % 12, 1 - best // 12, float(r[best])


def chroma_cqt_energy(y: np.ndarray, *, sr: int) -> np.ndarray:
    """Pitch-class energy of a signal over its whole length: ``chroma_cqt(norm=None)`` summed, [12]."""
    return librosa().feature.chroma_cqt(y=np.asarray(y, dtype=np.float32), sr=sr, norm=None).sum(axis=1)


def tempo_candidates(y: np.ndarray, *, sr: int) -> dict[str, float]:
    """Global tempo from librosa's beat tracker, with its half and double as the octave
    candidates a label audit compares with: ``{"tempo", "tempo_half", "tempo_double"}`` in BPM
    (``tempo`` 0 when no beat is found)."""
    bpm = float(np.atleast_1d(librosa().beat.beat_track(y=np.asarray(y, dtype=np.float32), sr=sr)[0])[0])
    return {"tempo": bpm, "tempo_half": bpm / 2, "tempo_double": bpm * 2}


class _Deferred:
    """A ``numba.vectorize`` or ``guvectorize`` kernel, built (loaded from numba's disk cache) on first use."""

    def __init__(self, build):
        self._build, self._gufunc = build, None

    def materialize(self):
        if self._gufunc is None:
            self._gufunc = self._build()
        return self._gufunc

    def __call__(self, *args, **kwargs):
        return self.materialize()(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.materialize(), name)


#: The librosa kernels :func:`librosa` deferred, each built on its first call.
_DEFERRED: list[_Deferred] = []


def librosa():
    """:mod:`librosa`, with :mod:`librosa.beat` and :mod:`librosa.feature`, imported so that its
    ``vectorize`` and ``guvectorize`` kernels are cached on disk and built when first called.

    A ``vectorize`` or ``guvectorize`` with signatures compiles, or loads from numba's cache,
    when its module is imported: librosa 0.11 builds about twenty at import, most of which the
    beat tracker and the CQT chroma never call (pitch interpolation, zero crossings, local
    minima, phasors...): about 0.4 s of every process that estimates tempo or key (a one-file
    ``audioreg predict``, every extraction worker).
    Imported here, each is built on its first call instead. And one of the beat tracker's five
    (``__beat_local_score``) is declared with ``cache=False``, which would compile it, about 2 s,
    in every process: here it is cached like the others. The compiled-code probe
    (:func:`audioreg.features.numba_cache.ensure_compiled`) builds every deferred kernel
    (:func:`build_deferred`), so that each is compiled once, by one process.

    If librosa was imported elsewhere first, this returns it as it is (slower to import,
    same results).
    """
    import sys

    if "librosa.beat" in sys.modules and "librosa.feature" in sys.modules:
        return sys.modules["librosa"]
    import numba

    originals = {name: getattr(numba, name) for name in ("vectorize", "guvectorize")}

    def deferring(original):
        def decorator(*args, **kwargs):
            def decorate(fn):
                kernel = _Deferred(lambda: original(*args, **{**kwargs, "cache": True})(fn))
                _DEFERRED.append(kernel)
                return kernel

            return decorate

        return decorator

    for name, original in originals.items():
        setattr(numba, name, deferring(original))
    try:
        import librosa
        import librosa.beat  # noqa: F401
        import librosa.feature  # noqa: F401
    finally:
        for name, original in originals.items():
            setattr(numba, name, original)
    return librosa


def build_deferred() -> int:
    """Build every kernel :func:`librosa` deferred; returns how many."""
    for kernel in _DEFERRED:
        kernel.materialize()
    return len(_DEFERRED)


def estimate(y: np.ndarray, *, sr: int, profile: str = "krumhansl") -> dict[str, float]:
    """Every DSP estimate of one mono signal: tempo (with candidates), key, mode and the key
    profile's correlation (``key_strength``)."""
    return {k: v for k, v in estimate_all(y, sr=sr, profile=profile).items() if k in ESTIMATES}


#: What :func:`estimate` returns.
ESTIMATES = ("tempo", "tempo_half", "tempo_double", "key", "mode", "key_strength")
#: The 24 key-profile correlations :func:`estimate_all` adds (major C..B, then minor C..B).
CORRELATIONS = tuple(f"key_r{i}" for i in range(24))
#: The expert values a model may take as inputs: log2 of the beat tracker's tempo and the 24
#: key correlations (the tempo's octave candidates and the argmax key add nothing to them).
FEATURES = ("log2_tempo",) + CORRELATIONS
#: Stand-in for a tempo the beat tracker could not find (no beat): 120 BPM.
NO_BEAT_BPM = 120.0


def estimate_all(y: np.ndarray, *, sr: int, profile: str = "krumhansl") -> dict[str, float]:
    """:data:`ESTIMATES` and :data:`FEATURES` of one mono signal (a flat chroma, as of
    silence, gives key -1 and zero correlations)."""
    out = tempo_candidates(y, sr=sr)
    try:
        r = key_correlations(chroma_cqt_energy(y, sr=sr), profile=profile)
        key, mode, strength = _key_of(r)
    except ValueError:
        r, key, mode, strength = np.zeros(24), -1, 1, 0.0
    out.update(key=key, mode=mode, key_strength=strength,
               log2_tempo=float(np.log2(out["tempo"] if out["tempo"] > 0 else NO_BEAT_BPM)))
    out.update({name: float(v) for name, v in zip(CORRELATIONS, r)})
    return out


def rotate_features(values: np.ndarray, semitones: int, *, columns: dict[str, int]) -> np.ndarray:
    """Expert feature columns of ``values`` [..., d] as they would be for audio ``semitones``
    higher: the major and minor halves of the key correlations rotate; the tempo stays.
    ``columns`` maps each of :data:`FEATURES` to its column in ``values``."""
    out = np.array(values, copy=True)
    for half in (0, 12):
        idx = [columns[CORRELATIONS[half + i]] for i in range(12)]
        out[..., idx] = np.roll(np.asarray(values)[..., idx], semitones, axis=-1)
    return out
