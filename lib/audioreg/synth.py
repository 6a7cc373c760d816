"""The synthetic, privacy-safe sample set: rendered music whose 11 labels are known by construction.

Every track is drawn in three independent steps, each with its own random stream
``np.random.default_rng([seed, i, k])`` (so results do not depend on worker count):

1. :func:`sample_controls` draws the generator's *controls* (tempo, meter, key, mode,
   timbre mix, onset density, brightness, level, drums, voice, speech, crowd, reverb).
   The continuous controls come from a Gaussian factor model (five shared factors:
   electronic, intensity, groove, live, mood, plus an artist share), so that they
   correlate the way real music does.
2. :func:`labels_from_controls` turns the controls into the labels.
3. :func:`render_track` renders the audio the controls describe.

How each label is made (``sigmoid(z + label_noise * sd * eps)``, ``eps ~ N(0, 1)``, one
draw per target and track; the full table, with the calibration against the Echo Nest
labels, is in ``docs/SAMPLE_SET.md``):

================  ===========================================================  ========
label             z (logit) as a function of the controls                      noise sd
================  ===========================================================  ========
tempo             BPM of the rendered beat grid (exact, no noise)              0
key, mode         tonic pitch class (C=0) and mode of the rendered harmony     0
time_signature    beats per bar, rendered with accented downbeats              0
loudness          MEASURED integrated loudness (ITU-R BS.1770, as pyloudnorm)  0
                  of the decoded file after the per-track gain and limiter
acousticness      -4.1 + 10 acoustic                                           0.35
instrumentalness  2.3 - 8 vocal - 1.5 speech                                   0.5
speechiness       -3.05 + 5.5 speech + 0.8 vocal                               0.3
liveness          -2.1 + 4 crowd + 0.4 reverb                                  0.6
energy            -0.3 + 0.5 log2(onset_rate / 3) + 1.5 (brightness - 0.5)     0.45
                  + 5.5 (level - 0.7)
danceability      -2.15 + 2 beat + 1.1 regularity + 1 tempo_fit - 0.7 odd      0.45
valence           -2.7 + 1.6 mode + 0.6 brightness + 0.3 (tempo - 120) / 40    0.85
                  + 2.4 beat
================  ===========================================================  ========

``onset_rate = tempo / 60 * (0.5 + 3.5 density)`` melody notes per second,
``tempo_fit = exp(-((tempo - 115) / 22)**2 / 2)`` (1 for 100-130 BPM), ``odd = meter in (5, 7)``.
Noise sd is on the logit scale (:data:`NOISE_SD`, times ``label_noise``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.signal
import scipy.special

from . import atomic
from .targets import METADATA_COLUMNS, TARGETS, UNIT_INTERVAL_TARGETS

log = logging.getLogger(__name__)

#: Version of the generator; bump on any change that alters labels or audio.
SYNTH_VERSION = "1.0.0"

#: Sample rates drawn for the files (balanced over a set, then shuffled).
SAMPLE_RATES: tuple[int, ...] = (22050, 32000, 44100, 48000)

#: File formats: extension -> (libsndfile format, subtype).
FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
}
#: Formats are dealt in this cycle (40 % wav, 40 % flac, 20 % ogg; any 3 tracks in a row
#: of the cycle hold all three), then shuffled. Vorbis encoding is the slowest step.
FORMAT_CYCLE: tuple[str, ...] = ("wav", "flac", "ogg", "flac", "wav")

#: Beats per bar and how often each is drawn (like real music: mostly 4).
METERS: tuple[int, ...] = (3, 4, 5, 7)
METER_WEIGHTS: tuple[float, ...] = (0.15, 0.77, 0.05, 0.03)

#: Tonic pitch class weights (C=0 .. B=11), roughly the key histogram of popular music.
KEY_WEIGHTS: tuple[float, ...] = (0.12, 0.10, 0.11, 0.03, 0.08, 0.08, 0.07, 0.11, 0.07, 0.10, 0.06, 0.07)

#: Probability that a track is in a major key.
P_MAJOR = 0.62

#: Invented genres; :func:`genre_of` says which controls lead to which.
GENRES: tuple[str, ...] = (
    "spoken-grid",
    "hall-session",
    "fern-folk",
    "glass-chamber",
    "neon-pulse",
    "drift-synth",
    "moon-pop",
    "tide-rock",
)

#: Continuous controls drawn from the factor model, in latent order.
CONTROL_NAMES: tuple[str, ...] = (
    "acoustic",  # 0 synthetic .. 1 acoustic timbres
    "brightness",  # spectral brightness: harmonic roll-off and mix low-pass cutoff
    "density",  # melody onsets: 0.5 + 3.5 * density notes per beat
    "level",  # target loudness: -30 + 26 * level dB (LUFS)
    "beat",  # drum kit level (0: no drums)
    "regularity",  # timing precision (onset jitter sd = 3.5 % of a beat * (1 - regularity))
    "vocal",  # sung voice level (0: instrumental)
    "speech",  # share of the track with spoken segments (0: none)
    "crowd",  # crowd noise / applause level (0: studio)
    "reverb",  # room reverb: wet level 0.45 * reverb, RT60 = 0.25 + 2 * reverb s
    "tempo",  # BPM, 50..210
    "mode",  # latent for the mode: major when above the (1 - P_MAJOR) quantile
)

FACTORS: tuple[str, ...] = ("electronic", "intensity", "groove", "live", "mood")

#: Loadings of each control's latent normal on the shared factors (rows: CONTROL_NAMES).
LOADINGS: dict[str, dict[str, float]] = {
    "acoustic": {"electronic": -0.80},
    "brightness": {"electronic": 0.45, "intensity": 0.30, "mood": 0.25},
    "density": {"electronic": 0.35, "intensity": 0.50},
    "level": {"electronic": 0.55, "intensity": 0.45},
    "beat": {"electronic": 0.30, "groove": 0.65, "intensity": -0.15},
    "regularity": {"electronic": 0.30, "groove": 0.40},
    "vocal": {"groove": 0.30, "mood": 0.25, "intensity": -0.15, "live": 0.15},
    "speech": {"groove": 0.45, "live": 0.15},
    "crowd": {"live": 0.65, "groove": -0.25, "electronic": -0.20},
    "reverb": {"live": 0.50, "electronic": -0.35, "groove": -0.15},
    "tempo": {"intensity": 0.20, "electronic": 0.15},
    "mode": {"mood": 0.45, "groove": 0.20, "electronic": -0.20},
}

#: Share of the latent variance that tracks of one artist have in common.
ARTIST_SHARE = 0.5

#: Zero-inflated controls: probability of exactly 0, smallest non-zero value, and the
#: power applied to the non-zero part (>1: more small values).
ZERO_INFLATED: dict[str, tuple[float, float, float]] = {
    "vocal": (0.74, 0.25, 1.0),
    "speech": (0.82, 0.04, 1.3),
    "crowd": (0.87, 0.15, 1.0),
}
#: Power applied to the uniform of reverb (>1: mostly dry rooms).
REVERB_POWER = 2.0

TEMPO_RANGE: tuple[float, float] = (50.0, 210.0)
TEMPO_MEAN_SD: tuple[float, float] = (121.0, 40.0)
#: level ~ Beta(a, b): target loudness skewed toward -12..-5 dB.
LEVEL_BETA: tuple[float, float] = (4.0, 1.5)
LOUDNESS_RANGE: tuple[float, float] = (-30.0, -4.0)

#: Label noise sd on the logit scale, per target (multiplied by ``label_noise``).
NOISE_SD: dict[str, float] = {
    "danceability": 0.45,
    "energy": 0.45,
    "valence": 0.85,
    "liveness": 0.6,
    "speechiness": 0.3,
    "instrumentalness": 0.5,
    "acousticness": 0.35,
}

#: Coefficients of the label logits (see the module docstring and docs/SAMPLE_SET.md).
LABEL_COEF: dict[str, dict[str, float]] = {
    "acousticness": {"const": -4.1, "acoustic": 10.0},
    "instrumentalness": {"const": 2.3, "vocal": -8.0, "speech": -1.5},
    "speechiness": {"const": -3.05, "speech": 5.5, "vocal": 0.8},
    "liveness": {"const": -2.1, "crowd": 4.0, "reverb": 0.4},
    "energy": {"const": -0.3, "log2_onset_rate_3": 0.5, "brightness_c": 1.5, "level_c": 5.5},
    "danceability": {"const": -2.15, "beat": 2.0, "regularity": 1.1, "tempo_fit": 1.0, "odd_meter": -0.7},
    "valence": {"const": -2.7, "mode": 1.6, "brightness": 0.6, "tempo_c": 0.3, "beat": 2.4},
}

#: Shortest track generate_sample_set makes (s).
MIN_SECONDS = 1.0

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SET_STREAM = 1_000_003  # rng stream for set-level draws (artists, names, file layout)


# ------------------------------------------------------------------ controls
def _loading_matrix() -> np.ndarray:
    L = np.zeros((len(CONTROL_NAMES), len(FACTORS)))
    for i, c in enumerate(CONTROL_NAMES):
        for f, w in LOADINGS[c].items():
            L[i, FACTORS.index(f)] = w
    return L


def artist_style(*, rng: np.random.Generator) -> np.ndarray:
    """Draw one artist's style: the latent normals its tracks share.

    Parameters
    ----------
    rng : np.random.Generator

    Returns
    -------
    style : np.ndarray [shape=(len(FACTORS) + len(CONTROL_NAMES),)]
        Standard normal draws; pass to :func:`sample_controls`.
    """
    return rng.standard_normal(len(FACTORS) + len(CONTROL_NAMES))


def _zero_inflated(u: float, p0: float, lo: float, power: float) -> float:
    if u <= p0:
        return 0.0
    return lo + (1.0 - lo) * ((u - p0) / (1.0 - p0)) ** power


def sample_controls(*, rng: np.random.Generator, artist_style: np.ndarray | None = None) -> dict:
    """Draw the generator's controls for one track.

    The continuous controls are ``Phi(latent)`` transformed to their marginals, where
    ``latent = LOADINGS @ factors + sqrt(1 - sum(loadings**2)) * own`` and, when
    ``artist_style`` is given, every standard normal is mixed with the artist's as
    ``sqrt(ARTIST_SHARE) * artist + sqrt(1 - ARTIST_SHARE) * own`` (so the marginals do
    not change, but tracks of one artist resemble each other).

    Parameters
    ----------
    rng : np.random.Generator
        The track's own random stream.
    artist_style : np.ndarray [shape=(len(FACTORS) + len(CONTROL_NAMES),)], optional
        From :func:`artist_style`.

    Returns
    -------
    controls : dict
        ``tempo`` (BPM, 3 decimals, 50..210), ``meter`` (3, 4, 5 or 7, drawn with
        :data:`METER_WEIGHTS`; :func:`generate_sample_set` deals meters to the whole set
        in those proportions instead), ``tonic``
        (0..11, C=0), ``mode`` (1 major, 0 minor), ``offset_s`` (time of the first
        downbeat), and the unit-interval controls
        ``acoustic brightness density level beat regularity vocal speech crowd reverb``
        (see :data:`CONTROL_NAMES`).
    """
    n_f, n_c = len(FACTORS), len(CONTROL_NAMES)
    own = rng.standard_normal(n_f + n_c)
    if artist_style is not None:
        style = np.asarray(artist_style, dtype=float)
        if style.shape != own.shape:
            raise ValueError(f"artist_style must have shape {own.shape}, got {style.shape}")
        own = np.sqrt(ARTIST_SHARE) * style + np.sqrt(1.0 - ARTIST_SHARE) * own
    L = _loading_matrix()
    uniq = np.sqrt(np.clip(1.0 - (L**2).sum(axis=1), 0.0, 1.0))
    latent = L @ own[:n_f] + uniq * own[n_f:]
    u = dict(zip(CONTROL_NAMES, scipy.special.ndtr(latent)))

    c: dict = {}
    for name in ("acoustic", "brightness", "density", "beat", "regularity"):
        c[name] = float(u[name])
    c["reverb"] = float(u["reverb"]) ** REVERB_POWER
    c["level"] = float(scipy.special.betaincinv(*LEVEL_BETA, u["level"]))
    for name, (p0, lo, power) in ZERO_INFLATED.items():
        c[name] = _zero_inflated(float(u[name]), p0, lo, power)
    lo_t, hi_t = TEMPO_RANGE
    mu, sd = TEMPO_MEAN_SD
    a, b = scipy.special.ndtr((lo_t - mu) / sd), scipy.special.ndtr((hi_t - mu) / sd)
    tempo = mu + sd * scipy.special.ndtri(a + u["tempo"] * (b - a))
    c["tempo"] = round(float(np.clip(tempo, lo_t, hi_t)), 3)
    c["mode"] = int(u["mode"] > 1.0 - P_MAJOR)
    c["tonic"] = int(rng.choice(12, p=np.asarray(KEY_WEIGHTS) / sum(KEY_WEIGHTS)))
    c["meter"] = int(rng.choice(METERS, p=np.asarray(METER_WEIGHTS) / sum(METER_WEIGHTS)))
    c["offset_s"] = round(float(rng.uniform(0.1, 0.6)), 4)
    return c


def target_loudness(controls: dict) -> float:
    """The loudness (dB LUFS) a track is mastered to: ``-30 + 26 * level``."""
    lo, hi = LOUDNESS_RANGE
    return lo + (hi - lo) * float(controls["level"])


def genre_of(controls: dict) -> str:
    """The invented genre a track's controls put it in (first rule that matches).

    speech >= 0.3: spoken-grid; crowd >= 0.3: hall-session; acoustic >= 0.6: fern-folk
    (with voice) or glass-chamber; acoustic <= 0.4: neon-pulse (beat >= 0.55) or
    drift-synth; otherwise moon-pop (with voice) or tide-rock.
    """
    c = controls
    if c["speech"] >= 0.3:
        return "spoken-grid"
    if c["crowd"] >= 0.3:
        return "hall-session"
    if c["acoustic"] >= 0.6:
        return "fern-folk" if c["vocal"] > 0 else "glass-chamber"
    if c["acoustic"] <= 0.4:
        return "neon-pulse" if c["beat"] >= 0.55 else "drift-synth"
    return "moon-pop" if c["vocal"] > 0 else "tide-rock"


# -------------------------------------------------------------------- labels
def onset_rate(controls: dict) -> float:
    """Melody onsets per second: ``tempo / 60 * (0.5 + 3.5 * density)``."""
    return controls["tempo"] / 60.0 * (0.5 + 3.5 * controls["density"])


def label_logits(controls: dict) -> dict:
    """Noise-free logits of the seven unit-interval labels (see :data:`LABEL_COEF`).

    Parameters
    ----------
    controls : dict
        From :func:`sample_controls`.

    Returns
    -------
    z : dict
        One float per name in :data:`~audioreg.targets.UNIT_INTERVAL_TARGETS`;
        the noise-free label is ``sigmoid(z)``.
    """
    c = controls
    terms = {
        **{k: float(c[k]) for k in ("acoustic", "vocal", "speech", "crowd", "reverb", "beat", "regularity",
                                      "brightness", "mode")},
        "log2_onset_rate_3": float(np.log2(onset_rate(c) / 3.0)),
        "brightness_c": float(c["brightness"]) - 0.5,
        "level_c": float(c["level"]) - 0.7,
        "tempo_fit": float(np.exp(-0.5 * ((c["tempo"] - 115.0) / 22.0) ** 2)),
        "odd_meter": float(c["meter"] in (5, 7)),
        "tempo_c": (float(c["tempo"]) - 120.0) / 40.0,
    }
    out = {}
    for target in UNIT_INTERVAL_TARGETS:
        coef = LABEL_COEF[target]
        out[target] = coef["const"] + sum(w * terms[k] for k, w in coef.items() if k != "const")
    return out


def labels_from_controls(controls: dict, *, rng: np.random.Generator, label_noise: float = 1.0) -> dict:
    """The 11 labels (and ``mode``) of a track, from its controls.

    Parameters
    ----------
    controls : dict
        From :func:`sample_controls`.
    rng : np.random.Generator
        Stream for the label noise. Always consumes 7 normals, so the stream's state
        afterwards does not depend on ``label_noise``.
    label_noise : float >= 0
        Scales the per-target noise sd (:data:`NOISE_SD`, logit scale). With 0 the labels
        are exact functions of the controls.

    Returns
    -------
    labels : dict
        Keys: :data:`~audioreg.targets.TARGETS` then ``mode``. ``loudness`` here is the
        *target* loudness (:func:`target_loudness`); :func:`generate_sample_set` replaces it with the measured
        loudness of the written file.
    """
    if not label_noise >= 0:
        raise ValueError(f"label_noise must be >= 0, got {label_noise}")
    z = label_logits(controls)
    eps = rng.standard_normal(len(UNIT_INTERVAL_TARGETS))
    unit = {
        t: float(np.clip(scipy.special.expit(z[t] + label_noise * NOISE_SD[t] * e), 0.0, 1.0))
        for t, e in zip(UNIT_INTERVAL_TARGETS, eps)
    }
    exact = {
        "tempo": float(controls["tempo"]),
        "loudness": target_loudness(controls),
        "time_signature": int(controls["meter"]),
        "key": int(controls["tonic"]),
    }
    labels = {t: unit[t] if t in unit else exact[t] for t in TARGETS}
    labels["mode"] = int(controls["mode"])
    return labels


# ----------------------------------------------------------------- rendering
_TABLE_SIZE = 4096
_SCALES = {1: (0, 2, 4, 5, 7, 9, 11), 0: (0, 2, 3, 5, 7, 8, 10)}
#: Chord progressions, 4 bars of (root offset from the tonic, third in semitones): the
#: tonic chord (third and fifth doubled) in 3 bars of 4, with IV or V (iv, v in minor), so the tonic
#: triad dominates the chroma. The bass holds the tonic on downbeats; drums are unpitched.
_PROGRESSIONS = {
    1: (((0, 4), (0, 4), (5, 4), (0, 4)), ((0, 4), (0, 4), (7, 4), (0, 4)), ((0, 4), (5, 4), (0, 4), (0, 4))),
    0: (((0, 3), (0, 3), (5, 3), (0, 3)), ((0, 3), (0, 3), (7, 3), (0, 3)), ((0, 3), (5, 3), (0, 3), (0, 3))),
}
#: Beats (0-based, within the bar) that get the kick+bass, and the snare, per meter.
KICK_BEATS = {3: (0,), 4: (0, 2), 5: (0, 3), 7: (0, 2, 4)}
SNARE_BEATS = {3: (1, 2), 4: (1, 3), 5: (2, 4), 7: (1, 3, 5)}
#: Gain of a chord strike / bass note on the downbeat and on the other beats.
DOWNBEAT_GAIN, OTHER_BEAT_GAIN = 1.0, 0.55
#: Formants (Hz) of sung and spoken vowels; bandwidths 80, 100, 130 Hz; gains 1, .5, .25.
_VOWELS = {
    "a": (800.0, 1150.0, 2800.0),
    "e": (400.0, 2100.0, 2800.0),
    "i": (300.0, 2300.0, 3000.0),
    "o": (450.0, 800.0, 2830.0),
    "u": (330.0, 850.0, 2400.0),
}
_FORMANT_BW = (80.0, 100.0, 130.0)
_FORMANT_GAIN = (1.0, 0.5, 0.25)
_SPEECH_SLOT_S = 3.0  # spoken segments fill 2.6 s of a 3 s slot
_CEILING = 0.97  # sample peak after the limiter


def _midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


def _wavetable(amps: np.ndarray) -> np.ndarray:
    """One period (``_TABLE_SIZE`` samples) of ``sum_k amps[k-1] sin(2 pi k x)``."""
    spec = np.zeros(_TABLE_SIZE // 2 + 1, dtype=complex)
    spec[1 : len(amps) + 1] = -0.5j * _TABLE_SIZE * np.asarray(amps, dtype=float)
    table = np.fft.irfft(spec, n=_TABLE_SIZE)
    return table / (np.max(np.abs(table)) + 1e-12)


def _osc(table: np.ndarray, f0: float, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Wavetable oscillator (nearest sample; table size is a power of 2)."""
    idx = (np.arange(n) * (f0 / sr * _TABLE_SIZE) + phase0 * _TABLE_SIZE).astype(np.int64)
    return table[idx & (_TABLE_SIZE - 1)]


