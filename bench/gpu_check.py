"""GPU check of `audioreg.features.torch_batch.extract_features_batch`, written to bench/GPU_RESULTS.md.

Needs a CUDA build of torch and a GPU; without CUDA it prints one line and exits 0.

On a batch of generated tracks (``audioreg.synth``, 30 s each, mixed to mono at 22,050 Hz):

1. times the CPU path, ``audioreg.features.extract_features`` one track at a time on one
   core (thread pools pinned to 1, as ``bench/run.py`` measures), and the GPU path,
   ``extract_features_batch`` end to end (NumPy in, NumPy out: transfers, the CPU tuning
   and zero-crossing steps included) with a float64 and a float32 FFT, for several batch
   sizes; reports tracks/s, times real time and the peak GPU memory;
2. checks every track against the CPU features, per feature, within
   ``features_torch.TOLERANCES`` (float64 FFT) and ``TOLERANCES_FFT32`` (float32 FFT).

Usage: python bench/gpu_check.py [--tracks 64] [--seconds 30] [--batch-sizes 8,32,64]
                                 [--repeats 3] [--out bench/GPU_RESULTS.md]
       python bench/gpu_check.py --device cpu --tracks 4 --seconds 5 --out /tmp/x.md
                                 (a dry run of the script itself on torch's CPU path)
Exit status: 0 when every track agrees within tolerance (or there is no CUDA), 1 otherwise.
"""

from __future__ import annotations

import os

# One core for the CPU baseline, as bench/run.py measures (set before numpy/numba/torch load).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SR = 22050


def generate_tracks(n: int, seconds: float, *, seed: int = 0) -> list[np.ndarray]:
    """``n`` synthetic tracks (mono float32), each from its own random stream."""
    from audioreg import synth

    tracks = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        controls = synth.sample_controls(rng=rng)
        y = synth.render_track(controls, sr=SR, seconds=seconds, rng=rng)
        tracks.append(np.ascontiguousarray(y.mean(axis=0), dtype=np.float32))
    return tracks


def time_cpu(tracks: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
    from audioreg.features import extract_features

    extract_features(y=tracks[0][: SR], sr=SR)  # numba compile / cache load
    t0 = time.perf_counter()
    out = [extract_features(y=y, sr=SR) for y in tracks]
    return time.perf_counter() - t0, out


def time_batches(tracks: list[np.ndarray], batch: int, fft_dtype: torch.dtype, repeats: int,
                 device: torch.device) -> tuple[float, float, list]:
    """Median seconds over ``repeats`` for all tracks in batches of ``batch``; peak GPU MiB; the features."""
    from audioreg.features.torch_batch import extract_features_batch

    cuda = device.type == "cuda"

    def run():
        return [X for i in range(0, len(tracks), batch)
                for X in extract_features_batch(tracks[i : i + batch], sr=SR, device=device, fft_dtype=fft_dtype)]

    run()  # warm-up: CUDA context, cuFFT plans, kernels
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else float("nan")
    return float(np.median(times)), peak, out


def max_differences(got: list[np.ndarray], ref: list[np.ndarray]) -> dict[str, float]:
    from audioreg.features import frames as features

    cols = features._columns()
    worst = {name: 0.0 for name, _ in features.BLOCKS}
    for X, R in zip(got, ref):
        if X.shape != R.shape:
            raise AssertionError(f"shape {X.shape} != {R.shape}")
        for name in worst:
            worst[name] = max(worst[name], float(np.abs(X[:, cols[name]] - R[:, cols[name]]).max()))
    return worst


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(text)
        tmp = Path(f.name)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--batch-sizes", default="8,32,64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "GPU_RESULTS.md")
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for a dry run of this script")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: CUDA is not available (torch {torch.__version__}); nothing to measure.")
        return 0

    from audioreg.features import torch_batch as features_torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    tracks = generate_tracks(args.tracks, args.seconds)
    audio_s = sum(y.size for y in tracks) / SR
    cpu_s, ref = time_cpu(tracks)

    rows = [("CPU `extract_features`, one track at a time, 1 core", "1", cpu_s, float("nan"))]
    diffs = {}
    for fft_dtype, label in ((torch.float64, "float64"), (torch.float32, "float32")):
        for batch in batch_sizes:
            seconds, peak_mib, got = time_batches(tracks, batch, fft_dtype, args.repeats, device)
            rows.append((f"{device} `extract_features_batch`, {label} FFT", str(batch), seconds, peak_mib))
            worst = max_differences(got, ref)
            diffs[label] = {k: max(v, diffs.get(label, {}).get(k, 0.0)) for k, v in worst.items()}

    tolerances = {"float64": features_torch.TOLERANCES, "float32": features_torch.TOLERANCES_FFT32}
    ok = all(diffs[label][k] <= tolerances[label][k] for label in diffs for k in diffs[label])
    command = " ".join(["python bench/gpu_check.py", *(sys.argv[1:] if argv is None else argv)])

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu = f"{props.name}, {props.total_memory / 2**30:.0f} GiB; CUDA {torch.version.cuda}"
    else:
        gpu = "none: a dry run on torch's CPU path (--device cpu), not a GPU measurement"
    lines = [
        "# GPU check: `features_torch.extract_features_batch` vs `features.extract_features`",
        "",
        "Generated by `bench/gpu_check.py`; every run overwrites this file. GPU times are end to end",
        "(NumPy arrays in, NumPy arrays out: host-device transfers, the per-track tuning and the",
        "zero-crossing rate on the CPU included), median of the repeats after one warm-up run.",
        "The CPU baseline runs one track at a time with every thread pool pinned to one thread.",
        "",
        f"- command: `{command}`",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC;"
        f" wall time {(time.perf_counter() - started) / 60:.1f} min",
        f"- gpu: {gpu}; torch {torch.__version__}",
        f"- cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores;"
        f" python {platform.python_version()}",
        f"- tracks: {len(tracks)} generated (`audioreg.synth`, mono, {SR} Hz) x {args.seconds:g} s"
        f" = {audio_s:,.0f} s of audio; repeats: {args.repeats}",
        "",
        "## Throughput",
        "",
        "| path | batch | seconds | tracks/s | times real time | peak GPU MiB | speed-up vs CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for path, batch, seconds, peak in rows:
        mib = "" if np.isnan(peak) else f"{peak:,.0f}"
        lines.append(f"| {path} | {batch} | {seconds:.2f} | {len(tracks) / seconds:,.1f} | {audio_s / seconds:,.0f}"
                     f" | {mib} | {cpu_s / seconds:.1f} x |")
    lines += [
        "",
        "## Agreement with the CPU features (max absolute difference over all tracks and frames)",
        "",
        "| feature | float64 FFT | tolerance | float32 FFT | tolerance (float32) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in diffs["float64"]:
        lines.append(f"| {name} | {diffs['float64'][name]:.2e} | {tolerances['float64'][name]:g}"
                     f" | {diffs['float32'][name]:.2e} | {tolerances['float32'][name]:g} |")
    lines += ["", f"**{'All within tolerance.' if ok else 'OUT OF TOLERANCE: see the table above.'}**", ""]
    write_atomically(args.out, "\n".join(lines))
    print(f"gpu_check: {'ok' if ok else 'OUT OF TOLERANCE'}; wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
