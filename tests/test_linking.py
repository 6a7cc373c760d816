"""Linking metadata rows to audio files (audioreg.data.linking): the three rules and their order,
the names tried, ambiguous and contested matches, the files no row matched, and scale."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from audioreg.data import linking

REPO = Path(__file__).resolve().parents[1]
PROPS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def touch(root: Path, *names: str) -> list[Path]:
    """Empty files: the linker matches names and never opens a file."""
    out = []
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
        out.append(p)
    return out


def table(*rows: dict) -> pd.DataFrame:
    cols = {"track_id": None, "artists": None, "track_name": None}
    return pd.DataFrame([cols | r for r in rows])


def link(df, audio, **kw) -> pd.DataFrame:
    return linking.link_audio(df, audio_dir=audio, **kw)


# ------------------------------------------------------------------------------- the rules
def test_rules_in_order_path_then_track_id_then_artist_title(tmp_path):
    audio = tmp_path / "audio"
    touch(audio, "given.wav", "t1.flac", "Artist - Song.ogg", "t2.mp3", "Other - Tune.mp3")
    df = table({"track_id": "t1", "artists": "Artist", "track_name": "Song", "path": "given.wav"},
               {"track_id": "t2", "artists": "Other", "track_name": "Tune"},
               {"track_id": "t3", "artists": "Artist", "track_name": "Song"})
    links = link(df, audio)
    assert list(links["link"]) == ["path column", "track_id file name", "artist - title"]
    assert [Path(p).name for p in links["path"]] == ["given.wav", "t2.mp3", "Artist - Song.ogg"]
    assert links["reason"].isna().all() and links["note"].isna().all()
    assert list(links.columns) == ["path", "link", "reason", "note", "candidates"]


def test_path_column_relative_to_metadata_then_audio_folder_absolute_and_file_column(tmp_path):
    audio = tmp_path / "audio"
    files = touch(tmp_path, "meta/clips/a.wav", "audio/sub/b.wav", "elsewhere/c.WAV", "meta/d.ogg", "audio/sub/e.wav",
                  "audio/clips/a.wav")
    df = pd.DataFrame({"track_id": ["1", "2", "3", "4", "5"],
                       "path": ["clips/a.wav", "sub/b.wav", str(files[2]), None, "sub\\e.wav"],
                       "file": [None, None, None, "d.ogg", None]})
    links = link(df, audio, metadata_dir=tmp_path / "meta")
    assert links["link"].eq("path column").all(), list(links["reason"])
    assert [Path(p).resolve() for p in links["path"]] == files[:5]  # the metadata folder's clips/a.wav first


def test_path_column_naming_a_missing_file_is_said_and_the_next_rules_tried(tmp_path):
    audio = tmp_path / "audio"
    touch(audio, "id1.mp3")
    df = table({"track_id": "id1", "path": "gone/x.mp3"}, {"track_id": "id2", "path": "gone/y.mp3"})
    links = link(df, audio, metadata_dir=tmp_path)
    assert links["link"][0] == "track_id file name"
    assert links["note"][0] == (f"path 'gone/x.mp3' names no file (under {tmp_path} or {audio}); "
                                "linked by track_id file name")
    assert pd.isna(links["path"][1])
    assert links["reason"][1].startswith(f"path 'gone/y.mp3' names no file (under {tmp_path} or {audio}); "
                                         "no audio file for track_id 'id2': tried 'id2.<ext>'")


def test_path_column_nfc_in_the_table_nfd_on_disk(tmp_path):
    audio = tmp_path / "audio"
    (p,) = touch(audio, unicodedata.normalize("NFD", "Björk/Jóga.flac"))
    links = link(table({"track_id": "x", "path": unicodedata.normalize("NFC", "Björk/Jóga.flac")}), audio)
    assert links["link"][0] == "path column" and Path(links["path"][0]).resolve() == p.resolve()


def test_track_id_file_anywhere_below_nfd_on_disk_and_upper_case_extension(tmp_path):
    audio = tmp_path / "audio"
    nfd = unicodedata.normalize("NFD", "café-01")
    touch(audio, f"a/b/c/{nfd}.MP3", "x/2Kq9ZzA.FLAC", "._2Kq9ZzA.mp3", "2kq9zza.notes")
    df = table({"track_id": unicodedata.normalize("NFC", "café-01")}, {"track_id": "2Kq9ZzA"}, {"track_id": "2kq9zza"})
    links = link(df, audio)
    assert links["path"][0].endswith(f"a/b/c/{nfd}.MP3") and links["path"][1].endswith("x/2Kq9ZzA.FLAC")
    assert pd.isna(links["path"][2])  # track ids are case-sensitive; .notes is no audio


# ------------------------------------------------------------------------ artist - title
def test_every_credited_artist_counts(tmp_path):
    audio = tmp_path / "audio"
    touch(audio, "deep/er/B - Second Song.mp3", "C - Third.mp3")
    df = table({"track_id": "1", "artists": "A;B", "track_name": "Second Song"},
               {"track_id": "2", "artists": "A feat. C", "track_name": "Third"})
    links = link(df, audio)
    assert links["link"].eq("artist - title").all()
    assert [Path(p).name for p in links["path"]] == ["B - Second Song.mp3", "C - Third.mp3"]


@pytest.mark.parametrize("stem", ["A & B - Song", "A, B - Song", "A feat. B - Song", "A ft. B - Song",
                                  "A featuring B - Song", "A x B - Song", "A and B - Song", "A; B - Song",
                                  "A - Song (feat. B)", "A - Song [ft. B]", "B - Song"])
def test_credits_joined_as_file_names_write_them(tmp_path, stem):
    touch(tmp_path, f"{stem}.mp3")
    links = link(table({"track_id": "1", "artists": "A;B", "track_name": "Song"}), tmp_path)
    assert links["link"][0] == "artist - title", links["reason"][0]


@pytest.mark.parametrize("title, stem", [("Song (feat. B)", "A - Song"), ("Song (feat. B)", "A feat. B - Song"),
                                         ("Song (feat. B)", "A - Song (feat. B)"), ("Song (with B)", "A - Song"),
                                         ("Song - feat. B", "A - Song"), ("Song ft. B", "A ft. B - Song")])
def test_a_titles_feat_part(tmp_path, title, stem):
    touch(tmp_path, f"{stem}.flac")
    links = link(table({"track_id": "1", "artists": "A", "track_name": title}), tmp_path)
    assert links["link"][0] == "artist - title", links["reason"][0]


def test_accents_case_punctuation_unicode_forms_and_nested_folders(tmp_path):
    touch(tmp_path, "b/beyonce - CRAZY_IN_LOVE.MP3", unicodedata.normalize("NFD", "s/Sigur Rós — Hoppípolla.ogg"),
          "AC-DC - Back in Black!.Flac", "guns n roses/Guns N' Roses - Sweet Child O' Mine.m4a")
    df = table({"track_id": "1", "artists": "Beyoncé", "track_name": "Crazy in Love"},
               {"track_id": "2", "artists": "sigur ros", "track_name": "HOPPIPOLLA"},
               {"track_id": "3", "artists": "AC/DC", "track_name": "Back In Black"},
               {"track_id": "4", "artists": "Guns N’ Roses", "track_name": "Sweet Child o’ Mine"})
    links = link(df, tmp_path)
    assert links["link"].eq("artist - title").all(), list(links["reason"])


def test_list_string_and_list_artists(tmp_path):
    touch(tmp_path, "B - Song.mp3", "D - Tune.mp3")
    df = table({"track_id": "1", "artists": "['A', 'B']", "track_name": "Song"},
               {"track_id": "2", "artists": ["C", "D"], "track_name": "Tune"})
    assert link(df, tmp_path)["link"].eq("artist - title").all()


# ------------------------------------------------------------------- what is not linked
def test_ambiguous_lists_the_candidates_and_stops(tmp_path):
    touch(tmp_path, "x1.mp3", "sub/x1.flac", "A - Song.mp3")
    many = [f"d{k}/Z - Tune.mp3" for k in range(7)]
    touch(tmp_path, *many)
    df = table({"track_id": "x1", "artists": "A", "track_name": "Song"},
               {"track_id": "x2", "artists": "Z", "track_name": "Tune"})
    res = linking.link_table(df, audio_dir=tmp_path)
    links = res.links
    assert links["path"].isna().all()  # not passed on to artist - title, which would find one file
    assert links["reason"][0] == ("2 files match 'x1.<ext>', so none is linked (name one in a path column): "
                                  "x1.mp3, sub/x1.flac")
    assert links["candidates"][0] == (str(tmp_path / "x1.mp3"), str(tmp_path / "sub/x1.flac"))
    assert links["reason"][1].startswith("7 files match artist - title 'z - tune', so none is linked")
    assert links["reason"][1].endswith("d0/Z - Tune.mp3, d1/Z - Tune.mp3, d2/Z - Tune.mp3, d3/Z - Tune.mp3, "
                                       "d4/Z - Tune.mp3 and 2 more")
    assert len(links["candidates"][1]) == 7
    status = res.files.set_index("path")["status"]
    assert status[str(tmp_path / "x1.mp3")] == "ambiguous" and status[str(tmp_path / "A - Song.mp3")] == "unmatched"


def test_missing_says_which_names_were_tried(tmp_path):
    touch(tmp_path, "Someone - Song.mp3")
    df = table({"track_id": "id1", "artists": "A;B", "track_name": "Song"},
               {"track_id": "id2", "artists": "A", "track_name": "Nothing Like It (feat. C)"},
               {"track_id": "id3"}, {"artists": "A", "track_name": "Song (Live)"}, {})
    reasons = link(df, tmp_path)["reason"]
    assert reasons[0] == ("no audio file for track_id 'id1': tried 'id1.<ext>', artist - title 'a - song', "
                          "'b - song', 'a b - song', 'a feat b - song', 'a ft b - song' and 9 more")
    assert reasons[1] == ("no audio file for track_id 'id2': tried 'id2.<ext>', "
                          "'<artist> - nothing like it' (no file name has this title)")
    assert reasons[2] == "no audio file for track_id 'id3': tried 'id3.<ext>'"
    assert reasons[3] == "no audio file for this row: tried '<artist> - song live' (no file name has this title)"
    assert reasons[4] == "no audio file for this row: it has no path, track_id, or artists and track_name, to link by"


def test_a_file_two_tracks_match_is_linked_to_neither(tmp_path):
    touch(tmp_path, "A - Song.mp3")
    df = table({"track_id": "single", "artists": "A", "track_name": "Song"},
               {"track_id": "album", "artists": "A;B", "track_name": "Song"})
    res = linking.link_table(df, audio_dir=tmp_path)
    assert res.links["path"].isna().all()
    assert res.links["reason"][0] == ("A - Song.mp3 matched by artist - title, but also by row 1 (track_id 'album', "
                                      "artist - title) of another track, so it is linked to none of them")
    assert "also by row 0 (track_id 'single', artist - title)" in res.links["reason"][1]
    assert res.links["candidates"][0] == (str(tmp_path / "A - Song.mp3"),)
    assert res.files["status"].tolist() == ["contested"] and res.files["rows"][0] == (0, 1)


def test_a_stronger_rule_keeps_the_file(tmp_path):
    touch(tmp_path, "A - Song.mp3", "t9.mp3")
    df = table({"track_id": "t1", "artists": "A", "track_name": "Song"},
               {"track_id": "t2", "path": "A - Song.mp3"},
               {"track_id": "t9"}, {"track_id": "t3", "path": "t9.mp3"})
    df.insert(0, "row", [2, 3, 4, 5])  # as metadata.read_metadata numbers rows: their line
    links = link(df, tmp_path)
    assert list(links["link"]) == [None, "path column", None, "path column"]
    assert links["reason"][0] == ("A - Song.mp3 matched by artist - title, but it is linked to row 3 (track_id 't2') "
                                  "by path column, a stronger rule")
    assert links["reason"][2] == ("t9.mp3 matched by track_id file name, but it is linked to row 5 (track_id 't3') "
                                  "by path column, a stronger rule")


def test_rows_of_one_track_share_its_file(tmp_path):
    touch(tmp_path, "dup.mp3")
    df = table({"track_id": "dup", "track_name": "x"}, {"track_id": "dup", "track_name": "x"})
    links = link(df, tmp_path)
    assert links["path"].notna().all()
    assert links["note"][0] == "dup.mp3 also linked to row 1 (track_id 'dup'), the same track"


def test_files_no_row_matched_are_listed(tmp_path):
    touch(tmp_path, "t1.wav", "a/Nobody - Nothing.ogg", "b/t2.MP3", "._t3.mp3", "readme.txt")
    res = linking.link_table(table({"track_id": "t1"}, {"track_id": "t4"}), audio_dir=tmp_path)
    assert res.unmatched["path"].tolist() == [str(tmp_path / "a/Nobody - Nothing.ogg"), str(tmp_path / "b/t2.MP3")]
    assert res.unmatched["stem"].tolist() == ["Nobody - Nothing", "t2"]
    assert res.files.set_index("stem").loc["t1", "status"] == "linked"
    assert set(res.files["status"]) <= set(linking.FILE_STATUSES)


def test_link_audio_keeps_the_tables_index_and_takes_an_index_of_the_folder(tmp_path):
    touch(tmp_path, "k.wav")
    df = table({"track_id": "k"}, {"track_id": "z"}).set_axis(["r7", "r9"])
    files = linking.index_audio_dir(tmp_path)
    links = link(df, tmp_path, files=files)
    assert list(links.index) == ["r7", "r9"] and links["path"]["r7"] == str(tmp_path / "k.wav")
    assert links["reason"]["r9"] == "no audio file for track_id 'z': tried 'z.<ext>'"


def test_no_files_and_an_empty_table(tmp_path):
    links = link(table({"track_id": "a", "artists": "A", "track_name": "S"}), tmp_path / "absent")
    assert links["reason"][0] == "no audio file for track_id 'a': tried 'a.<ext>', '<artist> - s' (no file name has this title)"
    empty = linking.link_table(table().iloc[:0], audio_dir=tmp_path)
    assert empty.links.empty and empty.files.empty


# ----------------------------------------------------------------------------- the keys
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=24)
_NAME = st.text(st.characters(categories=["L", "M", "N", "Zs", "P"], exclude_characters=";[]()"), min_size=1, max_size=16)


@PROPS
@given(_TEXT)
def test_fold_key_is_the_stem_key_of_fold_name(text):
    assert linking.fold_key(text) == linking.stem_key(linking.fold_name(text))


@PROPS
@given(st.lists(_NAME, min_size=1, max_size=3), _NAME, st.sampled_from(["", " (feat. X)", " (with Y)", " - feat. Z"]),
       st.data())
def test_the_title_index_never_hides_a_match(artists, title, credit, data):
    """Every key a row is looked up by holds its bare title where the index looks: a row the
    index leaves out has no file under any of its keys."""
    keys = linking.artist_title_keys(";".join(artists), title + credit)
    assume(keys)
    bare = linking.title_keys(title + credit)[1]
    art, ttl = data.draw(st.sampled_from(keys))
    assert bare in linking._title_index([f"{art} {ttl}"])


def test_title_keys_split_the_credit():
    assert linking.title_keys("Señorita (feat. Camila Cabello)") == ("senorita feat camila cabello", "senorita",
                                                                     "feat camila cabello")
    assert linking.title_keys("Feats of Strength") == ("feats of strength",) * 2 + ("",)
    assert linking.title_keys("Dancing with a Stranger") == ("dancing with a stranger",) * 2 + ("",)
    assert linking.title_keys(None) == ("", "", "")


def test_keys_of_folder_names_beside_the_old_ones(tmp_path):
    touch(tmp_path, unicodedata.normalize("NFD", "x/Beyoncé - Halo.MP3"))
    files = linking.index_audio_dir(tmp_path)
    assert files.to_dict("records") == [{"path": str(tmp_path / unicodedata.normalize("NFD", "x/Beyoncé - Halo.MP3")),
                                         "stem": "Beyoncé - Halo", "key": "beyoncé halo", "fold": "beyonce halo"}]


# ------------------------------------------------------------------------------ scale
def test_rows_whose_title_no_file_holds_build_no_keys(tmp_path, monkeypatch):
    """A million-row table against a few hundred files: the pairs are built only for the rows
    whose bare title a file name holds, not for every row."""
    touch(tmp_path, "A - Song.mp3", "t5.mp3")
    calls = []
    real = linking.artist_title_keys
    monkeypatch.setattr(linking, "artist_title_keys", lambda a, t: calls.append((a, t)) or real(a, t))
    n = 20_000
    df = pd.DataFrame({"track_id": [f"t{i}" for i in range(n)], "artists": ["A", "B"] * (n // 2),
                       "track_name": [f"Title {i % 997}" for i in range(n - 2)] + ["Song", "Song"]})
    links = link(df, tmp_path)
    assert links["path"].notna().sum() == 2 and links["link"][5] == "track_id file name"
    assert calls == [("A", "Song"), ("B", "Song")]


def test_the_bench_linking_step(tmp_path):
    """bench/run.py's measure_linking on small sizes, in its own process (the bench pins threads)."""
    code = ("import json, runpy, sys; from pathlib import Path; "
            "m = runpy.run_path('bench/run.py', run_name='bench'); "
            "print(json.dumps(m['measure_linking'](Path(sys.argv[1]), n_files=600, big_rows=20000, big_files=60)))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                         check=True, timeout=300)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    for case in ("many files", "big table"):
        f = figures[case]
        assert f["linked"] + f["ambiguous or contested"] >= f["rows with a file"] - 2, f
        assert f["linked"] == f["by path"] + f["by track_id"] + f["by artist - title"] and f["by path"] > 0
        assert f["unmatched files"] >= f["files"] - f["rows with a file"] - 2 and np.isfinite(f["total s"])
    assert figures["big table"]["rows"] == 20000 and figures["many files"]["files"] >= 600
