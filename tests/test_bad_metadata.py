"""The metadata side of the bad-input matrix: one case per test, asserting what the user sees.

A bad row lands in the problems table (its line number and the reason) while every good row
is kept; a problem with the file as a whole raises ``MetadataError`` naming the file and what
to do. ``_ingest_metadata`` does what ``stages.ingest`` (notebook 01) does with the two.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
import soundfile as sf

from audioreg import stages
from audioreg.data import metadata
from audioreg.targets import TARGETS
from conftest import tone

DROPPED, MASKED = metadata.ROW_DROPPED, metadata.LABEL_MASKED
HEADER = ("track_id", "artists", "track_name", *TARGETS)
GOOD = {"danceability": "0.5", "energy": "0.6", "valence": "0.4", "tempo": "120", "liveness": "0.1",
        "speechiness": "0.05", "instrumentalness": "0.0", "acousticness": "0.3", "loudness": "-8.5",
        "time_signature": "4", "key": "5"}


def _line(track_id: str, **cells: str) -> str:
    values = {"track_id": track_id, "artists": "Artist", "track_name": f"Song {track_id}", **GOOD, **cells}
    return ",".join(values[c] for c in HEADER)


def _write(tmp_path, *lines: str, name: str = "metadata.csv") -> str:
    path = tmp_path / name
    path.write_text("\n".join([",".join(HEADER), *lines]) + "\n", encoding="utf-8")
    return path


def _ingest_metadata(path) -> tuple[list[str], list[tuple[int, str, str, str]]]:
    """Kept track ids, and the problems as (row, track_id, reason, action), the way ``stages.ingest`` splits them."""
    df = metadata.read_metadata(path)
    problems = metadata.validate_labels(df)
    assert list(problems.columns) == list(metadata.PROBLEM_COLUMNS)
    assert (problems["stage"] == "metadata").all()
    assert set(problems["action"]) <= {DROPPED, MASKED}
    kept = metadata.usable_rows(df, problems)
    assert len(kept) + (problems["action"] == DROPPED).sum() == len(df)  # nothing lost
    return kept["track_id"].tolist(), list(problems[["row", "track_id", "reason", "action"]].itertuples(index=False, name=None))


# ------------------------------------------------------------------ bad labels: masked and listed, the row kept
def test_empty_and_nan_labels_are_unlabelled_not_problems(tmp_path):
    path = _write(tmp_path, _line("a"), _line("b", energy=""), _line("c", valence="NaN"), _line("d"))
    kept, problems = _ingest_metadata(path)
    assert kept == ["a", "b", "c", "d"] and problems == []
    labels = metadata.usable_rows(metadata.read_metadata(path)).set_index("track_id")
    assert np.isnan(labels.loc["b", "energy"]) and labels.loc["b", "valence"] == 0.4
    assert np.isnan(labels.loc["c", "valence"]) and labels.loc["c", "energy"] == 0.6


def test_label_that_is_not_a_number_is_masked(tmp_path):
    path = _write(tmp_path, _line("a", tempo="fast"), _line("b"))
    kept, problems = _ingest_metadata(path)
    assert kept == ["a", "b"]
    assert problems == [(2, "a", "tempo is not a number ('fast')", MASKED)]
    labels = metadata.usable_rows(metadata.read_metadata(path)).set_index("track_id")
    assert np.isnan(labels.loc["a", "tempo"]) and labels.loc["a", "energy"] == 0.6 and labels.loc["b", "tempo"] == 120


def test_key_minus_one_is_masked_with_spotifys_meaning(tmp_path):
    kept, problems = _ingest_metadata(_write(tmp_path, _line("a", key="-1"), _line("b")))
    assert kept == ["a", "b"]
    assert problems == [(2, "a", "key=-1 outside [0, 11] (Spotify's -1: no key detected)", MASKED)]


def test_tempo_zero_is_masked_with_spotifys_meaning(tmp_path):
    kept, problems = _ingest_metadata(_write(tmp_path, _line("a"), _line("b", tempo="0")))
    assert kept == ["a", "b"]
    assert problems == [(3, "b", "tempo=0 outside [1, 300] (Spotify's 0: no beat detected)", MASKED)]


def test_loudness_above_zero_db_is_masked(tmp_path):
    kept, problems = _ingest_metadata(_write(tmp_path, _line("a", loudness="2.5"), _line("b")))
    assert kept == ["a", "b"]
    assert problems == [(2, "a", "loudness=2.5 outside [-60, 0]", MASKED)]


def test_value_just_outside_the_range_is_shown_as_written(tmp_path):
    # ":g" formatting used to print 1.0000001 as "1", which reads as inside [0, 1]
    kept, problems = _ingest_metadata(_write(tmp_path, _line("a", danceability="1.0000001"), _line("b")))
    assert problems == [(2, "a", "danceability=1.0000001 outside [0, 1]", MASKED)]


def test_infinite_label_is_masked(tmp_path):
    kept, problems = _ingest_metadata(_write(tmp_path, _line("a", tempo="inf"), _line("b", loudness="-inf")))
    assert kept == ["a", "b"]
    assert problems == [(2, "a", "tempo=inf outside [1, 300]", MASKED), (3, "b", "loudness=-inf outside [-60, 0]", MASKED)]


def test_fractional_key_and_meter_are_masked(tmp_path):
    # in range, but key and time_signature are whole numbers (the metrics would reject them later)
    path = _write(tmp_path, _line("a", key="5.5"), _line("b", time_signature="4.0"), _line("c", time_signature="3.5"))
    kept, problems = _ingest_metadata(path)
    assert kept == ["a", "b", "c"]
    assert problems == [(2, "a", "key=5.5 is not a whole number", MASKED),
                        (4, "c", "time_signature=3.5 is not a whole number", MASKED)]
    labels = metadata.usable_rows(metadata.read_metadata(path)).set_index("track_id")
    assert labels.loc["b", "time_signature"] == 4 and np.isnan(labels.loc["c", "time_signature"])


def test_several_reasons_in_one_row_are_all_given_and_only_those_labels_masked(tmp_path):
    path = _write(tmp_path, _line("a", energy="", tempo="0", key="12"), _line("b"))
    kept, problems = _ingest_metadata(path)
    assert kept == ["a", "b"]
    assert problems == [(2, "a", "tempo=0 outside [1, 300] (Spotify's 0: no beat detected); key=12 outside [0, 11]",
                         MASKED)]
    row = metadata.usable_rows(metadata.read_metadata(path)).iloc[0]
    assert [t for t in TARGETS if np.isnan(row[t])] == ["energy", "tempo", "key"]


def test_label_counts_count_usable_labels_per_target(tmp_path):
    path = _write(tmp_path, _line("a"), _line("b", energy=""), _line("c", tempo="0", key="x"), _line("a"))
    df = metadata.read_metadata(path)
    counts = metadata.label_counts(metadata.usable_rows(df))
    assert list(counts.index) == list(TARGETS)
    assert counts["energy"] == 2 and counts["tempo"] == 2 and counts["key"] == 2 and counts["valence"] == 3
    assert metadata.label_counts(df)["valence"] == 4  # the repeat of "a" counts until usable_rows drops it


# ------------------------------------------------------------------ bad rows: dropped and listed, the rest kept
def test_missing_track_id_is_listed(tmp_path):
    kept, problems = _ingest_metadata(_write(tmp_path, _line(""), _line("   "), _line("b")))
    assert kept == ["b"]
    assert [(row, reason, action) for row, _, reason, action in problems] == [(2, "missing track_id", DROPPED),
                                                                              (3, "missing track_id", DROPPED)]


def test_duplicated_track_id_with_the_same_labels_keeps_the_first(tmp_path):
    # the Spotify tracks dataset lists a track once per genre: keep it once, list the repeats
    kept, problems = _ingest_metadata(_write(tmp_path, _line("a"), _line("b"), _line("a"), _line("a")))
    assert kept == ["a", "b"]
    assert problems == [(4, "a", "duplicate of row 2 (same track_id and labels)", DROPPED),
                        (5, "a", "duplicate of row 2 (same track_id and labels)", DROPPED)]


def test_duplicates_compare_the_masked_labels(tmp_path):
    # tempo 0 and an empty tempo are both "no tempo": the same labels once masked
    kept, problems = _ingest_metadata(_write(tmp_path, _line("a", tempo="0"), _line("a", tempo="")))
    assert kept == ["a"]
    assert problems == [(2, "a", "tempo=0 outside [1, 300] (Spotify's 0: no beat detected)", MASKED),
                        (3, "a", "duplicate of row 2 (same track_id and labels)", DROPPED)]


def test_duplicated_track_id_with_different_labels_lists_every_row(tmp_path):
    kept, problems = _ingest_metadata(_write(tmp_path, _line("a"), _line("b"), _line("a", energy="0.9"),
                                             _line("a", energy="0.1", key="-1")))
    assert kept == ["b"]
    assert problems == [(2, "a", "track_id also at rows 4, 5 with different labels", DROPPED),
                        (4, "a", "track_id also at rows 2, 5 with different labels", DROPPED),
                        (5, "a", "track_id also at rows 2, 4 with different labels; key=-1 outside [0, 11] "
                                 "(Spotify's -1: no key detected)", DROPPED)]


def test_many_rows_with_one_id_are_listed_in_short(tmp_path):
    kept, problems = _ingest_metadata(_write(tmp_path, *[_line("a", energy=f"0.{k}") for k in range(1, 8)]))
    assert kept == []
    assert problems[0] == (2, "a", "track_id also at rows 3, 4, 5, 6, 7 and 1 more with different labels", DROPPED)


def test_track_ids_equal_up_to_nfc_and_spaces_are_duplicates(tmp_path):
    nfd, nfc = unicodedata.normalize("NFD", "tëst"), unicodedata.normalize("NFC", "tëst")
    kept, problems = _ingest_metadata(_write(tmp_path, _line(nfd), _line(f" {nfc} ")))
    assert kept == [nfc]
    assert problems == [(3, nfc, "duplicate of row 2 (same track_id and labels)", DROPPED)]


def test_text_that_pandas_would_read_as_missing_stays_text(tmp_path):
    path = _write(tmp_path, _line("NA", artists="None", track_name="N/A"), _line("null"))
    df = metadata.read_metadata(path)
    assert df["track_id"].tolist() == ["NA", "null"]
    assert df.loc[0, "artists"] == "None" and df.loc[0, "track_name"] == "N/A"
    assert len(metadata.validate_labels(df)) == 0


def test_row_with_an_unquoted_comma_is_listed_and_the_others_kept(tmp_path):
    kept, problems = _ingest_metadata(_write(tmp_path, _line("a"), _line("b", artists="Earth, Wind & Fire"),
                                             _line("c")))
    assert kept == ["a", "c"]
    assert problems == [(3, "b", "line 3 has 15 fields but the header has 14: "
                                 "quote values that contain commas or line breaks", DROPPED)]


def test_row_split_by_an_unquoted_line_break_is_listed(tmp_path):
    broken = _line("b", track_name="Hello\nWorld")
    kept, problems = _ingest_metadata(_write(tmp_path, _line("a"), broken, _line("c")))
    assert kept == ["a", "c"]
    assert problems == [(3, "b", "line 3 has 3 fields but the header has 14: quote values that contain commas or "
                                 "line breaks", DROPPED),
                        (4, "World", "line 4 has 12 fields but the header has 14: quote values that contain commas "
                                     "or line breaks", DROPPED)]


def test_rows_are_named_by_their_line_across_blank_lines_and_quoted_line_breaks(tmp_path):
    path = _write(tmp_path, _line("a"), "", _line("b", track_name='"two\nlines"'), "", "", _line("c", key="-1"))
    df = metadata.read_metadata(path)
    assert df["row"].tolist() == [2, 4, 8]
    assert df.loc[1, "track_name"] == "two\nlines"
    kept, problems = _ingest_metadata(path)
    assert problems == [(8, "c", "key=-1 outside [0, 11] (Spotify's -1: no key detected)", MASKED)]


# ------------------------------------------------------------------ bad files: one clear error
def _raises(path) -> str:
    with pytest.raises(metadata.MetadataError) as info:
        metadata.read_metadata(path)
    return str(info.value)


def test_latin1_file_names_the_byte_line_and_the_fix(tmp_path):
    path = tmp_path / "latin.csv"
    head = ",".join(HEADER) + "\n"
    path.write_bytes((head + _line("a", artists="Motörhead") + "\n").encode("latin-1"))
    offset = len(head) + len("a,Mot")
    assert _raises(path) == f"{path}: not UTF-8 (byte 0xf6 on line 2, offset {offset}); re-save the file as UTF-8"


def test_latin1_byte_after_a_bom_counts_the_bom(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (",".join(HEADER) + "\n" + _line("\xe9")).encode("latin-1"))
    offset = 3 + len(",".join(HEADER)) + 1
    assert _raises(path) == f"{path}: not UTF-8 (byte 0xe9 on line 2, offset {offset}); re-save the file as UTF-8"


def test_utf8_with_bom_is_read(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (",".join(HEADER) + "\n" + _line("a")).encode("utf-8"))
    assert metadata.read_metadata(path)["track_id"].tolist() == ["a"]


def test_utf16_file(tmp_path):
    path = tmp_path / "u16.csv"
    path.write_text(",".join(HEADER) + "\n" + _line("a") + "\n", encoding="utf-16")
    assert _raises(path) == f"{path}: UTF-16 text, not UTF-8; re-save the file as UTF-8 (a spreadsheet's 'CSV UTF-8')"


def test_binary_file_is_not_a_csv(tmp_path):
    path = tmp_path / "metadata.xlsx"
    path.write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + bytes(range(256)))
    assert _raises(path) == (f"{path}: contains NUL bytes, so it is not a text CSV (a spreadsheet or UTF-16 file?); "
                             "export it as CSV UTF-8")


def test_missing_track_id_column(tmp_path):
    path = tmp_path / "noid.csv"
    path.write_text("artists," + ",".join(TARGETS) + "\nx," + ",".join(GOOD[t] for t in TARGETS) + "\n")
    header = ", ".join(repr(c) for c in ("artists", *TARGETS))
    assert _raises(path) == (f"{path}: missing column 'track_id' (the header has {header}); "
                             "the metadata needs a track_id column (or id, as the public Spotify tables name it)")


def test_no_target_column_at_all(tmp_path):
    path = tmp_path / "playlist.csv"
    path.write_text("track_id,artists\na,X\n")
    assert _raises(path) == (f"{path}: none of the 11 targets is a column (the header has 'track_id', 'artists'); "
                             "name the label columns as audioreg.targets.TARGETS does: " + ", ".join(TARGETS))


def test_missing_target_columns_are_absent_labels_not_an_error(tmp_path):
    path = tmp_path / "few.csv"
    names = [c for c in HEADER if c not in ("tempo", "key")]
    path.write_text(",".join(names) + "\n" + ",".join(GOOD.get(n, "a") for n in names) + "\n")
    df = metadata.read_metadata(path)
    assert metadata.absent_targets(df) == ("tempo", "key") == df.attrs["absent_targets"]
    assert df["tempo"].isna().all() and df["key"].isna().all() and df["tempo"].dtype == np.float64
    assert len(metadata.validate_labels(df)) == 0
    counts = metadata.label_counts(metadata.usable_rows(df))
    assert counts["tempo"] == counts["key"] == 0 and counts["energy"] == 1


def test_column_repeated_in_the_header(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text(",".join(HEADER) + ",tempo\n" + _line("a") + ",99\n")
    assert _raises(path) == f"{path}: column 'tempo' appears more than once in the header; keep one of each"


def test_reserved_row_column(tmp_path):
    path = tmp_path / "row.csv"
    path.write_text("row," + ",".join(HEADER) + "\n1," + _line("a") + "\n")
    assert _raises(path) == f"{path}: column 'row' is reserved (audioreg adds it to the rows); rename it"


def test_semicolon_separated_file_is_read(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text(";".join(HEADER) + "\n" + _line("a", loudness="-8,5").replace(",", ";").replace("-8;5", "-8.5")
                    + "\n" + _line("b", artists='"A; B"').replace(",", ";") + "\n")
    df = metadata.read_metadata(path)
    assert df["track_id"].tolist() == ["a", "b"] and df["loudness"].tolist() == [-8.5, -8.5]
    assert df["artists"].tolist() == ["Artist", "A;B"]


def test_semicolon_file_with_decimal_commas_is_read(tmp_path):
    # a spreadsheet in a language that writes 0,5 saves semicolon-separated CSV
    path = tmp_path / "excel.csv"
    cells = {t: GOOD[t].replace(".", ",") for t in TARGETS}
    path.write_bytes(b"\xef\xbb\xbf" + (";".join(HEADER) + "\r\n" + ";".join({"track_id": "a", "artists": "X",
                     "track_name": "Y", **cells}[c] for c in HEADER) + "\r\n").encode("utf-8"))
    df = metadata.read_metadata(path)
    assert df.loc[0, "loudness"] == -8.5 and df.loc[0, "energy"] == 0.6 and df.loc[0, "key"] == 5
    assert len(metadata.validate_labels(df)) == 0
    path.write_text(path.read_text(encoding="utf-8-sig").replace("-8,5", "-8,5,1"), encoding="utf-8")
    df = metadata.read_metadata(path)  # "-8,5,1" is no number: that label is masked, the others read
    assert df.loc[0, "energy"] == 0.6
    assert metadata.validate_labels(df)["reason"].tolist() == ["loudness is not a number ('-8,5,1')"]
    row = {"track_id": "b", "artists": "X", "track_name": "Y", **cells, "instrumentalness": "1,01E-06"}
    path.write_text(path.read_text(encoding="utf-8") + ";".join(row[c] for c in HEADER) + "\r\n", encoding="utf-8")
    df = metadata.read_metadata(path)  # the column with a word reads its other cells with decimal commas
    assert df["instrumentalness"].tolist() == [0.0, 1.01e-06]
    assert metadata.masked_labels(df)["loudness"].tolist()[1] == -8.5


def test_semicolon_file_names_semicolons_in_its_parse_errors(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text(";".join(HEADER) + "\n" + _line("a").replace(",", ";") + "\n" + _line("b").replace(",", ";")
                    + ";extra\n")
    kept, problems = _ingest_metadata(path)
    assert kept == ["a"]
    assert problems == [(3, "b", "line 3 has 15 fields but the header has 14: quote values that contain semicolons "
                                 "or line breaks", DROPPED)]


def test_tab_separated_file_is_read(tmp_path):
    path = tmp_path / "export.tsv"
    path.write_text("\t".join(HEADER) + "\n" + _line("a", track_name="Hello, World").replace(",", "\t")
                    .replace("Hello\t World", "Hello, World") + "\n")
    df = metadata.read_metadata(path)
    assert df["track_id"].tolist() == ["a"] and df.loc[0, "track_name"] == "Hello, World"


def test_broken_quoting_names_the_line(tmp_path):
    path = _write(tmp_path, _line("a"), _line("b", track_name='"12" Single"'), _line("c"), name="quotes.csv")
    assert _raises(path) == (f"{path}: not a readable CSV: broken quoting in the record starting on line 3 "
                             "(',' expected after '\"'); put values that contain commas, quotes or line breaks "
                             'in double quotes and double the quotes inside ("")')


def test_unterminated_quote_names_the_line_it_starts_on(tmp_path):
    path = _write(tmp_path, _line("a"), _line("b", track_name='"never closed'), _line("c"), name="open.csv")
    assert _raises(path) == (f"{path}: not a readable CSV: broken quoting in the record starting on line 3 "
                             "(unexpected end of data); put values that contain commas, quotes or line breaks "
                             'in double quotes and double the quotes inside ("")')


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert _raises(path) == f"{path}: empty file"
    path.write_text("\n \n")
    assert _raises(path) == f"{path}: empty file"


def test_header_without_rows(tmp_path):
    path = _write(tmp_path)
    assert _raises(path) == f"{path}: no data rows below the header"


def test_file_not_found(tmp_path):
    path = tmp_path / "nope.csv"
    assert _raises(path) == f"{path}: metadata file not found"


# ------------------------------------------------------------------ through stages.ingest (notebook 01)
@pytest.fixture
def tiny_set(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for k, tid in enumerate("abcde"):  # distinct audio: identical files would be one recording
        sf.write(str(audio / f"{tid}.wav"), tone(220.0 * (k + 1), seconds=0.3), 22050)
    params = {"root": str(tmp_path), "metadata_path": "meta.csv", "audio_dir": "audio", "generate_sample": False,
              "progress": False, "seed": 0}
    return tmp_path, params


def test_ingest_lists_bad_rows_and_keeps_every_good_one(tiny_set):
    root, params = tiny_set
    _write(root, _line("a"), _line("b", energy=""), _line("c", key="-1"), _line("d"), _line("a"), _line("e"),
           name="meta.csv")
    ing = stages.ingest(params)
    kept = ing.manifest.set_index("track_id")
    # c's key is masked: kept with key NaN once stages.ingest keeps metadata.usable_rows, else left out
    assert kept.index.is_unique and {"a", "b", "d", "e"} <= set(kept.index) <= {"a", "b", "c", "d", "e"}
    got = list(ing.problems[["row", "track_id", "stage", "reason", "action"]].itertuples(index=False, name=None))
    assert got == [(4, "c", "metadata", "key=-1 outside [0, 11] (Spotify's -1: no key detected)", MASKED),
                   (6, "a", "metadata", "duplicate of row 2 (same track_id and labels)", DROPPED)]
    assert np.isclose(kept.loc["d", "energy"], 0.6)
    assert np.isnan(kept.loc["b", "energy"]) and np.isclose(kept.loc["b", "valence"], 0.4)  # unlabelled, not dropped
    assert "c" not in kept.index or np.isnan(kept.loc["c", "key"])


def test_ingest_stops_on_a_file_it_cannot_read(tiny_set):
    root, params = tiny_set
    path = root / "meta.csv"
    raw = (",".join(HEADER) + "\n" + _line("a", artists="Björk") + "\n").encode("latin-1")
    path.write_bytes(raw)
    with pytest.raises(metadata.MetadataError) as info:
        stages.ingest(params)
    offset = len(",".join(HEADER)) + 1 + len("a,Bj")
    assert str(info.value) == f"{path}: not UTF-8 (byte 0xf6 on line 2, offset {offset}); re-save the file as UTF-8"
    assert path.read_bytes() == raw  # raw data is never edited
