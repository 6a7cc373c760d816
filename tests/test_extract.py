"""The extraction driver and `audioreg extract`: same output on every backend, reuse, errors."""

import builtins
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from audioreg.features import extract
from audioreg.cli import main
from audioreg.features.extract import array_name, extract_many


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """Six generated tracks and one file that is not audio."""
    from audioreg.synth import generate_sample_set

    root = tmp_path_factory.mktemp("sample")
    generate_sample_set(root, n=6, seconds=2.0, seed=0)
    (root / "audio" / "broken.wav").write_bytes(b"RIFF this is not a wav file" * 10)
    return root / "audio"


def _snapshot(out):
    """Everything a backend writes, minus the timing column."""
    index = pd.read_csv(out / "index.csv", dtype={"track_id": str}).drop(columns="seconds")
    failures = pd.read_csv(out / "failures.csv", dtype={"track_id": str})
    arrays = {f: (out / f).read_bytes() for f in index["file"]}
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    return index, failures, arrays, meta


def _check(out, res):
    index, failures, arrays, meta = _snapshot(out)
    assert len(index) == 6 and res.computed == 6 and res.reused == 0
    assert list(failures["track_id"]) == ["broken"] and failures["stage"].eq("extract").all()
    assert "broken.wav" in failures["reason"][0]
    assert all(np.load(out / f).shape[1] == 46 for f in index["file"])
    assert set(index["file"]) == {array_name(t) for t in index["track_id"]}
    assert len(meta["feature_names"]) == 46 and meta["n_tracks"] == 6 and meta["n_failures"] == 1


def _raise_on_one(path, out_path, *, timeout_s=0.0):
    """Stands in for the Dask task: one that raises, as a crashing decoder would."""
    from audioreg.features.extract import _extract_on_worker

    if "broken" in path:
        raise RuntimeError("decoder crashed")
    return _extract_on_worker(path, out_path, timeout_s=timeout_s)


@pytest.mark.slow
def test_backends_write_identical_caches(audio_dir, tmp_path, capsys, monkeypatch):
    distributed = pytest.importorskip("distributed")
    assert main(["extract", str(audio_dir), "--out", str(tmp_path / "w1"), "--workers", "1", "--no-progress"]) == 0
    assert "computed 6, reused 0, failed 1" in capsys.readouterr().out
    _check(tmp_path / "w1", extract.extract_folder(audio_dir, tmp_path / "w1b", workers=1, progress=False))
    _check(tmp_path / "w2", extract.extract_folder(audio_dir, tmp_path / "w2", workers=2, progress=False))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        assert main(["extract", str(audio_dir), "--out", str(tmp_path / "dask"), "--scheduler",
                     cluster.scheduler_address, "--no-progress"]) == 0
        # a task that raises on a worker is a failure row naming the file; the batch goes on
        from audioreg.features import extract as X

        monkeypatch.setattr(X, "_extract_on_worker", _raise_on_one)
        res = extract.extract_folder(audio_dir, tmp_path / "raising", scheduler=cluster.scheduler_address, progress=False)
        monkeypatch.undo()
        assert len(res.index) == 6 and list(res.failures["track_id"]) == ["broken"]
        assert res.failures["reason"][0].startswith("worker failed on ") and "broken.wav" in res.failures["reason"][0]
        assert "RuntimeError: decoder crashed" in res.failures["reason"][0]
    out = capsys.readouterr().out
    assert "computed 6, reused 0, failed 1" in out and str(tmp_path / "dask" / "failures.csv") in out

    ref = _snapshot(tmp_path / "w1")
    for name in ("w1b", "w2", "dask"):
        index, failures, arrays, meta = _snapshot(tmp_path / name)
        pd.testing.assert_frame_equal(index, ref[0])
        pd.testing.assert_frame_equal(failures, ref[1])
        assert arrays == ref[2], name  # byte-identical .npy files
        assert meta == ref[3]


