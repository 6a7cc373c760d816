import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from audioreg.data.linking import credited_artists
from audioreg.data.split import check_no_leakage, group_split, leakage_groups


def table(n, n_artists, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"track_id": [f"t{i}" for i in range(n)],
                         "artists": [f"artist{rng.integers(n_artists)}" for _ in range(n)]})


def test_fractions_and_no_leakage():
    df = table(300, 120)
    s = group_split(df, random_state=0)
    share = s.value_counts(normalize=True)
    assert share["train"] == pytest.approx(0.70, abs=0.03)
    assert share["val"] == pytest.approx(0.15, abs=0.03)
    assert share["test"] == pytest.approx(0.15, abs=0.03)
    check_no_leakage(df.assign(split=s))


def test_deterministic_by_seed():
    df = table(100, 40)
    assert group_split(df, random_state=3).equals(group_split(df, random_state=3))
    assert not group_split(df, random_state=3).equals(group_split(df, random_state=4))


def test_multi_artist_tracks_join_groups():
    df = pd.DataFrame({"track_id": ["a", "b", "c", "d"], "artists": ["X", "Y", "X;Y", "Z"]})
    g = leakage_groups(df)
    assert g[0] == g[1] == g[2] != g[3]


def test_duplicate_track_ids_stay_together_without_artists():
    df = pd.DataFrame({"track_id": ["a", "b", "a", "c"]})
    g = leakage_groups(df, artist_col=None)
    assert g[0] == g[2] and len(set(g)) == 3


def test_artist_spellings_in_nfd_and_nfc_are_one_artist():
    import unicodedata

    df = pd.DataFrame({"track_id": ["a", "b"], "artists": [unicodedata.normalize("NFD", "Sigur Rós"), "Sigur Rós"]})
    g = leakage_groups(df)
    assert g[0] == g[1]


def test_check_no_leakage_names_the_culprit():
    df = pd.DataFrame({"track_id": ["a", "b"], "artists": ["Björk", "björk"], "split": ["train", "test"]})
    with pytest.raises(ValueError, match="artist 'bjork' is in both train and test"):
        check_no_leakage(df)


def test_bad_fractions():
    with pytest.raises(ValueError, match="sum below 1"):
        group_split(table(10, 5), val_fraction=0.5, test_fraction=0.5)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 80), n_artists=st.integers(1, 40), seed=st.integers(0, 10))
def test_never_leaks(n, n_artists, seed):
    df = table(n, n_artists, seed)
    check_no_leakage(df.assign(split=group_split(df, random_state=seed)))


def test_groups_join_spellings_of_one_artist_one_audio_file_and_one_song():
    """Two identical files credited to "Beyoncé"/"Beyonce" and "Guns N' Roses"/"Guns N Roses",
    a featured artist, and one song under two ids: each set lands in one group."""
    df = pd.DataFrame({
        "track_id": ["a", "b", "c", "d", "e", "f", "g", "h"],
        "artists": ["Beyoncé", "Beyonce", "Guns N' Roses", "Guns N Roses", "Drake feat. Rihanna", "Rihanna",
                    "Solo Act", "Solo Act;Other"],
        "track_name": ["Halo", "Halo", "Patience", "Patience", "Work", "Umbrella", "Song", "Song (feat. Other)"],
        "sha256": ["h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8"],
    })
    g = leakage_groups(df)
    assert g[0] == g[1] and g[2] == g[3] and g[4] == g[5] and g[6] == g[7]
    assert len(set(g)) == 4
    same_audio = pd.DataFrame({"track_id": ["x", "y"], "artists": ["One", "Two"], "sha256": ["same", "same"]})
    assert len(set(leakage_groups(same_audio))) == 1
    song = pd.DataFrame({"track_id": ["p", "q"], "artists": ["Artist A", "artist a"], "track_name": ["Title", "TITLE!"]})
    assert len(set(leakage_groups(song.assign(artists=["Artist A", "Someone;Artist A"])))) == 1
    with pytest.raises(ValueError, match=r"audio 'same' is in both"):
        check_no_leakage(same_audio.assign(split=["train", "test"]))


def test_rare_classes_and_non_zero_masses_are_spread_over_the_parts():
    """A rare time signature and a rare speech mass, one track per artist: dealt with their
    strata the parts' shares follow the whole's far better than dealt by file counts alone."""
    rng = np.random.default_rng(5)
    n = 300
    df = pd.DataFrame({"track_id": [f"t{i}" for i in range(n)], "artists": [f"a{i // 2}" for i in range(n)],
                       "time_signature": rng.choice([4, 4, 4, 4, 4, 4, 4, 4, 3, 7], n),
                       "speechiness": np.where(rng.random(n) < 0.06, 0.8, 0.05)})
    from audioreg.data.split import label_summary

    errors = {}
    for name, table_ in (("strata", df), ("files only", df[["track_id", "artists"]])):
        err = []
        for seed in range(8):
            summary = label_summary(df.assign(split=group_split(table_, random_state=seed)))
            shares = summary.loc[[i for i in summary.index if i.startswith("share")]]
            err.append(float(shares[["val", "test"]].sub(shares["all"], axis=0).abs().to_numpy().mean()))
        errors[name] = np.mean(err)
    assert errors["strata"] < 0.6 * errors["files only"], errors
    s = group_split(df, random_state=0)
    assert s.value_counts(normalize=True)["test"] == pytest.approx(0.15, abs=0.03)
    summary = label_summary(df.assign(split=s))
    assert list(summary.columns) == ["train", "val", "test", "all"]
    assert summary.loc["share speechiness > 0.33", "all"] == pytest.approx((df["speechiness"] > 0.33).mean())


def test_list_string_and_joined_spellings_of_one_credit_are_one_group():
    # the 600k and 1.2M tables write Python list strings, the Kaggle table joins with ";"
    df = pd.DataFrame({"track_id": ["a", "b", "c", "d", "e", "f"],
                       "artists": ["['Artist 1']", "['Artist 1', 'Artist 2']", "Artist 1", "Artist 1;Artist 2",
                                   "Artist 3", "[\"Guns N' Roses\"]"]})
    g = leakage_groups(df)
    assert g[0] == g[1] == g[2] == g[3] != g[4] != g[5]
    assert credited_artists("['Artist 1', 'Artist 2']") == credited_artists("Artist 1;Artist 2") == ["artist 1", "artist 2"]
    assert credited_artists("['Artist 1']") == credited_artists("Artist 1") == ["artist 1"]
    assert credited_artists("[\"Guns N' Roses\"]") == credited_artists("Guns N' Roses") == ["guns n roses"]
