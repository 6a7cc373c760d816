"""The data stages behind notebooks 01-03, each cached by a content key.

Every stage takes the merged parameters, computes the key of its inputs, and
either reuses ``data/<stage>/<key12>/`` or builds it (calling the stages before it
the same way). So any notebook can be run on its own: what it needs is built, or
reused from the cache. Artifacts are written atomically and a ``meta.json``
written last marks a folder as complete.

A cache folder is built under its lock (``<folder>.lock`` beside it, :func:`_build_once`):
of two runs that find it missing on one data root, one builds it while the other waits
and then reuses it, so concurrent first runs both finish with the same results.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ._pandas import pd

from . import atomic
from .data import audio, dedup, linking, metadata
from .features import extract, frames
from .params import base_params, digest
from .synth import STAMP_NAME
from .errors import NotEnoughData
from .paths import resolve, resolve_root
from .data.split import check_no_leakage, group_split, leakage_groups
from .models.inputs import TRACK_FEATURES, TrackSequences, expert_columns, sequences, track_inputs  # noqa: F401 - the split table's model inputs
from .targets import TARGETS

log = logging.getLogger(__name__)

INGEST_VERSION = "4"  # 3: each file's integrated loudness (lufs); 4: partial labels, link_table, repeats removed
SPLIT_VERSION = "3"  # 3: the expert estimates (dsp_*) joined; 2: groups join artists, audio and songs
EXPERTS_VERSION = "1"

class MissingArtifactError(FileNotFoundError):
    """An earlier stage's output is missing; the message says which command makes it."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class Config:
    """Merged parameters (``params/base.yaml`` fills the keys they lack) plus the resolved project root."""

    params: dict
    root: Path = field(init=False)

    def __post_init__(self):
        self.params = {**base_params(), **self.params}
        self.root = resolve_root(self.params.get("root", ""))

    def __getitem__(self, key):
        try:
            return self.params[key]
        except KeyError:
            raise KeyError(f"parameter {key!r} is not set, and no params/base.yaml was found to give its default") from None

    def path(self, key: str) -> Path:
        return resolve(self.params[key], self.root)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def run_dir(self) -> Path:
        return self.root / "runs" / str(self.params["run_id"])

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports" / str(self.params["run_id"])


def config(params: dict) -> Config:
    return params if isinstance(params, Config) else Config(dict(params))


def _fresh_dir(path: Path) -> Path:
    """Start a cache folder from scratch when it exists without its meta.json.

    Only under the folder's lock (:func:`_building`): a folder without its meta.json is
    then what a killed build left, never another process's build in progress.
    """
    if path.exists() and not (path / "meta.json").exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _building(folder: Path):
    """The lock of the cache folder ``folder`` (:func:`audioreg.atomic.lock_beside`: beside it,
    so that :func:`_fresh_dir` deleting the folder keeps it), held while it is checked and built."""
    return atomic.lock_beside(folder, doing="building")


def _build_once(folder: Path, load, build):
    """``load()`` the cache folder ``folder`` if its ``meta.json`` says it is complete and
    ``load`` finds it sound (it returns None when the folder needs work), else ``build()`` it,
    under its lock (:func:`_building`), checking again there: a process that waited for
    another building it finds the folder done and loads it."""
    if (folder / "meta.json").is_file() and (done := load()) is not None:
        return done
    with _building(folder):
        if (folder / "meta.json").is_file() and (done := load()) is not None:
            return done
        return build()


# ---------------------------------------------------------------------- 00: data
SYNTH_KEYS = {"synth_n": "n", "synth_seconds": "seconds", "seed": "seed", "label_noise": "label_noise"}
#: The lock a process generating the sample set holds, in the set's folder (hidden; not audio).
SAMPLE_LOCK = ".generating.lock"


