"""`make bench`: extraction and training throughput, written to bench/RESULTS.md.

Measured on one core (BLAS/OpenMP/numba/torch threads pinned to 1 in this process and its
children), for the real tracks in ../shared/data/music (when present) and a generated
sample set:

1. per file, interleaved so that load from other jobs hits every path alike, the median of
   ``--repeats`` runs of: decode only (soundfile), decode + mono + soxr resample
   (``audioreg.data.audio.load_audio``, the floor of any CPU extractor), ours end-to-end
   (``load_audio`` + ``extract_features``) and the naive path (``librosa.load`` +
   ``reference_features``);
2. peak memory of each path on the longest file, in a fresh child process per path;
3. where our extraction time goes (stage by stage);
4. ``extract_many`` over the sample set with 1 and 2 workers;
5. GRU training throughput (clips/s) for each ``frame_pool``.

Also (not pinned to one core): reading and validating a generated 1.2M-row metadata table in
the public 1.2M-track layout, CSV and Parquet, each in a fresh child process
(:func:`measure_table_read`). And linking a table to an audio folder: 100,000 generated files
for a 100,000-row table, and a 1.2M-row table for 300 files (:func:`measure_linking`).

Usage: python bench/run.py [--out bench/RESULTS.md] [--music DIR] [--repeats 3]
"""

from __future__ import annotations

import os

# Pin every thread pool to one thread before numpy, numba or torch are imported; children
# (the memory probes, extract_many's workers) inherit the environment.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MUSIC = REPO.parent / "shared" / "data" / "music"
PATHS = ("decode", "decode+resample", "ours", "naive")
FLOOR_TARGET = 1.25  # ours within this factor of the decode+resample floor
NAIVE_TARGET = 2.7  # ours at least this many times faster than the naive path


# ------------------------------------------------------------------------ the measured paths
def run_path(name: str, path: str) -> None:
    import soundfile as sf

    from audioreg.features import extract_features, reference_features
    from audioreg.data.audio import SR, load_audio

    if name == "decode":
        sf.read(path, dtype="float32", always_2d=True)
    elif name == "decode+resample":
        load_audio(path, sr=SR)
    elif name == "ours":
        y, sr = load_audio(path, sr=SR)
        extract_features(y=y, sr=sr)
    elif name == "naive":
        import librosa

        y, sr = librosa.load(path, sr=SR)
        reference_features(y=y, sr=sr)
    else:
        raise ValueError(f"unknown path {name!r}")


def pin_threads() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def memory_child(name: str, path: str, warmup: str) -> None:
    """Entry point of a fresh process: peak memory of one path on one file, as JSON on stdout."""
    import tracemalloc

    from audioreg import bench

    pin_threads()
    run_path(name, warmup)  # imports, numba compilation, FFT plans: not part of the file's cost
    reset = bench.reset_peak_rss()
    baseline = bench.current_rss_mb()
    run_path(name, path)
    peak = bench.peak_rss_mb()
    tracemalloc.start()
    run_path(name, path)
    _, tm_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak, "hwm_reset": reset,
                      "tracemalloc_peak_mb": tm_peak / 2**20}))


# ----------------------------------------------------------------------------------- driver
def load_avg() -> str:
    return "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg} (load {load_avg()})", flush=True)


def versions() -> dict[str, str]:
    import librosa
    import numba
    import scipy
    import soundfile
    import soxr
    import torch

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "librosa": librosa.__version__,
        "numba": numba.__version__,
        "soundfile": f"{soundfile.__version__} (libsndfile {soundfile.__libsndfile_version__})",
        "soxr": soxr.__version__,
        "torch": torch.__version__,
    }


def machine() -> dict[str, str]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{kib / 2**20:.1f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model or platform.processor(), "cores": f"{os.cpu_count()} ({usable} usable)",
            "memory": mem, "os": platform.platform()}


def collect_files(music: Path | None, sample_dir: Path) -> pd.DataFrame:
    from audioreg.data.audio import AUDIO_EXTENSIONS, probe_audio

    rows = []
    if music is not None:
        for p in sorted(music.iterdir()):
            if p.suffix.lower() in AUDIO_EXTENSIONS:
                rows.append({"corpus": "music", "format": p.suffix.lower().lstrip("."), "file": str(p)})
    meta = pd.read_csv(sample_dir / "metadata.csv", dtype={"track_id": str})
    for rel in meta["path"]:
        p = sample_dir / rel
        rows.append({"corpus": "sample", "format": p.suffix.lower().lstrip("."), "file": str(p)})
    files = pd.DataFrame(rows)
    info = [probe_audio(f) for f in files["file"]]
    files["audio_s"] = [i["duration_s"] for i in info]
    files["sample_rate"] = [i["sample_rate"] for i in info]
    files["channels"] = [i["channels"] for i in info]
    return files


def measure_paths(files: pd.DataFrame, *, repeats: int) -> pd.DataFrame:
    from audioreg.bench import time_call

    # warm-up: one untimed call of each path per (corpus, format)
    for _, f in files.sort_values("audio_s").drop_duplicates(["corpus", "format"]).iterrows():
        for name in PATHS:
            run_path(name, f["file"])
    samples: dict[tuple[str, str], list] = {}
    for rep in range(repeats):
        log(f"paths: repeat {rep + 1}/{repeats}")
        for f in files["file"]:
            for name in PATHS:
                samples.setdefault((f, name), []).append(time_call(lambda: run_path(name, f), repeats=1))
    rows = []
    for (f, name), ts in samples.items():
        rows.append({"file": f, "path": name, "wall_s": float(np.median([t.wall_s for t in ts])),
                     "cpu_s": float(np.median([t.cpu_s for t in ts]))})
    return files.merge(pd.DataFrame(rows), on="file")


#: The floor as a process: decode and resample every file below a folder, nothing else.
FLOOR_PROCESS = ("import sys\nfrom audioreg.data.audio import SR, load_audio, walk_audio\n"
                 "for path, _ in sorted(walk_audio(sys.argv[1]), key=lambda f: f[1]):\n    load_audio(path, sr=SR)\n")


