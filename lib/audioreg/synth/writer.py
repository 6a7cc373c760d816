"""The writer: plans the set (metadata, controls, file layout), renders and writes it.

:func:`generate_sample_set` writes the audio files, ``synth.json``, ``noise_free.csv`` and ``metadata.csv``;
:func:`sample_labels` gives the same metadata and labels without rendering. Every
track is drawn with its own random streams ``np.random.default_rng([seed, i, k])``
(see :func:`_plan`), so results do not depend on the worker count.
"""

from __future__ import annotations

import json
import logging
import os
import unicodedata
from pathlib import Path

import numpy as np
from .._pandas import pd

from .. import atomic
from . import STAMP_NAME
from ..data.linking import fold_name
from ..targets import METADATA_COLUMNS, TARGETS
from .controls import METER_WEIGHTS, METERS, artist_style, genre_of, sample_controls
from .labels import labels_from_controls
from .names import _album_names, _artist_name, _track_id, _track_name
from .render import render_track

log = logging.getLogger(__name__)

#: Version of the generator (all of audioreg.synth); bump on any change that alters labels or audio.
SYNTH_VERSION = "1.0.0"

#: Sample rates drawn for the files (balanced over a set, then shuffled).
SAMPLE_RATES: tuple[int, ...] = (22050, 32000, 44100, 48000)

#: File formats: extension -> (libsndfile format, subtype).
FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
}
#: Formats are dealt in this cycle (40 % wav, 40 % flac, 20 % ogg; any 3 tracks in a row
#: of the cycle hold all three), then shuffled. Vorbis encoding is the slowest step.
FORMAT_CYCLE: tuple[str, ...] = ("wav", "flac", "ogg", "flac", "wav")

#: Shortest track generate_sample_set makes (s).
MIN_SECONDS = 1.0

_SET_STREAM = 1_000_003  # rng stream for set-level draws (artists, names, file layout)


def deal(values, weights, n: int) -> np.ndarray:
    """``n`` values in the proportions ``weights`` (largest-remainder rounding), in order.

    Parameters
    ----------
    values : sequence
    weights : sequence of float >= 0
    n : int

    Returns
    -------
    dealt : np.ndarray [shape=(n,)]
        ``values[k]`` repeated ``round(n * w_k / sum(w))`` times (remainders to the
        largest fractions, ties to the first); shuffle it to assign.
    """
    w = np.asarray(weights, dtype=float)
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    return np.repeat(np.asarray(list(values)), counts)