def sample_set(params) -> Path:
    """Make sure the metadata CSV exists; generate the synthetic sample set there if asked.

    Returns the metadata path.
    """
    cfg = config(params)
    meta = cfg.path("metadata_path")
    wanted = {v: cfg[k] for k, v in SYNTH_KEYS.items()}
    stamp = meta.parent / STAMP_NAME
    if meta.is_file():
        if stamp.is_file() and cfg["generate_sample"]:
            made = json.loads(stamp.read_text(encoding="utf-8"))
            diff = {k: (made.get(k), v) for k, v in wanted.items() if made.get(k) != v}
            if diff:
                what = ", ".join(f"{k}={a} (asked {b})" for k, (a, b) in diff.items())
                raise ValueError(
                    f"{meta.parent} holds a sample set generated with {what}; point metadata_path and "
                    f"audio_dir to another folder or delete {meta.parent}"
                )
        return meta
    if not cfg["generate_sample"]:
        raise MissingArtifactError(f"{meta}: metadata file not found (set metadata_path, or generate_sample: true)")
    # under a lock inside the folder (data/raw holds only the set): one process generates, another waits
    with atomic.locked(meta.parent / SAMPLE_LOCK, doing=f"building {meta.parent}"):
        if meta.is_file():  # generated while this process waited: its stamp is checked as above
            return sample_set(cfg)
        from . import synth

        log.info("generating the sample set in %s", meta.parent)
        synth.generate_sample_set(meta.parent, n=int(cfg["synth_n"]), seconds=float(cfg["synth_seconds"]),
                                  seed=int(cfg["seed"]), label_noise=float(cfg["label_noise"]),
                                  progress=bool(cfg["progress"]))
    if not meta.is_file():
        raise MissingArtifactError(f"{meta}: the sample set was generated in {meta.parent} but has no {meta.name}")
    return meta


# -------------------------------------------------------------------- 01: ingest
@dataclass
class IngestResult:
    out_dir: Path
    manifest: pd.DataFrame
    problems: pd.DataFrame
    key: str
    duplicates: pd.DataFrame | None = None  # rows removed as repeats (data.dedup), with the row each repeats
    unmatched: pd.DataFrame | None = None  # audio files no row matched
    meta: dict = field(default_factory=dict)  # meta.json: counts, absent targets, removed per rule


def _audio_listing(audio_dir: Path) -> list:
    files = linking.index_audio_dir(audio_dir)
    out = []
    for p in files["path"]:
        st = os.stat(p)
        out.append([os.path.relpath(p, audio_dir), st.st_size, st.st_mtime_ns])
    return out


def _problems(rows: pd.DataFrame, *, stage: str, reason, path=None) -> pd.DataFrame:
    """Problems-table rows (:data:`audioreg.data.metadata.PROBLEM_COLUMNS`) for the metadata rows ``rows``."""
    return pd.DataFrame({"row": rows["row"].to_numpy(dtype=np.int64), "track_id": rows["track_id"].to_numpy(dtype=object),
                         "path": path, "stage": stage, "reason": reason, "action": metadata.ROW_DROPPED},
                        columns=list(metadata.PROBLEM_COLUMNS))


def ingest(params) -> IngestResult:
    """Read the metadata, link rows to audio files, probe, measure and hash each linked file,
    remove repeats.

    Writes to ``data/interim/ingest-<key>/``: ``manifest.csv`` (one row per usable track; a
    missing or masked label is empty: partial labels are data), ``problems.csv`` (every row
    dropped, or with a label masked, and why), ``duplicates.csv`` (the rows removed as
    repeats, :mod:`audioreg.data.dedup`), ``unmatched_files.csv`` (audio files no row
    matched) and, last, ``meta.json`` (counts, the targets the table lacks, rows removed per rule).
    """
    cfg = config(params)
    meta_path = sample_set(cfg)
    audio_dir = cfg.path("audio_dir")
    if not audio_dir.is_dir():
        raise MissingArtifactError(f"{audio_dir}: audio folder not found (set audio_dir)")
    table = None  # (rows, problems, usable rows) of the metadata, read once
    fetched = None
    if cfg["fetch_audio"]:  # the downloads change the audio listing: before the key
        table = _checked_metadata(meta_path)
        fetched = fetch_urls(cfg, table[2], audio_dir, source=meta_path)
    key = digest({"v": INGEST_VERSION, "metadata": audio.file_sha256(meta_path), "audio": _audio_listing(audio_dir)})
    out = cfg.data_dir / "interim" / f"ingest-{key}"
    return _build_once(out, lambda: _load_ingest(out, key),
                       lambda: _build_ingest(cfg, out, key, meta_path=meta_path, audio_dir=audio_dir, table=table,
                                             fetched=fetched))