def measure_command(files: pd.DataFrame, tmp: Path, *, repeats: int) -> dict:
    """``audioreg extract FOLDER --workers 1`` on the real tracks as users run it: a whole process
    (imports, compiled code loaded, every file decoded, extracted and written with its record,
    the index written), minus the same command on an empty folder (Python, imports, argument
    parsing: what any command pays). Beside it, measured the same way, the floor as a process
    (:data:`FLOOR_PROCESS`: ``load_audio`` of every file in the same order, in a fresh process,
    minus that process on the empty folder): a fresh process decodes each file once, with cold
    decoder state and caches, where the in-process paths run each file right after the others.
    Median of ``repeats`` rounds after one untimed round, the four runs interleaved per round.
    Also returns the sum of the per-file times the command recorded in its ``index.csv``."""
    folder, empty = tmp / "command-audio", tmp / "command-empty"
    folder.mkdir(exist_ok=True)
    empty.mkdir(exist_ok=True)
    for f in files["file"]:
        link = folder / Path(f).name
        if not link.exists():
            link.symlink_to(f)
    exe = [sys.executable, "-m", "audioreg", "extract"]
    cases = {"command, empty folder": lambda out: exe + [str(empty), "--out", str(out), "--workers", "1", "--no-progress"],
             "command": lambda out: exe + [str(folder), "--out", str(out), "--workers", "1", "--no-progress"],
             "floor process, empty folder": lambda out: [sys.executable, "-c", FLOOR_PROCESS, str(empty)],
             "floor process": lambda out: [sys.executable, "-c", FLOOR_PROCESS, str(folder)]}
    walls: dict[str, list[float]] = {name: [] for name in cases}
    in_process = []
    for rep in range(repeats + 1):
        for name, cmd in cases.items():
            out = tmp / f"command-out-{rep}"
            wall = _wall(cmd(out))
            if rep:
                walls[name].append(wall)
                if name == "command":
                    in_process.append(float(pd.read_csv(out / "index.csv")["seconds"].sum()))
            shutil.rmtree(out, ignore_errors=True)
    med = {name: float(np.median(w)) for name, w in walls.items()}
    return {"files": len(files), "rounds": repeats, "audio s": float(files["audio_s"].sum()), **{f"{k} s": v for k, v in med.items()},
            "command s": med["command"] - med["command, empty folder"],
            "floor process s": med["floor process"] - med["floor process, empty folder"],
            "per-file s (in the process)": float(np.median(in_process)),
            "runs": "; ".join(f"{name}: " + ", ".join(f"{w:.2f}" for w in ws) for name, ws in walls.items())}


def command_report(cmd: dict, m: pd.DataFrame, corpus: str) -> tuple[str, list[str]]:
    """The target row and the section on the command's throughput, beside the paths of the same run."""
    from audioreg.bench import markdown_table

    sub = m[m["corpus"] == corpus]
    sums = sub.groupby("path")["wall_s"].sum()
    floor, ours, naive = sums["decode+resample"], sums["ours"], sums["naive"]
    ratio = cmd["command s"] / cmd["floor process s"]
    ok = ratio <= FLOOR_TARGET and naive / cmd["command s"] >= NAIVE_TARGET
    target = (f"| `audioreg extract` of the {cmd['files']} {corpus} tracks (`--workers 1`) within {FLOOR_TARGET} x the "
              f"decode+resample floor, both as processes (each minus its run on an empty folder), and >= {NAIVE_TARGET} x "
              f"faster than naive | {ratio:.2f} x the floor ({cmd['command s'] / floor:.2f} x the in-process floor), "
              f"{naive / cmd['command s']:.2f} x naive | {'yes' if ok else 'no'} |")
    fixed = cmd["command s"] - cmd["per-file s (in the process)"]
    rows = pd.DataFrame({"seconds": {
        "decode+resample: the floor in process (sum of per-file medians)": floor,
        "ours in process (decode+resample+features)": ours,
        "naive in process": naive,
        "decode+resample: the floor as a process (whole - empty folder)": cmd["floor process s"],
        "`audioreg extract`, whole process": cmd["command s"] + cmd["command, empty folder s"],
        "`audioreg extract` on an empty folder (start-up any command pays)": cmd["command, empty folder s"],
        "**command** = whole - empty folder": cmd["command s"],
        "of which per file, as the command's index.csv records (decode, features, journal, write, fsync)": cmd["per-file s (in the process)"],
        "of which once per process (compiled code loaded, filter banks, warm-up, folder walk, index)": fixed,
    }})
    rows["x the floor in process"] = rows["seconds"] / floor
    rows["x the floor as a process"] = rows["seconds"] / cmd["floor process s"]
    lines = [
        f"## The command: `audioreg extract` on the {corpus} tracks, one worker",
        "",
        f"`python -m audioreg extract <folder of the {cmd['files']} tracks> --out <new folder> --workers 1 --no-progress`, a whole",
        "process timed from outside, minus the same command on an empty folder; beside it the floor measured the same way",
        "(a fresh process that runs `load_audio` on every file in the same order, minus that process on the empty folder).",
        f"Medians of {cmd['rounds']} rounds after one untimed round, the four interleaved; the in-process paths",
        f"are the sums of the per-file medians above, from the same bench run. {cmd['audio s']:,.0f} s of audio.",
        f"Runs (s): {cmd['runs']}.",
        "",
        markdown_table(rows, index_name="what", floatfmt=".2f"),
        "",
    ]
    return target, lines


def throughput_tables(m: pd.DataFrame) -> dict[str, pd.DataFrame]:
    from audioreg.bench import ratio, summarize_throughput

    tables = {}
    for corpus, sub in m.groupby("corpus", sort=False):
        t = summarize_throughput(sub, group="format", overall="overall")
        t["ours / naive"] = ratio(t["ours"], t["naive"])
        t["floor / ours"] = ratio(t["decode+resample"], t["ours"])
        tables[corpus] = t
    t = summarize_throughput(m.assign(format="all files"), group="format", overall="overall").loc[["overall"]]
    t["ours / naive"] = ratio(t["ours"], t["naive"])
    t["floor / ours"] = ratio(t["decode+resample"], t["ours"])
    tables["all"] = t
    return tables