def _plan(*, n: int, seed: int, label_noise: float, seconds: float) -> list[dict]:
    """Everything about the set except the audio: metadata rows, controls, file layout.

    Meters (:func:`deal` of :data:`~audioreg.synth.controls.METER_WEIGHTS`), formats,
    sample rates and channel counts are dealt to the set in fixed proportions and
    shuffled, so even small sets hold the rare meters and every file kind.

    Streams: ``[seed, _SET_STREAM]`` for artists, meters and the file layout; per track ``i``:
    ``[seed, i, 0]`` controls, ``[seed, i, 1]`` label noise, ``[seed, i, 2]`` rendering,
    ``[seed, i, 3]`` names, ``[seed, i, 4]`` the track id.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng([seed, _SET_STREAM])
    n_artists = max(1, int(round(n / 4)))
    extra = rng.multinomial(n - n_artists, rng.dirichlet(np.full(n_artists, 1.5))) if n > n_artists else 0
    artist_of = rng.permutation(np.repeat(np.arange(n_artists), 1 + np.asarray(extra)))[:n]
    styles = [artist_style(rng=rng) for _ in range(n_artists)]
    names: list[str] = []
    for j in range(n_artists):
        kind = {1: 1, 3: 2, 5: 1}.get(j % 6, 0)
        name = _artist_name(kind, rng)
        while name in names:
            name = _artist_name(kind, rng)
        names.append(name)
    albums = [_album_names(rng) for _ in range(n_artists)]
    fmts = rng.permutation(np.resize(np.array(FORMAT_CYCLE), n))
    rates = rng.permutation(np.resize(np.array(SAMPLE_RATES), n))
    chans = rng.permutation(np.resize(np.array([1, 2]), n))
    meters = rng.permutation(deal(METERS, METER_WEIGHTS, n))

    rows, seen_ids, seen_per_artist = [], set(), [0] * n_artists
    titles_of = [set() for _ in range(n_artists)]  # folded titles per artist: one song, one title
    for i in range(n):
        a = int(artist_of[i])
        controls = sample_controls(rng=np.random.default_rng([seed, i, 0]), artist_style=styles[a])
        controls["channels"] = int(chans[i])
        controls["meter"] = int(meters[i])
        labels = labels_from_controls(controls, rng=np.random.default_rng([seed, i, 1]), label_noise=label_noise)
        # the labels without their noise (a private stream: the set's own draws are unchanged)
        noise_free = labels_from_controls(controls, rng=np.random.default_rng(0), label_noise=0.0)
        name_rng = np.random.default_rng([seed, i, 3])
        title, title_nfd = _track_name(i, name_rng)
        base, part = title, 1
        while fold_name(title) in titles_of[a]:  # another song of this artist: never the same title
            part += 1
            title = f"{base} (Part {part})"
        titles_of[a].add(fold_name(title))
        artist = names[a]
        # artists with j % 6 == 5 appear in NFD on every other one of their tracks
        if a % 6 == 5 and seen_per_artist[a] % 2 == 1:
            artist = unicodedata.normalize("NFD", artist)
        seen_per_artist[a] += 1
        if n_artists > 1 and name_rng.random() < 0.05:  # a featured second artist
            other = (a + 1 + int(name_rng.integers(n_artists - 1))) % n_artists
            artist = f"{artist};{names[other]}"
        album = albums[a][int(name_rng.integers(len(albums[a])))]
        if title_nfd:
            title = unicodedata.normalize("NFD", title)
        track_id = _track_id(np.random.default_rng([seed, i, 4]))
        if track_id in seen_ids:  # 62**22 ids: never in practice
            raise RuntimeError(f"duplicate track id {track_id}")
        seen_ids.add(track_id)
        ext = str(fmts[i])
        rows.append({
            "track_id": track_id,
            "artists": artist,
            "album_name": album,
            "track_name": title,
            "duration_ms": int(round(seconds * 1000)),
            **{k: labels[k] for k in TARGETS},
            "mode": labels["mode"],
            "track_genre": genre_of(controls),
            "path": f"audio/{track_id}.{ext}",
            "_controls": controls,
            "_noise_free": {k: noise_free[k] for k in TARGETS},
            "_sr": int(rates[i]),
            "_ext": ext,
            "_index": i,
            "_artist_index": a,
        })
    return rows


#: The labels without their noise, one row per track (loudness: the measured label itself),
#: beside ``metadata.csv``: what the best possible model would predict (the noise ceiling).
NOISE_FREE = "noise_free.csv"


def _metadata_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame([{k: r[k] for k in (*METADATA_COLUMNS, "path")} for r in rows])
    for col in ("duration_ms", "key", "mode", "time_signature"):
        df[col] = df[col].astype("int64")
    return df


def sample_labels(*, n: int = 2000, seed: int = 0, label_noise: float = 1.0, seconds: float = 30.0) -> pd.DataFrame:
    """The metadata and labels :func:`generate_sample_set` would write, without rendering.

    Identical to the set's ``metadata.csv`` for the same ``n, seed, label_noise`` except
    ``loudness``, which here is the *target* loudness (the set has the loudness measured
    on each file, usually within 0.1 dB of the target; more for tracks the limiter drives hard).

    Parameters
    ----------
    n, seed, label_noise, seconds : as for :func:`generate_sample_set`.

    Returns
    -------
    df : pandas.DataFrame [shape=(n, len(METADATA_COLUMNS) + 1 + n_controls)]
        ``METADATA_COLUMNS``, ``path``, then one ``control_<name>`` column per control
        (see :func:`~audioreg.synth.controls.sample_controls`).
    """
    rows = _plan(n=n, seed=seed, label_noise=label_noise, seconds=seconds)
    df = _metadata_frame(rows)
    controls = pd.DataFrame([r["_controls"] for r in rows]).add_prefix("control_")
    return pd.concat([df, controls], axis=1)


def _write_audio(path: Path, y: np.ndarray, *, sr: int, ext: str) -> None:
    """Write ``y`` [shape=(channels, n)] atomically (temp name in the same folder, then rename)."""
    import soundfile as sf

    fmt, subtype = FORMATS[ext]
    data = y[0] if y.shape[0] == 1 else y.T
    atomic.write_with(path, lambda tmp: sf.write(str(tmp), data, sr, format=fmt, subtype=subtype))


def measure_loudness(path: str | os.PathLike) -> float:
    """Integrated loudness (dB LUFS, ITU-R BS.1770) of a written file: the pipeline's own
    measurement (:func:`audioreg.data.audio.measure_loudness`, original channels), so the
    label is what any user's file would be measured as."""
    from audioreg.data.audio import measure_loudness as measure

    return measure(path)


