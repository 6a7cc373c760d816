"""Reproducibility: the one place that touches global random number generators."""

from __future__ import annotations

import os
import random

import numpy as np


#: The packages whose versions a run's metrics.json records (what its numbers came from).
RECORDED_PACKAGES = ("numpy", "scipy", "pandas", "librosa", "numba", "scikit-learn", "torch", "soundfile", "soxr",
                     "pyloudnorm", "mir_eval", "audioreg")


def versions() -> dict[str, str | None]:
    """Python's and :data:`RECORDED_PACKAGES`' installed versions (None for one not installed),
    read from the installed metadata (nothing is imported)."""
    import importlib.metadata as md
    import platform

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy's legacy global RNG and torch (CPU and CUDA).

    Call once per notebook. Library functions never call this: they take
    ``random_state`` / ``rng`` arguments instead.
    """
    seed = int(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # torch is a core dependency, but seeding must not require it
        return
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
