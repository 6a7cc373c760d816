"""``audioreg evaluate ANNOTATIONS.csv``: the expert (DSP) estimators and trained models scored on annotated music.

The annotations table has a ``path`` column (relative to the table; several paths joined
by ``+`` are summed, for stems) and any of ``bpm``, ``key`` (``"F# minor"``, or 0-11 with a
``mode`` column), ``mode`` (1 major, 0 minor) and ``time_signature`` (``"3/4"`` or 3). Each
file is decoded once; its tempo and key are estimated (:mod:`audioreg.features.experts`),
each trained model asked for (``--run runs/<run_id>``, :func:`load_models`) predicts from
the same decoded signal (:func:`audioreg.predict.predict_signal`), and all are scored as
the field scores them, each beside a constant baseline: tempo Acc1/Acc2 against 120 BPM,
key by the MIREX weighted score, tonic and key+mode accuracy against C major, meter
accuracy against 4/4 (the models predict a meter; the experts have no meter estimator yet).
The label audit (:func:`audit`) lists the rows whose label is off from the expert by an
octave factor or a related key: public Spotify-derived labels are wrong on a real share of
tracks in exactly these ways, and so are the experts; the audit says where to listen.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ._pandas import pd

from . import atomic
from .data.audio import SR, AudioDecodeError, load_audio
from .errors import one_line
from .features import experts
from .judge import metrics
from .paths import MODEL_POINTER

if TYPE_CHECKING:
    from .predict import Predictor

log = logging.getLogger(__name__)

#: The constant baselines: librosa's prior tempo, C major, 4/4.
BASELINE = {"tempo": 120.0, "key": 0, "mode": 1, "time_signature": 4}
#: The trained models a run may hold, by their folder in ``runs/<run_id>/``.
TRAINED = ("rf", "gru")
#: The key profile the models' expert inputs were computed with: the stages call
#: :func:`audioreg.features.experts.estimate_all` with its default profile.
MODEL_PROFILE = "krumhansl"
#: What a key score says of a model that predicts no mode.
NO_MODE = "no mode output: tonic accuracy only"

_PITCH = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def _blank(text) -> bool:
    return text is None or (isinstance(text, float) and math.isnan(text)) or str(text).strip() == ""


def parse_key(text) -> tuple[int, int | None] | None:
    """``"F# minor"`` -> (6, 0); ``"Bb major"`` -> (10, 1); ``"7"`` -> (7, None); empty -> None."""
    if _blank(text):
        return None
    s = str(text).strip()
    if re.fullmatch(r"-?\d+(\.0)?", s):
        k = int(float(s))
        return None if k < 0 else (k % 12, None)
    m = re.fullmatch(r"([A-Ga-g])([#b♯♭]?)\s*(major|minor|maj|min|m)?", s, flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"cannot read the key {text!r} (expected e.g. 'F# minor', 'Bb major' or 0-11)")
    pc = _PITCH[m.group(1).upper()] + {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(m.group(2), 0)
    word = (m.group(3) or "").lower()
    mode = None if not word else (0 if word in ("minor", "min", "m") else 1)
    return pc % 12, mode


def parse_meter(text) -> int | None:
    if _blank(text):
        return None
    return int(str(text).split("/")[0])


def read_annotations(path: str | os.PathLike) -> pd.DataFrame:
    """The annotations table with resolved ``files`` (a list per row) and parsed labels."""
    path = Path(path)
    df = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    if "path" not in df.columns:
        raise ValueError(f"{path}: needs a 'path' column (files relative to the table; '+' joins stems)")
    rows = []
    for i, r in df.iterrows():
        files = [(path.parent / p.strip()).resolve() for p in str(r["path"]).split("+") if p.strip()]
        bpm = pd.to_numeric(r.get("bpm"), errors="coerce") if "bpm" in df.columns else math.nan
        key = parse_key(r.get("key")) if "key" in df.columns else None
        mode = pd.to_numeric(r.get("mode"), errors="coerce") if "mode" in df.columns else math.nan
        if key is not None and key[1] is None and mode == mode:
            key = (key[0], int(mode))
        rows.append({"row": i + 2, "path": str(r["path"]), "files": files, "bpm": float(bpm),
                     "key": None if key is None else key[0], "mode": None if key is None else key[1],
                     "time_signature": parse_meter(r.get("time_signature")) if "time_signature" in df.columns else None})
    return pd.DataFrame(rows)


def load_mix(files, *, sr: int = SR) -> np.ndarray:
    """The files decoded to mono at ``sr`` and summed (stems of one song), padded to the longest."""
    parts = [load_audio(f, sr=sr)[0] for f in files]
    y = np.zeros(max(len(p) for p in parts), dtype=np.float32)
    for p in parts:
        y[: len(p)] += p
    return y


#: The columns of :attr:`Evaluation.predictions`.
PREDICTION_COLUMNS = ("row", "path", "model", "tempo", "key", "mode", "time_signature")


@dataclass
class Evaluation:
    estimates: pd.DataFrame   # one row per annotated row: labels and the experts' estimates
    scores: dict              # per attribute: n, then dsp, each model and the baseline's scores
    failures: pd.DataFrame    # rows whose audio could not be read or estimated, and why
    predictions: pd.DataFrame = field(  # one row per annotated row and model (PREDICTION_COLUMNS)
        default_factory=lambda: pd.DataFrame(columns=list(PREDICTION_COLUMNS)))

    @property
    def audit(self) -> pd.DataFrame:
        """The label audit of these estimates (:func:`audit`)."""
        return audit(self.estimates)


def _key_relation(ref_key: int, ref_mode: int | None, key: int, mode: int) -> str | None:
    """How a key estimate relates to a label it misses: fifth, relative or parallel (else None)."""
    if ref_mode is None:
        return "fifth" if (key - ref_key) % 12 in (5, 7) else None
    if mode == ref_mode and (key - ref_key) % 12 in (5, 7):
        return "fifth"
    if mode != ref_mode and (key - ref_key) % 12 == (9 if ref_mode == 1 else 3):
        return "relative"
    if mode != ref_mode and key == ref_key:
        return "parallel"
    return None


def audit(estimates: pd.DataFrame, *, tol: float = 0.04) -> pd.DataFrame:
    """Rows whose label disagrees with the expert in a way labels often are wrong: a tempo off
    by an octave factor (the label is the expert's tempo x2, x1/2, x3 or x1/3, within ``tol``,
    and not the expert's tempo itself), or a key a fifth, the relative or the parallel key
    away. Columns: row, path, attribute, label, expert, relation."""
    out = []
    for _, r in estimates.iterrows():
        bpm, est = r.get("bpm"), r.get("est_tempo")
        if bpm == bpm and bpm and est and abs(bpm - est) > tol * bpm:
            for name, f in metrics.TEMPO_MULTIPLES.items():  # the label is the expert's tempo times f
                if abs(bpm - f * est) <= tol * f * est:
                    out.append({"row": r["row"], "path": r["path"], "attribute": "tempo", "label": float(bpm),
                                "expert": float(est), "relation": f"label = expert {name}"})
                    break
        key = r.get("key")
        if key is not None and key == key:  # a matching key relates to nothing: _key_relation gives None
            ref_mode = None if r.get("mode") is None or r.get("mode") != r.get("mode") else int(r["mode"])
            relation = _key_relation(int(key), ref_mode, int(r["est_key"]), int(r["est_mode"]))
            if relation:
                out.append({"row": r["row"], "path": r["path"], "attribute": "key",
                            "label": metrics.key_names([key], [ref_mode if ref_mode is not None else 1])[0],
                            "expert": metrics.key_names([r["est_key"]], [r["est_mode"]])[0], "relation": relation})
    return pd.DataFrame(out, columns=["row", "path", "attribute", "label", "expert", "relation"])


def load_models(runs: Iterable[str | os.PathLike], kinds: Iterable[str] | None = None) -> dict[str, Predictor]:
    """The trained models of ``runs`` (``runs/<run_id>`` folders) to score beside the experts,
    named ``"<kind> [<run_id>]"``: the ``kinds`` (rf, gru) of each run, or by default every
    model the run holds (``rf/model.json``, ``gru/model.json``).

    Raises
    ------
    FileNotFoundError
        for a run folder that does not exist, holds no trained model, or lacks a kind asked for.
    ValueError
        for a kind other than rf or gru, two runs of the same name, or a model trained on
        another features version (:func:`audioreg.predict.load`).
    """
    from . import predict

    kinds = None if kinds is None else list(dict.fromkeys(kinds))
    for kind in kinds or ():
        if kind not in TRAINED:
            raise ValueError(f"--model must be one of {', '.join(TRAINED)}, not {kind!r}")
    out = {}
    for run in map(Path, runs):
        if not run.is_dir():
            raise FileNotFoundError(f"{run}: no such run folder (expected runs/<run_id>)")
        wanted = kinds or [k for k in TRAINED if (run / k / MODEL_POINTER).is_file()]
        if not wanted:
            raise FileNotFoundError(f"{run}: no trained model (rf/model.json or gru/model.json); run notebooks "
                                    f"04_rf and 05_gru with run_id={run.name} first")
        for kind in wanted:
            name = f"{kind} [{run.name}]"
            if name in out:
                raise ValueError(f"two runs named {run.name!r}: their models' rows would share a name")
            out[name] = predict.load(run, kind)
    return out


class _ModelError(Exception):
    """A trained model failed on one row (its name, the error's type and first line)."""


def _predict_models(y: np.ndarray, files: list[Path], values: dict, models: Mapping[str, Predictor], *,
                    profile: str) -> dict[str, dict]:
    """Each model's prediction for one decoded row (``values``: the experts' estimates of ``y``
    with ``profile``). The models share the frame features and, where they take them, the
    expert estimates of :data:`MODEL_PROFILE`, which is what they were trained with: ``values``
    when ``profile`` is that one, else one more expert pass. Their loudness input is the
    file's own over its original channels (:func:`~audioreg.data.audio.measure_loudness`, as
    the training data and ``audioreg predict`` measure it) or, for stems, that of their summed
    mono signal (:func:`~audioreg.data.loudness.integrated_loudness`; a stereo mix reads about
    3 dB quieter in mono)."""
    from .data.audio import measure_loudness
    from .data.loudness import integrated_loudness
    from .features import frames
    from .predict import predict_signal

    lufs = measure_loudness(files[0]) if len(files) == 1 else integrated_loudness(y, sr=SR)
    feats = frames.extract_features(y=y, sr=SR) if any(p.kind != "dsp" for p in models.values()) else None
    shared = None
    if any(p.needs_experts() for p in models.values()):
        shared = values if profile == MODEL_PROFILE else experts.estimate_all(y, sr=SR, profile=MODEL_PROFILE)
    out = {}
    for name, predictor in models.items():
        try:
            out[name] = predict_signal(y, lufs, predictor, feats=feats, expert_values=shared)
        except Exception as exc:  # a model failing on one row stops no evaluation: evaluate() lists the row
            raise _ModelError(f"{name}: {one_line(exc)}") from exc
    return out


def evaluate(annotations: pd.DataFrame, *, profile: str = "krumhansl", models: Mapping[str, Predictor] | None = None,
             progress: bool = False) -> Evaluation:
    """Estimate tempo and key for every row with the experts (key ``profile``), predict it with
    each of ``models`` (``{name: predictor}``, as :func:`load_models` gives), and score all of
    them beside the constant baselines (:func:`score`).

    Each row is decoded once; the experts run once on it and the models share it. A row that
    cannot be decoded, or that the experts or any model fail on, is listed in ``failures``
    (with the model's name) and scored by none, so that every estimator is scored on the
    same rows."""
    from tqdm.auto import tqdm

    models = dict(models or {})
    est, preds, failures = [], [], []
    for _, r in tqdm(annotations.iterrows(), total=len(annotations), desc="evaluate", disable=not progress):
        try:
            y = load_mix(r["files"])
            values = experts.estimate_all(y, sr=SR, profile=profile)
            predicted = _predict_models(y, r["files"], values, models, profile=profile) if models else {}
        except (AudioDecodeError, ValueError, _ModelError) as exc:
            failures.append({"row": r["row"], "path": r["path"], "reason": str(exc)})
            continue
        est.append({**{k: r[k] for k in ("row", "path", "bpm", "key", "mode", "time_signature")},
                    "est_tempo": values["tempo"], "est_key": values["key"], "est_mode": values["mode"],
                    "key_strength": values["key_strength"]})
        preds += [{"row": r["row"], "path": r["path"], "model": name, **{k: p[k] for k in PREDICTION_COLUMNS[3:]}}
                  for name, p in predicted.items()]
    df = pd.DataFrame(est)
    predictions = pd.DataFrame(preds, columns=list(PREDICTION_COLUMNS))
    return Evaluation(df, score(df, predictions), pd.DataFrame(failures, columns=["row", "path", "reason"]), predictions)


def _tempo_scores(ref: np.ndarray, est) -> dict:
    est = np.asarray(est, dtype=np.float64)
    est = np.where(est > 0, est, 1e-9)  # no beat found: a miss
    return {"acc1": float(np.mean(metrics.tempo_hits1(ref, est))), "acc2": float(np.mean(metrics.tempo_hits2(ref, est)))}


def _key_scores(ref_key: np.ndarray, ref_mode: np.ndarray, est_key, est_mode) -> tuple[dict, str | None]:
    """Tonic accuracy on every row; MIREX and key+mode accuracy on the rows whose label has a
    mode (``ref_mode`` not NaN), when the estimator gives a mode there. ``(scores, note)``:
    the note says why the mode scores are missing, or is None."""
    est_key = np.broadcast_to(np.asarray(est_key, dtype=np.float64), ref_key.shape)
    est_mode = np.broadcast_to(np.asarray(est_mode, dtype=np.float64), ref_key.shape)
    out = {"tonic_accuracy": float(np.mean(metrics.key_hits(ref_key, est_key)))}
    with_mode = ~np.isnan(ref_mode)
    if not with_mode.any():
        return out, None
    if not np.isfinite(est_mode[with_mode]).all():
        return out, NO_MODE
    mirex = metrics.mirex_key_scores(ref_key[with_mode], ref_mode[with_mode], est_key[with_mode], est_mode[with_mode])
    out.update(mirex=float(mirex.mean()), key_mode_accuracy=float(np.mean(mirex == 1.0)))
    return out, None


def _meter_scores(ref: np.ndarray, est) -> dict:
    est = np.broadcast_to(np.asarray(est, dtype=np.float64), ref.shape)
    return {"accuracy": float(np.mean(metrics.meter_class(est) == ref))}


def _model_columns(rows: pd.DataFrame, predictions: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    """Each model's ``column`` on ``rows`` (matched by ``row``), in their order."""
    out = {}
    for name, p in predictions.groupby("model", sort=False):
        p = p.set_index("row")[column]
        missing = set(rows["row"]) - set(p.index)
        if missing:
            raise ValueError(f"{name}: no prediction for annotation rows {sorted(missing)[:5]}")
        out[name] = p.loc[rows["row"]].to_numpy(dtype=np.float64)
    return out


def score(df: pd.DataFrame, predictions: pd.DataFrame | None = None) -> dict:
    """Tempo Acc1/Acc2, key MIREX/tonic/key+mode and meter accuracy of the experts (``dsp``)
    and of each model in ``predictions`` (:data:`PREDICTION_COLUMNS`, one row per annotated
    row and model), each attribute with its baseline and ``n`` (the key's mode scores count
    ``n_with_mode`` rows). A model without a mode (NaN) is scored by tonic accuracy only, and
    the key's ``notes`` say so; the experts have no meter estimator (``dsp`` None)."""
    predictions = pd.DataFrame(columns=list(PREDICTION_COLUMNS)) if predictions is None else predictions
    out = {}
    t = df[df["bpm"].notna() & (df["bpm"] > 0)] if len(df) else df
    if len(t):
        ref = t["bpm"].to_numpy(float)
        out["tempo"] = {"n": len(t), "dsp": _tempo_scores(ref, t["est_tempo"].to_numpy(float)),
                        **{name: _tempo_scores(ref, est) for name, est in _model_columns(t, predictions, "tempo").items()},
                        "baseline 120 BPM": _tempo_scores(ref, np.full(len(ref), BASELINE["tempo"]))}
    k = df[df["key"].notna()] if len(df) else df
    if len(k):
        ref_k, ref_m = k["key"].to_numpy(float), k["mode"].to_numpy(float, na_value=np.nan)
        entry, notes = {"n": len(k), "n_with_mode": int((~np.isnan(ref_m)).sum())}, {}
        modes = _model_columns(k, predictions, "mode")
        for name, est in {"dsp": (k["est_key"], k["est_mode"]),
                          **{m: (v, modes[m]) for m, v in _model_columns(k, predictions, "key").items()},
                          "baseline C major": (float(BASELINE["key"]), float(BASELINE["mode"]))}.items():
            entry[name], note = _key_scores(ref_k, ref_m, *est)
            if note:
                notes[name] = note
        out["key"] = {**entry, **({"notes": notes} if notes else {})}
    m = df[df["time_signature"].notna()] if len(df) else df
    if len(m):
        ref = m["time_signature"].to_numpy(float)
        out["time_signature"] = {"n": len(m), "dsp": None,
                                 **{name: _meter_scores(ref, est)
                                    for name, est in _model_columns(m, predictions, "time_signature").items()},
                                 "baseline 4/4": _meter_scores(ref, float(BASELINE["time_signature"]))}
    return out


#: Keys of an attribute's scores that are not an estimator's.
_NOT_ESTIMATORS = ("n", "n_with_mode", "notes")


def estimators(scores: dict) -> list[tuple[str, str, dict | None]]:
    """``(attribute, estimator, its scores)`` in the order of ``scores`` (:func:`score`):
    the experts (``dsp``, None where they estimate nothing), each model, the baseline."""
    return [(attr, name, vals) for attr, s in scores.items() for name, vals in s.items() if name not in _NOT_ESTIMATORS]


def describe(scores: dict, attr: str, name: str) -> str:
    """One estimator's scores of one attribute in words: ``"Acc1 56 %, Acc2 89 %"``,
    ``"tonic 75 %, MIREX 0.62, key+mode 50 %"``; a note where its scores are partial."""
    vals = scores[attr][name]
    if vals is None:
        return "no estimator"
    label = {"acc1": "Acc1", "acc2": "Acc2", "tonic_accuracy": "tonic", "key_mode_accuracy": "key+mode",
             "accuracy": "accuracy"}
    text = ", ".join(f"MIREX {v:.2f}" if k == "mirex" else f"{label.get(k, k)} {100 * v:.0f} %" for k, v in vals.items())
    note = scores[attr].get("notes", {}).get(name)
    return f"{text} ({note})" if note else text


def summary(scores: dict) -> list[str]:
    """One line per attribute and estimator, for the terminal: ``"tempo (n=9) dsp: Acc1 56 %, Acc2 89 %"``."""
    return [f"{attr} (n={scores[attr]['n']}) {name}: {describe(scores, attr, name)}" for attr, name, _ in estimators(scores)]


def write(result: Evaluation, out_dir: str | os.PathLike, *, source: str = "") -> tuple[Path, Path]:
    """``evaluation.json`` (scores, per-row estimates and model predictions, failures, audit)
    and ``evaluation.html`` (one table row per attribute and estimator, with its n)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = list(dict.fromkeys(result.predictions["model"]))
    doc = {"annotations": source, "baselines": BASELINE, "models": models, "scores": result.scores,
           "estimates": json.loads(result.estimates.to_json(orient="records")),
           "predictions": json.loads(result.predictions.to_json(orient="records")),
           "failures": result.failures.to_dict(orient="records"),
           "audit": result.audit.to_dict(orient="records")}
    js = atomic.write_json(out / "evaluation.json", doc)
    rows = []
    for attr, name, vals in estimators(result.scores):
        if vals is None:
            continue
        s, n = result.scores[attr], str(result.scores[attr]["n"])
        if "mirex" in vals and s["n_with_mode"] != s["n"]:
            n += f" ({s['n_with_mode']} with a mode)"
        rows.append(f"<tr><td>{html.escape(attr)}</td><td>{html.escape(name)}</td><td>{n}</td>"
                    f"<td>{html.escape(describe(result.scores, attr, name))}</td></tr>")
    what = "Expert estimators and trained models" if models else "Expert estimators"
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>audioreg evaluate</title></head><body>"
            f"<h1>{what} on {html.escape(source)}</h1>"
            "<p>Each score beside its constant baseline (120 BPM, C major, 4/4). Acc1: within 4 %; Acc2: also at "
            "x2, x3, x1/2, x1/3. MIREX: 1 same key, 0.5 fifth, 0.3 relative, 0.2 parallel. dsp: the expert "
            "estimators (no meter estimator yet); <i>kind [run]</i>: a run's trained model, scored on the same rows."
            "</p><table border='1'><tr><th>attribute</th><th>model</th><th>n</th><th>scores</th></tr>" + "".join(rows)
            + "</table>" + (f"<h2>Label audit ({len(result.audit)})</h2><p>Labels off by an octave factor or a "
                            "related key from the expert: often the label is wrong.</p><ul>" + "".join(
                f"<li>row {a['row']} {html.escape(str(a['path']))}: {a['attribute']} label {html.escape(str(a['label']))}, "
                f"expert {html.escape(str(a['expert']))} ({html.escape(a['relation'])})</li>"
                for a in result.audit.to_dict(orient="records")) + "</ul>" if len(result.audit) else "")
            + (f"<h2>Not scored ({len(result.failures)})</h2><p>Unreadable, or an estimator failed on it.</p><ul>" + "".join(
                f"<li>{html.escape(str(f['path']))}: {html.escape(str(f['reason']))}</li>"
                for f in result.failures.to_dict(orient="records")) + "</ul>" if len(result.failures) else "")
            + "</body></html>")
    page_path = atomic.write_text(out / "evaluation.html", page)
    return Path(js), Path(page_path)
