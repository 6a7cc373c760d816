"""The synthetic, privacy-safe sample set: rendered music whose 11 labels are known by construction.

Every track is drawn in three independent steps, each with its own random stream
``np.random.default_rng([seed, i, k])`` (so results do not depend on worker count):

1. :func:`~audioreg.synth.controls.sample_controls` draws the generator's *controls*
   (tempo, meter, key, mode, timbre mix, onset density, brightness, level, drums, voice,
   speech, crowd, reverb) from a Gaussian factor model, so that they correlate the way
   real music does.
2. :func:`~audioreg.synth.labels.labels_from_controls` turns the controls into the labels
   (the table of how each label is made is in :mod:`audioreg.synth.labels`).
3. :func:`~audioreg.synth.render.render_track` renders the audio the controls describe.

The submodules, imported on first use:

- :mod:`~audioreg.synth.controls`: the controls, their factor model, the genres;
- :mod:`~audioreg.synth.labels`: the labels as functions of the controls, with their noise;
- :mod:`~audioreg.synth.render`: the renderer (oscillators, drums, voice, speech, crowd,
  reverb, mastering);
- :mod:`~audioreg.synth.names`: artist, album and track names, track ids;
- :mod:`~audioreg.synth.writer`: the set's plan and file layout, the files, ``metadata.csv``.

Their public names are attributes of this package too (``synth.generate_sample_set``,
``synth.sample_labels``, ``synth.NOISE_SD``...). The loudness labels are measured with
:func:`audioreg.data.loudness.integrated_loudness`.
"""

from .._lazy import attach

#: What :func:`generate_sample_set` writes beside ``metadata.csv``: how the set was generated (so a
#: folder holding it is the sample set, with known answers).
STAMP_NAME = "synth.json"

_CONTROLS = ("ARTIST_SHARE", "CONTROL_NAMES", "FACTORS", "GENRES", "KEY_WEIGHTS", "LEVEL_BETA", "LOADINGS",
             "LOUDNESS_RANGE", "METERS", "METER_WEIGHTS", "P_MAJOR", "REVERB_POWER", "TEMPO_MEAN_SD", "TEMPO_RANGE",
             "ZERO_INFLATED", "artist_style", "genre_of", "onset_rate", "sample_controls", "target_loudness")
_LABELS = ("LABEL_COEF", "NOISE_SD", "label_logits", "labels_from_controls")
_RENDER = ("DOWNBEAT_GAIN", "DRUM_VARIANTS", "KICK_BEATS", "OTHER_BEAT_GAIN", "SNARE_BEATS", "beat_times", "master",
           "render_track")
_WRITER = ("FORMATS", "FORMAT_CYCLE", "MIN_SECONDS", "SAMPLE_RATES", "SYNTH_VERSION", "deal", "generate_sample_set",
           "measure_loudness", "sample_labels")

__getattr__, __all__ = attach(
    __name__,
    ("controls", "labels", "names", "render", "writer"),
    {**{name: "controls" for name in _CONTROLS}, **{name: "labels" for name in _LABELS},
     **{name: "render" for name in _RENDER}, **{name: "writer" for name in _WRITER}},
)
