"""audioreg: predict 11 Spotify-style musical attributes from raw audio.

Submodules are imported on first attribute access (``audioreg.judge.metrics``), so
``import audioreg`` stays cheap and never imports torch or librosa by itself.
"""

from __future__ import annotations

import pandas as _pd

from ._lazy import attach

__version__ = "0.1.0"

# pandas 3 keeps text in pyarrow when pyarrow is installed (audioreg needs it for Parquet and for
# reading large tables), and pyarrow strings cannot hold a path with bytes that are not UTF-8
# (Python's surrogate escapes, as os.listdir returns them): a folder holding one such file name
# would fail to load. Python storage holds every str; the dtype ("str") and its behaviour are
# the same.
_pd.set_option("mode.string_storage", "python")

#: Layers, bottom to top (import-linter checks them: see pyproject.toml): the basics
#: (targets, params, paths, repro, device, atomic); data; synth; features; models;
#: judge; then stages, store, bench, runner and cli.
_SUBMODULES = (
    "atomic", "bench", "cli", "data", "device", "errors", "evaluate", "features", "judge", "models", "params", "paths",
    "predict", "repro",
    "runner", "stages", "store", "synth", "targets",
)

__getattr__, _names = attach(__name__, _SUBMODULES)
__all__ = [*_names, "__version__"]
