"""Repeats removed before the split: the same audio file content, or the same song under
another id.

The public Spotify-derived tables list one track once per genre (the same ``track_id``:
:func:`audioreg.data.metadata.validate_labels` keeps the first of those and lists the
others) and the same recording under several ids (a single, its album version, a
compilation). Left in, a repeat puts the same audio on both sides of the split, or counts one
song twice. :func:`deduplicate` removes, in this order:

1. ``audio``: rows linked to a file with the same content (SHA-256) as an earlier row's;
2. ``song``: rows whose normalized first artist and title (:func:`audioreg.data.linking.song_key`:
   Unicode, case, punctuation, accents and "feat." credits folded) equal an earlier row's.

The first row (in table order) of each repeat is kept; every removed row names the rule and
the row it repeats.
"""

from __future__ import annotations

from .._pandas import pd

from .linking import song_key

#: The rules of :func:`deduplicate`, in the order they apply.
RULES = ("audio", "song")
#: Columns of the removed-rows table.
REMOVED_COLUMNS = ("row", "track_id", "path", "rule", "kept_row", "kept_track_id", "reason")


def deduplicate(manifest: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(kept, removed)``: ``manifest`` without its repeats, and one row per removed track.

    Parameters
    ----------
    manifest : pandas.DataFrame
        One row per linked track, in table order, with ``row`` (the table line), ``track_id``,
        ``path`` and ``sha256``; ``artists`` and ``track_name`` enable the song rule.

    Returns
    -------
    kept : pandas.DataFrame
        The rows kept, in their order, index reset.
    removed : pandas.DataFrame
        Columns :data:`REMOVED_COLUMNS`: each removed row, the rule that removed it and the
        kept row it repeats.
    """
    keep = pd.Series(True, index=manifest.index)
    removed = []
    keys = {"audio": manifest["sha256"] if "sha256" in manifest.columns else None,
            "song": (pd.Series([song_key(a, t) for a, t in zip(manifest["artists"], manifest["track_name"])],
                               index=manifest.index)
                     if {"artists", "track_name"} <= set(manifest.columns) else None)}
    for rule in RULES:
        key = keys[rule]
        if key is None:
            continue
        live = keep & key.notna()
        first: dict = {}
        for i in manifest.index[live]:
            k = key[i]
            if k in first:
                j = first[k]
                keep[i] = False
                what = "the same audio (SHA-256)" if rule == "audio" else f"the same song ({k!r})"
                removed.append({"row": manifest.at[i, "row"], "track_id": manifest.at[i, "track_id"],
                                "path": manifest.at[i, "path"], "rule": rule, "kept_row": manifest.at[j, "row"],
                                "kept_track_id": manifest.at[j, "track_id"],
                                "reason": f"{what} as row {manifest.at[j, 'row']} (track_id "
                                          f"{manifest.at[j, 'track_id']!r}, kept)"})
            else:
                first[k] = i
    return manifest[keep].reset_index(drop=True), pd.DataFrame(removed, columns=list(REMOVED_COLUMNS))


def summary(removed: pd.DataFrame, *, id_repeats: int = 0) -> pd.DataFrame:
    """Rows removed per rule (``id``: repeated track ids with the same labels, counted by the
    metadata check; then :data:`RULES`), as a small table for the ingest report."""
    counts = removed["rule"].value_counts() if len(removed) else pd.Series(dtype=int)
    rows = [{"rule": "id", "removed": int(id_repeats), "meaning": "the same track_id again (same labels), e.g. once per genre"},
            {"rule": "audio", "removed": int(counts.get("audio", 0)), "meaning": "a file with the same content as an earlier row's"},
            {"rule": "song", "removed": int(counts.get("song", 0)), "meaning": "the same first artist and title under another id"}]
    return pd.DataFrame(rows).set_index("rule")
