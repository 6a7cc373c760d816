"""The labels: the 11 targets (and ``mode``) of a track, as functions of its controls.

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

import numpy as np
import scipy.special

from ..targets import TARGETS, UNIT_INTERVAL_TARGETS
from .controls import onset_rate, target_loudness

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


def label_logits(controls: dict) -> dict:
    """Noise-free logits of the seven unit-interval labels (see :data:`LABEL_COEF`).

    Parameters
    ----------
    controls : dict
        From :func:`~audioreg.synth.controls.sample_controls`.

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
        From :func:`~audioreg.synth.controls.sample_controls`.
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
        *target* loudness (:func:`~audioreg.synth.controls.target_loudness`);
        :func:`~audioreg.synth.writer.generate_sample_set` replaces it with the measured
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
