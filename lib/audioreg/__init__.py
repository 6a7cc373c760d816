"""audioreg: predict 11 Spotify-style musical attributes from raw audio.

Submodules are imported on first attribute access (``audioreg.judge.metrics``), so
``import audioreg`` stays cheap and never imports torch or librosa by itself.
"""

from __future__ import annotations

from ._lazy import attach

__version__ = "0.1.0"

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
