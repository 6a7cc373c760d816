"""The ``audioreg`` command: ``synth``, ``extract``, ``run``, ``params``, ``evaluate``, ``predict`` and ``report``."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .errors import CheckpointError


def _kv(pairs):
    return {k: v for k, v in (pairs or [])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audioreg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="generate the synthetic sample set (audio + metadata.csv)")
    s.add_argument("--n", type=int, default=240, help="number of tracks")
    s.add_argument("--seconds", type=float, default=30.0, help="seconds per track")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--label-noise", type=float, default=1.0, help="scale of the per-target label noise")
    s.add_argument("--out", default="data/raw/sample", help="output folder")

    e = sub.add_parser("extract", help="extract features of every audio file in a folder (locally or on a Dask cluster)")
    e.add_argument("audio_dir", metavar="AUDIO_DIR", help="folder searched recursively; the track id is the file stem")
    e.add_argument("--out", required=True, metavar="FEATURES_DIR", help="cache folder: <track_id>.npy, index.csv, failures.csv, meta.json")
    e.add_argument("--workers", type=int, default=0, metavar="N", help="local processes; 0 means all cores (ignored with --scheduler)")
    e.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler address, e.g. tcp://host:8786 (workers must see AUDIO_DIR and FEATURES_DIR at the same paths)")
    e.add_argument("--device", default="cpu", metavar="DEVICE",
                   help="cpu (default), cuda, cuda:N, auto (a GPU when torch sees one) or torch-cpu: on a torch device, "
                        "workers decode and features are computed in batches (values within features_torch.TOLERANCES)")
    e.add_argument("--batch-size", type=int, default=16, metavar="N", help="tracks per batch on a torch device")
    e.add_argument("--timeout", type=float, default=120.0, metavar="S", help="per-file timeout in seconds, 0 for none (not enforced on Dask workers)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")

    r = sub.add_parser("run", help="execute notebooks 01-06 and write the HTML report")
    r.add_argument("-f", "--file", action="append", default=[], metavar="YAML", help="parameter file (after params/base.yaml; repeatable)")
    r.add_argument("-p", "--param", action="append", nargs=2, metavar=("KEY", "VALUE"), help="override one parameter (repeatable)")
    r.add_argument("--run-id", default=None, help="name of runs/<run_id> and reports/<run_id> (default: <experiment>-<timestamp>)")
    r.add_argument("--only", default=None, help="comma-separated notebooks to run, e.g. 04_rf,06_error_analysis")
    r.add_argument("--log-output", action="store_true", help="stream notebook output to the terminal")

    p = sub.add_parser("params", help="print the merged parameters of a run without running it")
    p.add_argument("-f", "--file", action="append", default=[], metavar="YAML")
    p.add_argument("-p", "--param", action="append", nargs=2, metavar=("KEY", "VALUE"))

    from .features.experts import KEY_PROFILES

    v = sub.add_parser("evaluate", help="score the expert (DSP) estimators and trained models on annotated audio")
    v.add_argument("annotations", metavar="ANNOTATIONS.csv",
                   help="columns: path (relative to the table; '+' joins stems) and any of bpm, key, mode, time_signature")
    v.add_argument("--out", default="reports/evaluate", metavar="DIR", help="where evaluation.json and evaluation.html go")
    v.add_argument("--profile", default="krumhansl", choices=tuple(KEY_PROFILES), help="the experts' key profile")
    v.add_argument("--run", action="append", default=[], metavar="runs/<run_id>",
                   help="also score this run's trained models, as rows '<model> [<run_id>]' (repeatable)")
    v.add_argument("--model", action="append", default=None, choices=("rf", "gru"),
                   help="which of each --run's models (repeatable; default: every model the run holds)")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")

    q = sub.add_parser("predict", help="Spotify's audio attributes of audio files, by a run's model or the experts")
    q.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (searched recursively)")
    q.add_argument("--run", default=None, metavar="runs/<run_id>", help="the run whose trained model predicts (rf, gru)")
    q.add_argument("--model", default="gru", choices=("rf", "gru", "dsp"),
                   help="rf or gru: the run's trained model, with 90 %% intervals; dsp: the expert estimators (no run needed)")
    q.add_argument("--out", default="predictions.csv", metavar="CSV",
                   help="where the predictions go; unreadable files go to <stem>.failures.csv beside it")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")

    c = sub.add_parser("report", help="compare every run: reports/index.html from each runs/<run_id>/metrics.json")
    c.add_argument("--runs", default="runs", metavar="DIR", help="the runs folder, read only (default: ./runs)")
    c.add_argument("--out", default="reports", metavar="DIR",
                   help="where index.html goes; it links each run's DIR/<run_id>/index.html (default: ./reports)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)  # the runner logs one line per notebook

    if args.command == "evaluate":
        from . import evaluate as ev

        if args.model and not args.run:
            print("audioreg: error: --model needs --run runs/<run_id> (the run that trained it)", file=sys.stderr)
            return 2
        try:
            models = ev.load_models(args.run, args.model)
        except (FileNotFoundError, ValueError, CheckpointError) as exc:
            print(f"audioreg: error: {exc}", file=sys.stderr)
            return 2
        result = ev.evaluate(ev.read_annotations(args.annotations), profile=args.profile, models=models,
                             progress=not args.no_progress)
        js, page = ev.write(result, args.out, source=str(args.annotations))
        print("\n".join(ev.summary(result.scores)))
        for f in result.failures.to_dict(orient="records"):
            print(f"not scored: {f['path']}: {f['reason']}", file=sys.stderr)
        print(f"wrote {js} and {page}")
        return 0

    if args.command == "predict":
        return _predict(args)
    if args.command == "report":
        return _report(args)
    if args.command == "synth":
        from .synth import generate_sample_set

        df = generate_sample_set(args.out, n=args.n, seconds=args.seconds, seed=args.seed,
                                 label_noise=args.label_noise, progress=True)
        print(f"wrote {len(df)} tracks and {args.out}/metadata.csv")
        return 0

    if args.command == "extract":
        from .features.extract import extract_folder

        try:
            res = extract_folder(args.audio_dir, args.out, workers=args.workers, scheduler=args.scheduler,
                                 timeout_s=args.timeout, progress=not args.no_progress, device=args.device,
                                 batch_size=args.batch_size)
        except (ImportError, FileNotFoundError, ValueError, OSError, RuntimeError) as exc:
            print(f"audioreg: error: {exc}", file=sys.stderr)
            return 2
        print(f"computed {res.computed}, reused {res.reused}, failed {len(res.failure_rows)}")
        print(f"features: {res.out_dir}")
        print(f"failures: {res.out_dir / 'failures.csv'}")
        return 0

    from . import runner
    from .features.numba_cache import CompiledCacheError
    from .params import UnknownParameterError
    from .paths import repo_root

    root = repo_root()
    try:
        if args.command == "params":
            import yaml

            known = runner.known_parameters(runner.declared(root))
            merged = runner.merged_params(root, args.file, _kv(args.param), known=known)
            yaml.safe_dump(merged, sys.stdout, sort_keys=False, allow_unicode=True)
            return 0
        only = args.only.split(",") if args.only else runner.NOTEBOOKS
        result = runner.run(args.file, _kv(args.param), run_id=args.run_id, root=root, notebooks=only,
                            log_output=args.log_output)
    except runner.RunStopped as exc:  # SIGINT or SIGTERM: the kernels are stopped, the report says so
        print(f"audioreg: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except (UnknownParameterError, FileNotFoundError, ValueError, runner.RunError, CompiledCacheError) as exc:
        print(f"audioreg: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        from .errors import is_out_of_space, out_of_space

        if not is_out_of_space(exc):
            raise
        folder = os.path.dirname(exc.filename) if getattr(exc, "filename", None) else os.getcwd()
        print(f"audioreg: error: {out_of_space(folder)}", file=sys.stderr)
        return 2
    print(f"run {result.run_id}: executed notebooks in {result.run_dir}")
    for nb, why in result.skipped.items():
        print(f"skipped {nb}: the data cannot support it: {why}")
    print(f"report: {result.index}")
    return 0


def _report(args) -> int:
    from pathlib import Path

    from .judge import leaderboard

    runs = Path(args.runs)
    if not runs.is_dir():
        print(f"audioreg: error: {runs}: no such runs folder (each `audioreg run` writes runs/<run_id>/metrics.json)",
              file=sys.stderr)
        return 2
    try:
        path = leaderboard.write_cross_run_index(runs, Path(args.out) / "index.html")
    except OSError as exc:  # --out names a file, or a folder that cannot be written
        print(f"audioreg: error: cannot write {Path(args.out) / 'index.html'}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


def _predict(args) -> int:
    from . import atomic
    from . import predict as pr

    try:
        pr.model_pointer(args.run, args.model)  # a run without the model stops here, before any work starts
    except (FileNotFoundError, ValueError) as exc:
        print(f"audioreg: error: {exc}", file=sys.stderr)
        return 2
    # each file's decoding, features, loudness and expert estimates in worker processes, started before the model loads
    with pr.Workers(args.paths, features=pr.needs_features(args.model), experts=pr.needs_experts(args.run, args.model)) as workers:
        try:
            predictor = pr.load(args.run, args.model)
        except (FileNotFoundError, ValueError, CheckpointError) as exc:
            print(f"audioreg: error: {exc}", file=sys.stderr)
            return 2
        df, failures = pr.predict(args.paths, predictor, progress=not args.no_progress, workers=workers)
    atomic.write_csv(args.out, df)
    atomic.write_csv(pr.failures_path(args.out), failures)
    for f in failures.to_dict(orient="records"):
        print(f"unreadable: {f['path']}: {f['reason']}", file=sys.stderr)
    if predictor.calibration is not None and len(predictor.calibration):
        cal = predictor.calibration
        print(f"90 % intervals: split-conformal, calibrated on {int(cal['n_val'].min())}-{int(cal['n_val'].max())} "
              f"validation tracks; coverage measured on the run's test part: "
              + ", ".join(f"{t} {r.test_coverage:.0%} (n={int(r.n_test)})" for t, r in cal.iterrows()))
    print(f"wrote {len(df)} predictions to {args.out}; {len(failures)} unreadable, listed in {pr.failures_path(args.out)}")
    import gc

    gc.freeze()  # the interpreter's last collection, over torch's or scikit-learn's objects, would add 0.2-0.3 s to the exit
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
