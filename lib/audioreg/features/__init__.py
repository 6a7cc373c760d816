"""The features layer: pure feature functions, the one-pass frame features (``frames``, whose
compiled loops are ``kernels``), the naive reference, the torch batch path, the expert (DSP)
estimators of tempo and key, the extraction driver and the compiled-code cache guard.

``audioreg.features.extract_features`` and the settings (``SR``, ``N_FEATURES``...) come
from :mod:`audioreg.features.frames`; the rest are submodules, imported on first use.
"""

from .._lazy import attach

_FRAMES = ("BLOCKS", "BLOCK_FRAMES", "FEATURE_VERSION", "HOP_LENGTH", "KEEP_POWER_FRAMES", "N_CHROMA",
           "N_CONTRAST_BANDS", "N_FEATURES", "N_FFT", "N_MELS", "N_MFCC", "SR", "TOLERANCES", "extract_features",
           "feature_names", "feature_params", "n_frames")

__getattr__, __all__ = attach(
    __name__,
    ("experts", "extract", "frames", "kernels", "numba_cache", "reference", "torch_batch"),
    {**{name: "frames" for name in _FRAMES}, "reference_features": "reference"},
)