def test_rerun_reuses_everything_and_recomputes_changed_files(audio_dir, tmp_path, capsys):
    out = tmp_path / "feats"
    extract.extract_folder(audio_dir, out, workers=1, progress=False)
    files = sorted(out.glob("*.npy"))
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    first = pd.read_csv(out / "index.csv").drop(columns="seconds")
    assert main(["extract", str(audio_dir), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert "computed 0, reused 6, failed 1" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    pd.testing.assert_frame_equal(pd.read_csv(out / "index.csv").drop(columns="seconds"), first)

    # a changed audio file is re-extracted, the others are not
    src = tmp_path / "audio"
    shutil.copytree(audio_dir, src)
    extract.extract_folder(src, tmp_path / "feats2", workers=1, progress=False)
    victim = sorted(p for p in src.iterdir() if p.stem != "broken")[0]
    victim.write_bytes(victim.read_bytes())  # same content, new mtime
    import os

    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    res = extract.extract_folder(src, tmp_path / "feats2", workers=1, progress=False)
    assert (res.computed, res.reused, len(res.failures)) == (1, 5, 1)


def test_duplicated_stems_are_an_error_listing_them(tmp_path, capsys):
    from conftest import tone
    import soundfile as sf

    (tmp_path / "a").mkdir()
    sf.write(tmp_path / "a" / "x1.wav", tone(), 22050)
    sf.write(tmp_path / "x1.flac", tone(), 22050)
    sf.write(tmp_path / "x2.wav", tone(), 22050)
    assert main(["extract", str(tmp_path), "--out", str(tmp_path / "out"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "x1: a/x1.wav, x1.flac" in err and "x2" not in err


def test_missing_distributed_says_how_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError("No module named 'distributed'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    files = pd.DataFrame({"track_id": ["a"], "path": [str(tmp_path / "a.wav")]})
    with pytest.raises(ImportError, match=r'pip install "audioreg\[cluster\]"'):
        extract_many(files, tmp_path / "out", scheduler="tcp://127.0.0.1:8786")
    assert not (tmp_path / "out" / "index.csv").exists()


def test_torch_device_path_agrees_with_the_cpu_cache(audio_dir, tmp_path, capsys):
    """`--device torch-cpu`: workers decode, features in batches with torch; same rows and failures,
    values within features_torch.TOLERANCES of the compiled CPU path."""
    pytest.importorskip("torch")
    from audioreg.features.torch_batch import TOLERANCES
    from audioreg.features import BLOCKS

    assert main(["extract", str(audio_dir), "--out", str(tmp_path / "cpu"), "--workers", "1", "--no-progress"]) == 0
    assert main(["extract", str(audio_dir), "--out", str(tmp_path / "torch"), "--workers", "2", "--device", "torch-cpu",
                 "--batch-size", "4", "--no-progress"]) == 0
    assert capsys.readouterr().out.count("computed 6, reused 0, failed 1") == 2
    cpu, torch_ = _snapshot(tmp_path / "cpu"), _snapshot(tmp_path / "torch")
    # the same rows; the checksums differ with the values (within tolerance, not bit for bit)
    pd.testing.assert_frame_equal(torch_[0].drop(columns="crc32"), cpu[0].drop(columns="crc32"))
    pd.testing.assert_frame_equal(torch_[1], cpu[1])
    assert torch_[3]["device"] == "torch-cpu" and cpu[3]["device"] == "cpu"
    for f in cpu[0]["file"]:
        a, b = np.load(tmp_path / "cpu" / f), np.load(tmp_path / "torch" / f)
        start = 0
        for name, n in BLOCKS:
            np.testing.assert_allclose(b[:, start : start + n], a[:, start : start + n], rtol=0,
                                       atol=TOLERANCES[name], err_msg=f"{f} {name}")
            start += n


@pytest.mark.parametrize("args, message", [
    (["--device", "tpu"], "device must be cpu, auto, cuda, cuda:N or torch-cpu, not 'tpu'"),
    (["--device", "torch-cpu", "--scheduler", "tcp://127.0.0.1:1"], "a Dask scheduler and a torch device cannot be combined"),
])
def test_bad_device_is_a_clear_error(audio_dir, tmp_path, capsys, args, message):
    pytest.importorskip("torch")
    if "--scheduler" in args:
        pytest.importorskip("distributed")
    assert main(["extract", str(audio_dir), "--out", str(tmp_path / "x"), "--no-progress", *args]) == 2
    assert message in capsys.readouterr().err
    assert not list((tmp_path / "x").glob("*.npy"))


def test_the_extract_command_imports_no_tables_no_fft_and_no_librosa(audio_dir, tmp_path):
    """`audioreg extract` on a warm install starts fast: no pandas, no scipy.fft (the MFCC's DCT is
    loaded from beside the compiled code), no librosa, scipy.signal, torch or scikit-learn."""
    import subprocess
    import sys

    heavy = ("pandas", "scipy.fft", "scipy.signal", "scipy.stats", "librosa", "torch", "sklearn")
    code = ("import sys\nfrom audioreg.cli import main\n"
            f"rc = main(['extract', {str(audio_dir)!r}, '--out', sys.argv[1], '--workers', '1', '--no-progress'])\n"
            f"print(rc, sorted(m for m in {heavy!r} if m in sys.modules))")
    runs = [subprocess.run([sys.executable, "-c", code, str(tmp_path / f"out{i}")], capture_output=True, text=True,
                           check=True).stdout.strip().splitlines()[-1] for i in range(2)]
    assert runs[-1] == "0 []", runs  # the first run may have computed the DCT and kept it


def test_the_mfcc_dct_kept_on_disk_is_scipys(tmp_path):
    import scipy.fft

    from audioreg.features.frames import dct_matrix

    expected = scipy.fft.dct(np.eye(128), type=2, norm="ortho", axis=0)[:20].T
    first = dct_matrix(128, 20, cache_dir=tmp_path)
    (kept,) = tmp_path.glob("dct2-ortho-128x20-*.npy")
    assert np.array_equal(first, expected) and np.array_equal(np.load(kept), expected)
    assert np.array_equal(dct_matrix(128, 20, cache_dir=tmp_path), expected)  # loaded
    kept.write_bytes(b"\x93NUMPY torn")
    assert np.array_equal(dct_matrix(128, 20, cache_dir=tmp_path), expected)  # unreadable: computed again
    assert np.array_equal(np.load(kept), expected)
