"""Tests of audioreg.bench: timing helpers, throughput tables, Markdown formatting."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from audioreg import bench
from audioreg.features import frames as F

from conftest import SR, tone


def test_times_real_time_scalar_and_array():
    assert bench.times_real_time(60.0, 2.0) == pytest.approx(30.0)
    np.testing.assert_allclose(bench.times_real_time([10.0, 30.0], [1.0, 3.0]), [10.0, 10.0])
    assert bench.times_real_time(5.0, 0.0) == np.inf


def test_ratio_handles_zero():
    assert bench.ratio(6.0, 2.0) == pytest.approx(3.0)
    assert np.isnan(bench.ratio(1.0, 0.0))


def test_time_call_measures_the_median_and_cpu(monkeypatch):
    """Fake clocks: call k takes 1, 5, 3 s of wall time and half of it in CPU time."""
    clock = {"wall": 0.0, "cpu": 0.0}
    durations = iter([1.0, 5.0, 3.0])
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock["wall"])
    monkeypatch.setattr(bench.time, "process_time", lambda: clock["cpu"])

    def work():
        d = next(durations)
        clock["wall"] += d
        clock["cpu"] += d / 2

    t = bench.time_call(work, repeats=3)
    assert (t.wall_s, t.cpu_s) == (3.0, 1.5)
    with pytest.raises(ValueError):
        bench.time_call(work, repeats=0)


def test_summarize_throughput_totals_over_files():
    m = pd.DataFrame({
        "format": ["ogg", "ogg", "mp3", "ogg", "ogg", "mp3"],
        "file": ["a", "b", "c", "a", "b", "c"],
        "audio_s": [10.0, 30.0, 60.0, 10.0, 30.0, 60.0],
        "path": ["fast"] * 3 + ["slow"] * 3,
        "wall_s": [0.1, 0.3, 0.2, 1.0, 3.0, 6.0],
    })
    t = bench.summarize_throughput(m, group="format", overall="overall")
    assert list(t.index) == ["ogg", "mp3", "overall"]
    assert t.loc["ogg", "files"] == 2 and t.loc["ogg", "audio_s"] == 40.0
    # total audio over total wall, not the mean of per-file figures
    assert t.loc["ogg", "fast"] == pytest.approx(40.0 / 0.4)
    assert t.loc["mp3", "fast"] == pytest.approx(300.0)
    assert t.loc["overall", "fast"] == pytest.approx(100.0 / 0.6)
    assert t.loc["overall", "slow"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="wall_s"):
        bench.summarize_throughput(m.drop(columns="wall_s"))


def test_markdown_table_layout():
    df = pd.DataFrame({"n": [1, 2000], "x": [1.25, np.nan], "name": ["a", "b"]}, index=["r1", "r2"])
    text = bench.markdown_table(df, index_name="row")
    lines = text.splitlines()
    assert lines[0] == "| row | n | x | name |"
    assert lines[1] == "| --- | ---: | ---: | --- |"
    assert lines[2] == "| r1 | 1 | 1.2 | a |"
    assert lines[3] == "| r2 | 2,000 |  | b |"


def test_feature_stage_times_cover_extract_features():
    y = tone(440.0, seconds=3.0)
    stages = bench.feature_stage_times(y=y, sr=SR, repeats=2)
    assert list(stages) == ["stft", "power+contrast+peaks", "mel", "zcr", "chroma", "mfcc", "tonnetz+stack"]
    assert all(v > 0 for v in stages.values())


def test_feature_stage_times_sum_to_the_call(monkeypatch):
    """The stages are the clock of one extract_features call: they add up to its wall time."""
    y = tone(440.0, seconds=20.0)
    F.extract_features(y=y, sr=SR)  # compiled and warm
    walls = []
    real = F.extract_features

    def timed(**kw):
        t0 = time.perf_counter()
        out = real(**kw)
        walls.append(time.perf_counter() - t0)
        return out

    monkeypatch.setattr(F, "extract_features", timed)
    stages = bench.feature_stage_times(y=y, sr=SR)
    assert sum(stages.values()) == pytest.approx(walls[0], rel=0.05, abs=2e-3)


def test_peak_rss_is_at_least_current():
    assert bench.peak_rss_mb() >= bench.current_rss_mb() > 0


@pytest.mark.parametrize("layout", ["spotify-tracks", "spotify-600k", "spotify-1.2m"])
def test_public_table_has_the_layout_and_its_awkward_cells(layout):
    from audioreg.data.tables import LAYOUTS, artist_names

    df = bench.public_table(3000, layout, seed=1)
    assert tuple(df.columns) == LAYOUTS[layout] and len(df) == 3000
    ids = df["track_id" if layout == "spotify-tracks" else "id"]
    assert ids.str.fullmatch(r"[0-9A-Za-z]{22}").all()
    assert 0 < ids.duplicated().mean() < 0.3  # repeated tracks
    artists = df["artists"]
    if layout == "spotify-tracks":
        assert artists.str.contains(";").any() and not artists.str.startswith("[").any()
    else:
        assert artists.str.startswith("[").all() and artists.str.contains('"', regex=False).any()
        assert all(artist_names(a) for a in artists)
    assert (df["tempo"] == 0).any() and df["energy"].isna().any() and (df["valence"] == "?").sum() == 5
    assert bench.public_table(3000, layout, seed=1).equals(df)
    clean = bench.public_table(100, layout, seed=1, text_errors=False)
    assert clean["valence"].dtype == np.float64
