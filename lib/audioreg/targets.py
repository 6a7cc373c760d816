"""The 11 prediction targets and the metadata schema of the public Spotify tracks datasets."""

from __future__ import annotations

#: Model output order. Every array of targets in the package uses this column order.
TARGETS: tuple[str, ...] = (
    "danceability",
    "energy",
    "valence",
    "tempo",
    "liveness",
    "speechiness",
    "instrumentalness",
    "acousticness",
    "loudness",
    "time_signature",
    "key",
)

#: Columns of the public Spotify tracks datasets (the Kaggle "Spotify Tracks Dataset" schema).
METADATA_COLUMNS: tuple[str, ...] = (
    "track_id",
    "artists",
    "album_name",
    "track_name",
    "duration_ms",
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "time_signature",
    "track_genre",
)

#: Targets that live in [0, 1] and are scored by R^2.
UNIT_INTERVAL_TARGETS: tuple[str, ...] = (
    "danceability",
    "energy",
    "valence",
    "liveness",
    "speechiness",
    "instrumentalness",
    "acousticness",
)

#: Valid label ranges (inclusive). Rows outside are reported by the ingest stage.
VALID_RANGES: dict[str, tuple[float, float]] = {
    **{name: (0.0, 1.0) for name in UNIT_INTERVAL_TARGETS},
    "tempo": (1.0, 300.0),  # BPM; Spotify uses 0 for "no beat detected", which is not a label
    "loudness": (-60.0, 0.0),  # dB (integrated loudness, LUFS-like)
    "time_signature": (3.0, 7.0),  # beats per bar, Spotify's documented range
    "key": (0.0, 11.0),  # pitch class of the tonic, C=0; Spotify uses -1 for "no key"
}

#: How each target is reported "in its own terms" besides raw MSE / standardized MSE / R^2.
OWN_TERMS: dict[str, str] = {
    **{name: "R^2" for name in UNIT_INTERVAL_TARGETS},
    "tempo": "MAE in BPM, Acc1 (within 4 %), Acc2 (within 4 % up to factors 2, 3, 1/2, 1/3)",
    "loudness": "MAE in dB",
    "time_signature": "accuracy (prediction rounded to the nearest meter in 3..7)",
    "key": "accuracy (prediction rounded to the nearest pitch class, mod 12)",
}

PITCH_CLASSES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def clip_to_valid(pred, *, targets: tuple[str, ...] = TARGETS):
    """Clip predictions ``[n, len(targets)]`` to each target's documented range (:data:`VALID_RANGES`).

    A regressor can extrapolate past a label's range (a speechiness of -0.1, a
    loudness of +2 dB); clipping uses only the a-priori range, never the test labels.
    Key is a pitch class on a circle: it is wrapped into [0, 12), not clipped, so 11.7
    stays next to 0 (it rounds to C).
    """
    import numpy as np

    pred = np.array(pred, dtype=np.float64, copy=True)
    if pred.ndim != 2 or pred.shape[1] != len(targets):
        raise ValueError(f"expected predictions of shape (n, {len(targets)}), got {pred.shape}")
    for j, name in enumerate(targets):
        if name == "key":
            pred[:, j] = np.mod(pred[:, j], 12.0)
            continue
        lo, hi = VALID_RANGES[name]
        np.clip(pred[:, j], lo, hi, out=pred[:, j])
    return pred
