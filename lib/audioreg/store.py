"""The run's artifact store: fitted models (content-keyed under ``data/models/``, reused by
every run with the same settings and data), and predictions, training histories and
metrics.json under ``runs/<run_id>/``."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
from ._pandas import pd

from . import atomic
from dataclasses import dataclass

from .judge import metrics, report, uncertainty
from .errors import one_line
from .judge.metrics import prediction_matrix
from .params import digest, load_yaml
from .paths import MODEL_POINTER, PREDICTIONS
from .repro import versions
from .stages import MissingArtifactError, config, data_identity, part, targets
from .targets import TARGETS


log = logging.getLogger(__name__)

#: Where each model's predictions go under ``runs/<run_id>/``.
MODEL_DIRS = {"random forest": "rf", "GRU": "gru", "dsp": "dsp"}
#: Short names of the estimator classes, for their folders under ``data/models/``.
MODEL_KINDS = {"ForestRegressor": "rf", "GRURegressor": "gru"}


def save_predictions(params, model: str, table: pd.DataFrame, pred: np.ndarray, *, mode=None,
                     extra: dict | None = None) -> Path:
    """Write a model's predictions for ``table``'s rows to ``runs/<run_id>/<model>/``.

    ``predictions.csv`` holds track_id, split, and ``true_<target>`` / ``pred_<target>``
    per target, and ``pred_mode`` for a model that predicts the mode (``mode``);
    ``params.json`` the merged parameters (plus ``extra``).
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
    if mode is not None:
        df["pred_mode"] = np.asarray(mode, dtype=np.float64)
    atomic.write_csv(out / PREDICTIONS, df)
    atomic.write_json(out / "params.json", {"model": model, "params": cfg.params, **(extra or {})})
    return out / PREDICTIONS


def load_predictions(params, *, split_name: str | None = "test") -> dict[str, pd.DataFrame]:
    """Predictions of every model saved under ``runs/<run_id>/``, one frame per model
    (the rows of part ``split_name``; None: every part saved)."""
    cfg = config(params)
    out = {}
    for model, sub in MODEL_DIRS.items():
        path = cfg.run_dir / sub / PREDICTIONS
        if path.is_file():
            df = pd.read_csv(path, dtype={"track_id": str})
            out[model] = df if split_name is None else df[df["split"] == split_name].reset_index(drop=True)
    if not out:
        raise MissingArtifactError(
            f"no model predictions in {cfg.run_dir}: run `audioreg run` (or notebooks 04_rf and 05_gru with run_id={cfg['run_id']}) first"
        )
    return out


def model_settings(model) -> dict:
    """What a model learns from: its settings, less the ones that only change how a fit runs."""
    run_only = set(getattr(model, "RUN_SETTINGS", ()))
    return {k: v for k, v in model.get_params(deep=False).items() if k not in run_only}


def input_signature(X) -> list | None:
    """What names a model's inputs beyond the data key: the appended columns of frame sequences
    (:class:`audioreg.models.inputs.TrackSequences`), or a matrix's width; None for anything else."""
    if hasattr(X, "columns"):
        return [str(c) for c in X.columns]
    shape = getattr(X, "shape", None)
    return [int(shape[1])] if shape is not None and len(shape) == 2 else None


def _kind(model) -> str:
    """The short name of a model's class: its folder prefix under ``data/models/`` and its
    folder under ``runs/<run_id>/``."""
    return MODEL_KINDS.get(type(model).__name__, type(model).__name__.lower())


def model_dir(params, model, *, data_key: str, inputs: list | None = None) -> Path:
    """``data/models/<kind>-<key>/``: one fit, keyed by the model's class and settings
    (:func:`model_settings`, hashed whole), the data's key (the split's), the inputs'
    :func:`input_signature` (with or without the expert inputs), scikit-learn's version and
    the estimator's ``SAVED_FORMAT`` where it has one (what a saved fit holds); so any run
    with the same settings and data reuses it."""
    import sklearn

    kind = _kind(model)
    saved = getattr(type(model), "SAVED_FORMAT", None)
    key = digest({"model": f"{type(model).__module__}.{type(model).__name__}", "settings": model_settings(model),
                  "data": data_key, "sklearn": sklearn.__version__, **({"inputs": inputs} if inputs else {}),
                  **({"saved_format": saved} if saved is not None else {})})
    return config(params).data_dir / "models" / f"{kind}-{key}"


