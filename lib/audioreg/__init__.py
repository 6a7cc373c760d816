"""audioreg: predict 11 Spotify-style musical attributes from raw audio.

Submodules are imported on first attribute access (``audioreg.metrics``), so
``import audioreg`` stays cheap and never imports torch or librosa by itself.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "atomic",
    "cli",
    "device",
    "extract",
    "features",
    "features_torch",
    "io",
    "labels",
    "metrics",
    "models",
    "numba_cache",
    "params",
    "paths",
    "pipeline",
    "plots",
    "repro",
    "runner",
    "split",
    "synth",
    "targets",
    "train",
)

__all__ = list(_SUBMODULES) + ["__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'audioreg' has no attribute {name!r}")