def _render_one(job: tuple) -> float:
    """Render, write and measure one track; returns the measured loudness (worker entry point)."""
    controls, sr, seconds, seed, i, path, ext = job
    y = render_track(controls, sr=sr, seconds=seconds, rng=np.random.default_rng([seed, i, 2]))
    _write_audio(Path(path), y, sr=sr, ext=ext)
    return measure_loudness(path)


def generate_sample_set(
    out_dir: str | os.PathLike,
    *,
    n: int = 240,
    seconds: float = 30.0,
    seed: int = 0,
    label_noise: float = 1.0,
    progress: bool = False,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Render the synthetic sample set with its known labels.

    Writes ``out_dir/audio/<track_id>.<wav|flac|ogg>`` (formats dealt in
    :data:`FORMAT_CYCLE` proportions, sample rates :data:`SAMPLE_RATES` and mono/stereo
    in equal shares, each list shuffled), ``out_dir/noise_free.csv`` (each track's labels
    without their noise), ``out_dir/synth.json`` (``synth_version``,
    ``n``, ``seconds``, ``seed``, ``label_noise``: what determines the content) and
    last ``out_dir/metadata.csv``, each atomically (temp name, then rename). The same
    arguments give the same labels and the same decoded audio samples, whatever
    ``n_jobs`` (Ogg files differ in their random stream serial number only).

    Parameters
    ----------
    out_dir : path
        Created if missing; files of the same names are replaced.
    n : int
        Number of tracks (about ``n / 4`` artists).
    seconds : float >= MIN_SECONDS
        Duration of every track.
    seed : int
        Seed of every random stream.
    label_noise : float >= 0
        Scale of the label noise of the seven perceptual targets (0: exact functions
        of the controls).
    progress : bool
        Show a tqdm progress bar.
    n_jobs : int, optional
        Worker processes (each needs about 300 MB for 30 s at 48 kHz); default: the
        available cores, at most 8, for sets of 16 tracks or more, else 1.

    Returns
    -------
    metadata : pandas.DataFrame [shape=(n, len(METADATA_COLUMNS) + 1)]
        ``METADATA_COLUMNS`` then ``path`` (relative to ``out_dir``), as written.
    """
    if not seconds >= MIN_SECONDS:
        raise ValueError(f"seconds must be >= {MIN_SECONDS} (the first downbeat may come at 0.6 s and "
                         f"loudness is measured on 0.4 s blocks), got {seconds}")
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rows = _plan(n=n, seed=seed, label_noise=label_noise, seconds=seconds)
    jobs = [(r["_controls"], r["_sr"], float(seconds), int(seed), r["_index"], str(out / r["path"]), r["_ext"])
            for r in rows]
    if n_jobs is None:
        from joblib import cpu_count

        n_jobs = min(8, cpu_count()) if n >= 16 else 1
    if int(n_jobs) < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    from tqdm.auto import tqdm

    bar = dict(total=n, desc="synth", unit="track", disable=not progress)
    if n_jobs == 1:
        loudness = [_render_one(j) for j in tqdm(jobs, **bar)]
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_render_one)(j) for j in jobs)
        loudness = list(tqdm(results, **bar))
    for r, level in zip(rows, loudness):
        r["loudness"] = level
    df = _metadata_frame(rows)
    stamp = {"synth_version": SYNTH_VERSION, "n": int(n), "seconds": float(seconds), "seed": int(seed),
             "label_noise": float(label_noise)}
    atomic.write_text(out / STAMP_NAME, json.dumps(stamp, indent=2) + "\n")
    clean = pd.DataFrame([{"track_id": r["track_id"], **r["_noise_free"], "loudness": r["loudness"]} for r in rows])
    atomic.write_text(out / NOISE_FREE, clean.to_csv(index=False, lineterminator="\n"))
    atomic.write_text(out / "metadata.csv", df.to_csv(index=False, lineterminator="\n"))
    log.info("wrote %d tracks to %s", n, out)
    return df