def fit_model(params, model, X, y, *, data_key: str, **fit_params):
    """``model`` fitted on ``X``, ``y``, or the same fit reused from :func:`model_dir`.

    A model with a ``checkpoint_dir`` setting (the GRU) trains into that folder and resumes
    from it, so a finished fit is a no-op; any other (the forest) is saved there with joblib
    once fitted, ``meta.json`` last, and loaded instead of refitted. Once the model is fitted,
    ``runs/<run_id>/<kind>/model.json`` points at its folder (where ``audioreg predict --run``
    finds it). Returns the fitted model.
    """
    cfg = config(params)
    inputs = input_signature(X)
    out = model_dir(cfg, model, data_key=data_key, inputs=inputs)
    out.mkdir(parents=True, exist_ok=True)
    # one process fits (or trains into) a folder at a time; another with the same settings waits, then reuses it
    with atomic.lock_beside(out, doing="fitting"):
        fitted = _fit_or_load(cfg, model, X, y, out, data_key=data_key, **fit_params)
    from .features.frames import FEATURE_VERSION

    (cfg.run_dir / _kind(model)).mkdir(parents=True, exist_ok=True)
    atomic.write_json(cfg.run_dir / _kind(model) / MODEL_POINTER, {"model": type(model).__name__, "model_dir": str(out),
                                                                  "inputs": inputs, "feature_version": FEATURE_VERSION})
    return fitted


def _fit_or_load(cfg, model, X, y, out: Path, *, data_key: str, **fit_params):
    import joblib

    meta = {"model": type(model).__name__, "settings": model_settings(model), "data": data_key,
            "params": cfg.params}
    if "checkpoint_dir" in model.get_params(deep=False):
        model.set_params(checkpoint_dir=str(out))
        if not (out / "meta.json").is_file():
            atomic.write_json(out / "meta.json", meta)
        return model.fit(X, y, params=cfg.params, **fit_params)
    saved = out / "model.joblib"
    if saved.is_file() and (out / "meta.json").is_file():
        log.info("%s: reusing the fit in %s", type(model).__name__, out)
        return joblib.load(saved)
    (out / "meta.json").unlink(missing_ok=True)
    model.fit(X, y, **fit_params)
    atomic.write_with(saved, lambda tmp: joblib.dump(model, tmp))
    atomic.write_json(out / "meta.json", meta)
    return model