def _fade(x: np.ndarray, sr: int, seconds: float = 0.005) -> np.ndarray:
    m = min(len(x), max(1, int(seconds * sr)))
    x[-m:] *= np.linspace(1.0, 0.0, m)
    return x


def _tone(midi: float, *, n: int, sr: int, acoustic: float, brightness: float, rng: np.random.Generator) -> np.ndarray:
    """A pitched note: ``acoustic`` blends a struck/plucked and a synthetic timbre."""
    f0 = _midi_hz(midi)
    K = int(max(1, min(30, 0.45 * sr / f0)))
    k = np.arange(1, K + 1, dtype=float)
    t = np.arange(n) / sr
    out = np.zeros(n)
    if acoustic > 0:
        slope = 1.3 + 1.7 * (1.0 - brightness)
        bright = _osc(_wavetable(k**-slope), f0, n, sr)
        dark = _osc(_wavetable(k ** -(slope + 1.5)), f0, n, sr)
        tau_b = 0.10 * (220.0 / f0) ** 0.3
        tau_d = float(np.clip(0.9 * (220.0 / f0) ** 0.4, 0.3, 2.0))
        attack = np.minimum(1.0, t / 0.003)
        body = (bright * np.exp(-t / tau_b) + 0.7 * dark * np.exp(-t / tau_d)) * attack
        m = min(n, int(0.012 * sr))
        click = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.002 * sr)) * 0.3
        body[:m] += click
        out += acoustic * body / (np.max(np.abs(body)) + 1e-12)
    if acoustic < 1:
        fc = 500.0 * 2.0 ** (4.2 * brightness)
        syn_table = _wavetable(np.exp(-k * f0 / fc) / k)
        syn = _osc(syn_table, f0 * 1.003, n, sr) + _osc(syn_table, f0 / 1.003, n, sr, phase0=0.37)
        env = np.minimum(1.0, t / 0.015) * (0.85 + 0.15 * np.exp(-t / 0.2))
        syn *= env
        out += (1.0 - acoustic) * syn / (np.max(np.abs(syn)) + 1e-12)
    return _fade(out, sr)


