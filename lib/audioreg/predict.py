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

On a machine with two cores or more, ``audioreg predict`` computes what each file needs
besides the model (its decoding, frame features, BS.1770 loudness and, for ``dsp`` or a model
that takes them, the expert estimates) in worker processes (:class:`Workers`), started before
the model is loaded: their imports (numba's compiled kernels, scipy.signal, librosa) and work
overlap this process's (torch or scikit-learn, the model), which never imports them. The values
are the same either way.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import one_line
from .targets import TARGETS

if TYPE_CHECKING:  # imported where a table is made: the workers start before pandas loads
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

    def needs_features(self) -> bool:
        return needs_features(self.kind)


def _run_params(run_dir: Path) -> dict:
    from .params import load_yaml

    return load_yaml(run_dir / "params.yaml") if (run_dir / "params.yaml").is_file() else {}


def needs_features(kind: str) -> bool:
    """Whether predicting with ``kind`` takes the frame features: every model but ``dsp``."""
    return kind != "dsp"


def needs_experts(run: str | os.PathLike | None, kind: str) -> bool:
    """Whether predicting with ``kind`` (of ``runs/<run_id>``) takes the expert estimates: always
    for ``dsp``; for a trained model, as its run's parameters say (``rf_expert_inputs``,
    ``expert_inputs``)."""
    if kind == "dsp":
        return True
    if run is None:
        return False
    return bool(_run_params(Path(run)).get("rf_expert_inputs" if kind == "rf" else "expert_inputs", False))


def model_pointer(run: str | os.PathLike | None, kind: str) -> dict | None:
    """What ``runs/<run_id>/<kind>/model.json`` says of the trained model (None for ``dsp``),
    after the checks that need no model loaded.

    Raises
    ------
    ValueError
        For an unknown ``kind``, a trained model without ``run``, or a model trained on
        another features version.
    FileNotFoundError
        If the run holds no such trained model.
    """
    if kind not in MODELS:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, not {kind!r}")
    if kind == "dsp":
        return None
    if run is None:
        raise ValueError(f"--model {kind} needs --run runs/<run_id> (a run that trained it)")
    import json

    from .features import frames
    from .paths import MODEL_POINTER

    run_dir = Path(run)
    pointer = run_dir / kind / MODEL_POINTER
    if not pointer.is_file():
        raise FileNotFoundError(f"{pointer}: no trained {kind} model in this run (run notebook "
                                f"{'04_rf' if kind == 'rf' else '05_gru'} with run_id={run_dir.name})")
    info = json.loads(pointer.read_text(encoding="utf-8"))
    if info.get("feature_version", frames.FEATURE_VERSION) != frames.FEATURE_VERSION:
        raise ValueError(f"{pointer}: the model was trained on features version {info['feature_version']}; this "
                         f"install computes version {frames.FEATURE_VERSION}: retrain it")
    return info


def load(run: str | os.PathLike | None, kind: str) -> Predictor:
    """The predictor of ``runs/<run_id>`` (``kind`` rf or gru), or the experts (``dsp``, no run
    needed); raises as :func:`model_pointer` does, or :class:`audioreg.errors.CheckpointError`."""
    info = model_pointer(run, kind)
    if info is None:
        return Predictor("dsp")
    from .paths import PREDICTIONS

    run_dir = Path(run)
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
    table = None
    if (run_dir / kind / PREDICTIONS).is_file():  # the intervals, calibrated on the run's validation predictions
        from ._pandas import pd
        from .judge.uncertainty import conformal_of_predictions

        table = conformal_of_predictions(pd.read_csv(run_dir / kind / PREDICTIONS, dtype={"track_id": str}))
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


def _inputs(y: np.ndarray | None, lufs: float, predictor: Predictor, *, feats: np.ndarray | None = None,
            expert_values: dict | None = None) -> tuple[np.ndarray | None, pd.DataFrame]:
    """One signal's frame features and its one-row table of track-level values (``feats`` and
    ``expert_values``: what :func:`predict_signal` was given, computed from ``y`` when absent)."""
    from .data.audio import SILENT_LUFS
    from .features import experts, frames

    if feats is None and predictor.needs_features():
        feats = frames.extract_features(y=y, sr=frames.SR)
    row = {"lufs": max(lufs, SILENT_LUFS)}
    if predictor.needs_experts():
        values = experts.estimate_all(y, sr=frames.SR) if expert_values is None else expert_values
        row.update({f"dsp_{k}": v for k, v in values.items()})
    from ._pandas import pd

    return feats, pd.DataFrame([row])


def file_inputs(path: str | os.PathLike, *, features: bool, experts: bool) -> dict:
    """What a file's prediction needs besides the model, from one decoding of it at ``frames.SR``:
    ``feats``, its frame features (None unless ``features``); ``lufs``, its integrated loudness
    over its original channels; ``experts``, the expert estimates (None unless ``experts``); and
    ``seconds``, the time they took."""
    from .data.audio import load_audio, measure_loudness
    from .features import experts as ex
    from .features import frames

    t0 = time.perf_counter()
    y, _ = load_audio(path, sr=frames.SR)
    out = {"feats": frames.extract_features(y=y, sr=frames.SR) if features else None,
           "experts": ex.estimate_all(y, sr=frames.SR) if experts else None,
           "lufs": measure_loudness(path)}
    return {**out, "seconds": time.perf_counter() - t0}


def predict_file(path: Path, predictor: Predictor) -> dict:
    """One file's output row (see the module notes): :func:`predict_signal` of its
    :func:`file_inputs`."""
    values = file_inputs(path, features=predictor.needs_features(), experts=predictor.needs_experts())
    return predict_signal(None, values["lufs"], predictor, feats=values["feats"], expert_values=values["experts"])


def predict_signal(y: np.ndarray | None, lufs: float, predictor: Predictor, *, feats: np.ndarray | None = None,
                   expert_values: dict | None = None) -> dict:
    """One decoded signal's output row (see the module notes).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)] or None
        Mono samples at ``frames.SR``; may be None when ``feats`` and ``expert_values`` hold
        all the predictor needs.
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
    feats, row = _inputs(y, lufs, predictor, feats=feats, expert_values=expert_values)
    out = dict.fromkeys(TARGETS + EXTRA, np.nan)
    if predictor.kind == "dsp":
        key = row["dsp_key"].iloc[0]
        out.update(tempo=row["dsp_tempo"].iloc[0] or np.nan, loudness=row["lufs"].iloc[0],
                   key=key if key >= 0 else -1, mode=row["dsp_mode"].iloc[0] if key >= 0 else np.nan)
        return out
    from .judge.metrics import key_class, meter_class
    from .models.inputs import TrackSequences, track_inputs
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


def _start_worker() -> None:
    """A worker's first step: the compiled-code cache checked (and filled, on a cold install) by one
    process at a time, so that no two compile the same function (numba issue 10128). In the worker
    it costs next to nothing (numba is imported there anyway); the calling process never imports numba."""
    from .features.numba_cache import ensure_compiled

    ensure_compiled()


def _worker_inputs(path: str, features: bool, experts: bool) -> dict:
    """:func:`file_inputs` in a worker process, a failure returned as its one-line reason (an
    exception raised there need not survive the trip back)."""
    try:
        return file_inputs(path, features=features, experts=experts)
    except Exception as exc:
        return {"error": one_line(exc)}


class Workers:
    """The :func:`file_inputs` of the audio files named by ``paths``, computed ahead of the caller.

    Create it before the model is loaded: the files are submitted at once to up to
    ``processes`` forked worker processes, so that their imports (librosa, scipy.signal,
    numba's compiled kernels) and their work overlap the caller's (torch or scikit-learn, the
    model); at most a few files wait done ahead of the caller, whatever the batch's size.
    :func:`predict` then takes each file's values in order (:meth:`inputs`).

    ``processes``: None for one per core (at most one per file); 0 computes every file in the
    calling process, when it asks, as does a machine with one core or without the fork start
    method. A worker that dies (a crashing decoder) leaves the rest computed in the calling
    process. The values are the same either way.
    """

    def __init__(self, paths, *, features: bool, experts: bool, processes: int | None = None):
        self.files, self.failures = audio_paths(paths)
        self.features, self.experts = bool(features), bool(experts)
        if processes is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
            processes = min(cores, len(self.files)) if cores > 1 else 0
        if "fork" not in multiprocessing.get_all_start_methods():
            processes = 0
        self.pool = None
        self._ahead: dict[int, cf.Future] = {}
        self._next = 0
        self._window = 2 * processes + 2
        if processes > 0:
            self.pool = cf.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"),
                                               initializer=_start_worker)
            self._fill()

    def _fill(self) -> None:
        while self.pool is not None and self._next < len(self.files) and len(self._ahead) < self._window:
            try:
                self._ahead[self._next] = self.pool.submit(_worker_inputs, str(self.files[self._next]),
                                                          self.features, self.experts)
            except (cf.process.BrokenProcessPool, RuntimeError):  # it died: the rest are computed here
                self.close()
                return
            self._next += 1

    def inputs(self, i: int) -> dict:
        """:func:`file_inputs` of the ``i``-th file (taken in order), from a worker or computed here;
        raises the file's error (a worker's as :class:`FileError`, its reason as the message)."""
        future = self._ahead.pop(i, None)
        self._fill()
        if future is not None:
            try:
                out = future.result()
            except cf.process.BrokenProcessPool:
                log.warning("a worker process died; computing the remaining files' inputs here")
                self.close()
            else:
                if "error" in out:
                    raise FileError(out["error"])
                return out
        return file_inputs(self.files[i], features=self.features, experts=self.experts)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
        self._ahead.clear()

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FileError(Exception):
    """A file's inputs could not be computed in a worker process; the message is the reason."""


def predict(paths, predictor: Predictor, *, progress: bool = False,
            workers: Workers | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(predictions, failures)`` for the audio files named by ``paths``. With ``workers`` (a
    :class:`Workers` of the same ``paths`` for this predictor, started before it was loaded),
    each file's inputs come from it; without, they are computed here, file by file."""
    from tqdm.auto import tqdm

    from ._pandas import pd

    if workers is None:
        workers = Workers(paths, features=predictor.needs_features(), experts=predictor.needs_experts(), processes=0)
    elif (workers.features, workers.experts) != (predictor.needs_features(), predictor.needs_experts()):
        raise ValueError(f"these workers compute features={workers.features}, experts={workers.experts}; the "
                         f"{predictor.kind} predictor needs features={predictor.needs_features()}, "
                         f"experts={predictor.needs_experts()}")
    failures = list(workers.failures)
    rows = []
    for i, path in enumerate(tqdm(workers.files, desc="predict", unit="file", disable=not progress)):
        try:
            values = workers.inputs(i)
            t0 = time.perf_counter()
            out = predict_signal(None, values["lufs"], predictor, feats=values["feats"], expert_values=values["experts"])
        except Exception as exc:  # one bad file never stops the batch: list it with its reason
            failures.append({"path": str(path), "reason": str(exc) if isinstance(exc, FileError) else one_line(exc)})
            continue
        rows.append({"path": str(path), **out, "seconds": values["seconds"] + time.perf_counter() - t0})
    df = pd.DataFrame(rows, columns=["path", *TARGETS, *EXTRA, "seconds"])
    df = add_intervals(df, predictor)
    return df, pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))


def failures_path(out: str | os.PathLike) -> Path:
    """Where the failures table of ``--out`` goes: ``<stem>.failures.csv`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.failures.csv")
