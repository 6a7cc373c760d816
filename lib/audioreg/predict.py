"""``audioreg predict``: Spotify's audio attributes of audio files, by a run's trained model or the experts.

For every readable file: the 11 attributes and the mode in Spotify's units and encodings
(danceability ... acousticness in [0, 1], tempo in BPM, loudness in dB, key 0-11 with C = 0,
mode 1 major / 0 minor, time_signature 3-7). A trained model (``rf``, ``gru``) adds a 90 %
interval per continuous attribute (``<target>_lo``, ``<target>_hi``), calibrated by
split-conformal prediction on the run's validation part, and the probability of the class it
predicts for key, mode and time_signature where it has one (the GRU with class heads; the
forest's key and time_signature by the share of its trees that agree). ``dsp`` gives what
the expert estimators measure (tempo, key, mode, loudness) and leaves the rest empty.

An unreadable file is listed with its reason and never stops the batch.

On a machine with two cores or more, ``audioreg predict`` with a trained model computes what a
file needs besides its frame features (its BS.1770 loudness and, for a model that takes them,
the expert estimates) in a second process (:class:`SideProcess`), started before the model is
loaded: its imports (scipy.signal, librosa) and work overlap this process's (torch or
scikit-learn, decoding, features, the model). The values are the same either way.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import one_line
from .targets import TARGETS

if TYPE_CHECKING:  # imported where a table is made: the side process starts before pandas loads
    import pandas as pd

log = logging.getLogger(__name__)

MODELS = ("rf", "gru", "dsp")
#: Columns besides the 11 targets, in output order.
EXTRA = ("mode", "key_prob", "mode_prob", "time_signature_prob")
FAILURE_COLUMNS = ("path", "reason")


def audio_paths(paths) -> tuple[list[Path], list[dict]]:
    """The audio files named by ``paths`` (files, or folders searched recursively for the
    extensions the suite decodes), sorted per folder; and a failure row for each path that
    does not exist."""
    from .data.audio import AUDIO_EXTENSIONS

    files, missing = [], []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS
                            and not f.name.startswith("._"))
        elif p.is_file():
            files.append(p)
        else:
            missing.append({"path": str(p), "reason": "no such file or folder"})
    return files, missing


@dataclass
class Predictor:
    """A loaded model and what it needs per file."""

    kind: str
    model: object = None
    experts: bool = False  # the model takes the expert estimates as inputs
    half_widths: dict = field(default_factory=dict)  # conformal half-width per continuous target
    calibration: pd.DataFrame | None = None  # the run's conformal table (coverage on test)

    def needs_experts(self) -> bool:
        return self.kind == "dsp" or self.experts


def _run_params(run_dir: Path) -> dict:
    from .params import load_yaml

    return load_yaml(run_dir / "params.yaml") if (run_dir / "params.yaml").is_file() else {}


def needs_experts(run: str | os.PathLike | None, kind: str) -> bool:
    """Whether predicting with ``kind`` (of ``runs/<run_id>``) takes the expert estimates: always
    for ``dsp``; for a trained model, as its run's parameters say (``rf_expert_inputs``,
    ``expert_inputs``)."""
    if kind == "dsp":
        return True
    if run is None:
        return False
    return bool(_run_params(Path(run)).get("rf_expert_inputs" if kind == "rf" else "expert_inputs", False))


def load(run: str | os.PathLike | None, kind: str) -> Predictor:
    """The predictor of ``runs/<run_id>`` (``kind`` rf or gru), or the experts (``dsp``, no run needed)."""
    if kind not in MODELS:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, not {kind!r}")
    if kind == "dsp":
        return Predictor("dsp")
    if run is None:
        raise ValueError(f"--model {kind} needs --run runs/<run_id> (a run that trained it)")
    import json

    from . import store
    from .features import frames

    run_dir = Path(run)
    pointer = run_dir / kind / "model.json"
    if not pointer.is_file():
        raise FileNotFoundError(f"{pointer}: no trained {kind} model in this run (run notebook "
                                f"{'04_rf' if kind == 'rf' else '05_gru'} with run_id={run_dir.name})")
    info = json.loads(pointer.read_text(encoding="utf-8"))
    if info.get("feature_version", frames.FEATURE_VERSION) != frames.FEATURE_VERSION:
        raise ValueError(f"{pointer}: the model was trained on features version {info['feature_version']}; this "
                         f"install computes version {frames.FEATURE_VERSION}: retrain it")
    params = _run_params(run_dir)
    folder = Path(info["model_dir"])
    if kind == "rf":
        import joblib

        model = joblib.load(folder / "model.joblib")
    else:
        from .errors import CheckpointError

        try:
            model = TrainedGRU(folder / "best.pt")
        except CheckpointError as exc:  # the best epoch's weights are lost: only training again brings them back
            raise CheckpointError(f"{exc}. For this run: rerun notebook 05_gru with its parameters, e.g. `audioreg run "
                                  f"-f {run_dir / 'params.yaml'} --run-id {run_dir.name} --only 05_gru`") from exc
    experts = needs_experts(run_dir, kind)
    name = {sub: model for model, sub in store.MODEL_DIRS.items()}[kind]
    table = store.conformal({**params, "root": str(run_dir.parent.parent), "run_id": run_dir.name}).get(name)
    half = {} if table is None else table["half_width"].to_dict()
    return Predictor(kind, model, experts, half, table)


class TrainedGRU:
    """A trained GRU as prediction needs it: the network and checkpoint of a ``best.pt``
    (:func:`audioreg.models.train.load_best_checkpoint`: checked against the ``last.pt`` beside
    it, rebuilt from it where it holds the best epoch) and
    :func:`audioreg.models.train.predict_table`, on the CPU: the same predictions as
    :meth:`audioreg.models.GRURegressor.predict_table`, without importing scikit-learn (about 1 s
    of a one-file prediction), which the estimator class needs for its contract."""

    def __init__(self, path: str | os.PathLike):
        from .models.train import load_best_checkpoint

        self.net, self.checkpoint = load_best_checkpoint(path, device="cpu")

    def predict_table(self, sequences) -> pd.DataFrame:
        from .models.train import predict_table

        return predict_table((self.net, self.checkpoint), sequences, device="cpu")


def _inputs(y: np.ndarray, lufs: float, predictor: Predictor, *, feats: np.ndarray | None = None,
            expert_values: dict | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """One signal's frame features and its one-row table of track-level values (``feats`` and
    ``expert_values``: what :func:`predict_signal` was given, computed here when absent)."""
    from .features import experts, frames
    from .stages import SILENT_LUFS

    sr = frames.SR
    if feats is None and predictor.kind != "dsp":
        feats = frames.extract_features(y=y, sr=sr)
    row = {"lufs": max(lufs, SILENT_LUFS)}
    if predictor.needs_experts():
        values = experts.estimate_all(y, sr=sr) if expert_values is None else expert_values
        row.update({f"dsp_{k}": v for k, v in values.items()})
    from ._pandas import pd

    return feats, pd.DataFrame([row])


def predict_file(path: Path, predictor: Predictor) -> dict:
    """One file's output row (see the module notes): :func:`predict_signal` of its mono
    decoding at ``frames.SR`` and its integrated loudness over its original channels."""
    from .data.audio import load_audio, measure_loudness
    from .features import frames

    y, _ = load_audio(path, sr=frames.SR)
    return predict_signal(y, measure_loudness(path), predictor)


def predict_signal(y: np.ndarray, lufs: float, predictor: Predictor, *, feats: np.ndarray | None = None,
                   expert_values: dict | None = None) -> dict:
    """One decoded signal's output row (see the module notes).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono samples at ``frames.SR``.
    lufs : float
        Its integrated loudness, dB LUFS: :func:`audioreg.data.audio.measure_loudness` of the
        file it was decoded from (the original channels, as the training data was measured),
        or :func:`audioreg.data.loudness.integrated_loudness` of a mix made here.
    predictor : Predictor
    feats : np.ndarray [shape=(t, 46)], optional
        ``frames.extract_features(y=y, sr=frames.SR)``, when several predictors share one signal.
    expert_values : dict, optional
        ``experts.estimate_all(y, sr=frames.SR)`` with its default profile (the one the models'
        expert inputs were computed with), likewise shared.

    Returns
    -------
    out : dict
        The 11 targets and :data:`EXTRA`; ``mode`` is NaN for a model without a mode output.
    """
    from .stages import TrackSequences, track_inputs

    feats, row = _inputs(y, lufs, predictor, feats=feats, expert_values=expert_values)
    out = dict.fromkeys(TARGETS + EXTRA, np.nan)
    if predictor.kind == "dsp":
        key = row["dsp_key"].iloc[0]
        out.update(tempo=row["dsp_tempo"].iloc[0] or np.nan, loudness=row["lufs"].iloc[0],
                   key=key if key >= 0 else -1, mode=row["dsp_mode"].iloc[0] if key >= 0 else np.nan)
        return out
    from .judge.metrics import key_class, meter_class
    from .targets import clip_to_valid

    if predictor.kind == "rf":
        from .models.forest import aggregate

        X = np.hstack([aggregate([feats]), track_inputs(row, experts=predictor.experts).to_numpy()])
        out.update(zip(TARGETS, clip_to_valid(predictor.model.predict(X))[0]))
        for t in ("key", "time_signature"):
            j = TARGETS.index(t)
            if j not in predictor.model.skipped_:  # a target the forest was not trained on stays empty
                _, p = predictor.model.class_probability(X, target=j, classes=key_class if t == "key" else meter_class)
                out[f"{t}_prob"] = float(p[0])
    else:
        table = predictor.model.predict_table(TrackSequences(row, experts=predictor.experts, arrays=[feats]))
        out.update(zip(TARGETS, clip_to_valid(table[list(TARGETS)].to_numpy())[0]))
        out.update({c: table[c].iloc[0] for c in EXTRA})
    # a class regressed as a number is reported as the class the metrics score it as (a class head's is one already)
    out.update(key=float(key_class(out["key"])), time_signature=float(meter_class(out["time_signature"])))
    return out


def add_intervals(df: pd.DataFrame, predictor: Predictor) -> pd.DataFrame:
    """``<target>_lo`` and ``<target>_hi`` beside every continuous target with a calibrated half-width."""
    from .judge.uncertainty import conformal_interval

    for t, q in predictor.half_widths.items():
        lo, hi = conformal_interval(t, df[t].to_numpy(dtype=np.float64), float(q))
        df.insert(df.columns.get_loc(t) + 1, f"{t}_lo", lo)
        df.insert(df.columns.get_loc(t) + 2, f"{t}_hi", hi)
    return df


def side_values(path: str, experts: bool) -> dict:
    """What a file's prediction needs besides its frame features: ``lufs``, its integrated
    loudness over its original channels, and ``experts``, the expert estimates of its mono
    decoding (None unless ``experts``)."""
    from .data.audio import load_audio, measure_loudness
    from .features import experts as ex
    from .features import frames

    values = None
    if experts:
        y, _ = load_audio(path, sr=frames.SR)
        values = ex.estimate_all(y, sr=frames.SR)
    return {"lufs": measure_loudness(path), "experts": values}


def _warm_side(experts: bool) -> None:
    """Import what :func:`side_values` needs, as the side process starts."""
    from .data import loudness  # noqa: F401 - scipy.signal

    if experts:
        from .features import experts as ex

        ex.librosa_beat()
        import librosa.feature  # noqa: F401 - chroma_cqt


class SideProcess:
    """One worker process that computes :func:`side_values` of the files, ahead of this process.

    Create it first (before the model is loaded: a fork before torch starts its threads, and its
    imports overlap this process's); :func:`predict` then submits every file and takes each
    file's values when it needs them. Disabled (``pool`` None: :func:`predict` computes in this
    process) where fork is not the start method or there is one core. A worker that dies is
    replaced by computing here, for that file and the rest.
    """

    def __init__(self, experts: bool):
        self.experts = bool(experts)
        self.pool = None
        if sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) > 1:
            self.pool = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"),
                                               initializer=_warm_side, initargs=(self.experts,))
            self.pool.submit(os.getpid)  # start it now: its imports run while the model loads

    def submit(self, path: Path) -> cf.Future | None:
        if self.pool is None:
            return None
        try:
            return self.pool.submit(side_values, str(path), self.experts)
        except cf.process.BrokenProcessPool:  # it died before this file: computed here
            self.close()
            return None

    def result(self, future: cf.Future | None, path: Path) -> dict:
        """``side_values`` of ``path`` from the side process, or computed here when it has none or died."""
        if future is not None:
            try:
                return future.result()
            except cf.process.BrokenProcessPool:
                log.warning("the side process died; computing loudness and expert estimates here")
                self.close()
        return side_values(str(path), self.experts)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None

    def __enter__(self) -> "SideProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def predict(paths, predictor: Predictor, *, progress: bool = False,
            side: SideProcess | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(predictions, failures)`` for the audio files named by ``paths``; with ``side`` (a
    :class:`SideProcess` for ``predictor.needs_experts()``), each file's loudness and expert
    estimates come from it, computed while this process decodes, extracts and predicts."""
    from tqdm.auto import tqdm

    from ._pandas import pd
    from .data.audio import load_audio
    from .features import frames

    files, failures = audio_paths(paths)
    ahead = [side.submit(p) for p in files] if side is not None else [None] * len(files)
    rows = []
    for path, future in tqdm(list(zip(files, ahead)), desc="predict", unit="file", disable=not progress):
        t0 = time.perf_counter()
        try:
            if side is None:
                out = predict_file(path, predictor)
            else:
                y, _ = load_audio(path, sr=frames.SR)
                feats = frames.extract_features(y=y, sr=frames.SR) if predictor.kind != "dsp" else None
                values = side.result(future, path)
                out = predict_signal(y, values["lufs"], predictor, feats=feats, expert_values=values["experts"])
        except Exception as exc:  # one bad file never stops the batch: list it with its reason
            failures.append({"path": str(path), "reason": one_line(exc)})
            continue
        rows.append({"path": str(path), **out, "seconds": time.perf_counter() - t0})
    df = pd.DataFrame(rows, columns=["path", *TARGETS, *EXTRA, "seconds"])
    df = add_intervals(df, predictor)
    return df, pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))


def failures_path(out: str | os.PathLike) -> Path:
    """Where the failures table of ``--out`` goes: ``<stem>.failures.csv`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.failures.csv")