def measure_memory(files: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    longest = files.sort_values("audio_s").iloc[-1]
    warmup = files[files["format"] == longest["format"]].sort_values("audio_s").iloc[0]["file"]
    rows = {}
    for name in PATHS:
        out = subprocess.run([sys.executable, __file__, "--memory-child", name, longest["file"], warmup],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows[name] = {"peak RSS MiB": r["peak_mb"], "RSS before MiB": r["baseline_mb"],
                      "peak - before MiB": r["peak_mb"] - r["baseline_mb"],
                      "tracemalloc peak MiB": r["tracemalloc_peak_mb"]}
        if not r["hwm_reset"]:
            rows[name]["note"] = "high-water mark not reset: includes warm-up"
    return longest["file"], pd.DataFrame.from_dict(rows, orient="index")


def measure_long_track(tmp: Path, warmup: str, *, minutes: float = 30.0) -> dict:
    """Peak memory and speed of `ours` on a generated 30-minute stereo 44.1 kHz FLAC (the issue's memory target)."""
    import soundfile as sf

    sr, path = 44100, tmp / "long.flac"
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", sr, 2, subtype="PCM_16") as f:
        for start in range(0, int(minutes * 60 * sr), 60 * sr):  # written a minute at a time
            t = (start + np.arange(60 * sr)) / sr
            tone = 0.2 * np.sin(2 * np.pi * 220.0 * t)
            f.write((tone[:, None] + 0.02 * rng.standard_normal((t.size, 2))).astype(np.float32))
    started = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--memory-child", "ours", str(path), warmup],
                         capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"minutes": minutes, "peak_mb": r["peak_mb"], "before_mb": r["baseline_mb"], "child_wall_s": wall}


def measure_stages(files: pd.DataFrame) -> pd.DataFrame:
    """Our per-stage cost and the naive path's per-feature cost, summed over ``files``."""
    import librosa

    from audioreg import features as F
    from audioreg.bench import feature_stage_times, time_call
    from audioreg.data.audio import SR, load_audio

    ours: dict[str, float] = {}
    naive: dict[str, float] = {}
    for f in files["file"]:
        t = time_call(lambda: load_audio(f, sr=SR), repeats=1)
        ours["decode+resample"] = ours.get("decode+resample", 0.0) + t.wall_s
        y, sr = load_audio(f, sr=SR)
        for k, v in feature_stage_times(y=y, sr=sr).items():
            ours[k] = ours.get(k, 0.0) + v
        t = time_call(lambda: librosa.load(f, sr=SR), repeats=1)
        naive["librosa.load"] = naive.get("librosa.load", 0.0) + t.wall_s
        kw = dict(n_fft=F.N_FFT, hop_length=F.HOP_LENGTH)
        calls = {
            "mfcc": lambda: librosa.feature.mfcc(y=y, sr=sr, n_mfcc=F.N_MFCC, n_mels=F.N_MELS, **kw),
            "chroma": lambda: librosa.feature.chroma_stft(y=y, sr=sr, n_chroma=F.N_CHROMA, **kw),
            "contrast": lambda: librosa.feature.spectral_contrast(y=y, sr=sr, n_bands=F.N_CONTRAST_BANDS, **kw),
            "tonnetz": lambda: librosa.feature.tonnetz(y=y, sr=sr, hop_length=F.HOP_LENGTH),
            "zcr": lambda: librosa.feature.zero_crossing_rate(y, frame_length=F.N_FFT, hop_length=F.HOP_LENGTH),
        }
        for k, fn in calls.items():
            naive[k] = naive.get(k, 0.0) + time_call(fn, repeats=1).wall_s
    audio = float(files["audio_s"].sum())
    out = []
    for who, d in (("ours", ours), ("naive", naive)):
        total = sum(d.values())
        for k, v in d.items():
            out.append({"path": who, "stage": k, "seconds": v, "share %": 100 * v / total,
                        "x real time": audio / v if v else np.inf})
        out.append({"path": who, "stage": "total", "seconds": total, "share %": 100.0, "x real time": audio / total})
    return pd.DataFrame(out)


#: Each sample-set file is extracted this many times (under distinct track ids) in the worker
#: scaling runs, so that a run lasts long enough (~10 s on one worker) for pool start-up and
#: the last file's imbalance not to decide the speed-up.
SCALING_COPIES = 6


def measure_scaling(sample_dir: Path, tmp: Path, *, repeats: int = 2) -> tuple[pd.DataFrame, Path]:
    from audioreg.features.extract import extract_many

    meta = pd.read_csv(sample_dir / "metadata.csv", dtype={"track_id": str})
    one = pd.DataFrame({"track_id": meta["track_id"], "path": [str(sample_dir / p) for p in meta["path"]]})
    files = pd.concat([one.assign(track_id=one["track_id"] + ("" if k == 0 else f"-copy{k}"))
                       for k in range(SCALING_COPIES)], ignore_index=True)
    audio = SCALING_COPIES * float(meta["duration_ms"].sum() / 1000)
    rows, last = {}, None
    cores = os.cpu_count() or 1
    for workers in sorted({1, 2, min(cores, 4)} if cores > 2 else {1, 2}):
        walls, loads = [], []
        for rep in range(repeats):
            out = tmp / f"extract_w{workers}_{rep}"
            t0 = time.perf_counter()
            res = extract_many(files, out, workers=workers, timeout_s=600)
            walls.append(time.perf_counter() - t0)
            loads.append(os.getloadavg()[0])
            if len(res.failures):
                raise RuntimeError(f"extract_many failed on {len(res.failures)} file(s): {res.failures['reason'].tolist()}")
            last = out
        wall = float(np.median(walls))
        rows[workers] = {"wall s": wall, "x real time": audio / wall, "x real time per worker": audio / wall / workers,
                         "load avg (1 min) after": float(np.median(loads))}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "workers"
    table["speed-up"] = table["wall s"].iloc[0] / table["wall s"]
    return table, last


def measure_gru(sample_dir: Path, features_dir: Path, tmp: Path, *, epochs: int, epochs_pool1: int,
                pools=(16, 8, 4, 2, 1)) -> tuple[pd.DataFrame, int, int, int]:
    import torch

    from audioreg.features.extract import array_name
    from audioreg.targets import TARGETS
    from audioreg.models import GRURegressor

    torch.set_num_threads(1)
    meta = pd.read_csv(sample_dir / "metadata.csv", dtype={"track_id": str})
    seqs = [np.load(features_dir / array_name(t)) for t in meta["track_id"]]
    y = meta[list(TARGETS)].to_numpy(dtype=np.float64)
    n_val = max(2, len(seqs) // 6)
    tr, va = slice(0, len(seqs) - n_val), slice(len(seqs) - n_val, None)
    n_train = len(seqs) - n_val
    frames = int(np.mean([s.shape[0] for s in seqs[tr]]))
    rows = {}
    for pool in pools:
        t0 = time.perf_counter()
        model = GRURegressor(hidden_size=256, num_layers=2, batch_size=16, epochs=epochs_pool1 if pool == 1 else epochs,
                             frame_pool=pool, device="cpu", checkpoint_dir=tmp / f"gru_fp{pool}", resume=False,
                             random_state=0)
        model.fit(seqs[tr], y[tr], eval_set=(seqs[va], y[va]))
        wall = time.perf_counter() - t0
        sec = model.history_["seconds"].to_numpy()
        best = float(np.min(sec))
        rows[pool] = {"steps per clip": -(-frames // pool), "epochs": len(sec),
                      "epoch s (min)": best, "clips/s": n_train / best,
                      "clips/s epoch 1": n_train / sec[0], "total s": wall,
                      "load avg (1 min)": os.getloadavg()[0]}
        log(f"gru frame_pool={pool}: {n_train / best:.2f} clips/s")
    table = pd.DataFrame.from_dict(rows, orient="index").astype({"steps per clip": int, "epochs": int})
    table.index.name = "frame_pool"
    return table, n_train, n_val, frames


#: One-file wall-time goals: extraction through the command, and a prediction.
ONE_FILE_EXTRACT_TARGET = 1.5
ONE_FILE_PREDICT_TARGET = 2.0
#: The libraries a one-file prediction cannot do without, per process, imported as it imports them: the
#: command's own loads the GRU (torch) and writes the table (pandas); its worker decodes (soundfile,
#: soxr), computes the frame features (numba), the BS.1770 loudness (scipy.signal) and the expert
#: estimates (librosa, through ``experts.librosa``: its compiled kernels cached and built on first call).
PREDICT_IMPORTS = {"command (gru)": "import torch, pandas",
                   "worker": "import soundfile, soxr, numba, scipy.signal; from audioreg.features import experts; "
                             "experts.librosa()"}


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    return time.perf_counter() - t0


def measure_startup(one_file: Path, tmp: Path, *, run: Path | None, repeats: int = 3) -> pd.DataFrame:
    """Wall seconds (median of ``repeats``, fresh processes, warm install) of what a user times
    on one file: ``audioreg extract`` of a folder holding it (a new output folder each time),
    ``audioreg predict`` with the experts and, given ``run``, with its rf and gru models; beside
    them, in the same rounds, an empty Python and the imports of :data:`PREDICT_IMPORTS`, each
    process's on its own (the floor no code of ours can go under: the command's wall time is at
    least the slower of the two)."""
    exe = [sys.executable, "-m", "audioreg"]
    folder = tmp / "one-file"
    folder.mkdir(exist_ok=True)
    target = folder / one_file.name
    if not target.exists():
        target.symlink_to(one_file)
    cases = {"python (empty)": [sys.executable, "-c", "pass"],
             **{f"{code} ({who})": [sys.executable, "-c", code] for who, code in PREDICT_IMPORTS.items()},
             "audioreg extract (one file, --workers 1)": None,
             "audioreg predict --model dsp": exe + ["predict", str(target), "--model", "dsp", "--no-progress",
                                                    "--out", str(tmp / "one-dsp.csv")]}
    for kind in ("rf", "gru"):
        if run is not None and (run / kind / "model.json").is_file():
            cases[f"audioreg predict --model {kind} --run {run.name}"] = exe + [
                "predict", str(target), "--run", str(run), "--model", kind, "--no-progress", "--out", str(tmp / f"one-{kind}.csv")]
    walls: dict[str, list[float]] = {name: [] for name in cases}
    for rep in range(repeats + 1):  # round 0 warms the page cache and the compiled-code cache check
        for name, cmd in cases.items():
            if cmd is None:
                cmd = exe + ["extract", str(folder), "--out", str(tmp / f"one-out-{rep}"), "--workers", "1", "--no-progress"]
            wall = _wall(cmd)
            if rep:
                walls[name].append(wall)
    return pd.DataFrame({"wall s (median)": {k: float(np.median(v)) for k, v in walls.items()},
                         "runs": {k: ", ".join(f"{w:.2f}" for w in v) for k, v in walls.items()}})


#: Linking goals: this many files below a folder linked to a table of as many rows, in seconds.
LINK_FILES = 100_000
LINK_TARGET_S = 60.0
#: A Spotify-sized table linked to a few hundred files.
LINK_BIG_ROWS = 1_200_000
LINK_BIG_FILES = 300

_SYLLABLES = ("ka", "lo", "mi", "ré", "sø", "na", "tu", "vé", "ri", "ël", "ba", "do", "ñe", "zo", "qui", "mar",
              "bel", "ton", "ja", "rö", "lu", "sa", "ki", "ÿa", "po", "an", "el", "or", "us", "ix")
_WORDS = ("love", "night", "river", "fire", "heart", "dance", "summer", "rain", "city", "dream", "light", "blue",
          "gold", "home", "road", "time", "wild", "shadow", "ocean", "star", "forever", "alone", "ween", "electric",
          "midnight", "sugar", "paper", "stone", "glass", "thunder", "velvet", "echo", "silver", "crazy", "slow",
          "fast", "young", "old", "little", "big", "lost", "found", "morning", "garden", "winter", "cold", "sweet",
          "money", "world", "girl", "boy", "baby", "party", "radio", "mirror", "ghost", "angel", "devil", "señorita",
          "corazón", "été", "über", "naïve", "café", "déjà", "vu", "amor", "noche", "fuego", "cielo", "mañana", "sol")


def _link_names(rng: np.random.Generator, n_artists: int, n_titles: int) -> tuple[list[str], list[str]]:
    """Artist names of syllables (accents included) and titles of words, all distinct."""
    artists: dict[str, None] = {}
    while len(artists) < n_artists:
        k = rng.integers(2, 5, size=2)
        first = "".join(_SYLLABLES[j] for j in rng.integers(0, len(_SYLLABLES), k[0])).capitalize()
        last = "".join(_SYLLABLES[j] for j in rng.integers(0, len(_SYLLABLES), k[1])).capitalize()
        artists[f"{first} {last}" if rng.random() < 0.7 else first] = None
    titles: dict[str, None] = {}
    while len(titles) < n_titles:
        titles[" ".join(_WORDS[j] for j in rng.integers(0, len(_WORDS), rng.integers(2, 5))).title()] = None
    return list(artists), list(titles)


def _track_ids(rng: np.random.Generator, n: int) -> list[str]:
    """Spotify-like track ids: 22 base-62 characters."""
    alphabet = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
    codes = alphabet[rng.integers(0, 62, size=(n, 22))]
    return [b.decode() for b in codes.view("S22").ravel()]


def _link_case(rng: np.random.Generator, folder: Path, n_rows: int, n_files: int, *, n_artists: int,
               n_titles: int) -> tuple[pd.DataFrame, int]:
    """A table of ``n_rows`` rows and ``n_files`` empty audio files for some of them in nested
    folders: 40 % named ``<track_id>.<ext>``, the rest "Artist - Title" in ``Artist/Album/``
    folders, with two-artist credits written "A & B" or "A feat. B", a "(feat. C)" title part
    left out of the file name, NFD names, accents dropped and upper-case extensions; 10 % of
    them named in the table's ``path`` column; plus 2 % files no row names. Returns the table
    and how many rows have a file."""
    import unicodedata

    from audioreg.data import linking

    artists, titles = _link_names(rng, n_artists, n_titles)
    tids = _track_ids(rng, n_rows)
    a1 = rng.integers(0, len(artists), n_rows)
    a2 = rng.integers(0, len(artists), n_rows)
    two = rng.random(n_rows) < 0.2
    feat = rng.random(n_rows) < 0.1
    t = rng.integers(0, len(titles), n_rows)
    art_col = [f"{artists[x]};{artists[y]}" if w and x != y else artists[x] for x, y, w in zip(a1, a2, two)]
    title_col = [f"{titles[j]} (feat. {artists[y]})" if f and not w else titles[j] for j, y, w, f in zip(t, a2, two, feat)]
    df = pd.DataFrame({"track_id": tids, "artists": art_col, "track_name": title_col})
    exts = (".mp3", ".flac", ".ogg", ".m4a", ".MP3", ".FLAC", ".Mp3")
    chosen = rng.choice(n_rows, size=min(n_files, n_rows), replace=False)
    seen: set[str] = set()
    made_dirs: set[str] = set()
    given: list = [None] * n_rows
    made = 0
    for i in chosen:
        ext = exts[rng.integers(0, len(exts))]
        if rng.random() < 0.4:
            rel = f"tracks/{tids[i][:2]}/{tids[i]}{ext}"
        else:
            names = art_col[i].split(";")
            who = names[0] if len(names) == 1 else (" & " if rng.random() < 0.5 else " feat. ").join(names)
            stem = f"{who} - {titles[t[i]]}"
            if rng.random() < 0.1:  # accents dropped by whoever named the file
                stem = "".join(c for c in unicodedata.normalize("NFKD", stem) if not unicodedata.combining(c))
            if rng.random() < 0.15:  # named on a Mac
                stem = unicodedata.normalize("NFD", stem)
            key = linking.fold_key(stem)
            if key in seen:  # two rows of one song: leave the second without a file
                continue
            seen.add(key)
            rel = f"{names[0]}/Album {int(t[i]) % 3}/{stem}{ext}"
        _touch(folder, rel, made_dirs)
        if rng.random() < 0.1:  # the table names the file itself
            given[i] = rel
        made += 1
    for k in range(max(1, n_files // 50)):  # files no row names
        _touch(folder, f"unsorted/{k % 10}/Nobody {k} - Nothing {k}.wav", made_dirs)
    df["path"] = given
    return df, made


def _touch(folder: Path, rel: str, made_dirs: set) -> None:
    parent = os.path.dirname(rel)
    if parent not in made_dirs:
        os.makedirs(folder / parent, exist_ok=True)
        made_dirs.add(parent)
    os.close(os.open(folder / rel, os.O_CREAT | os.O_WRONLY, 0o644))


def measure_linking(tmp: Path, *, n_files: int = LINK_FILES, big_rows: int = LINK_BIG_ROWS,
                    big_files: int = LINK_BIG_FILES, seed: int = 0) -> dict:
    """Wall seconds of indexing a folder and linking a table to it (``audioreg.data.linking``),
    in two cases: ``n_files`` files for a table of as many rows, and a ``big_rows``-row table
    for ``big_files`` files. The files are empty (linking never opens them)."""
    import shutil

    from audioreg.data import linking

    rng = np.random.default_rng(seed)
    out = {}
    for case, rows, nf, n_art, n_tit in (("many files", n_files, n_files, max(50, n_files // 5), max(50, n_files)),
                                         ("big table", big_rows, big_files, max(50, big_rows // 20), max(50, big_rows // 6))):
        folder = tmp / f"link-{case.replace(' ', '-')}"
        df, made = _link_case(rng, folder, rows, nf, n_artists=n_art, n_titles=n_tit)
        t0 = time.perf_counter()
        files = linking.index_audio_dir(folder)
        t1 = time.perf_counter()
        res = linking.link_table(df, audio_dir=folder, files=files)
        t2 = time.perf_counter()
        links = res.links
        out[case] = {"rows": len(df), "files": len(files), "rows with a file": made,
                     "linked": int(links["path"].notna().sum()),
                     "by path": int((links["link"] == "path column").sum()),
                     "by track_id": int((links["link"] == "track_id file name").sum()),
                     "by artist - title": int((links["link"] == "artist - title").sum()),
                     "ambiguous or contested": int((links["candidates"].map(len) > 0).sum()),
                     "unmatched files": len(res.unmatched),
                     "index s": t1 - t0, "link s": t2 - t1, "total s": t2 - t0}
        shutil.rmtree(folder, ignore_errors=True)
    return out


def linking_report(figures: dict) -> tuple[str, list[str]]:
    """The Targets row and the report section of :func:`measure_linking`'s figures."""
    from audioreg.bench import markdown_table

    many = figures["many files"]
    row = (f"| link {many['files']:,} files to a {many['rows']:,}-row table < {LINK_TARGET_S:g} s (index + link) "
           f"| {many['total s']:.1f} s | {'yes' if many['total s'] < LINK_TARGET_S else 'no'} |")
    table = pd.DataFrame.from_dict(figures, orient="index")
    lines = [
        "## Linking a table to an audio folder (`audioreg.data.linking`)",
        "",
        "`index_audio_dir` (walk the folder, key every file name) then `link_table` (path column, `<track_id>.<ext>`,",
        "every credited artist with the title) on generated empty files: 40 % named `<track_id>.<ext>` below",
        "`tracks/<2 letters>/`, the rest `Artist/Album/Artist - Title.<ext>` with two-artist credits written",
        "\"A & B\" or \"A feat. B\", a title's \"(feat. C)\" left out of the file name, accents dropped (10 %),",
        "NFD names (15 %) and upper-case extensions; 10 % of the files also named in a `path` column; 2 % files",
        "no row names. Songs listed twice under two track ids, as real tables list them, leave a few files",
        "contested (linked to neither row). Wall seconds, one run; `by track_id` and `by artist - title` count",
        "the rows the path column did not link first.",
        "",
        markdown_table(table, index_name="case", floatfmt=",.2f"),
        "",
    ]
    return row, lines


#: Reading goals: a generated table in the 1.2M-track layout, read and validated (CSV and Parquet).
TABLE_ROWS = 1_200_000
TABLE_TARGET_S = 60.0
TABLE_TARGET_MB = 4096.0


def table_child(path: str) -> None:
    """Entry point of a fresh process: read and validate one metadata table, figures as JSON on stdout."""
    import pyarrow as pa

    from audioreg import bench
    from audioreg.data import metadata

    # this file pins every thread pool to one thread on import; a user's read has pyarrow's default pool
    pa.set_cpu_count(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    before = bench.current_rss_mb()
    t0 = time.perf_counter()
    df = metadata.read_metadata(path)
    t1 = time.perf_counter()
    problems = metadata.validate_labels(df)
    t2 = time.perf_counter()
    usable = metadata.usable_rows(df, problems)
    counts = metadata.label_counts(usable)
    t3 = time.perf_counter()
    print(json.dumps({"rows": len(df), "read s": t1 - t0, "validate s": t2 - t1, "read+validate s": t2 - t0,
                      "usable_rows+label_counts s": t3 - t2, "peak RSS MiB": bench.peak_rss_mb(),
                      "RSS before MiB": before, "problems": len(problems),
                      "rows dropped": int((problems["action"] == metadata.ROW_DROPPED).sum()),
                      "rows with a label masked": int((problems["action"] == metadata.LABEL_MASKED).sum()),
                      "usable rows": len(usable), "fewest labels": int(counts.min()),
                      "pyarrow threads": pa.cpu_count()}))


def measure_table_read(tmp: Path, *, rows: int = TABLE_ROWS, layout: str = "spotify-1.2m", seed: int = 0) -> dict:
    """Wall seconds and peak memory of ``read_metadata`` + ``validate_labels`` (then ``usable_rows`` +
    ``label_counts``) on a generated ``rows``-row table (``audioreg.bench.public_table``), written as
    CSV and as Parquet, each read in a fresh child process with pyarrow's default thread pool."""
    from audioreg.bench import public_table

    df = public_table(rows, layout, seed=seed)
    paths = {"CSV": tmp / f"{layout}.csv", "Parquet": tmp / f"{layout}.parquet"}
    df.to_csv(paths["CSV"], index=False)
    df["valence"] = pd.to_numeric(df["valence"], errors="coerce")  # Parquet columns are typed: no stray words
    df.to_parquet(paths["Parquet"], index=False)
    del df
    out = {}
    for fmt, path in paths.items():
        done = subprocess.run([sys.executable, __file__, "--table-child", str(path)], capture_output=True, text=True,
                              check=True)
        out[fmt] = {"file MiB": path.stat().st_size / 2**20, **json.loads(done.stdout.strip().splitlines()[-1])}
        path.unlink()
    return out


INGEST_LINKED = 300  # linked audio files of the ingest measurement


def ingest_child(table: str, audio_dir: str, root: str) -> None:
    """Entry point of a fresh process: ``stages.ingest`` of one table and audio folder, figures as JSON."""
    import pyarrow as pa

    from audioreg import bench, stages

    pa.set_cpu_count(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    t0 = time.perf_counter()
    res = stages.ingest({"root": root, "metadata_path": table, "audio_dir": audio_dir, "generate_sample": False,
                         "progress": False})
    print(json.dumps({"ingest s": time.perf_counter() - t0, "peak RSS MiB": bench.peak_rss_mb(),
                      "rows": res.meta["n_rows"], "usable tracks": len(res.manifest),
                      "problems": len(res.problems), "unmatched files": res.meta["n_unmatched_files"]}))


def measure_ingest(tmp: Path, *, rows: int = TABLE_ROWS, linked: int = INGEST_LINKED, seed: int = 0) -> dict:
    """Wall seconds and peak memory of the whole ingest stage (read, validate, link, probe, measure
    and hash each linked file, remove repeats, write the tables) of a generated ``rows``-row table in
    the 1.2M-table layout whose ``linked`` usable rows have a short WAV file named by their track id
    (the others have none: unlinked rows, as in a real collection), in a fresh child process."""
    import soundfile as sf

    from audioreg.bench import public_table
    from audioreg.data import metadata

    df = public_table(rows, "spotify-1.2m", seed=seed)
    table = tmp / "ingest-table.csv"
    df.to_csv(table, index=False)
    usable = metadata.usable_rows(metadata.read_metadata(table))
    audio = tmp / "ingest-audio"
    audio.mkdir(exist_ok=True)
    ids = usable["id" if "id" in usable.columns else "track_id"].drop_duplicates().head(linked)
    t = np.arange(int(0.5 * 22050)) / 22050
    for k, tid in enumerate(ids):  # a distinct tone each: identical files would be removed as repeats
        sf.write(audio / f"{tid}.wav", (0.3 * np.sin(2 * np.pi * (220 + k) * t)).astype(np.float32), 22050)
    del df, usable
    done = subprocess.run([sys.executable, __file__, "--ingest-child", str(table), str(audio), str(tmp / "ingest-root")],
                          capture_output=True, text=True, check=True)
    out = {"table MiB": table.stat().st_size / 2**20, "linked files": len(ids),
           **json.loads(done.stdout.strip().splitlines()[-1])}
    table.unlink()
    return out


def table_read_report(figures: dict) -> tuple[str, list[str]]:
    """The Targets row and the report section of :func:`measure_table_read`'s figures."""
    from audioreg.bench import markdown_table

    rows = max(f["rows"] for f in figures.values())
    worst_s = max(f["read+validate s"] for f in figures.values())
    worst_mb = max(f["peak RSS MiB"] for f in figures.values())
    met = worst_s < TABLE_TARGET_S and worst_mb < TABLE_TARGET_MB
    row = (f"| read+validate a {rows:,}-row table < {TABLE_TARGET_S:g} s and < {TABLE_TARGET_MB / 1024:g} GB "
           f"(CSV and Parquet, the slower) | {worst_s:.1f} s, {worst_mb / 1024:.2f} GiB peak | {'yes' if met else 'no'} |")
    table = pd.DataFrame.from_dict(figures, orient="index")
    lines = [
        f"## Reading a {rows:,}-row metadata table (`audioreg.data.metadata`)",
        "",
        "`read_metadata` then `validate_labels` on a table generated by `audioreg.bench.public_table` in the layout of",
        "the \"Spotify 1.2M+ Songs\" `tracks_features.csv` (list-string artists with apostrophes, commas and accents,",
        "titles in other scripts, 1 % repeated tracks, Spotify's sentinels, empty and out-of-range labels; the CSV also",
        "has a few words in a label column), written by pandas as CSV and as Parquet. Each format is read in a fresh",
        "child process with pyarrow's default thread pool (all usable cores, not the bench's one); *peak RSS* is the",
        "child's high-water mark (`VmHWM`), imports included. `usable_rows` + `label_counts` are timed apart.",
        "",
        markdown_table(table.astype(object).T, index_name="figure", floatfmt=",.2f"),
        "",
    ]
    return row, lines


def write_report(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    ap.add_argument("--music", type=Path, default=DEFAULT_MUSIC, help="folder of real tracks (default ../shared/data/music)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per file and path (median)")
    ap.add_argument("--n-sample", type=int, default=24, help="sample-set tracks")
    ap.add_argument("--seconds", type=float, default=30.0, help="sample-set seconds per track")
    ap.add_argument("--gru-epochs", type=int, default=2)
    ap.add_argument("--gru-epochs-pool1", type=int, default=1,
                    help="epochs at frame_pool=1 (about 2 min each on one core)")
    ap.add_argument("--run", type=Path, default=None, metavar="runs/<run_id>",
                    help="a run whose trained rf and gru models the one-file prediction timing also covers")
    ap.add_argument("--memory-child", nargs=3, metavar=("PATH", "FILE", "WARMUP"), help=argparse.SUPPRESS)
    ap.add_argument("--table-child", metavar="TABLE", help=argparse.SUPPRESS)
    ap.add_argument("--ingest-child", nargs=3, metavar=("TABLE", "AUDIO", "ROOT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child)
        return 0
    if args.ingest_child:
        ingest_child(*args.ingest_child)
        return 0
    if args.table_child:
        table_child(args.table_child)
        return 0

    from audioreg.bench import markdown_table
    from audioreg.features import BLOCK_FRAMES
    from audioreg.synth import generate_sample_set

    pin_threads()
    started = time.perf_counter()
    date = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load_start = load_avg()
    music = args.music if args.music.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="audioreg-bench-") as tmpdir:
        tmp = Path(tmpdir)
        log(f"generating the sample set ({args.n_sample} x {args.seconds:g} s)")
        sample_dir = tmp / "sample"
        generate_sample_set(sample_dir, n=args.n_sample, seconds=args.seconds, seed=0, n_jobs=os.cpu_count() or 1)
        pin_threads()
        files = collect_files(music, sample_dir)
        log(f"timing {len(files)} files x {len(PATHS)} paths x {args.repeats} repeats")
        load_paths = [load_avg()]
        m = measure_paths(files, repeats=args.repeats)
        load_paths.append(load_avg())
        tables = throughput_tables(m)
        command_corpus = "music" if music is not None else "sample"
        log(f"the command on the {command_corpus} tracks")
        command = measure_command(files[files["corpus"] == command_corpus], tmp, repeats=args.repeats)
        log("memory")
        mem_file, mem = measure_memory(files)
        log("30-minute track")
        long = measure_long_track(tmp, files[files["format"] == "flac"].sort_values("audio_s").iloc[0]["file"]
                                  if (files["format"] == "flac").any() else files.iloc[0]["file"])
        log("stages")
        stage_files = files[files["corpus"] == ("music" if music is not None else "sample")]
        stages = measure_stages(stage_files)
        log("worker scaling")
        scaling, features_dir = measure_scaling(sample_dir, tmp)
        log("one file: start-up")
        one_file = Path(files[files["corpus"] == "sample"].iloc[0]["file"])
        startup = measure_startup(one_file, tmp, run=args.run, repeats=args.repeats)
        log("gru")
        gru, n_train, n_val, frames = measure_gru(sample_dir, features_dir, tmp, epochs=args.gru_epochs,
                                                epochs_pool1=args.gru_epochs_pool1)
        log("linking")
        linked = measure_linking(tmp)
        log(f"reading a {TABLE_ROWS:,}-row table")
        table_read = measure_table_read(tmp)
        log(f"ingest of a {TABLE_ROWS:,}-row table with {INGEST_LINKED} linked files")
        ingested = measure_ingest(tmp)
    total = time.perf_counter() - started
    log(f"done in {total:.0f} s")

    # ------------------------------------------------------------------------------ report
    overall = tables["music" if music is not None else "sample"].loc["overall"]
    floor_ok = overall["floor / ours"] <= FLOOR_TARGET
    naive_ok = overall["ours / naive"] >= NAIVE_TARGET
    speedup2 = float(scaling.loc[2, "speed-up"]) if 2 in scaling.index else float("nan")
    cmd = " ".join(shlex.quote(a) for a in ["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [
        "# Benchmark results",
        "",
        "Generated by `bench/run.py`; every run overwrites this file. Figures are seconds of audio",
        "processed per wall-clock second (**times real time**) on **one core**: BLAS, OpenMP, numba and",
        "torch are pinned to one thread in the measuring process. Each figure is total audio seconds over",
        f"total wall seconds, from the median of {args.repeats} runs per file; the four paths run interleaved",
        "file by file, so load from other jobs falls on all of them alike.",
        "",
        f"- command: `{cmd}` (`make bench` runs `bench/run.py` with no arguments)",
        f"- date: {date}; bench wall time {total / 60:.1f} min",
        f"- load average (1/5/15 min): {load_start} at start, {load_paths[0]} before and {load_paths[1]} after the path timings, {load_avg()} at the end",
    ]
    lines += [f"- {k}: {v}" for k, v in machine().items()]
    lines += ["- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()), ""]
    lines += [
        "Paths:",
        "",
        "- **decode**: `soundfile.read(path, dtype='float32')` (libsndfile), the file's own rate and channels;",
        "- **decode+resample**: `audioreg.data.audio.load_audio` (decode, mean to mono, soxr HQ to 22,050 Hz): the floor of any CPU extractor;",
        "- **ours**: `load_audio` + `audioreg.features.extract_features` (one STFT shared by every feature);",
        "- **naive**: `librosa.load(path, sr=22050)` + `audioreg.features.reference_features` (each feature recomputes its spectrogram; tonnetz via CQT).",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "| --- | ---: | --- |",
        f"| ours within {FLOOR_TARGET} x the decode+resample floor (floor / ours <= {FLOOR_TARGET}) | {overall['floor / ours']:.2f} | {'yes' if floor_ok else 'no'} |",
        f"| ours >= {NAIVE_TARGET} x the naive path (ours / naive) | {overall['ours / naive']:.2f} | {'yes' if naive_ok else 'no'} |",
        f"| near-linear speed-up with workers (2 workers) | {speedup2:.2f} x | {'yes' if speedup2 >= 1.8 else 'no'} (>= 1.8 counted as near-linear) |",
    ]
    command_target, command_section = command_report(command, m, command_corpus)
    lines += [command_target]
    one = startup["wall s (median)"]
    lines += [f"| one 30-s file through `{name}` under {ONE_FILE_EXTRACT_TARGET if 'extract' in name else ONE_FILE_PREDICT_TARGET:g} s wall "
              f"| {one[name]:.2f} s | {'yes' if one[name] < (ONE_FILE_EXTRACT_TARGET if 'extract' in name else ONE_FILE_PREDICT_TARGET) else 'no'} |"
              for name in one.index if name.startswith("audioreg")]
    link_target, link_section = linking_report(linked)
    lines += [link_target]
    table_target, table_section = table_read_report(table_read)
    lines += [table_target]
    ingest_ok = ingested["ingest s"] < TABLE_TARGET_S and ingested["peak RSS MiB"] < TABLE_TARGET_MB
    lines += [f"| `stages.ingest` of a {ingested['rows']:,}-row table with {ingested['linked files']} linked files "
              f"< {TABLE_TARGET_S:g} s and < {TABLE_TARGET_MB / 1024:g} GB | {ingested['ingest s']:.1f} s, "
              f"{ingested['peak RSS MiB'] / 1024:.2f} GiB peak | {'yes' if ingest_ok else 'no'} |"]
    lines += [""]
    if music is None:
        lines += [f"**{args.music} is absent**: only the generated sample set was measured.", ""]
    names = {"music": f"Real tracks ({args.music})", "sample": f"Sample set ({args.n_sample} generated tracks x {args.seconds:g} s, 22.05-48 kHz, mono and stereo)",
             "all": "All files together"}
    for key in ("music", "sample", "all"):
        if key not in tables:
            continue
        t = tables[key].astype({"files": int}).rename(columns={"audio_s": "audio s"})
        lines += [f"## {names[key]}: times real time per core", "", markdown_table(t, index_name="format"), ""]
    lines += command_section
    per_file = m.pivot_table(index=["corpus", "format", "file", "audio_s", "sample_rate", "channels"], columns="path",
                             values="wall_s").reset_index()
    per_file["file"] = per_file["file"].map(lambda p: Path(p).name)
    per_file = per_file.astype({"sample_rate": int, "channels": int})
    for p in PATHS:
        per_file[p] = per_file["audio_s"] / per_file[p]
    cpu = m.groupby("path")[["cpu_s", "wall_s"]].sum()
    lines += [
        "<details><summary>Per file (times real time per core)</summary>", "",
        markdown_table(per_file[["corpus", "format", "file", "audio_s", "sample_rate", "channels", *PATHS]].rename(columns={"audio_s": "audio s"}), index=False),
        "", "</details>", "",
        "CPU time / wall time of the timed runs (well below 1 means other jobs took the core): "
        + ", ".join(f"{p} {cpu.loc[p, 'cpu_s'] / cpu.loc[p, 'wall_s']:.2f}" for p in PATHS if p in cpu.index),
        "",
        f"## Peak memory on the longest file ({Path(mem_file).name}, {files.set_index('file').loc[mem_file, 'audio_s']:.1f} s)",
        "",
        "One fresh child process per path: it runs the path once on a short file of the same format (imports,",
        "numba compilation), resets its resident-set high-water mark (`/proc/self/clear_refs`), runs the path on",
        "the file and reads `VmHWM`. *peak - before* is what the file itself costs. *tracemalloc peak* is a",
        "second run under `tracemalloc` (Python and NumPy allocations only; decoder and soxr buffers are not seen).",
        "",
        markdown_table(mem, index_name="path"),
        "",
        f"## A {long['minutes']:g}-minute track (generated stereo 44.1 kHz FLAC; target: peak under 1 GB)",
        "",
        f"`ours` in a fresh child process as above (decoded in blocks, features in blocks of "
        f"{BLOCK_FRAMES} frames): peak RSS **{long['peak_mb']:.0f} MiB** "
        f"({long['before_mb']:.0f} MiB before the file), {'met' if long['peak_mb'] < 1000 else 'NOT met'}; "
        f"the child took {long['child_wall_s']:.0f} s for warm-up, the file and a second traced run.",
        "",
        f"## Where the time goes ({'real tracks' if music is not None else 'sample set'}, one run per file, summed)",
        "",
        "Ours: the stages of one `extract_features` call, from its own stage clock (`timings=`). Naive: each librosa call of",
        "`reference_features` on the waveform.",
        "",
        markdown_table(stages.set_index(["path", "stage"]).reset_index(), index=False, floatfmt=",.2f"),
        "",
        "## Worker scaling: `audioreg.features.extract.extract_many` over the sample set",
        "",
        f"the {args.n_sample} files {SCALING_COPIES} times each under distinct track ids ({SCALING_COPIES * args.n_sample} files, "
        f"{SCALING_COPIES * args.n_sample * args.seconds:g} s of audio), fresh output folder each time, median of 2 runs;",
        "workers=1 runs in this process, more workers in a fork process pool (one thread each).",
        "",
        markdown_table(scaling, floatfmt=",.2f"),
        "",
        f"## Start-up: one 30-second file ({one_file.name}), whole commands",
        "",
        "Each command in a fresh process on a warm install (compiled-code cache filled, files in the page cache), the median",
        f"of {args.repeats} rounds after one untimed round, all commands interleaved per round. `audioreg predict` decodes",
        "and computes each file's features, loudness and expert estimates in a worker process while its own process loads",
        "the model; the two import lines are each process's floor (its libraries, imported and nothing else).",
        "",
        markdown_table(startup, index_name="command", floatfmt=",.2f"),
        "",
        "## GRU training throughput",
        "",
        f"`audioreg.models.GRURegressor` on the sample set's features: {n_train} training clips (~{frames} frames each",
        f"before pooling), {n_val} validation clips, hidden 256, 2 layers, batch 16, CPU, torch on one thread,",
        f"{args.gru_epochs} epochs per frame_pool ({args.gru_epochs_pool1} at frame_pool=1). An epoch's time includes its",
        "validation pass and checkpoint writes; *clips/s* uses the fastest epoch (epoch 1 also pays warm-up).",
        "",
        markdown_table(gru, floatfmt=",.2f"),
        "",
    ]
    lines += link_section
    lines += table_section
    lines += [f"## Ingest of a {ingested['rows']:,}-row table (`audioreg.stages.ingest`)", "",
              "The whole first stage in a fresh child process: read and validate the table (the 1.2M-table layout, as above,",
              f"CSV), link every row ({ingested['linked files']} usable rows have a 0.5-s WAV named by their track id, every",
              "other row none), probe, measure (BS.1770) and hash each linked file, remove repeats, write the manifest and the",
              "problems (one row per unlinked row). *Peak RSS* is the child's high-water mark, imports included.", "",
              markdown_table(pd.DataFrame([ingested]).T.rename(columns={0: "value"}), index_name="figure", floatfmt=",.2f"), ""]
    write_report(args.out, "\n".join(lines))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