def _load_ingest(out: Path, key: str) -> IngestResult:
    return IngestResult(out, _read_manifest(out / "manifest.csv"),
                        pd.read_csv(out / "problems.csv", dtype={"track_id": str}), key,
                        pd.read_csv(out / "duplicates.csv", dtype={"track_id": str, "kept_track_id": str}),
                        pd.read_csv(out / "unmatched_files.csv"),
                        json.loads((out / "meta.json").read_text(encoding="utf-8")))


def _build_ingest(cfg: Config, out: Path, key: str, *, meta_path: Path, audio_dir: Path, table, fetched) -> IngestResult:
    """:func:`ingest`'s work, under the folder's lock: ``table`` is the metadata already read
    (or None), ``fetched`` the downloads' result (or None)."""
    _fresh_dir(out)
    df, checked, usable = table or _checked_metadata(meta_path)
    absent = metadata.absent_targets(df)
    found = linking.link_table(usable, audio_dir=audio_dir, metadata_dir=meta_path.parent)
    links = found.links
    unlinked = links["path"].isna().to_numpy()
    reasons = links.loc[unlinked, "reason"].to_numpy(dtype=object)
    if fetched is not None and len(fetched.failures):  # a row whose download failed: say why it has no file
        why = dict(zip(fetched.failures["track_id"], fetched.failures["reason"]))
        reasons = [f"download failed: {why[t]}; {r}" if t in why else r
                   for t, r in zip(usable.loc[unlinked, "track_id"], reasons)]
    problems = [checked, _problems(usable[unlinked], stage="link", reason=reasons)]
    rows = []
    from tqdm.auto import tqdm

    linked = usable[~unlinked]
    for (_, r), (_, link) in tqdm(zip(linked.iterrows(), links[~unlinked].iterrows()), total=len(linked),
                                  desc="ingest", unit="file", disable=not cfg["progress"]):
        one = linked.loc[[r.name]]
        try:
            info = audio.probe_audio(link["path"])
        except audio.AudioDecodeError as exc:
            problems.append(_problems(one, stage="probe", reason=str(exc), path=link["path"]))
            continue
        try:
            lufs = audio.measure_loudness(link["path"])
        except audio.AudioDecodeError as exc:
            problems.append(_problems(one, stage="loudness", reason=str(exc), path=link["path"]))
            continue
        rec = {"track_id": r["track_id"], "path": str(Path(link["path"]).resolve()), "sha256": audio.file_sha256(link["path"]),
               "duration_s": info["duration_s"], "sample_rate": info["sample_rate"], "channels": info["channels"],
               "lufs": max(lufs, audio.SILENT_LUFS), "link": link["link"], "row": r["row"]}
        for col in ("artists", "album_name", "track_name", "track_genre", "mode"):
            if col in usable.columns:
                rec[col] = r[col]
        for t in TARGETS:
            rec[t] = float(r[t])
        rows.append(rec)
    manifest, duplicates = dedup.deduplicate(pd.DataFrame(rows, columns=list(rows[0]) if rows else ["row", "track_id", "path"]))
    if len(duplicates):
        problems.append(_problems(duplicates, stage="dedup", reason=duplicates["reason"].to_numpy(dtype=object),
                                  path=duplicates["path"].to_numpy(dtype=object)))
    probs = pd.concat([p for p in problems if len(p)], ignore_index=True) if any(len(p) for p in problems) else checked
    probs = probs.sort_values(["row", "stage"], kind="stable").reset_index(drop=True)
    id_repeats = int(checked["reason"].str.contains("duplicate of row", regex=False).sum()) if len(checked) else 0
    removed = dedup.summary(duplicates, id_repeats=id_repeats)
    unmatched = found.unmatched.assign(path=lambda f: [os.path.relpath(p, audio_dir) for p in f["path"]])
    meta = {"key": key, "metadata_path": str(meta_path), "audio_dir": str(audio_dir), "n_rows": len(df),
            "n_usable": len(manifest), "n_problems": len(probs), "absent_targets": list(absent),
            "removed_as_repeats": removed["removed"].to_dict(), "n_unmatched_files": len(unmatched),
            "labelled": {t: int(n) for t, n in label_counts(manifest)["all"].items()}}
    atomic.write_csv(out / "manifest.csv", manifest)
    atomic.write_csv(out / "problems.csv", probs)
    atomic.write_csv(out / "duplicates.csv", duplicates)
    atomic.write_csv(out / "unmatched_files.csv", unmatched)
    atomic.write_json(out / "meta.json", meta)
    return IngestResult(out, manifest, probs, key, duplicates, unmatched, meta)