def _place(bus: np.ndarray, sig: np.ndarray, t: float, sr: int, gain: float = 1.0) -> None:
    i = int(round(t * sr))
    if i >= len(bus) or i < 0:
        return
    m = min(len(sig), len(bus) - i)
    bus[i : i + m] += gain * sig[:m]


@functools.lru_cache(maxsize=256)
def _butter(kind: str, freq, sr: int, order: int) -> tuple[tuple[float, ...], ...]:
    nyq = 0.5 * sr
    freq = tuple(min(f, 0.9 * nyq) for f in freq) if isinstance(freq, tuple) else min(freq, 0.9 * nyq)
    return tuple(map(tuple, scipy.signal.butter(order, freq, btype=kind, fs=sr, output="sos")))


def _sos(kind: str, freq, sr: int, order: int = 2, dtype=np.float64) -> np.ndarray:
    """Butterworth second-order sections (designs cached); cutoffs capped at 0.9 * Nyquist."""
    freq = tuple(float(f) for f in freq) if np.ndim(freq) else float(freq)
    return np.array(_butter(kind, freq, int(sr), int(order)), dtype=dtype)


#: Noise draws per drum; each hit picks one (more for the drums with low-frequency energy).
DRUM_VARIANTS: dict[str, int] = {"kick": 8, "snare": 8, "hat": 4, "cymbal": 2}


