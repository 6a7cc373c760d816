"""What the models read beside their estimator: a split table's frame features and
track-level inputs, assembled the same way for training, evaluation and ``audioreg predict``.

Light on purpose (numpy and the table only): a one-file prediction imports it without the
extraction machinery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def sequences(table: pd.DataFrame) -> list[np.ndarray]:
    """Memory-mapped ``[t, 46]`` feature matrices, in table order (nothing is read yet)."""
    return [np.load(p, mmap_mode="r") for p in table["file"]]


#: Track-level model inputs beside the frame features: the file's integrated loudness over its
#: original channels (``lufs``, measured at ingest), which the mono frame features cannot see.
TRACK_FEATURES = ("lufs",)


def expert_columns() -> tuple[str, ...]:
    """The split table's expert columns a model may take as inputs (``dsp_log2_tempo``, ``dsp_key_r0..23``)."""
    from ..features.experts import FEATURES

    return tuple(f"dsp_{name}" for name in FEATURES)


def track_inputs(table: pd.DataFrame, *, experts: bool = False) -> pd.DataFrame:
    """The track-level inputs: :data:`TRACK_FEATURES`, and with ``experts`` the
    :func:`expert_columns` (a track the experts failed on gets 120 BPM and zero key correlations)."""
    from ..features.experts import NO_BEAT_BPM

    cols = list(TRACK_FEATURES) + (list(expert_columns()) if experts else [])
    out = table.reindex(columns=cols).astype(np.float64)
    if experts:
        out = out.fillna({"dsp_log2_tempo": float(np.log2(NO_BEAT_BPM))}).fillna(0.0)
    return out



class TrackSequences(Sequence):
    """The GRU's inputs: each track's ``[t, 46]`` frames with its :func:`track_inputs`
    appended to every frame (``[t, 47]``, or ``[t, 72]`` with ``experts``), read from its
    memmap when indexed (or from ``arrays``, frames already in memory, one per row).
    ``columns`` names the appended columns."""

    def __init__(self, table: pd.DataFrame, *, experts: bool = False, arrays: Sequence[np.ndarray] | None = None) -> None:
        self._frames = sequences(table) if arrays is None else list(arrays)
        inputs = track_inputs(table, experts=experts)
        self.columns = list(inputs.columns)
        self._track = inputs.to_numpy(dtype=np.float32)

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        x = np.asarray(self._frames[i], dtype=np.float32)
        return np.hstack([x, np.broadcast_to(self._track[i], (x.shape[0], self._track.shape[1]))])

