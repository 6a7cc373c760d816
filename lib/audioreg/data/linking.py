"""Linking metadata rows to audio files: path column, ``<track_id>.<ext>``, or normalized artist - title."""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from pathlib import Path

import pandas as pd

from .audio import AUDIO_EXTENSIONS

log = logging.getLogger(__name__)


_SEPARATORS = re.compile(r"[\s_]+")


class _NameTable(dict):
    """``str.translate`` table of :func:`normalize_name`, filled per character on first use.

    Dashes (Unicode category Pd, and the minus sign) become ``-``; other punctuation,
    symbols and control characters become a space; invisible format characters (soft
    hyphen, zero-width space and joiners, BOM) are removed; letters, combining marks,
    digits, spaces and ``_`` stay.
    """

    def __missing__(self, code: int):
        category = unicodedata.category(chr(code))
        if category == "Pd" or code == 0x2212:
            out = ord("-")
        elif category == "Cf":
            out = None
        elif category[0] in "PSC" and code != ord("_"):
            out = ord(" ")
        else:
            out = code
        self[code] = out
        return out


_NAME_TABLE = _NameTable()


def normalize_name(text: str) -> str:
    """Normalize a name for matching: NFKC, case-folded, punctuation and extra spaces removed.

    Every dash becomes ``-``; other punctuation and symbols become spaces; runs of spaces
    and underscores become one space, none at the ends; invisible format characters are
    dropped. Letters, digits and combining marks (accents, Indic vowel signs) are kept.
    The key is NFC and idempotent, the same for canonically or compatibly equivalent
    spellings (NFC/NFD, full-width letters, ligatures) and for upper and lower case as
    ``str.casefold`` folds them (Turkish dotless ı stays a letter of its own):
    ``"Beyonce\\u0301 — Halo"`` and ``"beyoncé - halo"`` give the same key.
    """
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    text = unicodedata.normalize("NFKC", text).translate(_NAME_TABLE)  # case folding can decompose (ΐ)
    text = _SEPARATORS.sub(" ", text).strip()
    return unicodedata.normalize("NFC", text)


_FEAT = re.compile(r"\s*[\(\[]?\b(?:feat|ft|featuring)\b\.?\s+", re.IGNORECASE)


def fold_name(text: str) -> str:
    """:func:`normalize_name` with accents removed too (``"Beyoncé"`` and ``"Beyonce"`` give
    one key), for telling whether two credits name the same artist or song."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return normalize_name(bare)


def credited_artists(value) -> list[str]:
    """Every artist a credit names, folded (:func:`fold_name`): ``;``-separated lists and
    "feat." / "ft." / "featuring" credits split; ``"Guns N' Roses"`` = ``"Guns N Roses"``."""
    if not isinstance(value, str):
        return []
    names = []
    for part in value.split(";"):
        for name in _FEAT.split(part):
            key = fold_name(name.strip(" ()[]"))
            if key:
                names.append(key)
    return names


def song_key(artists, title) -> str | None:
    """One key per song: the first credited artist and the title without its "(feat. ...)" part."""
    names = credited_artists(artists)
    if not names or not isinstance(title, str):
        return None
    bare_title = fold_name(_FEAT.split(title)[0])
    return f"{names[0]} - {bare_title}" if bare_title else None


def stem_key(text: str) -> str:
    """Matching key of a file stem: :func:`normalize_name` with dashes as spaces."""
    return " ".join(normalize_name(text).replace("-", " ").split())


def artist_title_key(artists: str, title: str) -> str:
    """Key of an "artist - title" file stem; the first of ';'-separated artists is used."""
    first = str(artists).split(";")[0]
    return stem_key(f"{first} - {title}")


def index_audio_dir(audio_dir: str | os.PathLike) -> pd.DataFrame:
    """All audio files below ``audio_dir`` (recursive, in sorted order), with their stem keys.

    macOS's ``._<name>`` companions (resource forks copied to non-Mac disks) are not audio
    and are left out: ``._Artist - Title.mp3`` would otherwise make the name ambiguous.
    """
    audio_dir = Path(audio_dir)
    rows = []
    if audio_dir.is_dir():
        for dirpath, dirs, files in os.walk(audio_dir):
            dirs.sort()
            for name in sorted(files):
                p = Path(dirpath) / name
                if p.suffix.lower() in AUDIO_EXTENSIONS and not name.startswith("._"):
                    stem = unicodedata.normalize("NFC", p.stem)
                    rows.append({"path": str(p), "stem": stem, "key": stem_key(stem)})
    return pd.DataFrame(rows, columns=["path", "stem", "key"])


def link_audio(df: pd.DataFrame, *, audio_dir: str | os.PathLike, metadata_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Find each metadata row's audio file.

    Tried in order: a ``path`` column (relative to the metadata file's folder, then to
    ``audio_dir``); a file named ``<track_id>.<ext>`` anywhere below ``audio_dir``;
    a file whose normalized stem is ``"<first artist> - <track_name>"``.

    Returns
    -------
    DataFrame indexed like ``df`` with ``path`` (str or None), ``link`` (the rule
    that matched) and ``reason`` (why nothing matched, else None).
    """
    audio_dir = Path(audio_dir)
    files = index_audio_dir(audio_dir)
    by_stem: dict[str, list[str]] = {}
    by_key: dict[str, list[str]] = {}
    for p, stem, key in files.itertuples(index=False):
        by_stem.setdefault(stem, []).append(p)
        by_key.setdefault(key, []).append(p)
    out = []
    for _, r in df.iterrows():
        path, link, reason = None, None, None
        given = r.get("path") if "path" in df.columns else None
        if isinstance(given, str) and given.strip():
            for base in [metadata_dir, audio_dir] if metadata_dir else [audio_dir]:
                cand = Path(given) if Path(given).is_absolute() else Path(base) / given
                if cand.is_file():
                    path, link = str(cand), "path column"
                    break
            if path is None:
                reason = f"path column names {given!r}, which does not exist"
        tid = r["track_id"]
        if path is None and isinstance(tid, str) and tid in by_stem:
            matches = by_stem[tid]
            if len(matches) == 1:
                path, link, reason = matches[0], "track_id file name", None
            else:
                reason = f"{len(matches)} files are named {tid}.*: {', '.join(Path(m).name for m in matches[:3])}"
        if (path is None and "artists" in df.columns and "track_name" in df.columns
                and isinstance(r["artists"], str) and isinstance(r["track_name"], str)):
            key = artist_title_key(r["artists"], r["track_name"])
            matches = by_key.get(key, [])
            if len(matches) == 1:
                path, link, reason = matches[0], "artist - title", None
            elif len(matches) > 1:
                reason = f"{len(matches)} files match '{r['artists']} - {r['track_name']}'"
        if path is None and reason is None:
            reason = f"no audio file for track_id {tid!r} under {audio_dir}"
        out.append({"path": path, "link": link, "reason": reason})
    return pd.DataFrame(out, index=df.index)
