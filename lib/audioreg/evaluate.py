"""``audioreg evaluate ANNOTATIONS.csv``: the expert (DSP) estimators scored on annotated music.

The annotations table has a ``path`` column (relative to the table; several paths joined
by ``+`` are summed, for stems) and any of ``bpm``, ``key`` (``"F# minor"``, or 0-11 with a
``mode`` column), ``mode`` (1 major, 0 minor) and ``time_signature`` (``"3/4"`` or 3). Each
file is decoded once; its tempo and key are estimated (:mod:`audioreg.features.experts`)
and scored as the field scores them, each beside a constant baseline: tempo Acc1/Acc2
against 120 BPM, key by the MIREX weighted score, tonic and key+mode accuracy against
C major, meter accuracy against 4/4 (no DSP meter estimator yet, so the baseline alone).
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import atomic
from .data.audio import SR, AudioDecodeError, load_audio
from .features import experts
from .judge import metrics

log = logging.getLogger(__name__)

#: The constant baselines: librosa's prior tempo, C major, 4/4.
BASELINE = {"tempo": 120.0, "key": 0, "mode": 1, "time_signature": 4}

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


@dataclass
class Evaluation:
    estimates: pd.DataFrame   # one row per annotated row: labels and estimates
    scores: dict              # per attribute: n, dsp and baseline scores
    failures: pd.DataFrame    # rows whose audio could not be read, and why

    @property
    def audit(self) -> pd.DataFrame:
        """The label audit of these estimates (:func:`audit`)."""
        return audit(self.estimates)


#: Tempo factors a label audit names: the label is the expert's tempo times one of these.
AUDIT_FACTORS = {2.0: "x2", 0.5: "x1/2", 3.0: "x3", 1.0 / 3.0: "x1/3"}


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
            for f, name in AUDIT_FACTORS.items():
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


def evaluate(annotations: pd.DataFrame, *, profile: str = "krumhansl", progress: bool = False) -> Evaluation:
    """Estimate tempo and key for every row and score them beside the constant baselines."""
    from tqdm.auto import tqdm

    est, failures = [], []
    for _, r in tqdm(annotations.iterrows(), total=len(annotations), desc="evaluate", disable=not progress):
        try:
            y = load_mix(r["files"])
            e = experts.estimate(y, sr=SR, profile=profile)
        except (AudioDecodeError, ValueError) as exc:
            failures.append({"row": r["row"], "path": r["path"], "reason": str(exc)})
            continue
        est.append({**{k: r[k] for k in ("row", "path", "bpm", "key", "mode", "time_signature")},
                    "est_tempo": e["tempo"], "est_key": e["key"], "est_mode": e["mode"], "key_strength": e["key_strength"]})
    df = pd.DataFrame(est)
    return Evaluation(df, score(df), pd.DataFrame(failures, columns=["row", "path", "reason"]))


def score(df: pd.DataFrame) -> dict:
    """Tempo Acc1/Acc2, key MIREX/tonic/key+mode and meter accuracy, each with its baseline and n."""
    out = {}
    t = df[df["bpm"].notna() & (df["bpm"] > 0)] if len(df) else df
    if len(t):
        ref = t["bpm"].to_numpy(float)
        est = np.where(t["est_tempo"] > 0, t["est_tempo"], 1e-9)
        base = np.full(len(ref), BASELINE["tempo"])
        out["tempo"] = {"n": len(t), "dsp": {"acc1": float(np.mean(metrics.tempo_hits1(ref, est))),
                                              "acc2": float(np.mean(metrics.tempo_hits2(ref, est)))},
                        "baseline 120 BPM": {"acc1": float(np.mean(metrics.tempo_hits1(ref, base))),
                                             "acc2": float(np.mean(metrics.tempo_hits2(ref, base)))}}
    k = df[df["key"].notna()] if len(df) else df
    if len(k):
        ref = k["key"].to_numpy(float)
        with_mode = k["mode"].notna().to_numpy()
        dsp = {"tonic_accuracy": float(np.mean(metrics.key_hits(ref, k["est_key"].to_numpy(float))))}
        base = {"tonic_accuracy": float(np.mean(metrics.key_hits(ref, np.full(len(ref), float(BASELINE["key"])))))}
        if with_mode.any():
            km = k[with_mode]
            ref_k, ref_m = km["key"].to_numpy(float), km["mode"].to_numpy(float)
            mirex = metrics.mirex_key_scores(ref_k, ref_m, km["est_key"].to_numpy(float), km["est_mode"].to_numpy(float))
            mirex_base = metrics.mirex_key_scores(ref_k, ref_m, np.full(len(km), float(BASELINE["key"])), BASELINE["mode"])
            dsp.update(mirex=float(mirex.mean()), key_mode_accuracy=float(np.mean(mirex == 1.0)))
            base.update(mirex=float(mirex_base.mean()), key_mode_accuracy=float(np.mean(mirex_base == 1.0)))
        out["key"] = {"n": len(k), "n_with_mode": int(with_mode.sum()), "dsp": dsp, "baseline C major": base}
    m = df[df["time_signature"].notna()] if len(df) else df
    if len(m):
        out["time_signature"] = {"n": len(m), "dsp": None, "baseline 4/4": {
            "accuracy": float(np.mean(m["time_signature"].astype(int) == BASELINE["time_signature"]))}}
    return out


def write(result: Evaluation, out_dir: str | os.PathLike, *, source: str = "") -> tuple[Path, Path]:
    """``evaluation.json`` (scores, per-row estimates, failures) and ``evaluation.html``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"annotations": source, "baselines": BASELINE, "scores": result.scores,
           "estimates": json.loads(result.estimates.to_json(orient="records")),
           "failures": result.failures.to_dict(orient="records"),
           "audit": result.audit.to_dict(orient="records")}
    js = atomic.write_json(out / "evaluation.json", doc)
    rows = []
    for attr, s in result.scores.items():
        for model, vals in s.items():
            if model in ("n", "n_with_mode") or vals is None:
                continue
            rows.append(f"<tr><td>{html.escape(attr)}</td><td>{html.escape(model)}</td><td>{s['n']}</td><td>"
                        + ", ".join(f"{html.escape(k)} {100 * v:.0f} %" if k != "mirex" else f"MIREX {v:.2f}"
                                    for k, v in vals.items()) + "</td></tr>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>audioreg evaluate</title></head><body>"
            f"<h1>Expert estimators on {html.escape(source)}</h1>"
            "<p>Each score beside its constant baseline (120 BPM, C major, 4/4). Acc1: within 4 %; Acc2: also at "
            "x2, x3, x1/2, x1/3. MIREX: 1 same key, 0.5 fifth, 0.3 relative, 0.2 parallel.</p>"
            "<table border='1'><tr><th>attribute</th><th>model</th><th>n</th><th>scores</th></tr>" + "".join(rows)
            + "</table>" + (f"<h2>Label audit ({len(result.audit)})</h2><p>Labels off by an octave factor or a "
                            "related key from the expert: often the label is wrong.</p><ul>" + "".join(
                f"<li>row {a['row']} {html.escape(str(a['path']))}: {a['attribute']} label {html.escape(str(a['label']))}, "
                f"expert {html.escape(str(a['expert']))} ({html.escape(a['relation'])})</li>"
                for a in result.audit.to_dict(orient="records")) + "</ul>" if len(result.audit) else "")
            + (f"<h2>Unreadable ({len(result.failures)})</h2><ul>" + "".join(
                f"<li>{html.escape(str(f['path']))}: {html.escape(str(f['reason']))}</li>"
                for f in result.failures.to_dict(orient="records")) + "</ul>" if len(result.failures) else "")
            + "</body></html>")
    page_path = atomic.write_text(out / "evaluation.html", page)
    return Path(js), Path(page_path)