#: Where :func:`fetch_urls` puts downloads: a folder of the audio folder, so the linker finds them.
FETCHED_DIR = "fetched"


def _checked_metadata(meta_path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The metadata table, its problems (:func:`audioreg.data.metadata.validate_labels`) and its
    usable rows, labels masked (:func:`audioreg.data.metadata.usable_rows`)."""
    df = metadata.read_metadata(meta_path)
    checked = metadata.validate_labels(df)
    return df, checked, metadata.usable_rows(df, checked)


def fetch_urls(params, table: pd.DataFrame, audio_dir: Path, *, source: Path):
    """Download the ``url`` column of ``table`` (the usable rows of the metadata table ``source``)
    into ``<audio_dir>/fetched/<track_id>.<ext>`` (:func:`audioreg.data.fetch.fetch_audio`:
    resumed, retried, one request start per host per ``fetch_interval_s``, checked against the
    table's ``sha256`` column when it has one; files already there are not requested again),
    before ingest links the rows, which then find them by the ``<track_id>.<ext>`` rule. Only for audio you
    are entitled to download; off unless ``fetch_audio`` is set. Returns the fetch result
    (its failures are written to the ingest problems by :func:`ingest`)."""
    from .data import fetch

    cfg = config(params)
    if "url" not in table.columns:
        raise ValueError(f"{source}: fetch_audio is set but the table has no 'url' column")
    dest = audio_dir / FETCHED_DIR
    # two processes downloading one URL into one .part would interleave their writes: one at a time
    # (the one that waited finds the files there, checks them and requests nothing)
    with atomic.locked(dest.with_name(dest.name + ".lock"), doing=f"downloading into {dest}"):
        res = fetch.fetch_audio(table, dest, min_interval_s=float(cfg["fetch_interval_s"]),
                                checksum_column="sha256" if "sha256" in table.columns else None,
                                progress=bool(cfg["progress"]))
    log.info("fetched %d files (%d failed) into %s", len(res.files), len(res.failures), audio_dir / FETCHED_DIR)
    return res


def _track_hashes(manifest: pd.DataFrame) -> list:
    """The manifest's sorted ``(track_id, sha256)`` pairs: what the stages built from the audio are keyed by."""
    return sorted(zip(manifest["track_id"], manifest["sha256"])) if len(manifest) else []


def _read_manifest(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"track_id": str, "artists": str, "track_name": str, "album_name": str})


# ------------------------------------------------------------------- 02: extract
@dataclass
class FeaturesResult:
    out_dir: Path
    index: pd.DataFrame
    failures: pd.DataFrame
    key: str
    computed: int = 0
    reused: int = 0
    ingest: IngestResult | None = None  # the stage it was built from

    def array(self, i: int) -> np.ndarray:
        """Memory-mapped ``[t, 46]`` features of the ``i``-th indexed track."""
        return np.load(self.out_dir / self.index["file"].iloc[i], mmap_mode="r")


def features(params, *, checksum: bool = True) -> FeaturesResult:
    """Features of every manifest track, cached in ``data/features/<key>/``.

    The key hashes the manifest's (track_id, file hash) pairs, the feature settings
    and the extractor version: the same inputs reuse the folder. A complete folder is
    verified first (:func:`cache_problems`: each indexed array's shape, and with
    ``checksum`` its values; any failure that may pass on another try): when something
    is wrong, the damaged arrays are recomputed and the transient failures retried, the
    rest reused. 02 checks the checksums; later stages (through :func:`split`) the shapes.
    """
    cfg = config(params)
    ing = ingest(cfg)
    torch_device = extract.feature_device(cfg["extract_device"])
    key = digest({"tracks": _track_hashes(ing.manifest),
                  "features": frames.feature_params(),
                  # the torch path agrees within tolerance, not bit for bit: its arrays get their own folder
                  **({"computed_with": "torch"} if torch_device is not None else {})})
    out = cfg.data_dir / "features" / key
    problems: list[str] = []  # what the last check found wrong with the folder

    def load() -> FeaturesResult | None:
        """The folder as it is, if nothing in it needs work (:func:`cache_problems`)."""
        index = pd.read_csv(out / "index.csv", dtype={"track_id": str})
        failures = pd.read_csv(out / "failures.csv", dtype={"track_id": str})
        problems[:] = cache_problems(out, index, failures, checksum=checksum)
        return None if problems else FeaturesResult(out, index, failures, key, ingest=ing)

    def build() -> FeaturesResult:
        """Extract what the folder lacks: every array the first time; the damaged ones and the
        transient failures after (finished arrays are complete, verified and reused)."""
        if problems:
            log.info("%s: %s; extracting those again", out, "; ".join(problems))
        (out / "meta.json").unlink(missing_ok=True)  # written again last
        out.mkdir(parents=True, exist_ok=True)
        res = extract.extract_many(ing.manifest[["track_id", "path"]], out, workers=int(cfg["workers"]),
                                   timeout_s=float(cfg["file_timeout_s"]), progress=bool(cfg["progress"]),
                                   scheduler=str(cfg["scheduler"] or "") or None, device=str(cfg["extract_device"]),
                                   batch_size=int(cfg["extract_batch_size"]))
        extract.write_features_meta(out, res, key=key, ingest_key=ing.key, device=str(cfg["extract_device"]))
        return FeaturesResult(out, res.index, res.failures, key, res.computed, res.reused, ingest=ing)

    return _build_once(out, load, build)


def cache_problems(out_dir: Path, index: pd.DataFrame, failures: pd.DataFrame, *, checksum: bool) -> list[str]:
    """What keeps a complete features folder from being reused as it is (empty: nothing).

    Each indexed array is checked against its row (:func:`audioreg.features.extract.verify_array`;
    values too with ``checksum``), and a failure marked ``transient`` (a timeout, a worker
    that died, a full disk: another try may pass) is one to retry. A table from before
    failures were marked is retried whole.
    """
    damaged = []
    for rec in index.to_dict("records"):
        if extract.verify_array(out_dir / rec["file"], rec, checksum=checksum) is not None:
            damaged.append(rec["file"])  # extract_many names each, and why, when it recomputes it
    transient = _retry(failures)
    problems = []
    if damaged:
        problems.append(f"{len(damaged)} damaged array(s) ({', '.join(damaged[:5])}{', ...' if len(damaged) > 5 else ''})")
    if transient.any():
        problems.append(f"{int(transient.sum())} failure(s) that may pass on another try (timeout, worker died, no space)")
    return problems


# ------------------------------------------------------------ 02: expert estimates
@dataclass
class ExpertsResult:
    out_dir: Path
    table: pd.DataFrame  # track_id and dsp_<estimate> per track whose estimates succeeded
    failures: pd.DataFrame
    key: str


def experts(params) -> ExpertsResult:
    """The expert estimates of every manifest track (:func:`audioreg.features.experts.estimate_all`:
    beat-tracker tempo, key and mode by key profile, the 24 key correlations), cached in
    ``data/experts/experts-<key>/`` (``experts.csv``, ``failures.csv``) by the tracks' hashes."""
    from .features import experts as ex

    cfg = config(params)
    ing = ingest(cfg)
    key = digest({"v": EXPERTS_VERSION, "tracks": _track_hashes(ing.manifest), "sr": frames.SR})
    out = cfg.data_dir / "experts" / f"experts-{key}"

    def load() -> ExpertsResult | None:
        """The folder's estimates if it holds no failure another try may pass."""
        done = ExpertsResult(out, pd.read_csv(out / "experts.csv", dtype={"track_id": str}),
                             pd.read_csv(out / "failures.csv", dtype={"track_id": str}), key)
        return None if _retry(done.failures).any() else done

    def build() -> ExpertsResult:
        """Estimate every track the folder does not hold yet (all of them the first time)."""
        columns = ["track_id"] + [f"dsp_{c}" for c in ex.ESTIMATES + ex.FEATURES]
        kept = (pd.read_csv(out / "experts.csv", dtype={"track_id": str}) if (out / "experts.csv").is_file()
                else pd.DataFrame(columns=columns))
        todo = ing.manifest.loc[~ing.manifest["track_id"].isin(kept["track_id"]), ["track_id", "path"]]
        if len(kept):
            log.info("%s: estimating %d track(s) again (failures that may pass on another try)", out, len(todo))
        table, failures = extract.experts_many(todo, workers=int(cfg["workers"]),
                                               timeout_s=float(cfg["file_timeout_s"]), progress=bool(cfg["progress"]))
        table = table.rename(columns={c: f"dsp_{c}" for c in table.columns if c != "track_id"}).reindex(columns=columns)
        order = {tid: i for i, tid in enumerate(ing.manifest["track_id"])}
        table = pd.concat([t for t in (kept.reindex(columns=columns), table) if len(t)] or [table])
        table = table.sort_values("track_id", key=lambda c: c.map(order)).reset_index(drop=True)
        out.mkdir(parents=True, exist_ok=True)
        (out / "meta.json").unlink(missing_ok=True)  # written again last
        atomic.write_csv(out / "experts.csv", table)
        atomic.write_csv(out / "failures.csv", failures)
        atomic.write_json(out / "meta.json", {"key": key, "n_tracks": len(table), "n_failures": len(failures)})
        return ExpertsResult(out, table, failures, key)

    return _build_once(out, load, build)


def _retry(failures: pd.DataFrame) -> pd.Series:
    """Which recorded failures to try again: those marked ``transient`` (a timeout, a worker that
    died, a full disk, no memory), and every one of a table from before failures were marked."""
    if "transient" in failures:
        return failures["transient"].astype(bool)
    return pd.Series(True, index=failures.index)


def experts_summary(res: ExpertsResult) -> str:
    """One Markdown paragraph on the expert estimates."""
    return (f"Expert estimates (beat-tracker tempo, key profile) of **{len(res.table)}** tracks, "
            f"**{len(res.failures)}** failures. Folder: `{res.out_dir}`")


# --------------------------------------------------------------------- 03: split
@dataclass
class SplitResult:
    path: Path
    table: pd.DataFrame
    key: str


def split(params) -> SplitResult:
    """The stored train/val/test split of every track with features.

    ``data/splits/split-<key>.csv``: track_id, artists, split, the feature file and
    the 11 targets. Later stages read this file; they never re-derive the split.
    """
    cfg = config(params)
    feats = features(cfg, checksum=False)  # 02 checked the values; here each array's shape
    dsp = experts(cfg)
    key = digest({"v": SPLIT_VERSION, "features": feats.key, "experts": dsp.key, "val": cfg["val_fraction"],
                  "test": cfg["test_fraction"], "seed": int(cfg["seed"])})
    path = cfg.data_dir / "splits" / f"split-{key}.csv"
    if path.is_file():
        return SplitResult(path, read_split(path), key)
    table = feats.ingest.manifest.merge(feats.index[["track_id", "file", "n_frames"]], on="track_id", how="inner")
    if len(table) < 3:
        raise NotEnoughData(f"only {len(table)} tracks have features; at least 3 are needed to split "
                            f"(see {feats.out_dir / 'failures.csv'} and the ingest problems)")
    table["file"] = [str(feats.out_dir / f) for f in table["file"]]
    table = table.merge(dsp.table, on="track_id", how="left")  # a track the experts failed on keeps NaN
    table.insert(1, "split", group_split(table, val_fraction=float(cfg["val_fraction"]),
                                         test_fraction=float(cfg["test_fraction"]), random_state=int(cfg["seed"])))
    check_no_leakage(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_csv(path, table)
    return SplitResult(path, read_split(path), key)


def data_identity(params, result: SplitResult | None = None) -> dict:
    """What a run's scores were measured on, for comparing runs: ``set`` ("sample" for the
    generated sample set, else "own"), ``metadata_path``, ``key`` (a digest of every track's id,
    part and labels: two runs scored the same test part on the same labels exactly when their keys
    agree, whatever the audio files' bytes), ``split_key`` and ``split_path`` (the stored split
    table: each track's file, artists, part and labels; its key hashes the files' bytes, which a
    regenerated sample set changes: libsndfile gives each Ogg stream a random serial number), the
    tracks per part and ``name``, a label for a reader."""
    cfg = config(params)
    result = split(cfg) if result is None else result
    meta = cfg.path("metadata_path")
    sample = (meta.parent / STAMP_NAME).is_file()
    table = result.table.sort_values("track_id")
    labels = [c for c in (*TARGETS, "mode") if c in table.columns]
    key = digest(table[["track_id", "split", *labels]].astype(str).to_numpy().tolist())
    counts = table["split"].value_counts()
    return {"set": "sample" if sample else "own", "metadata_path": str(meta), "key": key,
            "split_key": result.key, "split_path": str(result.path),
            "n_tracks": int(len(table)), "parts": {p: int(counts.get(p, 0)) for p in ("train", "val", "test")},
            "name": f"{'sample set' if sample else meta.name} ({meta.parent.name}), {len(table)} tracks, data {key}"}


def read_split(path: str | os.PathLike) -> pd.DataFrame:
    """Read a stored split table."""
    path = Path(path)
    if not path.is_file():
        raise MissingArtifactError(f"{path}: split file not found; run notebooks/03_split.ipynb or `audioreg run`")
    return _read_manifest(path)


# ------------------------------------------------------------------ model inputs
def targets(table: pd.DataFrame) -> np.ndarray:
    """``[n, 11]`` float64 targets in TARGETS order."""
    return table[list(TARGETS)].to_numpy(dtype=np.float64)


def labels(table: pd.DataFrame) -> np.ndarray:
    """``[n, 12]``: the 11 targets and the mode (1 major, 0 minor; NaN where the table has none),
    as the target-aware GRU trains on them."""
    mode = table["mode"].to_numpy(dtype=np.float64) if "mode" in table.columns else np.full(len(table), np.nan)
    return np.column_stack([targets(table), mode])


def check_model_data(table: pd.DataFrame, *, parts: Sequence[str] = ("train", "val")) -> pd.DataFrame:
    """:func:`label_counts` of a split table, after checking that a model stage has something
    to do: tracks in each of ``parts`` (training, and validation where checkpoints and the
    stage's own scores come from; 06 asks for ``("train", "test")``) and at least one target
    labelled in all of them. Raises :class:`~audioreg.errors.NotEnoughData` naming what is
    missing (the run reports the stage as skipped, with that reason)."""
    counts = label_counts(table)
    sizes = table["split"].value_counts() if len(table) else pd.Series(dtype=int)
    empty = [p for p in parts if not sizes.get(p, 0)]
    if empty:
        groups = len(set(leakage_groups(table))) if len(table) else 0
        raise NotEnoughData(
            f"the {' and '.join(empty)} part{'s are' if len(empty) > 1 else ' is'} empty: {len(table)} tracks in "
            f"{groups} leakage-safe group{'' if groups == 1 else 's'} (tracks sharing an artist, a song or an audio "
            "file stay together), which cannot fill train, validation and test; add tracks by other artists")
    usable = [t for t in TARGETS if all(counts.at[t, p] > 0 for p in parts if p in counts.columns)]
    if not usable:
        raise NotEnoughData("no target is labelled in every one of the " + ", ".join(parts) + " parts:\n"
                            + counts.to_string())
    return counts


def label_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Labelled tracks per target (and ``mode``) in each part of a split table: partial labels
    are data, so each target trains and is scored on its own rows. A target at 0 in ``train``
    cannot be trained; at 0 in ``test`` it cannot be scored."""
    names = [t for t in (*TARGETS, "mode")]
    parts = [s for s in ("train", "val", "test") if s in set(table["split"])] if "split" in table.columns else []
    labelled = table.reindex(columns=names).apply(pd.to_numeric, errors="coerce").notna()
    out = pd.DataFrame({p: labelled[table["split"] == p].sum() for p in parts}, index=names)
    out["all"] = labelled.sum()
    out.index.name = "target"
    return out.astype(int)


def song_features(table: pd.DataFrame, *, experts: bool = False) -> np.ndarray:
    """The forest's inputs: per-song statistics of the frame features
    (:func:`audioreg.models.aggregate`) and the :func:`track_inputs`, ``[n, 92 + 1 (+ 25)]``."""
    from .models.forest import aggregate

    return np.hstack([aggregate(sequences(table)), track_inputs(table, experts=experts).to_numpy()])


def song_feature_names(*, experts: bool = False) -> list[tuple[str, str, int]]:
    """Names of :func:`song_features`' columns: ``(feature, statistic, index)``."""
    from .models.forest import aggregate_names

    extra = list(TRACK_FEATURES) + (list(expert_columns()) if experts else [])
    return aggregate_names(frames.feature_names()) + [(name, "track", 0) for name in extra]


def model_sequences(table: pd.DataFrame, *, experts: bool = False) -> TrackSequences:
    """Frame sequences with the track-level features, as the GRU reads them."""
    return TrackSequences(table, experts=experts)


def dsp_predictions(table: pd.DataFrame, y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The "dsp" model's ``[n, 11]`` predictions and ``[n]`` modes: the beat tracker's tempo,
    the key profile's key and mode, the integrated loudness (``lufs``) as loudness; every
    other target (and a track whose estimate failed or found no key) the training part's
    mean, or majority for time_signature, key and mode: the baseline's answer."""
    from .judge.metrics import mean_baseline

    pred = mean_baseline(y_train, len(table))
    col = {t: j for j, t in enumerate(TARGETS)}
    tempo, key, mode = (table[f"dsp_{c}"].to_numpy(dtype=np.float64) for c in ("tempo", "key", "mode"))
    pred[:, col["tempo"]] = np.where(tempo > 0, tempo, pred[:, col["tempo"]])  # NaN (failed) and 0 (no beat) keep the mean
    found = key >= 0  # False for NaN (failed) and -1 (no key)
    pred[:, col["key"]] = np.where(found, key, pred[:, col["key"]])
    pred[:, col["loudness"]] = table["lufs"].to_numpy(dtype=np.float64)
    return pred, np.where(found, mode, np.nan)


def part(table: pd.DataFrame, name: str | tuple[str, ...]) -> pd.DataFrame:
    """Rows of one split side (or of several: ``("val", "test")``), in stored order."""
    names = (name,) if isinstance(name, str) else tuple(name)
    return table[table["split"].isin(names)].reset_index(drop=True)


# ------------------------------------------------------------------- summaries
def ingest_summary(res: IngestResult) -> str:
    """One Markdown paragraph on what ingest found: usable tracks, rows dropped (by stage),
    labels masked, repeats removed (by rule), targets the table lacks, unmatched audio files."""
    probs = res.problems
    dropped = probs[probs["action"] == metadata.ROW_DROPPED] if "action" in probs.columns else probs
    masked = probs[probs["action"] == metadata.LABEL_MASKED] if "action" in probs.columns else probs.iloc[:0]
    by_stage = dropped["stage"].value_counts().to_dict()
    detail = ", ".join(f"{n} at {s}" for s, n in by_stage.items())
    text = (f"**{len(res.manifest)}** usable tracks of {res.meta.get('n_rows', '?')} rows; **{len(dropped)}** rows dropped"
            f"{' (' + detail + ')' if detail else ''}; **{len(masked)}** rows kept with a label masked (invalid value)")
    removed = res.meta.get("removed_as_repeats", {})
    if any(removed.values()):
        text += "; repeats removed: " + ", ".join(f"{n} by {rule}" for rule, n in removed.items() if n)
    absent = res.meta.get("absent_targets", [])
    if absent:
        text += f"; targets the table lacks (skipped by models and metrics): {', '.join(absent)}"
    if res.meta.get("n_unmatched_files"):
        text += f"; **{res.meta['n_unmatched_files']}** audio files matched no row (`unmatched_files.csv`)"
    return text + f". Manifest: `{res.out_dir / 'manifest.csv'}`; problems: `{res.out_dir / 'problems.csv'}`"


def features_summary(res: FeaturesResult) -> str:
    """One Markdown paragraph on an extraction run."""
    hours = res.index["duration_s"].sum() / 3600 if len(res.index) else 0.0
    return (f"**{len(res.index)}** tracks with features ({hours:.2f} h of audio), **{len(res.failures)}** failures; "
            f"computed now: {res.computed}, reused from the cache: {len(res.index) - res.computed}. Folder: `{res.out_dir}`")


def split_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Tracks, artists and share of files per side."""
    g = table.groupby("split", sort=False)
    out = pd.DataFrame({"tracks": g["track_id"].count(),
                        "artists": g["artists"].nunique() if "artists" in table.columns else np.nan})
    out["share"] = out["tracks"] / out["tracks"].sum()
    return out.reindex([s for s in ("train", "val", "test") if s in out.index])
