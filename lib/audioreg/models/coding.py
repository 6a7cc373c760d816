"""How the GRU sees each target: coded for training, and decoded back to Spotify's units.

Plain coding regresses the 11 targets z-scored, as numbers. Target-aware coding, each part
switched by its own setting of :class:`audioreg.models.GRURegressor`:

- ``key_classes``: key and mode as 24 classes (major C..B, then minor C..B) with a
  cross-entropy loss; a row whose mode is unknown is scored on its key alone (the two
  classes of that tonic, summed);
- ``meter_classes``: time_signature as 5 classes (3..7) with a cross-entropy loss;
- ``tempo_log2``: tempo regressed as log2(BPM), so that an octave is the same error at any tempo;
- ``loss_weights``: a weight per target (``"tempo:2,key:0.5"``); the loss is the weighted mean
  of the targets' losses.

The loss is masked: a missing label (NaN) leaves that target out of the row's loss and keeps
the others. With plain coding, no weights and every label present, it is the MSE over all
z-scored targets.

The coded label matrix (before z-scoring) holds the regression targets in
:data:`audioreg.targets.TARGETS` order (tempo as log2 with ``tempo_log2``), then ``key`` and
``mode`` (with ``key_classes``), then the meter's class index (with ``meter_classes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
from .._pandas import pd
import torch
from torch.nn import functional as nnf

from audioreg.targets import TARGETS

#: Meters of the meter classes (Spotify's documented range).
METERS = (3, 4, 5, 6, 7)
#: Columns :meth:`TargetCoding.decode` adds to the 11 targets.
EXTRA_COLUMNS = ("mode", "key_prob", "mode_prob", "time_signature_prob")


def parse_loss_weights(text: str) -> dict[str, float]:
    """``"tempo:2, key:0.5"`` as ``{"tempo": 2.0, "key": 0.5}`` (targets not named weigh 1)."""
    weights = {}
    for part in filter(None, (p.strip() for p in str(text or "").split(","))):
        name, sep, value = part.partition(":")
        name = name.strip()
        if not sep or name not in TARGETS:
            raise ValueError(f"loss_weights: {part!r} is not <target>:<weight> with a target among {', '.join(TARGETS)}")
        try:
            weights[name] = float(value)
        except ValueError:
            raise ValueError(f"loss_weights: {part!r}: the weight is not a number") from None
        if not np.isfinite(weights[name]) or weights[name] < 0:
            raise ValueError(f"loss_weights: {part!r}: a weight must be finite and >= 0")
    return weights


@dataclass(frozen=True)
class TargetCoding:
    """Which targets are classes, how tempo is regressed, and each target's weight in the loss."""

    key_classes: bool = False
    meter_classes: bool = False
    tempo_log2: bool = False
    loss_weights: str = ""
    weights: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in ("key_classes", "meter_classes", "tempo_log2"):
            object.__setattr__(self, name, bool(getattr(self, name)))
        object.__setattr__(self, "loss_weights", str(self.loss_weights or ""))
        object.__setattr__(self, "weights", parse_loss_weights(self.loss_weights))

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "weights"}

    # ----------------------------------------------------------------- layout
    @property
    def regressed(self) -> tuple[str, ...]:
        """Targets regressed as numbers, in TARGETS order."""
        classed = {"key"} if self.key_classes else set()
        classed |= {"time_signature"} if self.meter_classes else set()
        return tuple(t for t in TARGETS if t not in classed)

    @property
    def columns(self) -> tuple[str, ...]:
        """The coded label columns."""
        return self.regressed + (("key", "mode") if self.key_classes else ()) + (
            ("time_signature",) if self.meter_classes else ())

    @property
    def heads(self) -> tuple[tuple[str, int], ...]:
        """The network's outputs, in order: ``(target, size)`` (1 per regressed target, 24 logits
        for key and mode, 5 for the meter)."""
        return tuple((t, 1) for t in self.regressed) + ((("key", 24),) if self.key_classes else ()) + (
            (("time_signature", len(METERS)),) if self.meter_classes else ())

    @property
    def head_sizes(self) -> tuple[int, ...]:
        """The sizes of :attr:`heads`, as :class:`~audioreg.models.network.GRUConfig` takes them."""
        return tuple(size for _, size in self.heads)

    @property
    def n_outputs(self) -> int:
        return sum(self.head_sizes)

    # ----------------------------------------------------------------- coding
    def encode(self, y: np.ndarray, mode: np.ndarray | None = None) -> np.ndarray:
        """Coded labels ``[n, len(columns)]`` (float64, NaN where a label is missing or not valid
        for its coding: a key of -1, a meter outside 3..7, a tempo <= 0 in log2).

        Parameters
        ----------
        y : np.ndarray [shape=(n, 11)]
            Raw targets in TARGETS order (NaN: missing).
        mode : np.ndarray [shape=(n,)] or None
            1 major, 0 minor, NaN unknown; None: unknown everywhere.
        """
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 2 or y.shape[1] != len(TARGETS):
            raise ValueError(f"expected targets [n, {len(TARGETS)}], got {y.shape}")
        col = {t: y[:, j] for j, t in enumerate(TARGETS)}
        out = []
        for t in self.regressed:
            v = col[t].copy()
            if t == "tempo" and self.tempo_log2:
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = np.where(v > 0, np.log2(v), np.nan)
            out.append(v)
        if self.key_classes:
            key = col["key"]
            out.append(np.where((key >= 0) & (key <= 11) & (key == np.round(key)), key, np.nan))
            m = np.full(len(y), np.nan) if mode is None else np.asarray(mode, dtype=np.float64)
            out.append(np.where(np.isin(m, (0.0, 1.0)), m, np.nan))
        if self.meter_classes:
            ts = col["time_signature"]
            out.append(np.where(np.isin(ts, METERS), ts - METERS[0], np.nan))
        return np.stack(out, axis=1)

    def fit(self, coded: np.ndarray) -> dict[str, np.ndarray]:
        """Target normalizers of coded training labels: the regressed columns' mean and standard
        deviation over their labelled rows (:func:`audioreg.models.train.target_normalizers`);
        the class columns get mean 0 and std 1 (left as is)."""
        from audioreg.models.train import target_normalizers

        coded = np.asarray(coded, dtype=np.float64)
        n_class = coded.shape[1] - len(self.regressed)
        reg = target_normalizers(coded[:, : len(self.regressed)])
        return {"target_mean": np.concatenate([reg["target_mean"], np.zeros(n_class)]),
                "target_std": np.concatenate([reg["target_std"], np.ones(n_class)])}

    def rotate(self, coded_row: np.ndarray, semitones: int) -> np.ndarray:
        """A coded (not z-scored) label row for the same audio ``semitones`` higher: the key moves."""
        out = np.array(coded_row, copy=True)
        j = self.columns.index("key")
        if np.isfinite(out[j]):
            out[j] = (out[j] + semitones) % 12
        return out

    # ----------------------------------------------------------------- loss
    def loss_terms(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-target summed losses and labelled counts of a batch, ``([n_targets], [n_targets])``
        in :attr:`heads` order: squared z-errors for regressed targets, negative log-likelihoods
        for classes. ``out``: the network's outputs; ``y``: z-scored coded labels, NaN missing."""
        sums, counts = [], []
        n_reg = len(self.regressed)
        pred, ref = out[:, :n_reg].float(), y[:, :n_reg]
        mask = torch.isfinite(ref)
        se = torch.where(mask, (pred - torch.nan_to_num(ref)) ** 2, torch.zeros_like(pred))
        sums.append(se.sum(dim=0))
        counts.append(mask.sum(dim=0).to(pred.dtype))
        start, col = n_reg, n_reg
        if self.key_classes:
            logp = nnf.log_softmax(out[:, start:start + 24].float(), dim=1)
            key, mode = y[:, col], y[:, col + 1]
            known = torch.isfinite(key)
            k = torch.nan_to_num(key).long().clamp(0, 11)
            major, minor = logp.gather(1, k[:, None])[:, 0], logp.gather(1, (k + 12)[:, None])[:, 0]
            ll = torch.where(mode == 1, major, torch.where(mode == 0, minor, torch.logaddexp(major, minor)))
            sums.append(torch.where(known, -ll, torch.zeros_like(ll)).sum()[None])
            counts.append(known.sum()[None].to(ll.dtype))
            start, col = start + 24, col + 2
        if self.meter_classes:
            logp = nnf.log_softmax(out[:, start:start + len(METERS)].float(), dim=1)
            ts = y[:, col]
            known = torch.isfinite(ts)
            ll = logp.gather(1, torch.nan_to_num(ts).long().clamp(0, len(METERS) - 1)[:, None])[:, 0]
            sums.append(torch.where(known, -ll, torch.zeros_like(ll)).sum()[None])
            counts.append(known.sum()[None].to(ll.dtype))
        return torch.cat(sums), torch.cat(counts)

    def combine(self, sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """The loss: the weighted mean over targets of each target's mean loss (targets without a
        label in ``counts`` are left out)."""
        w = torch.tensor([self.weights.get(t, 1.0) for t, _ in self.heads], dtype=sums.dtype, device=sums.device)
        w = torch.where(counts > 0, w, torch.zeros_like(w))
        per_target = sums / counts.clamp(min=1)
        total = w.sum()
        if float(total) == 0.0:
            return (sums * 0).sum()
        return (w * per_target).sum() / total

    # ----------------------------------------------------------------- decoding
    def decode(self, z: np.ndarray, normalizers: Mapping[str, np.ndarray]) -> pd.DataFrame:
        """Network outputs ``[n, n_outputs]`` as Spotify's units and encodings: the 11 targets
        (key 0-11, time_signature 3-7, tempo in BPM), ``mode`` (1/0; NaN without key classes)
        and the predicted class's probability for key, mode and time_signature (NaN when
        the target is regressed)."""
        z = np.asarray(z, dtype=np.float64)
        n, n_reg = len(z), len(self.regressed)
        mean = np.asarray(normalizers["target_mean"], dtype=np.float64)[:n_reg]
        std = np.asarray(normalizers["target_std"], dtype=np.float64)[:n_reg]
        df = pd.DataFrame(np.nan, index=range(n), columns=list(TARGETS) + list(EXTRA_COLUMNS))
        reg = z[:, :n_reg] * std + mean
        for j, t in enumerate(self.regressed):
            df[t] = 2.0 ** reg[:, j] if t == "tempo" and self.tempo_log2 else reg[:, j]
        start = n_reg
        if self.key_classes:
            p = _softmax(z[:, start:start + 24])
            best = p.argmax(axis=1)
            key, mode = best % 12, 1 - best // 12
            df["key"], df["mode"] = key.astype(float), mode.astype(float)
            df["key_prob"] = p[np.arange(n), key] + p[np.arange(n), key + 12]
            df["mode_prob"] = np.where(mode == 1, p[:, :12].sum(axis=1), p[:, 12:].sum(axis=1))
            start += 24
        if self.meter_classes:
            p = _softmax(z[:, start:start + len(METERS)])
            df["time_signature"] = np.asarray(METERS, dtype=float)[p.argmax(axis=1)]
            df["time_signature_prob"] = p.max(axis=1)
        return df


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
