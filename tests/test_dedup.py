"""Repeats removed before the split: the same audio content, the same song under another id."""

import pandas as pd

from audioreg.data import dedup


def _manifest():
    return pd.DataFrame([
        {"row": 2, "track_id": "a", "path": "/m/a.mp3", "sha256": "h1", "artists": "Beyoncé", "track_name": "Halo"},
        {"row": 3, "track_id": "b", "path": "/m/b.mp3", "sha256": "h1", "artists": "Other", "track_name": "Else"},
        {"row": 4, "track_id": "c", "path": "/m/c.mp3", "sha256": "h3",
         "artists": "Beyonce;Jay-Z", "track_name": "HALO (feat. Jay-Z)"},
        {"row": 5, "track_id": "d", "path": "/m/d.mp3", "sha256": "h4", "artists": "Beyoncé", "track_name": "Halo II"},
        {"row": 6, "track_id": "e", "path": "/m/e.mp3", "sha256": "h5", "artists": None, "track_name": "Halo"},
    ])


def test_audio_then_song_repeats_are_removed_and_the_first_is_kept():
    kept, removed = dedup.deduplicate(_manifest())
    assert kept["track_id"].tolist() == ["a", "d", "e"]
    assert removed[["track_id", "rule", "kept_track_id", "kept_row"]].values.tolist() == [
        ["b", "audio", "a", 2], ["c", "song", "a", 2]]
    assert "same audio (SHA-256) as row 2" in removed.loc[0, "reason"]
    assert "same song ('beyonce - halo') as row 2" in removed.loc[1, "reason"]
    table = dedup.summary(removed, id_repeats=3)
    assert table["removed"].to_dict() == {"id": 3, "audio": 1, "song": 1}


def test_a_removed_row_does_not_remove_others_through_it():
    """A row dropped as an audio repeat no longer counts as the first of its song."""
    m = _manifest().iloc[[0, 1]].copy()
    m.loc[1, ["artists", "track_name"]] = ["Zed", "Song"]
    extra = pd.DataFrame([{"row": 9, "track_id": "z", "path": "/m/z.mp3", "sha256": "h9", "artists": "Zed",
                           "track_name": "Song"}])
    kept, removed = dedup.deduplicate(pd.concat([m, extra], ignore_index=True))
    assert kept["track_id"].tolist() == ["a", "z"] and removed["rule"].tolist() == ["audio"]


def test_without_hashes_or_names_nothing_is_removed():
    m = _manifest()[["row", "track_id", "path"]]
    kept, removed = dedup.deduplicate(m)
    assert len(kept) == len(m) and removed.empty and list(removed.columns) == list(dedup.REMOVED_COLUMNS)
