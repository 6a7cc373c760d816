"""The data layer: decoding audio, measuring its loudness, reading metadata (and the public tables' layouts),
linking rows to files, splits.

Imports nothing from the layers above (synth, features, models, judge, the top).
"""

from .._lazy import attach

__getattr__, __all__ = attach(__name__, ("audio", "dedup", "fetch", "linking", "loudness", "metadata", "split", "tables"))