def _drum(name: str, *, sr: int, acoustic: float, brightness: float, rng: np.random.Generator) -> np.ndarray:
    """One kick, snare, hat or accent-cymbal template (an acoustic/electronic blend).

    All are unpitched (filtered noise), so drums add a flat floor to the chroma instead of
    pulling it toward some pitch class.
    """
    def t_(sec):
        return np.arange(int(sec * sr)) / sr

    def noise(kind, freq, m, order=2):
        return scipy.signal.sosfilt(_sos(kind, freq, sr, order=order), rng.standard_normal(m))

    if name == "kick":
        t = t_(0.8)
        tau = acoustic * 0.12 + (1 - acoustic) * 0.3
        x = noise("lowpass", 110.0, len(t), order=4) * np.exp(-t / tau) * np.minimum(1.0, t / 0.002)
        x /= np.max(np.abs(x))
        m = int(0.006 * sr)
        x[:m] += 0.25 * noise("bandpass", (1500.0, 5000.0), m) / 3.0 * np.exp(-np.arange(m) / (0.0015 * sr))
    elif name == "snare":
        t = t_(0.35)
        wires = noise("bandpass", (900.0, 7000.0), len(t))
        body = noise("bandpass", (150.0, 400.0), len(t))
        snare = wires * np.exp(-t / 0.12) + 1.5 * body * np.exp(-t / 0.05)
        clap_env = sum(np.exp(-np.clip(t - d, 0, None) / 0.012) * (t >= d) for d in (0.0, 0.011, 0.023))
        clap = wires * (clap_env + 0.6 * np.exp(-t / 0.18))
        x = acoustic * snare / np.max(np.abs(snare)) + (1 - acoustic) * clap / np.max(np.abs(clap))
    elif name == "hat":
        t = t_(0.15)
        x = noise("highpass", 6000.0 + 3000.0 * brightness, len(t)) * np.exp(-t / (0.02 + 0.03 * acoustic))
    elif name == "cymbal":
        t = t_(0.9)
        x = noise("highpass", 4000.0, len(t)) * np.exp(-t / 0.35)
    else:
        raise ValueError(f"unknown drum {name!r}")
    return _fade(x / (np.max(np.abs(x)) + 1e-12), sr)


def _drum_bank(*, sr: int, acoustic: float, brightness: float, rng: np.random.Generator) -> dict:
    """:data:`DRUM_VARIANTS` noise draws of each drum, so repeated hits do not add up one
    fixed random spectrum (which would bias the chroma)."""
    return {name: [_drum(name, sr=sr, acoustic=acoustic, brightness=brightness, rng=rng) for _ in range(k)]
            for name, k in DRUM_VARIANTS.items()}


def _formant_filter(x: np.ndarray, formants, sr: int) -> np.ndarray:
    y = np.zeros_like(x)
    for f, bw, g in zip(formants, _FORMANT_BW, _FORMANT_GAIN):
        if f >= 0.45 * sr:
            continue
        w0 = 2 * np.pi * f / sr
        alpha = np.sin(w0) * bw / (2 * f)
        b = np.array([alpha, 0.0, -alpha])
        a = np.array([1 + alpha, -2 * np.cos(w0), 1 - alpha])
        y += g * scipy.signal.lfilter(b, a, x)
    return y


def _rms(x: np.ndarray) -> float:
    """RMS over the samples that are not (near) silent."""
    x2 = np.square(x)
    count = np.count_nonzero(x2 > 1e-12)
    return float(np.sqrt(x2.sum() / count)) if count else 0.0


def _normalized(x: np.ndarray) -> np.ndarray:
    r = _rms(x)
    return x * np.asarray(1.0 / r, dtype=x.dtype) if r > 0 else x


def _pan_gains(p: float, channels: int) -> tuple[float, ...]:
    """Constant-power pan gains, ``p`` in [-1 (left), 1 (right)]; (1,) for mono."""
    if channels == 1:
        return (1.0,)
    a = (p + 1.0) * np.pi / 4.0
    return (float(np.sqrt(2.0) * np.cos(a)), float(np.sqrt(2.0) * np.sin(a)))


@functools.lru_cache(maxsize=16)
def _k_weighting_coefficients(sr: int) -> tuple[tuple[float, ...], ...]:
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

    Blocks of 400 ms every 100 ms are built from 100 ms hops of ``int(0.1 * sr)``
    samples, so block edges may differ from pyloudnorm's by a sample (agreement is
    better than 0.001 dB; tested against ``pyloudnorm.Meter(sr).integrated_loudness``).

    Parameters
    ----------
    x : np.ndarray [shape=(channels, n)] or [shape=(n,)]
    sr : int

    Returns
    -------
    loudness : float
        dB (LUFS); ``-inf`` for silence.
    """
    x = np.atleast_2d(np.asarray(x))
    y = scipy.signal.sosfilt(_k_weighting_sos(sr).astype(x.dtype), x, axis=-1)
    hop = int(0.1 * sr)
    T_g, step = 0.4, 0.25
    T = x.shape[1] / sr
    n_blocks = int(np.round((T - T_g) / (T_g * step))) + 1
    n_hops = n_blocks + 3
    e = np.zeros((y.shape[0], n_hops))
    m = min(x.shape[1] // hop, n_hops)
    e[:, :m] = np.square(y[:, : m * hop]).reshape(y.shape[0], m, hop).sum(axis=2, dtype=np.float64)
    if m < n_hops and m * hop < x.shape[1]:
        e[:, m] = np.square(y[:, m * hop : (m + 1) * hop]).sum(axis=1, dtype=np.float64)
    c = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(e, axis=1)], axis=1)
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


def _soft_limit(y: np.ndarray, ceiling: float = _CEILING, knee: float = 0.6) -> np.ndarray:
    k = knee * ceiling
    r = ceiling - k
    a = np.abs(y)
    over = a > k
    y = y.copy()
    y[over] = np.sign(y[over]) * (k + r * np.tanh((a[over] - k) / r))
    return y


def master(x: np.ndarray, *, sr: int, target_db: float, iterations: int = 6) -> np.ndarray:
    """Gain to ``target_db`` integrated loudness, with a soft limiter keeping peaks <= 0.97.

    Parameters
    ----------
    x : np.ndarray [shape=(channels, n)]
    sr : int
    target_db : float
        Target loudness (dB LUFS); reached within a fraction of a dB unless the
        limiter cannot get there in ``iterations`` rounds.

    Returns
    -------
    y : np.ndarray [shape=(channels, n)]
    """
    y = np.asarray(x)
    for _ in range(iterations):
        level = integrated_loudness(y, sr=sr)
        if not np.isfinite(level):
            return y
        y = y * 10.0 ** ((target_db - level) / 20.0)
        if np.max(np.abs(y)) <= _CEILING:
            return y
        y = _soft_limit(y)
    return y


@dataclass(frozen=True)
class _Score:
    """The time grid and harmony one rendering works on."""

    sr: int
    n: int
    seconds: float
    beat_s: float
    times: np.ndarray  # beat onsets (s), before jitter
    pos: np.ndarray  # beat index within the bar
    bar: np.ndarray  # bar index of each beat
    meter: int
    tonic: int
    mode: int
    prog: tuple
    jitter_sd: float

    def chord(self, bar: int) -> tuple[int, int, tuple[int, int, int]]:
        """Root pitch class, third (3 or 4 semitones) and the triad's pitch classes of a bar."""
        off, third = self.prog[bar % len(self.prog)]
        root = (self.tonic + off) % 12
        return root, third, (root, (root + third) % 12, (root + 7) % 12)


