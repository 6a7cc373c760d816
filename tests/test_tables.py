"""The public Spotify tables read as they are (lib/audioreg/data/tables.py and metadata.read_metadata).

Each fixture is a few rows in the layout of one public table, with the awkward cells those
tables have (artists as Python list strings with apostrophes, commas and accents; the
Kaggle table's unnamed index and per-genre repeats; Spotify's sentinels), written by the
test the way pandas writes them: CSV with commas or semicolons, with or without a BOM, and
Parquet.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audioreg.data import metadata, tables
from audioreg.data.tables import artist_names
from audioreg.targets import TARGETS

DROPPED, MASKED = metadata.ROW_DROPPED, metadata.LABEL_MASKED
NFD = lambda text: unicodedata.normalize("NFD", text)  # noqa: E731

#: (danceability, energy, key, loudness, mode, speechiness, acousticness, instrumentalness, liveness, valence,
#: tempo, time_signature) of the fixtures' rows, in the public tables' column order.
AUDIO_COLUMNS = ("danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
                 "instrumentalness", "liveness", "valence", "tempo", "time_signature")
FEATURES = [
    (0.676, 0.461, 1, -6.746, 0, 0.143, 0.0322, 1.01e-06, 0.358, 0.715, 87.917, 4),
    (0.42, 0.166, 1, -17.235, 1, 0.0763, 0.924, 5.56e-06, 0.101, 0.267, 77.489, 4),
    (0.438, 0.359, 0, -9.734, 1, 0.0557, 0.21, 0.0, 0.117, 0.12, 76.332, 4),
    (0.266, 0.0596, 0, -18.515, 1, 0.0363, 0.905, 7.07e-05, 0.132, 0.143, 0.0, 3),  # tempo 0: no beat detected
    (0.618, 0.443, 2, -9.681, 1, 0.0526, 0.469, 0.0, 0.0829, 0.167, 119.949, 4),
]


def kaggle_tracks() -> pd.DataFrame:
    """The Kaggle "Spotify Tracks Dataset" (dataset.csv): one row per track and genre."""
    rows = [("5SuOikwiRyPMVoIQDJUgSV", "Gen Hoshino", "Comedy", "Comedy", 73, 230666, False, "acoustic"),
            ("4qPNDBW1i3p13qLCt0Ki3A", "Ben Woodward", "Ghost (Acoustic)", "Ghost - Acoustic", 55, 149610, False,
             "acoustic"),
            ("1iJBSr7s7jYXzM8EGcbK5b", "Ingrid Michaelson;ZAYN", "To Begin Again", "To Begin Again", 57, 210826,
             False, "acoustic"),
            ("6lfxq3CG4xtTiEg7opyCyx", NFD("Kina Grannis;Sigur Rós"), "Crazy Rich Asians, Vol. 1",
             "Can't Help Falling In Love", 71, 201933, False, "acoustic"),
            ("5vjLSffimiIP26QG5WcN2K", "Chord Overstreet", '12" Hold On', "Hold On", 82, 198853, False, "acoustic")]
    df = pd.DataFrame(rows, columns=["track_id", "artists", "album_name", "track_name", "popularity", "duration_ms",
                                     "explicit", "track_genre"])
    df = pd.concat([df, pd.DataFrame(FEATURES, columns=list(AUDIO_COLUMNS))], axis=1)
    again = df.iloc[[2]].assign(track_genre="pop")  # the same track listed under a second genre
    df = pd.concat([df, again], ignore_index=True)
    return df[[c for c in tables.LAYOUTS["spotify-tracks"] if c]]


def tracks_600k() -> pd.DataFrame:
    """tracks.csv of "Spotify Dataset 1921-2020": list strings, release dates of every precision."""
    rows = [("35iwgR4jXetI318WEWsa1Q", "Carve", 6, 126903, 0, "['Uli']", "['45tIt06XoI0Iio4LBEVpls']", "1922-02-22"),
            ("021ht4sdgPcrDgSk7JTbKY", "Capítulo 2.16 - Banquero Anarquista", 0, 98200, 0,
             "['Fernando Pessoa']", "['14jtPCOoNZwquk5wd9DxrY']", "1922-06-01"),
            ("07A5yehtSnoedViJAZkNnc", "Vivo para Quererte - Remasterizado", 0, 181640, 0,
             "['Ignacio Corsini', 'Orquesta Típica']", "['5LiOoJbxVSAMkBS2fUm3X2', '3BiJGZsyX9sJchTqcSA7Su']", "1922"),
            ("4pyw9DVHGStUre4J6hPngr", "Sweet Child O' Mine", 0, 356066, 0,
             "[\"Guns N' Roses\"]", "['3qm84nBOXUEQ2vnTfUTTFC']", "1987-07-21"),
            ("3cCp1SL2pfYqvz12yqWTrG", "September", 0, 215093, 0,
             "['Earth, Wind & Fire', 'Björk']", "['4QQgXkCYTt3BlENzhyNETg', '7w29UYBi0qsHi5RTcv3lmA']", "1978-11-18")]
    df = pd.DataFrame(rows, columns=["id", "name", "popularity", "duration_ms", "explicit", "artists", "id_artists",
                                     "release_date"])
    df = pd.concat([df, pd.DataFrame(FEATURES, columns=list(AUDIO_COLUMNS))], axis=1)
    df.loc[1, "key"] = -1  # no key detected
    return df[list(tables.LAYOUTS["spotify-600k"])]


def tracks_1_2m() -> pd.DataFrame:
    """tracks_features.csv of "Spotify 1.2M+ Songs": time_signature written as a float."""
    rows = [("7lmeHLHBe4nmXzuXc0HDjk", "Testify", "The Battle Of Los Angeles", "2eia0myWFgoHuttJytCxgX",
             "['Rage Against The Machine']", "['2d0hyoQ5ynDBnkvAbJKORj']", 1, 1, False, 1999, "1999-11-02"),
            ("1wsRitfRRtWyEapl0q22o8", "Guerrilla Radio", "The Battle Of Los Angeles", "2eia0myWFgoHuttJytCxgX",
             "['Rage Against The Machine']", "['2d0hyoQ5ynDBnkvAbJKORj']", 2, 1, True, 1999, "1999-11-02"),
            ("0tlhK4OvpHCYpReTABvKFb", "Hello, World", "Señor, Señor", "4DeOjPyI4PHzxHE7kzV9NU",
             "['Zoë', \"Rock 'n' Roll Kids\", 'Zoë']", "['0rvjqX7ttXeg3mTy8Xscbt', '1SvBnsJIFLwD0AMtOgqUCw']", 3, 1,
             False, 2004, "2004"),
            ("6WnrYfVEWRJ1qhfXrsKnDJ", "Deja Vu", "東京", "0a3uIAfbUJCmeIQT7LNRKO", "['Beyonc\\xe9', 'Jay-Z']",
             "['6vWDO969PvNqNYHIOW5v0m', '3nFkdlSjzX9mRTtwJOzDYB']", 1, 1, False, 2006, "2006-09-01"),
            ("2F8n3aTj5uzPxUiAEzU0Mp", "Untitled", "Demos", "7zs9mYBAP9QuVsk2nwEPvQ", "[]", "[]", 1, 2, False, 0,
             "0000")]
    df = pd.DataFrame(rows, columns=["id", "name", "album", "album_id", "artists", "artist_ids", "track_number",
                                     "disc_number", "explicit", "year", "release_date"])
    df["duration_ms"] = [320400, 206200, 180000, 240507, 61000]
    df = pd.concat([df, pd.DataFrame(FEATURES, columns=list(AUDIO_COLUMNS))], axis=1)
    df["time_signature"] = df["time_signature"].astype(float)
    df.loc[2, "time_signature"] = 0.0  # the 1.2M table has meters of 0
    return df[list(tables.LAYOUTS["spotify-1.2m"])]


FORMATS = ["csv", "csv-semicolon", "csv-bom", "parquet"]


def write(df: pd.DataFrame, tmp_path, fmt: str, *, kaggle_index: bool = False):
    """``df`` written as that table is distributed (the Kaggle CSV keeps pandas' unnamed index)."""
    if fmt == "parquet":
        path = tmp_path / "table.parquet"
        df.to_parquet(path, index=False)
        return path
    path = tmp_path / "table.csv"
    df.to_csv(path, index=kaggle_index, sep=";" if fmt == "csv-semicolon" else ",",
              encoding="utf-8-sig" if fmt == "csv-bom" else "utf-8")
    return path


def first_row(fmt: str) -> int:
    return 1 if fmt == "parquet" else 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_kaggle_tracks_dataset(tmp_path, fmt):
    path = write(kaggle_tracks(), tmp_path, fmt, kaggle_index=True)
    if fmt != "parquet":  # the header starts with the unnamed index column
        assert path.read_text(encoding="utf-8-sig").startswith((";" if fmt == "csv-semicolon" else ",") + "track_id")
    df = metadata.read_metadata(path)
    assert df.attrs["layout"] == "spotify-tracks" and df.attrs["renamed"] == {} and metadata.absent_targets(df) == ()
    assert list(df.columns) == ["row", *[c for c in tables.LAYOUTS["spotify-tracks"] if c], "parse_error"]
    assert df["row"].tolist() == list(range(first_row(fmt), first_row(fmt) + 6))
    assert df["artists"].tolist() == ["Gen Hoshino", "Ben Woodward", "Ingrid Michaelson;ZAYN",
                                      "Kina Grannis;Sigur Rós", "Chord Overstreet", "Ingrid Michaelson;ZAYN"]
    assert df.loc[3, "album_name"] == "Crazy Rich Asians, Vol. 1" and df.loc[4, "album_name"] == '12" Hold On'
    assert df["time_signature"].tolist() == [4, 4, 4, 3, 4, 4] and df["popularity"].tolist()[:2] == [73, 55]
    problems = metadata.validate_labels(df)
    assert list(problems[["row", "reason", "action"]].itertuples(index=False, name=None)) == [
        (first_row(fmt) + 3, "tempo=0 outside [1, 300] (Spotify's 0: no beat detected)", MASKED),
        (first_row(fmt) + 5, f"duplicate of row {first_row(fmt) + 2} (same track_id and labels)", DROPPED)]
    usable = metadata.usable_rows(df, problems)
    assert usable["track_genre"].tolist() == ["acoustic"] * 5
    assert metadata.label_counts(usable).to_dict() == {t: 4 if t == "tempo" else 5 for t in TARGETS}


@pytest.mark.parametrize("fmt", FORMATS)
def test_spotify_600k_tracks(tmp_path, fmt):
    df = metadata.read_metadata(write(tracks_600k(), tmp_path, fmt))
    assert df.attrs["layout"] == "spotify-600k" and df.attrs["renamed"] == {"id": "track_id", "name": "track_name"}
    assert df["track_id"].tolist()[0] == "35iwgR4jXetI318WEWsa1Q" and df["track_name"].tolist()[3] == "Sweet Child O' Mine"
    assert df["artists"].tolist() == ["Uli", "Fernando Pessoa", "Ignacio Corsini;Orquesta Típica", "Guns N' Roses",
                                      "Earth, Wind & Fire;Björk"]
    # the other columns as they are: ids as list strings, dates of any precision stay text
    assert df.loc[2, "id_artists"] == "['5LiOoJbxVSAMkBS2fUm3X2', '3BiJGZsyX9sJchTqcSA7Su']"
    assert df["release_date"].tolist() == ["1922-02-22", "1922-06-01", "1922", "1987-07-21", "1978-11-18"]
    assert df["explicit"].tolist() == [0] * 5 and df["duration_ms"].dtype == np.int64
    problems = metadata.validate_labels(df)
    assert list(problems[["row", "reason", "action"]].itertuples(index=False, name=None)) == [
        (first_row(fmt) + 1, "key=-1 outside [0, 11] (Spotify's -1: no key detected)", MASKED),
        (first_row(fmt) + 3, "tempo=0 outside [1, 300] (Spotify's 0: no beat detected)", MASKED)]
    labels = metadata.masked_labels(df)
    assert np.isnan(labels.loc[1, "key"]) and labels.loc[1, "tempo"] == 77.489 and np.isnan(labels.loc[3, "tempo"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_spotify_1_2m_songs(tmp_path, fmt):
    df = metadata.read_metadata(write(tracks_1_2m(), tmp_path, fmt))
    assert df.attrs["layout"] == "spotify-1.2m"
    assert df.attrs["renamed"] == {"id": "track_id", "name": "track_name", "album": "album_name"}
    assert df["album_name"].tolist()[2:4] == ["Señor, Señor", "東京"] and df["album_id"].iloc[0] == "2eia0myWFgoHuttJytCxgX"
    assert df["artists"].tolist()[:4] == ["Rage Against The Machine", "Rage Against The Machine",
                                          "Zoë;Rock 'n' Roll Kids", "Beyoncé;Jay-Z"]
    assert np.isnan(df.loc[4, "artists"])  # an empty list credits nobody
    assert df["year"].tolist() == [1999, 1999, 2004, 2006, 0] and df["release_date"].iloc[4] == "0000"
    assert df["time_signature"].tolist() == [4.0, 4.0, 0.0, 3.0, 4.0]
    assert df["track_number"].tolist() == [1, 2, 3, 1, 1]
    problems = metadata.validate_labels(df)
    assert list(problems[["row", "track_id", "reason", "action"]].itertuples(index=False, name=None)) == [
        (first_row(fmt) + 2, "0tlhK4OvpHCYpReTABvKFb", "time_signature=0 outside [3, 7]", MASKED),
        (first_row(fmt) + 3, "6WnrYfVEWRJ1qhfXrsKnDJ", "tempo=0 outside [1, 300] (Spotify's 0: no beat detected)",
         MASKED)]
    usable = metadata.usable_rows(df, problems)
    assert len(usable) == 5 and usable["time_signature"].tolist()[:2] == [4.0, 4.0]
    assert metadata.label_counts(usable)[["time_signature", "tempo", "key"]].tolist() == [4, 4, 5]


def test_formats_read_the_same_frame(tmp_path):
    frames = {}
    for fmt in FORMATS:
        (tmp_path / fmt).mkdir()
        frames[fmt] = metadata.read_metadata(write(tracks_1_2m(), tmp_path / fmt, fmt)).drop(columns=["row", "explicit"])
    for fmt in FORMATS[1:]:
        pd.testing.assert_frame_equal(frames[fmt], frames["csv"])


def test_a_row_with_an_unquoted_list_keeps_its_id_and_names_its_line(tmp_path):
    path = write(tracks_600k(), tmp_path, "csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace("\"['Ignacio Corsini', 'Orquesta Típica']\"", "['Ignacio Corsini', 'Orquesta Típica']")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    df = metadata.read_metadata(path)
    assert df["track_id"].tolist()[2] == "07A5yehtSnoedViJAZkNnc" and df["row"].tolist() == [2, 3, 4, 5, 6]
    assert df["parse_error"].tolist()[2] == ("line 4 has 21 fields but the header has 20: "
                                             "quote values that contain commas or line breaks")
    assert np.isnan(df.loc[2, "tempo"]) and df.loc[3, "artists"] == "Guns N' Roses"
    problems = metadata.validate_labels(df)
    assert problems.set_index("row").loc[4, "action"] == DROPPED


def test_a_table_with_both_id_and_track_id_keeps_id_as_it_is(tmp_path):
    path = tmp_path / "both.csv"
    path.write_text("id,track_id,file," + ",".join(TARGETS) + "\n7,a,x.wav," + ",".join(["0.5"] * 11) + "\n")
    df = metadata.read_metadata(path)
    assert df.attrs["renamed"] == {"file": "path"} and df.attrs["layout"] == "custom"
    assert df["track_id"].tolist() == ["a"] and df["id"].tolist() == [7] and df["path"].tolist() == ["x.wav"]


def test_parquet_with_typed_columns(tmp_path):
    path = tmp_path / "typed.pq"
    table = pa.table({"id": pa.array([101, 102]), "artists": pa.array([["A", "B", "A"], ["Guns N' Roses"]]),
                      "name": pa.array(["x", "y"]).dictionary_encode(), "energy": pa.array([0.5, None]),
                      "key": pa.array([5, -1])})
    pq.write_table(table, path)
    df = metadata.read_metadata(path)
    assert df["track_id"].tolist() == ["101", "102"] and df["track_name"].tolist() == ["x", "y"]
    assert df["artists"].tolist() == ["A;B", "Guns N' Roses"] and df["row"].tolist() == [1, 2]
    assert metadata.absent_targets(df) == tuple(t for t in TARGETS if t not in ("energy", "key"))
    problems = metadata.validate_labels(df)
    assert problems["reason"].tolist() == ["key=-1 outside [0, 11] (Spotify's -1: no key detected)"]
    assert metadata.label_counts(df)[["energy", "key", "tempo"]].tolist() == [1, 1, 0]


def test_parquet_content_is_read_whatever_the_suffix(tmp_path):
    path = tmp_path / "export.csv"
    tracks_1_2m().to_parquet(path, index=False)
    assert metadata.read_metadata(path)["track_id"].iloc[0] == "7lmeHLHBe4nmXzuXc0HDjk"


def test_broken_parquet_names_the_file(tmp_path):
    path = tmp_path / "cut.parquet"
    tracks_1_2m().to_parquet(path, index=False)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(metadata.MetadataError, match=r"cut\.parquet: not a readable Parquet file \(.*\); write it with "
                                                    r"pandas\.DataFrame\.to_parquet or export the table as CSV UTF-8"):
        metadata.read_metadata(path)
    empty = tmp_path / "empty.parquet"
    tracks_1_2m().iloc[:0].to_parquet(empty, index=False)
    with pytest.raises(metadata.MetadataError, match=r"empty\.parquet: no data rows"):
        metadata.read_metadata(empty)


def test_parquet_header_checks(tmp_path):
    path = tmp_path / "reserved.parquet"
    tracks_1_2m().assign(row=1).to_parquet(path, index=False)
    with pytest.raises(metadata.MetadataError, match="column 'row' is reserved"):
        metadata.read_metadata(path)


# ------------------------------------------------------------------------------- artist names
@pytest.mark.parametrize("value, names", [
    ("['Artist 1']", ["Artist 1"]),
    ("['Artist 1', 'Artist 2']", ["Artist 1", "Artist 2"]),
    ("Artist 1", ["Artist 1"]),
    ("Artist 1;Artist 2", ["Artist 1", "Artist 2"]),
    (" Artist 1 ; Artist 2;", ["Artist 1", "Artist 2"]),
    ("[\"Guns N' Roses\"]", ["Guns N' Roses"]),
    ("['Guns N\\' Roses', 'Slash']", ["Guns N' Roses", "Slash"]),  # escaped
    ("['Guns N' Roses', 'Slash']", ["Guns N' Roses", "Slash"]),  # malformed: the apostrophe unescaped
    ("['Earth, Wind & Fire', 'The Emotions']", ["Earth, Wind & Fire", "The Emotions"]),
    ("['Beyonc\\xe9']", ["Beyoncé"]),
    (f"['{NFD('Sigur Rós')}']", ["Sigur Rós"]),
    (NFD("Björk;Sigur Rós"), ["Björk", "Sigur Rós"]),
    ("['東京事変', 'Москва']", ["東京事変", "Москва"]),
    ("['A', 'B', 'A']", ["A", "B"]),
    ("A;A", ["A"]),
    ("['Ignacio Corsini', 'Orquesta", ["Ignacio Corsini", "Orquesta"]),  # a cell cut short
    ("[Unknown]", ["Unknown"]),
    ("['a\\d']", ["a\\d"]),
    ("[]", []),
    ("['']", []),
    ("", []),
    ("   ", []),
    (None, []),
    (float("nan"), []),
    (["A", "B", "A"], ["A", "B"]),
    (np.array(["A", "B"], dtype=object), ["A", "B"]),
])
def test_artist_names(value, names):
    assert artist_names(value) == names
    joined = tables.join_artists(value)
    assert joined == ";".join(names) if names else np.isnan(joined)


def test_a_long_list_string_is_read_without_literal_eval():
    names = [f"Artist {k}" for k in range(2000)]
    assert artist_names(repr(names)) == names


def test_canonical_artists_is_join_artists_cell_by_cell():
    cells = ["['A', 'B']", "['A', \"B's\", 'A']", "[\"Guns N' Roses\"]", " Björk ", "A;B;A", None, "['Beyonc\\xe9']",
             "[]", "[' ']", "\u3000x\u3000", "['Zoë', 'Zoë']", "['Guns N' Roses']", "['x,y', 'z']", "plain", ""]
    got = tables.canonical_artists(pd.Series(cells, dtype="str"))
    want = [tables.join_artists(v) for v in cells]
    assert [v if isinstance(v, str) else None for v in got] == [v if isinstance(v, str) else None for v in want]
    assert got.dtype == "str"


def test_detect_layout():
    for name, columns in tables.LAYOUTS.items():
        assert tables.detect_layout(columns) == name
    assert tables.detect_layout(["track_id", *TARGETS]) == "custom"


def test_the_bench_table_read_step(tmp_path):
    """bench/run.py's measure_table_read on a small table, in its own process (the bench pins threads)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    code = ("import json, runpy, sys; from pathlib import Path; "
            "m = runpy.run_path('bench/run.py', run_name='bench'); "
            "f = m['measure_table_read'](Path(sys.argv[1]), rows=3000); "
            "print(json.dumps({'figures': f, 'report': m['table_read_report'](f)}))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=repo, capture_output=True, text=True,
                         check=True, timeout=300)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    figures, (row, section) = got["figures"], got["report"]
    assert set(figures) == {"CSV", "Parquet"}
    for fmt, f in figures.items():
        assert f["rows"] == 3000 and 0 < f["read+validate s"] < 60 and f["peak RSS MiB"] > f["RSS before MiB"] > 0
        assert f["rows dropped"] > 0 and f["rows with a label masked"] > 0 and f["usable rows"] < 3000
    assert figures["CSV"]["problems"] > figures["Parquet"]["problems"]  # the CSV's "?" cells
    assert row.startswith("| read+validate a 3,000-row table < 60 s and < 4 GB") and row.endswith("| yes |")
    assert "| read+validate s |" in "\n".join(section)
    assert not list(tmp_path.iterdir())  # the tables are removed
