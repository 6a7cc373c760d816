"""The stacked GRU over frame sequences (a torch module); its training loop is :mod:`audioreg.models.train`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class GRURegressor(nn.Module):
    """Stacked GRU over frame sequences with a pooled regression head.

    Pooling: the top GRU layer's outputs are averaged over each track's valid time steps
    (masked mean) and concatenated with the last valid hidden state of that layer, giving a
    ``2 * hidden_size`` vector; then LayerNorm (optional), dropout and a linear head.
    The GRU is unidirectional (causal) and pooling is masked to each track's length, so
    values beyond a track's length never influence its output.

    Parameters
    ----------
    n_features : int
        Features per frame.
    hidden_size : int
        GRU hidden units per layer.
    num_layers : int
        Stacked GRU layers.
    dropout : float
        Dropout between GRU layers (only when ``num_layers > 1``) and before the head.
    n_outputs : int
        Regression outputs.
    layer_norm : bool
        Apply LayerNorm to the pooled vector.
    """

    def __init__(
        self,
        *,
        n_features: int = 46,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.3,
        n_outputs: int = 11,
        layer_norm: bool = True,
    ) -> None:
        super().__init__()
        self.config = {
            "n_features": int(n_features),
            "hidden_size": int(hidden_size),
            "num_layers": int(num_layers),
            "dropout": float(dropout),
            "n_outputs": int(n_outputs),
            "layer_norm": bool(layer_norm),
        }
        self.gru = nn.GRU(
            input_size=n_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        pooled = 2 * hidden_size
        self.norm = nn.LayerNorm(pooled) if layer_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(pooled, n_outputs)

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
        return self.head(self.dropout(self.norm(pooled)))