def beat_times(controls: dict, *, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """The rendered beat grid (before timing jitter).

    Parameters
    ----------
    controls : dict
        From :func:`sample_controls` (``tempo``, ``meter``, ``offset_s``).
    seconds : float

    Returns
    -------
    times : np.ndarray [shape=(n_beats,)]
        Seconds; the first downbeat is at ``controls["offset_s"]``.
    position : np.ndarray [shape=(n_beats,)]
        Beat index within the bar, 0 = downbeat.
    """
    beat_s = 60.0 / controls["tempo"]
    k = np.arange(int(np.ceil((seconds - controls["offset_s"]) / beat_s)) + 1)
    t = controls["offset_s"] + k * beat_s
    keep = t < seconds
    return t[keep], (k % int(controls["meter"]))[keep]


def _jit(score: _Score, t: float, rng: np.random.Generator) -> float:
    if score.jitter_sd > 0:
        t = t + rng.normal(0.0, score.jitter_sd)
    return max(0.0, t)


def _render_harmony(score: _Score, get_tone, rng) -> tuple[np.ndarray, np.ndarray]:
    """Chords struck on every beat, bass on the kick beats; downbeats accented.

    The bass plays the tonic on every downbeat (a pedal) and the chord's root on the
    other kick beats.
    """
    sr, beat_s = score.sr, score.beat_s
    chords = np.zeros(score.n, dtype=np.float32)
    bass = np.zeros(score.n, dtype=np.float32)
    kicks = KICK_BEATS[score.meter]
    templates = {}
    for t, p, bar in zip(score.times, score.pos, score.bar):
        root, third, _ = score.chord(bar)
        if root not in templates:
            base = 48 + root
            voicing = [(base, 1.0), (base + third, 1.0), (base + 7, 1.0)]
            if root == score.tonic:  # third doubled above, fifth doubled (softer) below
                voicing += [(base + third + 12, 1.0), (base - 5, 0.5)]
            templates[root] = sum(g * get_tone(m, beat_s) for m, g in voicing)
        gain = DOWNBEAT_GAIN if p == 0 else OTHER_BEAT_GAIN
        _place(chords, templates[root], _jit(score, t, rng), sr, gain)
        if p in kicks:
            nxt = [k for k in kicks if k > p]
            span = ((nxt[0] if nxt else score.meter) - p) * beat_s
            bass_pc = score.tonic if p == 0 else root
            note = _fade(get_tone(36 + bass_pc, 3 * beat_s)[: max(1, int(span * sr))].copy(), sr, 0.01)
            _place(bass, note, _jit(score, t, rng), sr, gain)
    return chords, bass


def _render_melody(score: _Score, density: float, get_tone, rng) -> np.ndarray:
    """Melody on a 16th grid, each slot filled with probability (0.5 + 3.5 density) / 4.

    Pitches (MIDI 67-84) are drawn from the tonic triad (50 %), the bar's chord (30 %) or
    the scale (20 %), preferring small steps.
    """
    sr, beat_s = score.sr, score.beat_s
    melody = np.zeros(score.n, dtype=np.float32)
    p_fill = (0.5 + 3.5 * density) / 4.0
    slots = [(t + s * beat_s / 4.0, bar) for t, bar in zip(score.times, score.bar) for s in range(4)]
    filled = [x for x in slots if rng.random() < p_fill]
    scale_pcs = tuple((score.tonic + d) % 12 for d in _SCALES[score.mode])
    tonic_pcs = score.chord(0)[2]
    prev = 72
    for idx, (t, bar) in enumerate(filled):
        u = rng.random()
        pool = tonic_pcs if u < 0.5 else score.chord(bar)[2] if u < 0.8 else scale_pcs
        cands = np.array([m for m in range(67, 85) if m % 12 in pool])
        w = np.exp(-np.abs(cands - prev) / 4.0)
        prev = int(rng.choice(cands, p=w / w.sum()))
        dur = min(beat_s, (filled[idx + 1][0] - t) if idx + 1 < len(filled) else beat_s)
        note = _fade(get_tone(prev, beat_s)[: max(1, int(dur * sr))].copy(), sr)
        _place(melody, note, _jit(score, t, rng), sr, 0.8 + 0.2 * rng.random())
    return melody


def _render_drums(score: _Score, c: dict, rng) -> np.ndarray:
    """Kick (accented on the downbeat, with a cymbal), snare and hats per :data:`KICK_BEATS`."""
    sr, beat_s = score.sr, score.beat_s
    drums = np.zeros(score.n, dtype=np.float32)
    bank = _drum_bank(sr=sr, acoustic=float(c["acoustic"]), brightness=float(c["brightness"]), rng=rng)
    kicks, snares = KICK_BEATS[score.meter], SNARE_BEATS[score.meter]
    subdiv = 4 if c["density"] > 0.6 else 2

    def hit(name, t, gain):
        _place(drums, bank[name][int(rng.integers(len(bank[name])))], _jit(score, t, rng), sr, gain)

    for t, p in zip(score.times, score.pos):
        if p == 0:
            hit("kick", t, 1.0)
            hit("cymbal", t, 0.45)
        elif p in kicks:
            hit("kick", t, 0.6)
        if p in snares:
            hit("snare", t, 0.6)
        for s in range(subdiv):
            hit("hat", t + s * beat_s / subdiv, 0.22 if s == 0 else 0.14)
    return drums


def _render_voice(score: _Score, rng) -> np.ndarray:
    """Sung notes (2 bars on, 2 off): sawtooth source with glide and vibrato through vowel formants."""
    sr, beat_s = score.sr, score.beat_s
    voice = np.zeros(score.n, dtype=np.float32)
    sing = [(t, bar) for t, bar in zip(score.times, score.bar) if bar % 4 in (0, 1)]
    i, prev_f = 0, None
    while i < len(sing):
        t0, bar = sing[i]
        length = int(rng.choice([1, 2])) if i + 1 < len(sing) else 1
        pcs = score.chord(bar)[2]
        midi = int(rng.choice(np.array([m for m in range(57, 73) if m % 12 in pcs])))
        dur = length * beat_s
        tt = np.arange(int(dur * sr)) / sr
        f = np.full(len(tt), _midi_hz(midi))
        if prev_f is not None:
            g = np.minimum(1.0, tt / 0.05)
            f = prev_f * (1 - g) + f * g
        f *= 2.0 ** (0.25 / 12 * np.sin(2 * np.pi * 5.5 * tt) * np.minimum(1.0, tt / 0.3))
        prev_f = _midi_hz(midi)
        src = 2.0 * (np.cumsum(f / sr) % 1.0) - 1.0
        src = scipy.signal.lfilter([0.3], [1.0, -0.7], src) + 0.03 * rng.standard_normal(len(tt))
        sung = _formant_filter(src, _VOWELS["aeiou"[int(rng.integers(5))]], sr)
        env = np.minimum(1.0, tt / 0.04) * np.minimum(1.0, (dur - tt) / 0.06)
        _place(voice, sung * env, _jit(score, t0, rng), sr)
        i += length
    return voice


def _render_speech(score: _Score, share: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Spoken segments: noise-excited formant syllables (~5 per second, no pitch).

    Returns the speech and the gain (ducking) the music gets under it.
    """
    sr, n, seconds = score.sr, score.n, score.seconds
    speech = np.zeros(n, dtype=np.float32)
    ramp = 0.05
    edges_t, edges_g = [0.0], [1.0]
    n_slots = max(1, int(seconds // _SPEECH_SLOT_S))
    k = int(np.clip(round(share * n_slots), 1, n_slots))
    for slot in np.sort(rng.choice(n_slots, size=k, replace=False)):
        t = slot * _SPEECH_SLOT_S + 0.2
        end = min(seconds, t + _SPEECH_SLOT_S - 0.4)
        a, b = max(0.0, t - 0.15), min(seconds, end + 0.15)
        edges_t += [a, a + ramp, b - ramp, b]
        edges_g += [1.0, 1.0 - 0.7 * share, 1.0 - 0.7 * share, 1.0]
        syll = 0
        while t < end:
            d = rng.uniform(0.10, 0.22)
            tt = np.arange(int(d * sr)) / sr
            vowel = np.array(_VOWELS["aeiou"[int(rng.integers(5))]]) * rng.uniform(0.85, 1.2)
            env = np.sin(np.pi * tt / d) ** 2 * np.minimum(1.0, tt / 0.01)
            s = _formant_filter(rng.standard_normal(len(tt)), vowel, sr) * env
            if rng.random() < 0.6:  # a consonant burst
                mc = min(len(s), int(0.035 * sr))
                burst = scipy.signal.sosfilt(_sos("highpass", 3000.0, sr), rng.standard_normal(mc))
                s[:mc] += 0.15 * burst * np.exp(-np.arange(mc) / (0.01 * sr))
            _place(speech, s * rng.uniform(0.6, 1.0), t, sr)
            syll += 1
            pause = rng.uniform(0.1, 0.25) if syll % int(rng.integers(2, 5)) == 0 else 0.0
            t += d + rng.uniform(0.02, 0.07) + pause
    duck = np.interp(np.arange(n, dtype=np.float32) / np.float32(sr), edges_t, edges_g).astype(np.float32)
    return speech, duck


def _render_crowd(score: _Score, channels: int, rng) -> np.ndarray:
    """Crowd babble with slow swells, and applause (dense in the first and last 2.5 s)."""
    sr, n = score.sr, score.n
    crowd = np.zeros((channels, n), dtype=np.float32)
    rate = np.full(n, 1.5 / sr, dtype=np.float32)
    edge = int(min(2.5, score.seconds / 4) * sr)
    rate[:edge] = 25.0 / sr
    rate[n - edge :] = 25.0 / sr
    for ch in range(channels):
        bab = scipy.signal.sosfilt(_sos("bandpass", (300.0, 3000.0), sr, dtype=np.float32),
                                   rng.standard_normal(n, dtype=np.float32))
        slow = scipy.signal.sosfilt(_sos("lowpass", 1.5, sr, order=1), rng.standard_normal(n, dtype=np.float32))
        bab *= (0.6 + 0.4 * np.tanh(slow / (np.std(slow) + 1e-12))).astype(np.float32)
        del slow
        imp = (rng.random(n, dtype=np.float32) < rate) * rng.random(n, dtype=np.float32)
        env = scipy.signal.lfilter(np.array([0.3], dtype=np.float32),
                                   np.array([1.0, -np.exp(-1.0 / (0.015 * sr))], dtype=np.float32), imp)
        noise = scipy.signal.sosfilt(_sos("bandpass", (1000.0, 5000.0), sr, dtype=np.float32),
                                     rng.standard_normal(n, dtype=np.float32))
        crowd[ch] = 0.6 * _normalized(bab) + _normalized(env * noise)
    return crowd


def _reverb(mix: np.ndarray, amount: float, *, sr: int, rng) -> np.ndarray:
    """Room: exponentially decaying noise IR, RT60 = 0.25 + 2 amount s, one IR per channel.

    The wet path is band-passed (200 Hz - 6 kHz) and mixed at ``0.45 amount`` against a dry
    ``1 - 0.25 amount`` (at most -4 dB below the dry signal): a diffuse IR has a random
    frequency response, and a louder wet path would colour individual notes (and the chroma).
    """
    rt60 = 0.25 + 2.0 * amount
    m = int(min(rt60, 2.5) * sr)
    tt = np.arange(m) / sr
    wet = np.empty_like(mix)
    band = _sos("bandpass", (200.0, 6000.0), sr)
    for ch in range(mix.shape[0]):
        ir = scipy.signal.sosfilt(band, rng.standard_normal(m) * np.exp(-6.91 * tt / rt60))
        ir /= np.sqrt(np.sum(ir**2))
        wet[ch] = scipy.signal.fftconvolve(mix[ch], ir.astype(np.float32))[: mix.shape[1]]
    return (1.0 - 0.25 * amount) * mix + (0.45 * amount) * wet


def render_track(controls: dict, *, sr: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Render the audio a track's controls describe, mastered to its target loudness.

    Parts: chords struck on every beat (downbeat accented) and bass on the kick beats
    (a progression with the tonic chord in every other bar), a melody on a 16th-note
    grid (``0.5 + 3.5 * density`` notes per beat), drums (level ``beat``; accented
    downbeat with kick and cymbal), a sung voice (sawtooth source with vibrato through
    vowel formants, level ``vocal``), spoken segments (noise-excited formant syllables,
    ~5 per second, no pitch, ``speech`` share of the time, music ducked under them),
    crowd noise and applause (``crowd``) and room reverb (``reverb``). Every onset is
    jittered by ``3.5 % * (1 - regularity)`` of a beat; ``brightness`` sets harmonic
    roll-off and a mix low-pass; ``acoustic`` blends struck/plucked with synthetic
    timbres. The mix is gained (with a soft limiter) to :func:`target_loudness`.

    Parameters
    ----------
    controls : dict
        From :func:`sample_controls`; ``channels`` (1 or 2, default 2) is read if present.
    sr : int
        Sample rate (Hz).
    seconds : float
        Duration.
    rng : np.random.Generator
        Stream for the musical choices (melody, voicings, noises, jitter).

    Returns
    -------
    y : np.ndarray [shape=(channels, round(seconds * sr))], float32, peaks <= 0.97
    """
    c = controls
    n = int(round(seconds * sr))
    channels = int(c.get("channels", 2))
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    if n < 1:
        raise ValueError(f"seconds * sr must give at least one sample, got {seconds} * {sr}")
    times, pos = beat_times(c, seconds=seconds)
    mode = int(c["mode"])
    progs = _PROGRESSIONS[mode]
    beat_s = 60.0 / c["tempo"]
    score = _Score(
        sr=sr, n=n, seconds=float(seconds), beat_s=beat_s, times=times, pos=pos,
        bar=np.cumsum(pos == 0) - 1, meter=int(c["meter"]), tonic=int(c["tonic"]), mode=mode,
        prog=progs[int(rng.integers(len(progs)))], jitter_sd=0.035 * beat_s * (1.0 - float(c["regularity"])),
    )
    acoustic, brightness = float(c["acoustic"]), float(c["brightness"])
    cache: dict = {}

    def get_tone(midi: int, length: float) -> np.ndarray:
        if (midi, length) not in cache:
            cache[midi, length] = _tone(midi, n=max(1, int(length * sr)), sr=sr, acoustic=acoustic,
                                        brightness=brightness, rng=rng)
        return cache[midi, length]

    chords, bass = _render_harmony(score, get_tone, rng)
    melody = _render_melody(score, float(c["density"]), get_tone, rng)
    parts = [(chords, 1.0, -0.35), (bass, 0.7, 0.0), (melody, 0.7, 0.35)]
    if c["beat"] > 0.02:
        parts.append((_render_drums(score, c, rng), 1.4 * float(c["beat"]), 0.0))
    if c["vocal"] > 0:
        parts.append((_render_voice(score, rng), 1.3 * float(c["vocal"]), 0.0))
    mix = np.zeros((channels, n), dtype=np.float32)
    for x, g, p in parts:
        x = _normalized(x)
        for ch, pg in enumerate(_pan_gains(p, channels)):
            mix[ch] += np.float32(g * pg) * x
    del parts, chords, bass, melody, x
    fc = 2500.0 * 2.0 ** (2.7 * brightness)
    if fc < 0.45 * sr:
        mix = scipy.signal.sosfilt(_sos("lowpass", fc, sr, dtype=np.float32), mix, axis=-1)
    speech = None
    if c["speech"] > 0:
        speech, duck = _render_speech(score, float(c["speech"]), rng)
        mix *= duck
    music_rms = _rms(mix)
    if c["reverb"] > 0.01:
        mix = _reverb(mix, float(c["reverb"]), sr=sr, rng=rng)
    if speech is not None:
        mix += _normalized(speech) * np.float32(music_rms * (0.8 + 1.2 * c["speech"]))
    if c["crowd"] > 0:
        crowd = _render_crowd(score, channels, rng)
        mix += crowd * np.float32(music_rms * 0.9 * float(c["crowd"]) / (_rms(crowd) + 1e-12))
        del crowd
    del speech
    y = master(mix, sr=sr, target_db=target_loudness(c))
    return np.clip(y, -1.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------- names
_SYLLABLES = ("ka", "lo", "mi", "ra", "ven", "tor", "sel", "dan", "bri", "mor", "ta", "nel", "quin", "zo",
              "fa", "ri", "lu", "gar", "pen", "sha", "vo", "ne", "tis", "ol", "ber", "cas", "dri", "em")
_ACCENTS = {"a": ("á", "å"), "e": ("é", "è"), "o": ("ö",), "u": ("ü",), "n": ("ñ",), "c": ("ç",)}
_KANA_VOICED = ("ガ", "ギ", "グ", "ゴ", "ザ", "ジ", "ズ", "ダ", "デ", "ド", "バ", "ビ", "ブ", "ボ")
_KANA = ("カ", "サ", "タ", "ナ", "マ", "ラ", "ミ", "ソ", "ヒ", "ル", "コ", "ネ", "ア", "リ")
_WORDS = ("Night", "River", "Glass", "Signal", "Echo", "Paper", "Lantern", "Orbit", "Velvet", "Harbor",
          "Static", "Meadow", "Copper", "Drift", "Ember", "Hollow", "Neon", "Satellite", "Window", "Winter",
          "Summer", "Tide", "Feather", "Circuit", "Garden", "Mirror", "Distance", "Thunder", "Silver", "Cloud",
          "Motel", "Highway", "Lullaby", "Parade", "Fever", "Quiet", "Golden", "Broken", "Little", "Electric")
#: Words with letters that decompose under NFD (é, ü, ñ, å, ç, ï ...).
_WORDS_ACCENTED = ("Café", "Réveil", "Über", "Mañana", "Déjà Vu", "Naïve", "Fiancée", "Brücke", "Élan",
                   "Año", "Façade", "Årstid", "Söndag", "Crème")
_WORDS_OTHER = ("Søndag", "Ørken", "Straße", "Łódź")  # non-ASCII letters that NFD keeps as they are
_WORDS_JA = ("夜の星", "雨音", "さくら", "ガラスの海", "ドライブ", "ブルー", "月と猫", "ビルの影")


def _cap(word: str) -> str:
    return word[:1].upper() + word[1:]


def _word(rng: np.random.Generator, k: int | None = None) -> str:
    k = int(rng.integers(2, 4)) if k is None else k
    return _cap("".join(_SYLLABLES[int(i)] for i in rng.integers(len(_SYLLABLES), size=k)))


def _accent(word: str, rng: np.random.Generator) -> str:
    """Replace one letter of ``word`` with an accented one that decomposes under NFD."""
    spots = [i for i, ch in enumerate(word.lower()) if ch in _ACCENTS]
    if not spots:
        return word + "é"
    i = spots[int(rng.integers(len(spots)))]
    options = _ACCENTS[word[i].lower()]
    ch = options[int(rng.integers(len(options)))]
    return word[:i] + (ch.upper() if word[i].isupper() else ch) + word[i + 1 :]


def _artist_name(kind: int, rng: np.random.Generator) -> str:
    """kind 0: ASCII; 1: Latin letters with diacritics (NFC); 2: Japanese (katakana with dakuten)."""
    if kind == 2:
        k = int(rng.integers(3, 5))
        chars = [(_KANA_VOICED if j == 0 or rng.random() < 0.3 else _KANA)[int(rng.integers(14))] for j in range(k)]
        return "".join(chars)
    style = int(rng.integers(4))
    a, b = _word(rng), _word(rng)
    if kind == 1:
        a = _accent(a, rng)
    return (f"The {a}s", f"{a} {b}", a, f"{a} & the {b}s")[style]


def _track_name(i: int, rng: np.random.Generator) -> tuple[str, bool]:
    """Track ``i``'s title and whether to write it in NFD (every 10th track, offset 7)."""
    words = [_WORDS[int(j)] for j in rng.integers(len(_WORDS), size=int(rng.integers(1, 4)))]
    nfd = i % 10 == 7
    if i % 5 == 2 or nfd:
        words.insert(int(rng.integers(len(words) + 1)), _WORDS_ACCENTED[int(rng.integers(len(_WORDS_ACCENTED)))])
    elif i % 9 == 4:
        return _WORDS_JA[int(rng.integers(len(_WORDS_JA)))] + (" " + words[0] if rng.random() < 0.5 else ""), False
    elif i % 11 == 6:
        words.append(_WORDS_OTHER[int(rng.integers(len(_WORDS_OTHER)))])
    return " ".join(words), nfd


def _track_id(rng: np.random.Generator) -> str:
    return "".join(_BASE62[int(j)] for j in rng.integers(62, size=22))


# -------------------------------------------------------------------- the set
def deal(values, weights, n: int) -> np.ndarray:
    """``n`` values in the proportions ``weights`` (largest-remainder rounding), in order.

    Parameters
    ----------
    values : sequence
    weights : sequence of float >= 0
    n : int

    Returns
    -------
    dealt : np.ndarray [shape=(n,)]
        ``values[k]`` repeated ``round(n * w_k / sum(w))`` times (remainders to the
        largest fractions, ties to the first); shuffle it to assign.
    """
    w = np.asarray(weights, dtype=float)
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    return np.repeat(np.asarray(list(values)), counts)


def _plan(*, n: int, seed: int, label_noise: float, seconds: float) -> list[dict]:
    """Everything about the set except the audio: metadata rows, controls, file layout.

    Meters (:func:`deal` of :data:`METER_WEIGHTS`), formats, sample rates and channel
    counts are dealt to the set in fixed proportions and shuffled, so even small sets
    hold the rare meters and every file kind.

    Streams: ``[seed, _SET_STREAM]`` for artists, meters and the file layout; per track ``i``:
    ``[seed, i, 0]`` controls, ``[seed, i, 1]`` label noise, ``[seed, i, 2]`` rendering,
    ``[seed, i, 3]`` names, ``[seed, i, 4]`` the track id.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng([seed, _SET_STREAM])
    n_artists = max(1, int(round(n / 4)))
    extra = rng.multinomial(n - n_artists, rng.dirichlet(np.full(n_artists, 1.5))) if n > n_artists else 0
    artist_of = rng.permutation(np.repeat(np.arange(n_artists), 1 + np.asarray(extra)))[:n]
    styles = [artist_style(rng=rng) for _ in range(n_artists)]
    names: list[str] = []
    for j in range(n_artists):
        kind = {1: 1, 3: 2, 5: 1}.get(j % 6, 0)
        name = _artist_name(kind, rng)
        while name in names:
            name = _artist_name(kind, rng)
        names.append(name)
    albums = []
    for _ in range(n_artists):
        words = rng.integers(len(_WORDS), size=int(rng.integers(1, 4)))
        albums.append([f"{_cap(_WORDS[int(k)])} {_word(rng, 2)}" for k in words])
    fmts = rng.permutation(np.resize(np.array(FORMAT_CYCLE), n))
    rates = rng.permutation(np.resize(np.array(SAMPLE_RATES), n))
    chans = rng.permutation(np.resize(np.array([1, 2]), n))
    meters = rng.permutation(deal(METERS, METER_WEIGHTS, n))

    rows, seen_ids, seen_per_artist = [], set(), [0] * n_artists
    for i in range(n):
        a = int(artist_of[i])
        controls = sample_controls(rng=np.random.default_rng([seed, i, 0]), artist_style=styles[a])
        controls["channels"] = int(chans[i])
        controls["meter"] = int(meters[i])
        labels = labels_from_controls(controls, rng=np.random.default_rng([seed, i, 1]), label_noise=label_noise)
        name_rng = np.random.default_rng([seed, i, 3])
        title, title_nfd = _track_name(i, name_rng)
        artist = names[a]
        # artists with j % 6 == 5 appear in NFD on every other one of their tracks
        if a % 6 == 5 and seen_per_artist[a] % 2 == 1:
            artist = unicodedata.normalize("NFD", artist)
        seen_per_artist[a] += 1
        if n_artists > 1 and name_rng.random() < 0.05:  # a featured second artist
            other = (a + 1 + int(name_rng.integers(n_artists - 1))) % n_artists
            artist = f"{artist};{names[other]}"
        album = albums[a][int(name_rng.integers(len(albums[a])))]
        if title_nfd:
            title = unicodedata.normalize("NFD", title)
        track_id = _track_id(np.random.default_rng([seed, i, 4]))
        if track_id in seen_ids:  # 62**22 ids: never in practice
            raise RuntimeError(f"duplicate track id {track_id}")
        seen_ids.add(track_id)
        ext = str(fmts[i])
        rows.append({
            "track_id": track_id,
            "artists": artist,
            "album_name": album,
            "track_name": title,
            "duration_ms": int(round(seconds * 1000)),
            **{k: labels[k] for k in TARGETS},
            "mode": labels["mode"],
            "track_genre": genre_of(controls),
            "path": f"audio/{track_id}.{ext}",
            "_controls": controls,
            "_sr": int(rates[i]),
            "_ext": ext,
            "_index": i,
            "_artist_index": a,
        })
    return rows


def _metadata_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame([{k: r[k] for k in (*METADATA_COLUMNS, "path")} for r in rows])
    for col in ("duration_ms", "key", "mode", "time_signature"):
        df[col] = df[col].astype("int64")
    return df


def sample_labels(*, n: int = 2000, seed: int = 0, label_noise: float = 1.0, seconds: float = 30.0) -> pd.DataFrame:
    """The metadata and labels :func:`generate_sample_set` would write, without rendering.

    Identical to the set's ``metadata.csv`` for the same ``n, seed, label_noise`` except
    ``loudness``, which here is the *target* loudness (the set has the loudness measured
    on each file, usually within 0.1 dB of the target; more for tracks the limiter drives hard).

    Parameters
    ----------
    n, seed, label_noise, seconds : as for :func:`generate_sample_set`.

    Returns
    -------
    df : pandas.DataFrame [shape=(n, len(METADATA_COLUMNS) + 1 + n_controls)]
        ``METADATA_COLUMNS``, ``path``, then one ``control_<name>`` column per control
        (see :func:`sample_controls`).
    """
    rows = _plan(n=n, seed=seed, label_noise=label_noise, seconds=seconds)
    df = _metadata_frame(rows)
    controls = pd.DataFrame([r["_controls"] for r in rows]).add_prefix("control_")
    return pd.concat([df, controls], axis=1)


def _write_audio(path: Path, y: np.ndarray, *, sr: int, ext: str) -> None:
    """Write ``y`` [shape=(channels, n)] atomically (temp name in the same folder, then rename)."""
    import soundfile as sf

    fmt, subtype = FORMATS[ext]
    data = y[0] if y.shape[0] == 1 else y.T
    atomic.write_with(path, lambda tmp: sf.write(str(tmp), data, sr, format=fmt, subtype=subtype))


def measure_loudness(path: str | os.PathLike) -> float:
    """Integrated loudness (dB LUFS, ITU-R BS.1770) of a decoded audio file.

    The file is decoded with ``soundfile.read(path)`` (float64) and measured with
    :func:`integrated_loudness`, which gives ``pyloudnorm.Meter(sr).integrated_loudness``'s
    value (to within 0.001 dB) about 3 times faster.
    """
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return integrated_loudness(data.T, sr=sr)


def _render_one(job: tuple) -> float:
    """Render, write and measure one track; returns the measured loudness (worker entry point)."""
    controls, sr, seconds, seed, i, path, ext = job
    y = render_track(controls, sr=sr, seconds=seconds, rng=np.random.default_rng([seed, i, 2]))
    _write_audio(Path(path), y, sr=sr, ext=ext)
    return measure_loudness(path)


def generate_sample_set(
    out_dir: str | os.PathLike,
    *,
    n: int = 240,
    seconds: float = 30.0,
    seed: int = 0,
    label_noise: float = 1.0,
    progress: bool = False,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Render the synthetic sample set with its known labels.

    Writes ``out_dir/audio/<track_id>.<wav|flac|ogg>`` (formats dealt in
    :data:`FORMAT_CYCLE` proportions, sample rates :data:`SAMPLE_RATES` and mono/stereo
    in equal shares, each list shuffled), ``out_dir/synth.json`` (``synth_version``,
    ``n``, ``seconds``, ``seed``, ``label_noise``: what determines the content) and
    last ``out_dir/metadata.csv``, each atomically (temp name, then rename). The same
    arguments give the same labels and the same decoded audio samples, whatever
    ``n_jobs`` (Ogg files differ in their random stream serial number only).

    Parameters
    ----------
    out_dir : path
        Created if missing; files of the same names are replaced.
    n : int
        Number of tracks (about ``n / 4`` artists).
    seconds : float >= MIN_SECONDS
        Duration of every track.
    seed : int
        Seed of every random stream.
    label_noise : float >= 0
        Scale of the label noise of the seven perceptual targets (0: exact functions
        of the controls).
    progress : bool
        Show a tqdm progress bar.
    n_jobs : int, optional
        Worker processes (each needs about 300 MB for 30 s at 48 kHz); default: the
        available cores, at most 8, for sets of 16 tracks or more, else 1.

    Returns
    -------
    metadata : pandas.DataFrame [shape=(n, len(METADATA_COLUMNS) + 1)]
        ``METADATA_COLUMNS`` then ``path`` (relative to ``out_dir``), as written.
    """
    if not seconds >= MIN_SECONDS:
        raise ValueError(f"seconds must be >= {MIN_SECONDS} (the first downbeat may come at 0.6 s and "
                         f"loudness is measured on 0.4 s blocks), got {seconds}")
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rows = _plan(n=n, seed=seed, label_noise=label_noise, seconds=seconds)
    jobs = [(r["_controls"], r["_sr"], float(seconds), int(seed), r["_index"], str(out / r["path"]), r["_ext"])
            for r in rows]
    if n_jobs is None:
        from joblib import cpu_count

        n_jobs = min(8, cpu_count()) if n >= 16 else 1
    if int(n_jobs) < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    from tqdm.auto import tqdm

    bar = dict(total=n, desc="synth", unit="track", disable=not progress)
    if n_jobs == 1:
        loudness = [_render_one(j) for j in tqdm(jobs, **bar)]
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_render_one)(j) for j in jobs)
        loudness = list(tqdm(results, **bar))
    for r, level in zip(rows, loudness):
        r["loudness"] = level
    df = _metadata_frame(rows)
    stamp = {"synth_version": SYNTH_VERSION, "n": int(n), "seconds": float(seconds), "seed": int(seed),
             "label_noise": float(label_noise)}
    atomic.write_text(out / "synth.json", json.dumps(stamp, indent=2) + "\n")
    atomic.write_text(out / "metadata.csv", df.to_csv(index=False, lineterminator="\n"))
    log.info("wrote %d tracks to %s", n, out)
    return df
