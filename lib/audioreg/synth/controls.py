"""The generator's controls: what one track is made of, drawn from a factor model.

:func:`sample_controls` draws tempo, meter, key, mode and the unit-interval controls
(timbre mix, onset density, brightness, level, drums, voice, speech, crowd, reverb).
The continuous controls come from a Gaussian factor model (five shared factors:
electronic, intensity, groove, live, mood, plus an artist share, :func:`artist_style`),
so that they correlate the way real music does. Also here: the quantities the labels
and the renderer both derive from the controls (:func:`target_loudness`,
:func:`onset_rate`) and the invented genre (:func:`genre_of`).
"""

from __future__ import annotations

import numpy as np
import scipy.special

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
        :data:`METER_WEIGHTS`; :func:`~audioreg.synth.writer.generate_sample_set` deals
        meters to the whole set in those proportions instead), ``tonic``
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



def onset_rate(controls: dict) -> float:
    """Melody onsets per second: ``tempo / 60 * (0.5 + 3.5 * density)``."""
    return controls["tempo"] / 60.0 * (0.5 + 3.5 * controls["density"])
