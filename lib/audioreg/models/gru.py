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
from .._pandas import pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from audioreg.params import estimator_settings

from audioreg.targets import TARGETS

from .coding import TargetCoding
from .network import GRUConfig
from .train import (TrainConfig, checkpoint_coding, history_frame, load_best_checkpoint, load_checkpoint,
                    predict_table, train_gru)

#: Share of the training tracks held out for validation when ``fit`` gets no ``eval_set``.
HOLDOUT_FRACTION = 0.15


class GRURegressor(RegressorMixin, BaseEstimator):
    """Stacked GRU over frame sequences, trained with Adam on coded, z-scored targets.

    Plain by default (the 11 targets regressed as numbers); ``key_classes``,
    ``meter_classes``, ``tempo_log2``, ``per_target_heads``, ``loss_weights`` and
    ``key_rotation`` make it target-aware (:mod:`audioreg.models.coding`). Labels may be
    missing (NaN): the loss leaves them out and trains the other targets of the row.

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
    key_classes : bool
        Key and mode as 24 classes (cross-entropy) instead of the key regressed as a number.
    meter_classes : bool
        time_signature as 5 classes (3-7) instead of a number.
    tempo_log2 : bool
        Tempo regressed as log2(BPM).
    per_target_heads : bool
        One small MLP head per target on the shared GRU trunk instead of one linear head.
    loss_weights : str
        Per-target loss weights, ``"tempo:2,key:0.5"`` (others weigh 1).
    key_rotation : bool
        Key-rotation augmentation (chroma bins rotated, tonnetz recomputed, the key moved).
    amp : bool
        bfloat16 mixed precision when training on CUDA.
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
        One row per epoch: epoch, train_loss, val_loss, lr, seconds, is_best, and the validation
        loss of each target alone, ``val_<target>`` (:func:`audioreg.models.train.history_frame`).
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
        key_classes: bool = False,
        meter_classes: bool = False,
        tempo_log2: bool = False,
        per_target_heads: bool = False,
        loss_weights: str = "",
        key_rotation: bool = False,
        amp: bool = False,
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
        self.key_classes = key_classes
        self.meter_classes = meter_classes
        self.tempo_log2 = tempo_log2
        self.per_target_heads = per_target_heads
        self.loss_weights = loss_weights
        self.key_rotation = key_rotation
        self.amp = amp
        self.random_state = random_state
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.progress = progress

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **overrides) -> "GRURegressor":
        """The estimator a run's merged parameters describe (``seed`` is its ``random_state``)."""
        return cls(**{**estimator_settings(cls, params), **overrides})

    def coding(self) -> TargetCoding:
        """How these settings code the targets."""
        return TargetCoding(key_classes=self.key_classes, meter_classes=self.meter_classes,
                            tempo_log2=self.tempo_log2, loss_weights=self.loss_weights)

    def configs(self, *, n_features: int) -> tuple[GRUConfig, TrainConfig]:
        """The network and training configurations these settings make, for data of this width."""
        heads = self.coding().head_sizes
        net = GRUConfig(n_features=n_features, n_outputs=sum(heads), hidden_size=self.hidden_size,
                        num_layers=self.num_layers, dropout=self.dropout, layer_norm=self.layer_norm,
                        heads=heads, per_target_heads=self.per_target_heads)
        train = TrainConfig(lr=self.lr, weight_decay=self.weight_decay, epochs=self.epochs,
                            batch_size=self.batch_size, frame_pool=self.frame_pool,
                            grad_clip=self.grad_clip or None, random_state=self.random_state,
                            key_rotation=self.key_rotation, amp=self.amp)
        return net, train

    def fit(self, X: Sequence[np.ndarray], y: np.ndarray, *,
            eval_set: tuple[Sequence[np.ndarray], np.ndarray] | None = None,
            params: Mapping[str, Any] | None = None) -> "GRURegressor":
        """Train on frame sequences ``X`` (each ``[t_i, d]``) and raw targets ``y``: ``[n, 11]``
        in TARGETS order, or ``[n, 12]`` with the mode (1 major, 0 minor) last; NaN: missing.

        ``X`` may carry ``columns``, the names of its columns past the 46 frame features (as
        :class:`audioreg.models.inputs.TrackSequences` does): key rotation rotates expert key inputs.
        The checkpoint kept is the epoch with the lowest loss on ``eval_set``; without one,
        :data:`HOLDOUT_FRACTION` of ``X`` (drawn with ``random_state``) is held out for it.
        ``params`` (the merged run parameters) are stored in every checkpoint.
        """
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 2 or len(y) != len(X) or len(X) == 0:
            raise ValueError(f"expected {len(X)} sequences and targets [n, 11 or 12] with the same n > 0, got {y.shape}")
        if eval_set is None:
            if len(X) < 2:
                raise ValueError("at least 2 training tracks are needed to hold some out for validation")
            order = np.random.default_rng(self.random_state).permutation(len(X))
            n_val = max(1, int(round(HOLDOUT_FRACTION * len(X))))
            val, tr = order[:n_val], order[n_val:]
            eval_set = ([X[i] for i in val], y[val])
            X, y = [X[i] for i in tr], y[tr]
        columns = getattr(X, "columns", None)
        net, train = self.configs(n_features=int(X[0].shape[1]))
        folder = self.checkpoint_dir if self.checkpoint_dir is not None else tempfile.mkdtemp(prefix="audioreg-gru-")
        result = train_gru(X, y, eval_set[0], eval_set[1], net=net, config=train, checkpoint_dir=folder,
                           coding=self.coding(), columns=columns, params=params, device=self.device,
                           resume=self.resume, progress=self.progress)
        self.net_, self.checkpoint_ = load_checkpoint(result.best_checkpoint, device="cpu")
        self.history_, self.best_epoch_ = result.history, result.best_epoch
        self.best_checkpoint_, self.last_checkpoint_ = result.best_checkpoint, result.last_checkpoint
        self.n_features_in_, self.n_outputs_ = net.n_features, net.n_outputs
        return self

    def predict(self, X: Sequence[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
        """``[n, 11]`` predictions in raw target units, TARGETS order (:meth:`predict_table`'s)."""
        return self.predict_table(X, batch_size=batch_size)[list(TARGETS)].to_numpy(dtype=np.float64)

    def predict_table(self, X: Sequence[np.ndarray], *, batch_size: int = 32) -> pd.DataFrame:
        """The 11 targets in Spotify's units and encodings, ``mode`` and the class probabilities
        (``key_prob``, ``mode_prob``, ``time_signature_prob``; NaN for a target regressed as a number)."""
        check_is_fitted(self, "net_")
        return predict_table((self.net_, self.checkpoint_), X, batch_size=batch_size, device=self.device)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, device: str = "auto") -> "GRURegressor":
        """A fitted estimator from a ``best.pt`` (or ``last.pt``) that :meth:`fit` wrote.

        A ``best.pt`` is checked against the ``last.pt`` beside it and rebuilt from it where
        ``last.pt`` holds the best epoch (:func:`~audioreg.models.train.load_best_checkpoint`);
        where the best epoch's weights are lost, :class:`~audioreg.models.train.CheckpointError`
        says to fit again (``resume=True`` trains the folder's run anew).
        """
        load = load_best_checkpoint if Path(path).name == "best.pt" else load_checkpoint
        net, checkpoint = load(path, device="cpu")
        settings = {**checkpoint["model_config"], **checkpoint["train_config"],
                    **checkpoint_coding(checkpoint).as_dict()}
        est = cls(**{k: settings[k] for k in cls._get_param_names() if k in settings},
                  device=device, checkpoint_dir=str(Path(path).parent))
        est.net_, est.checkpoint_ = net, checkpoint
        est.history_ = history_frame(checkpoint["history"])
        est.best_epoch_ = int(checkpoint["best_epoch"])
        est.best_checkpoint_ = est.last_checkpoint_ = Path(path)
        est.n_features_in_, est.n_outputs_ = net.config.n_features, net.config.n_outputs
        return est
