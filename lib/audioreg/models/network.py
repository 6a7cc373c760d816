"""The stacked GRU network over frame sequences (a torch module) and its configuration.

The estimator users fit is :class:`audioreg.models.gru.GRURegressor`; the training loop
and checkpoints are in :mod:`audioreg.models.train`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class GRUConfig:
    """Everything that fixes the network's shape: built once, stored in every checkpoint.

    The defaults of the settings live in :class:`audioreg.models.gru.GRURegressor`;
    ``n_features`` and ``n_outputs`` come from the data.
    """

    n_features: int
    n_outputs: int
    hidden_size: int
    num_layers: int
    dropout: float
    layer_norm: bool
    heads: tuple[int, ...] = ()
    per_target_heads: bool = False

    def __post_init__(self):
        for name, kind in (("n_features", int), ("n_outputs", int), ("hidden_size", int), ("num_layers", int),
                           ("dropout", float), ("layer_norm", bool), ("per_target_heads", bool)):
            object.__setattr__(self, name, kind(getattr(self, name)))
        object.__setattr__(self, "heads", tuple(int(h) for h in self.heads) or (self.n_outputs,))
        if sum(self.heads) != self.n_outputs or min(self.heads) < 1:
            raise ValueError(f"heads {self.heads} must be positive sizes summing to n_outputs={self.n_outputs}")
        if self.n_features < 1 or self.n_outputs < 1 or self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError(f"sizes must be >= 1: {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")

    def as_dict(self) -> dict:
        return asdict(self)


#: Hidden units of each per-target head (at most the GRU's width).
HEAD_HIDDEN = 64


class GRUNet(nn.Module):
    """Stacked GRU over frame sequences with a pooled regression head (or one head per target).

    Pooling: the top GRU layer's outputs are averaged over each track's valid time steps
    (masked mean) and concatenated with the last valid hidden state of that layer, giving a
    ``2 * hidden_size`` vector; then LayerNorm (optional), dropout and a linear head.
    The GRU is unidirectional (causal) and pooling is masked to each track's length, so
    values beyond a track's length never influence its output.

    Parameters
    ----------
    config : GRUConfig
        ``n_features`` per frame; ``hidden_size`` GRU units per layer; ``num_layers`` stacked
        layers; ``dropout`` between GRU layers (only when ``num_layers > 1``) and before the
        head; ``n_outputs`` regression outputs; ``layer_norm`` on the pooled vector.
    """

    def __init__(self, config: GRUConfig) -> None:
        super().__init__()
        self.config = config
        self.gru = nn.GRU(
            input_size=config.n_features,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        pooled = 2 * config.hidden_size
        self.norm = nn.LayerNorm(pooled) if config.layer_norm else nn.Identity()
        self.dropout = nn.Dropout(config.dropout)
        if config.per_target_heads:
            width = min(HEAD_HIDDEN, config.hidden_size)
            self.heads = nn.ModuleList(nn.Sequential(nn.Linear(pooled, width), nn.ReLU(), nn.Linear(width, size))
                                       for size in config.heads)
        else:
            self.head = nn.Linear(pooled, config.n_outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Predict from a zero- (or anything-) padded batch.

        Parameters
        ----------
        x : torch.Tensor [shape=(batch, time, n_features)]
        lengths : torch.Tensor or sequence of int [shape=(batch,)]
            Valid time steps of each track, ``1 <= lengths[i] <= time``.

        Returns
        -------
        y : torch.Tensor [shape=(batch, n_outputs)]
        """
        lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
        if lengths.ndim != 1 or len(lengths) != x.shape[0]:
            raise ValueError(f"lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
        if int(lengths.min()) < 1 or int(lengths.max()) > x.shape[1]:
            raise ValueError(f"lengths must lie in [1, {x.shape[1]}]")
        # The GRU runs over the padded batch: it is causal, so outputs at valid steps never see the
        # padding after them. (Packed sequences give the same values, but their CPU backward pass
        # grows with the square of the length in torch 2.x: 8 s instead of 1 s at 1292 steps.)
        outputs, _ = self.gru(x[:, : int(lengths.max())])
        steps = torch.arange(outputs.shape[1], device=outputs.device)
        valid = (steps.unsqueeze(0) < lengths.to(outputs.device).unsqueeze(1)).unsqueeze(2)
        mean = (outputs * valid).sum(dim=1) / lengths.to(outputs.device, outputs.dtype).unsqueeze(1)
        last = outputs[torch.arange(outputs.shape[0], device=outputs.device), lengths.to(outputs.device) - 1]
        pooled = torch.cat([mean, last], dim=1)
        h = self.dropout(self.norm(pooled))
        if self.config.per_target_heads:
            return torch.cat([head(h) for head in self.heads], dim=1)
        return self.head(h)
