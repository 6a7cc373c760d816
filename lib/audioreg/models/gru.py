"""The GRU as a scikit-learn-style estimator: settings in ``__init__``, ``fit`` returns self,
learned attributes end in ``_``, ``predict`` gives raw target units.

It reads like notebook 04's :class:`audioreg.models.ForestRegressor`; the network is
:class:`audioreg.models.network.GRUNet` and the loop :func:`audioreg.models.train.train_gru`.
The settings' defaults are written here, once.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from audioreg.params import estimator_settings

from .network import GRUConfig
from .train import HISTORY_COLUMNS, TrainConfig, load_checkpoint, predict_gru, train_gru

#: Share of the training tracks held out for validation when ``fit`` gets no ``eval_set``.
HOLDOUT_FRACTION = 0.15


class GRURegressor(RegressorMixin, BaseEstimator):
    """Stacked GRU over frame sequences, trained with Adam on z-scored targets.

    Parameters
    ----------
    hidden_size : int
        GRU units per layer.
    num_layers : int
        Stacked GRU layers.
    dropout : float
        Between GRU layers and before the head.
    layer_norm : bool
        Layer norm on the pooled GRU output.
    lr, weight_decay : float
        Adam settings.
    epochs : int
        Training epochs (a finished checkpoint folder resumes as a no-op).
    batch_size : int
        Tracks per batch, bucketed by length.
    frame_pool : int
        Frames averaged per GRU step (8: about 5.4 steps per second).
    grad_clip : float or None
        Gradient norm clip; None or 0 disables it.
    random_state : int
        Seeds weight init, the random masks and batch order.
    device : str
        ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
    checkpoint_dir : path-like or None
        Where ``last.pt``, ``best.pt`` and ``history.csv`` go; None: a new temporary folder.
    resume : bool
        Continue the last checkpoint in ``checkpoint_dir`` when there is one.
    progress : bool
        Progress bars over batches.

    Attributes
    ----------
    net_ : GRUNet
        The network of the best validation epoch, on the CPU, in eval mode.
    checkpoint_ : dict
        That epoch's checkpoint (normalizers, configs, history, run parameters).
    history_ : pandas.DataFrame
        One row per epoch: epoch, train_loss, val_loss, lr, seconds, is_best.
    best_epoch_ : int
    best_checkpoint_, last_checkpoint_ : Path
    n_features_in_, n_outputs_ : int
    """

    #: Settings that change how a fit runs, not what it learns: left out of the key that names
    #: a fit's folder (epochs too: a longer run resumes a shorter one's checkpoint).
    RUN_SETTINGS = ("epochs", "device", "checkpoint_dir", "resume", "progress")

    def __init__(
        self,
        *,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.3,
        layer_norm: bool = True,
        lr: float = 0.001,
        weight_decay: float = 0.0,
        epochs: int = 20,
        batch_size: int = 16,
        frame_pool: int = 8,
        grad_clip: float | None = 1.0,
        random_state: int = 0,
        device: str = "auto",
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = True,
        progress: bool = False,
    ) -> None:
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.layer_norm = layer_norm
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.frame_pool = frame_pool
        self.grad_clip = grad_clip
        self.random_state = random_state
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.progress = progress

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **overrides) -> "GRURegressor":
        """The estimator a run's merged parameters describe (``seed`` is its ``random_state``)."""
        return cls(**{**estimator_settings(cls, params), **overrides})

    def configs(self, *, n_features: int, n_outputs: int) -> tuple[GRUConfig, TrainConfig]:
        """The network and training configurations these settings make, for data of this shape."""
        net = GRUConfig(n_features=n_features, n_outputs=n_outputs, hidden_size=self.hidden_size,
                        num_layers=self.num_layers, dropout=self.dropout, layer_norm=self.layer_norm)
        train = TrainConfig(lr=self.lr, weight_decay=self.weight_decay, epochs=self.epochs,
                            batch_size=self.batch_size, frame_pool=self.frame_pool,
                            grad_clip=self.grad_clip or None, random_state=self.random_state)
        return net, train

    def fit(self, X: Sequence[np.ndarray], y: np.ndarray, *,
            eval_set: tuple[Sequence[np.ndarray], np.ndarray] | None = None,
            params: Mapping[str, Any] | None = None) -> "GRURegressor":
        """Train on frame sequences ``X`` (each ``[t_i, d]``) and raw targets ``y`` ``[n, k]``.

        The checkpoint kept is the epoch with the lowest loss on ``eval_set``; without one,
        :data:`HOLDOUT_FRACTION` of ``X`` (drawn with ``random_state``) is held out for it.
        ``params`` (the merged run parameters) are stored in every checkpoint.
        """
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 2 or len(y) != len(X) or len(X) == 0:
            raise ValueError(f"expected {len(X)} sequences and targets [n, k] with the same n > 0, got {y.shape}")
        if eval_set is None:
            if len(X) < 2:
                raise ValueError("at least 2 training tracks are needed to hold some out for validation")
            order = np.random.default_rng(self.random_state).permutation(len(X))
            n_val = max(1, int(round(HOLDOUT_FRACTION * len(X))))
            val, tr = order[:n_val], order[n_val:]
            eval_set = ([X[i] for i in val], y[val])
            X, y = [X[i] for i in tr], y[tr]
        net, train = self.configs(n_features=int(X[0].shape[1]), n_outputs=int(y.shape[1]))
        folder = self.checkpoint_dir if self.checkpoint_dir is not None else tempfile.mkdtemp(prefix="audioreg-gru-")
        result = train_gru(X, y, eval_set[0], eval_set[1], net=net, config=train, checkpoint_dir=folder,
                           params=params, device=self.device, resume=self.resume, progress=self.progress)
        self.net_, self.checkpoint_ = load_checkpoint(result.best_checkpoint, device="cpu")
        self.history_, self.best_epoch_ = result.history, result.best_epoch
        self.best_checkpoint_, self.last_checkpoint_ = result.best_checkpoint, result.last_checkpoint
        self.n_features_in_, self.n_outputs_ = net.n_features, net.n_outputs
        return self

    def predict(self, X: Sequence[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
        """``[n, k]`` predictions in raw target units (the training normalizers undone)."""
        check_is_fitted(self, "net_")
        return predict_gru((self.net_, self.checkpoint_), X, batch_size=batch_size, device=self.device)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, device: str = "auto") -> "GRURegressor":
        """A fitted estimator from a ``best.pt`` (or ``last.pt``) that :meth:`fit` wrote."""
        net, checkpoint = load_checkpoint(path, device="cpu")
        settings = {**checkpoint["model_config"], **checkpoint["train_config"]}
        est = cls(**{k: settings[k] for k in cls._get_param_names() if k in settings},
                  device=device, checkpoint_dir=str(Path(path).parent))
        est.net_, est.checkpoint_ = net, checkpoint
        est.history_ = pd.DataFrame(checkpoint["history"], columns=list(HISTORY_COLUMNS))
        est.best_epoch_ = int(checkpoint["best_epoch"])
        est.best_checkpoint_ = est.last_checkpoint_ = Path(path)
        est.n_features_in_, est.n_outputs_ = net.config.n_features, net.config.n_outputs
        return est
