"""The data layer: decoding audio, reading metadata, linking rows to files, splits.

Imports nothing from the layers above (features, models, judge, the top).
"""

from .._lazy import attach

__getattr__, __all__ = attach(__name__, ("audio", "linking", "metadata", "split"))
