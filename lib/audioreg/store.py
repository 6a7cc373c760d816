"""The run's artifact store: predictions, training histories, checkpoint folders and metrics.json under ``runs/<run_id>/``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import atomic
from .judge import report
from .params import digest, load_yaml
from .stages import MissingArtifactError, config
from .targets import TARGETS


MODEL_DIRS = {"random forest": "rf", "GRU": "gru"}


def save_predictions(params, model: str, table: pd.DataFrame, pred: np.ndarray, *, extra: dict | None = None) -> Path:
    """Write a model's predictions for ``table``'s rows to ``runs/<run_id>/<model>/``.

    ``predictions.csv`` holds track_id, split, and ``true_<target>`` / ``pred_<target>``
    per target; ``params.json`` the merged parameters (plus ``extra``).
    """
    cfg = config(params)
    out = cfg.run_dir / MODEL_DIRS.get(model, model)
    out.mkdir(parents=True, exist_ok=True)
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape != (len(table), len(TARGETS)):
        raise ValueError(f"predictions of shape {pred.shape} do not match {len(table)} rows x {len(TARGETS)} targets")
    df = table[["track_id", "split"]].copy()
    for j, t in enumerate(TARGETS):
        df[f"true_{t}"] = table[t].to_numpy(dtype=np.float64)
        df[f"pred_{t}"] = pred[:, j]
    atomic.write_csv(out / "predictions.csv", df)
    atomic.write_json(out / "params.json", {"model": model, "params": cfg.params, **(extra or {})})
    return out / "predictions.csv"


def load_predictions(params, *, split_name: str = "test") -> dict[str, pd.DataFrame]:
    """Predictions of every model saved under ``runs/<run_id>/``, one frame per model."""
    cfg = config(params)
    out = {}
    for model, sub in MODEL_DIRS.items():
        path = cfg.run_dir / sub / "predictions.csv"
        if path.is_file():
            df = pd.read_csv(path, dtype={"track_id": str})
            out[model] = df[df["split"] == split_name].reset_index(drop=True)
    if not out:
        raise MissingArtifactError(
            f"no model predictions in {cfg.run_dir}: run `audioreg run` (or notebooks 04_rf and 05_gru with run_id={cfg['run_id']}) first"
        )
    return out


def prediction_matrix(df: pd.DataFrame, prefix: str = "pred_") -> np.ndarray:
    """``[n, 11]`` columns ``<prefix><target>`` of a predictions frame."""
    return df[[f"{prefix}{t}" for t in TARGETS]].to_numpy(dtype=np.float64)


def gru_checkpoint_dir(params, split_key: str) -> Path:
    """Checkpoint folder of one GRU configuration: resumable, and never reused by other settings."""
    cfg = config(params)
    keys = ("hidden_size", "num_layers", "dropout", "layer_norm", "lr", "weight_decay", "batch_size", "frame_pool",
            "grad_clip", "seed")  # not epochs: a longer run resumes the shorter one
    key = digest({"split": split_key, **{k: cfg.params.get(k) for k in keys}})
    return cfg.run_dir / "gru" / f"ckpt-{key}"


def aligned_predictions(params, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each saved model's ``[n, 11]`` predictions for exactly ``table``'s rows, in its order.

    Raises if a model's saved rows differ from ``table`` (it was trained on another split).
    """
    out = {}
    for model, df in load_predictions(params).items():
        by_id = df.set_index("track_id")
        missing = [t for t in table["track_id"] if t not in by_id.index]
        if missing or len(by_id) != len(table):
            raise MissingArtifactError(
                f"{model} predictions in {config(params).run_dir} are for another split "
                f"({len(missing)} of {len(table)} test tracks missing); re-run its notebook with these parameters"
            )
        out[model] = prediction_matrix(by_id.loc[table["track_id"]])
    return out


def save_history(params, history: pd.DataFrame) -> Path:
    """The GRU's per-epoch history beside its predictions (``runs/<run_id>/gru/history.csv``)."""
    cfg = config(params)
    out = cfg.run_dir / MODEL_DIRS["GRU"]
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_csv(out / "history.csv", history)
    return out / "history.csv"


def load_histories(params) -> dict[str, pd.DataFrame]:
    """Training histories saved under ``runs/<run_id>/`` (the GRU's), by model name."""
    cfg = config(params)
    path = cfg.run_dir / MODEL_DIRS["GRU"] / "history.csv"
    return {"GRU": pd.read_csv(path)} if path.is_file() else {}


def write_run_metrics(params, *, scores: pd.DataFrame, summary: pd.DataFrame, **extra) -> Path:
    """``runs/<run_id>/metrics.json``: every model x target metric, the summary, and the merged parameters."""
    cfg = config(params)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.run_dir / "metrics.json"
    merged = cfg.run_dir / "params.yaml"  # written by `audioreg run`: every notebook's parameters
    run_params = load_yaml(merged) if merged.is_file() else cfg.params
    model_params = {}
    for model, sub in MODEL_DIRS.items():
        p = cfg.run_dir / sub / "params.json"
        if p.is_file():
            model_params[model] = json.loads(p.read_text(encoding="utf-8"))
    atomic.write_json(path, report.metrics_document(cfg["run_id"], scores, summary, params=run_params,
                                                    model_params=model_params, **extra))
    return path