def aligned_frames(params, table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each saved model's predictions frame for exactly ``table``'s rows, in its order.

    Raises if a model's saved rows differ from ``table`` (it was trained on another split).
    """
    out = {}
    wanted = set(table["split"])
    for model, df in load_predictions(params, split_name=None).items():
        by_id = df[df["split"].isin(wanted)].set_index("track_id")
        missing = [t for t in table["track_id"] if t not in by_id.index]
        if missing or len(by_id) != len(table):
            raise MissingArtifactError(
                f"{model} predictions in {config(params).run_dir} are for another split "
                f"({len(missing)} of {len(table)} {'/'.join(sorted(wanted))} tracks missing); re-run its notebook "
                "with these parameters"
            )
        out[model] = by_id.loc[table["track_id"]].reset_index()
    return out


def save_dsp(params, table: pd.DataFrame) -> Path:
    """The "dsp" model's predictions (:func:`audioreg.stages.dsp_predictions`) for the validation
    and test rows of split ``table``, saved like a trained model's."""
    from .stages import dsp_predictions

    rows = part(table, ("val", "test"))
    pred, mode = dsp_predictions(rows, targets(part(table, "train")))
    return save_predictions(params, "dsp", rows, pred, mode=mode,
                            extra={"estimates": "tempo: librosa beat tracker; key and mode: Krumhansl-Kessler "
                                                "profiles on a CQT chroma; loudness: BS.1770 integrated loudness; "
                                                "other targets: the training mean or majority"})


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


@dataclass
class Evaluation:
    """Every saved model scored on the test and validation parts, beside the baseline.

    ``scores``/``val_scores``: :func:`audioreg.judge.metrics.compare_models` tables (the
    denominators: the training part's variances); ``summary``: the test part's
    :func:`~audioreg.judge.metrics.summarize`; ``uncertainty``/``val_uncertainty``:
    :func:`audioreg.judge.uncertainty.bootstrap` over each part's artist groups;
    ``predictions``: the test part's, by model; ``verdict``: Markdown.
    """

    scores: pd.DataFrame
    summary: pd.DataFrame
    uncertainty: dict
    val_scores: pd.DataFrame
    val_summary: pd.DataFrame
    val_uncertainty: dict
    predictions: dict
    verdict: str
    n_test: int
    n_val: int
    noise_ceiling: dict | None = None
    val_noise_ceiling: dict | None = None

    def r2_with_ceiling(self) -> pd.DataFrame:
        """R^2 of each model per continuous target, and the noise ceiling of these test rows."""
        r2 = self.scores["r2"].unstack(level=1)
        r2 = r2.reindex(index=list(dict.fromkeys(self.scores.index.get_level_values(0))),
                        columns=list(metrics.CONTINUOUS_TARGETS))
        if self.noise_ceiling:
            r2.loc["noise ceiling (best possible)"] = [self.noise_ceiling.get(t) for t in r2.columns]
        return r2


def noise_free_labels(params, track_ids) -> np.ndarray | None:
    """``[n, 11]`` labels without their noise for ``track_ids``: the generated sample set writes
    them beside its metadata (``noise_free.csv``). None for data that has no such file (a user's
    own table), or when it lacks one of the tracks."""
    from .synth.writer import NOISE_FREE

    path = config(params).path("metadata_path").parent / NOISE_FREE
    if not path.is_file():
        return None
    clean = pd.read_csv(path, dtype={"track_id": str}).set_index("track_id")
    ids = [str(t) for t in track_ids]
    if not set(ids) <= set(clean.index):
        return None
    return clean.loc[ids, list(TARGETS)].to_numpy(dtype=np.float64)


def noise_ceiling(params, rows: pd.DataFrame, y_train: np.ndarray) -> dict | None:
    """The best R^2 (and, for key and time signature, accuracy) any model can reach on ``rows``:
    that of the labels without their noise (:func:`noise_free_labels`). None for data that has
    none (a user's own table)."""
    best = noise_free_labels(params, rows["track_id"])
    if best is None:
        return None
    table = metrics.per_target(targets(rows), best, y_train=y_train)
    return {t: (float(table.loc[t, "accuracy"]) if t in metrics.CLASS_TARGETS else float(table.loc[t, "r2"]))
            for t in TARGETS}


def _compared(params, rows: pd.DataFrame, compare_runs) -> tuple[dict, dict]:
    """This run's saved ``[n, 11]`` predictions for ``rows`` and the modes of the models that
    predict one, then those of the trained models of each run in ``compare_runs`` (named
    ``"<model> [<run_id>]"``; they must hold the same rows)."""
    preds, modes = {}, {}
    for run_id in ["", *compare_runs]:
        run = {**config(params).params, **({"run_id": run_id} if run_id else {})}
        for model, df in aligned_frames(run, rows).items():
            if run_id and model == "dsp":  # the experts do not depend on the run
                continue
            name = f"{model} [{run_id}]" if run_id else model
            preds[name] = prediction_matrix(df)
            if "pred_mode" in df.columns:
                modes[name] = df["pred_mode"].to_numpy(dtype=np.float64)
    return preds, modes


def evaluate(params, table: pd.DataFrame, *, compare_runs=()) -> Evaluation:
    """Score the run's saved predictions on the test and validation parts of split ``table``,
    beside the trained models of the runs named in ``compare_runs`` (run ids on the same data
    and split: plain against target-aware, say), every pair with its paired interval."""
    from .data.split import leakage_groups

    train = part(table, "train")
    y_train = targets(train)
    has_mode = "mode" in table.columns and table["mode"].notna().all()
    compare_runs = [r for r in (compare_runs.split(",") if isinstance(compare_runs, str) else compare_runs) if r]
    out = {}
    for name in ("test", "val"):
        rows = part(table, name)
        saved, saved_modes = _compared(params, rows, compare_runs)
        preds = {metrics.BASELINE_NAME: metrics.mean_baseline(y_train, len(rows)), **saved}
        modes = {"mode_true": rows["mode"].to_numpy(), "mode_train": train["mode"].to_numpy(),
                 "mode_preds": saved_modes} if has_mode else {}
        scores = metrics.compare_models(targets(rows), preds, y_train=y_train, **modes)
        unc = uncertainty.bootstrap(targets(rows), preds, y_train=y_train, groups=leakage_groups(rows), **modes)
        out[name] = (rows, preds, scores, unc, noise_ceiling(params, rows, y_train))
    (test, test_preds, scores, unc, ceiling), (val, _, val_scores, val_unc, val_ceiling) = out["test"], out["val"]
    return Evaluation(scores=scores, summary=metrics.summarize(scores), uncertainty=unc, val_scores=val_scores,
                      val_summary=metrics.summarize(val_scores), val_uncertainty=val_unc,
                      predictions={k: v for k, v in test_preds.items() if k != metrics.BASELINE_NAME},
                      verdict=uncertainty.verdict_text(unc["differences"], n_groups=unc["n_groups"]), n_test=len(test),
                      n_val=len(val), noise_ceiling=ceiling, val_noise_ceiling=val_ceiling)


def conformal(params) -> dict[str, pd.DataFrame]:
    """Each saved model's split-conformal intervals (:func:`audioreg.judge.uncertainty.conformal_table`):
    half-widths calibrated on its validation predictions, coverage measured on its test predictions."""
    out = {}
    for model, df in load_predictions(params, split_name=None).items():
        out[model] = uncertainty.conformal_of_predictions(df)
    return out


def write_run_metrics(params, evaluation: Evaluation) -> Path:
    """``runs/<run_id>/metrics.json``: every model x target metric with its 95 % interval, the
    paired differences and the verdict, the validation block, the merged parameters, what the
    scores were measured on (``data``: :func:`audioreg.stages.data_identity`), the package
    ``versions`` and when it was ``written``."""
    cfg = config(params)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.run_dir / "metrics.json"
    merged = cfg.run_dir / "params.yaml"  # the run's parameters, as every notebook recorded them
    run_params = load_yaml(merged) if merged.is_file() else cfg.params
    model_params = {}
    for model, sub in MODEL_DIRS.items():
        p = cfg.run_dir / sub / "params.json"
        if p.is_file():
            model_params[model] = json.loads(p.read_text(encoding="utf-8"))
    document = report.metrics_document(cfg["run_id"], evaluation, params=run_params, model_params=model_params,
                                       data=data_identity(cfg), versions=versions(),
                                       written=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    document["conformal"] = {"level": uncertainty.CONFORMAL_LEVEL,
                             "note": "half_width calibrated on the validation part (log2 units for tempo); "
                                     "coverage measured on the test part",
                             "models": {m: json.loads(t.to_json(orient="index")) for m, t in conformal(cfg).items()}}
    atomic.write_json(path, document)
    return path


def conformal_summary(params) -> pd.DataFrame:
    """:func:`conformal` as one table (model x target), at a reader's precision."""
    tables = conformal(params)
    if not tables:
        return pd.DataFrame()
    return pd.concat(tables, names=["model", "target"]).round(3)


#: The split-table columns the run's index uses (labels, file, artist, what it breaks errors down by).
REPORT_SPLIT_COLUMNS = ("track_id", "split", "path", "artists", "track_name", "sha256", "track_genre",
                        "sample_rate", "channels", "duration_s", "mode", *TARGETS)
#: Of those, the ones the ingest manifest can fill in for an older split table that lacks them.
MANIFEST_COLUMNS = ("path", "track_genre", "sample_rate", "channels", "duration_s")
#: Stored split tables (or manifests) searched, newest first, for the one holding a run's tracks.
_SEARCHED = 20


def report_inputs(params, *, report_dir: str | os.PathLike | None = None) -> report.ReportInputs:
    """Everything the run's ``index.html`` is built from, read from the run's files (nothing is
    computed again, nothing re-trained): ``reports/<run_id>/metrics.json`` (there only when this
    run's 06 made it), each model's ``predictions.csv`` (every part saved), the training
    histories, and the split table the scores were measured on, with the columns
    :data:`REPORT_SPLIT_COLUMNS` it holds.

    The split table is the one ``metrics.json`` names (``data.split_path``); for a run without
    one (before 06, or a metrics.json written before audioreg recorded it) the newest stored
    split under ``data/splits/`` whose test part holds every predicted test track. A column of
    :data:`MANIFEST_COLUMNS` the split table lacks is taken from the ingest manifest
    (``data/interim/ingest-*/manifest.csv``) that lists the same tracks, when one does. Audio
    paths are made absolute (relative ones are taken from the project root).

    What cannot be read is said in the result's ``notes``, never raised: the index is written
    whatever state the run is in.
    """
    cfg = config(params)
    report_dir = Path(report_dir) if report_dir is not None else cfg.reports_dir
    notes: list[str] = []
    doc = None
    path = report_dir / "metrics.json"
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            notes.append(f"{path}: {one_line(exc)}")
    if doc is not None and not isinstance(doc, dict):
        notes.append(f"{path}: not a metrics document")
        doc = None
    predictions = {}
    for model, sub in MODEL_DIRS.items():
        p = cfg.run_dir / sub / PREDICTIONS
        if p.is_file():
            try:
                predictions[model] = pd.read_csv(p, dtype={"track_id": str})
            except (OSError, ValueError) as exc:
                notes.append(f"{p}: {one_line(exc)}")
    histories = {}
    try:
        histories = load_histories(cfg)
    except (OSError, ValueError) as exc:
        notes.append(f"{cfg.run_dir / MODEL_DIRS['GRU'] / 'history.csv'}: {one_line(exc)}")
    split, split_note = _report_split(cfg, doc, predictions, notes)
    return report.ReportInputs(metrics=doc, predictions=predictions, histories=histories, split=split,
                               split_note=split_note, notes=notes)


def _read_columns(path: Path, wanted) -> pd.DataFrame:
    wanted = set(wanted)
    return pd.read_csv(path, usecols=lambda c: c in wanted, dtype={"track_id": str, "artists": str,
                                                                  "track_name": str, "track_genre": str, "path": str})


def _newest(paths) -> list[Path]:
    return sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True)[:_SEARCHED]


def _report_split(cfg, doc, predictions: dict, notes: list[str]) -> tuple[pd.DataFrame | None, str]:
    """The split table for :func:`report_inputs` and how it was found."""
    test_ids = set()
    for df in predictions.values():
        if {"track_id", "split"} <= set(df.columns):
            test_ids |= set(df.loc[df["split"] == "test", "track_id"])
    named = ((doc or {}).get("data") or {}).get("split_path") if isinstance((doc or {}).get("data"), dict) else None
    table, note = None, ""
    try:
        if named and Path(named).is_file():
            table, note = _read_columns(Path(named), REPORT_SPLIT_COLUMNS), f"Split table: {named} (named by metrics.json)."
        elif named:
            notes.append(f"{named}: the split table metrics.json names is gone")
        elif test_ids:
            for candidate in _newest((cfg.data_dir / "splits").glob("split-*.csv")):
                ids = _read_columns(candidate, ("track_id", "split"))
                if test_ids <= set(ids.loc[ids["split"] == "test", "track_id"]):
                    table = _read_columns(candidate, REPORT_SPLIT_COLUMNS)
                    note = (f"Split table: {candidate} (metrics.json names none; this stored split's test part holds "
                            "every predicted test track).")
                    break
            else:
                notes.append(f"no split table under {cfg.data_dir / 'splits'} holds the predicted test tracks")
    except (OSError, ValueError) as exc:
        notes.append(f"split table: {one_line(exc)}")
        return None, ""
    if table is None:
        return None, note
    lacking = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if lacking:
        ids = set(table["track_id"])
        try:
            for manifest in _newest((cfg.data_dir / "interim").glob("ingest-*/manifest.csv")):
                found = _read_columns(manifest, ("track_id", *lacking))
                if ids <= set(found["track_id"]) and len(found.columns) > 1:
                    table = table.merge(found.drop_duplicates("track_id"), on="track_id", how="left")
                    note += f" {', '.join(c for c in found.columns if c != 'track_id')} from {manifest}."
                    break
        except (OSError, ValueError) as exc:
            notes.append(f"ingest manifest: {one_line(exc)}")
        still = [c for c in MANIFEST_COLUMNS if c not in table.columns]
        if still:
            note += f" Neither the split table nor an ingest manifest holds {', '.join(still)}."
    if "path" in table.columns:
        table["path"] = [p if not isinstance(p, str) or not p or Path(p).is_absolute() else str(cfg.root / p)
                         for p in table["path"]]
    return table, note.strip()
